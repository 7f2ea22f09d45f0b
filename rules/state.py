"""Rule state in SQLite, so pending windows and firing alerts survive a restart.

The engine hands out JSON-ready entries (:meth:`rules.engine.Engine.snapshot`); this adapter
only stores and returns them. Each entry is keyed by rule and scope and carries the digest of
the rule definition it was computed under: :meth:`~rules.engine.Engine.restore` ignores
entries whose rule has changed since, so a stale row is harmless (and :meth:`prune` drops them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farsight.clock import to_epoch_ms
from farsight.db import Database
from farsight.logs import kv
from farsight.migrate import ensure_schema
from rules.engine import CORRELATOR_ENTRY
from rules.model import Rule, RuleSet

log = logging.getLogger("farsight.rules.state")

_KEYS = ("rule", "scope", "digest")


def _scope_key(scope: Sequence[str]) -> str:
    # Compact and deterministic, so the same scope always hits the same primary key.
    return json.dumps(list(scope), ensure_ascii=False, separators=(",", ":"))


class RuleStateStore:
    """The engine's rule state in the ``rule_state`` table (SQLite or PostgreSQL)."""

    def __init__(self, path: Path | str | Database) -> None:
        self.db = ensure_schema(Database.of(path))

    def save(self, entries: Sequence[dict[str, Any]], now: datetime | None = None) -> int:
        """Upsert snapshot entries (``Engine.snapshot(only_dirty=True)``) in one transaction;
        returns how many."""
        if not entries:
            return 0
        saved_at = to_epoch_ms(now or datetime.now(UTC))
        rows = [
            (
                e["rule"],
                _scope_key(e["scope"]),
                e["digest"],
                json.dumps(
                    {k: v for k, v in e.items() if k not in _KEYS},
                    ensure_ascii=False,
                    separators=(",", ":"),
                ),
                saved_at,
            )
            for e in entries
        ]
        with self.db.transaction() as c:
            c.executemany(
                "INSERT INTO rule_state (rule, scope, digest, state, saved_at) VALUES (?, ?, ?, ?,"
                " ?)"
                " ON CONFLICT (rule, scope) DO UPDATE SET digest = excluded.digest, state ="
                " excluded.state, saved_at = excluded.saved_at",
                rows,
            )
        return len(rows)

    def load(self) -> list[dict[str, Any]]:
        """Every stored entry, in the form :meth:`~rules.engine.Engine.restore` takes."""
        out = []
        for r in self.db.query(
            "SELECT rule, scope, digest, state FROM rule_state ORDER BY rule, scope"
        ):
            try:
                entry = json.loads(r["state"])
                entry.update(rule=r["rule"], scope=json.loads(r["scope"]), digest=r["digest"])
            except (ValueError, TypeError):
                # A damaged row costs that one scope its state; it must not stop the engine
                # starting.
                log.warning(
                    "unreadable rule state skipped", extra=kv(rule=r["rule"], scope=r["scope"])
                )
                continue
            out.append(entry)
        return out

    def prune(self, rules: RuleSet | Iterable[Rule]) -> int:
        """Delete state of rules no longer loaded, or loaded with another definition; returns how
        many rows."""
        current = {(r.id, r.digest) for r in (rules.rules if isinstance(rules, RuleSet) else rules)}
        # The correlator's entry carries its rules' digests inside; it restores only what still
        # fits.
        stale = [
            (r["rule"], r["scope"])
            for r in self.db.query("SELECT rule, scope, digest FROM rule_state")
            if (r["rule"], r["digest"]) not in current and r["rule"] != CORRELATOR_ENTRY
        ]
        if stale:
            with self.db.transaction() as c:
                c.executemany("DELETE FROM rule_state WHERE rule = ? AND scope = ?", stale)
            log.info("stale rule state pruned", extra=kv(rows=len(stale)))
        return len(stale)

    def count(self) -> int:
        return int(self.db.query("SELECT count(*) FROM rule_state")[0][0])

    def close(self) -> None:
        self.db.close()
