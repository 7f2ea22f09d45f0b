"""Hot reload of rule files: notice an edit, validate it, and hand over the new rules.

The consumer calls :meth:`RuleFileWatcher.poll` from its periodic tick. A valid edit returns the
new :class:`~rules.model.RuleSet` for :meth:`rules.engine.Engine.reload`, which keeps the state
of rules whose definition did not change. An invalid edit is logged, problem by problem, and
the engine keeps running the rules it has: a typo in a YAML file must never stop supervision.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from farsight.errors import ConfigError
from farsight.logs import kv
from rules.loader import default_pack_files, load_ruleset
from rules.model import RuleSet

log = logging.getLogger("farsight.rules.reload")

_RULE_IN_PATH = re.compile(r"^rules(?:\.\d+)?\[([^\]]+)\]")


def problem_rows(exc: ConfigError) -> list[dict[str, Any]]:
    """Every problem of a rule-file error as ``file, rule, key, value, message`` (rule may be
    empty).

    The rule id is read from the key path (``rules.3[cems-so2].for``), where the model puts it.
    """
    rows = []
    for p in exc.problems:
        m = _RULE_IN_PATH.match(p.path)
        rows.append(
            {
                "file": exc.source,
                "rule": m.group(1) if m else "",
                "key": p.path,
                "value": p.value,
                "message": p.message,
            }
        )
    return rows


class RuleFileWatcher:
    """Watches rule files (and the default pack) by content hash; :meth:`poll` returns new rules.

    Content, not modification time, decides: an editor that rewrites a file with the same text
    reloads nothing, and two edits within one mtime tick are still seen.
    """

    def __init__(self, files: Iterable[Path | str], default_pack: bool = True) -> None:
        self.files = tuple(Path(f) for f in files)
        self.default_pack = default_pack
        self._seen = self._fingerprint()
        self._failed: str | None = None

    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            h.update(str(f).encode() + b"\0")
            try:
                h.update(f.read_bytes())
            except OSError as exc:
                # A missing or unreadable file is a state too: load_ruleset reports it.
                h.update(f"\0unreadable:{exc.errno}".encode())
            h.update(b"\0\0")
        if self.default_pack:
            for name, text in default_pack_files():
                h.update(name.encode() + b"\0" + text.encode() + b"\0\0")
        return h.hexdigest()

    def load(self) -> RuleSet:
        """Load the rules now and take their content as the baseline (use at start).

        Raises
        ------
        RuleError, ConfigError
            When the files are invalid: at start there are no old rules to keep running.
        """
        fp = self._fingerprint()
        ruleset = load_ruleset(self.files, self.default_pack)
        self._seen, self._failed = fp, None
        return ruleset

    def poll(self) -> RuleSet | None:
        """The new rules if a file changed and all are valid; ``None`` if unchanged or invalid."""
        fp = self._fingerprint()
        if fp == self._seen or fp == self._failed:
            return None
        try:
            ruleset = load_ruleset(self.files, self.default_pack)
        except ConfigError as exc:
            self._failed = fp  # report a broken edit once, not on every tick until it is fixed
            rows = problem_rows(exc)
            for row in rows:
                log.error("rule file invalid; the previous rules keep running", extra=kv(**row))
            if not rows:
                log.error(
                    "rule file invalid; the previous rules keep running",
                    extra=kv(file=exc.source, message=str(exc)),
                )
            return None
        self._seen, self._failed = fp, None
        log.info(
            "rule files changed",
            extra=kv(files=",".join(str(f) for f in self.files), rules=len(ruleset)),
        )
        return ruleset
