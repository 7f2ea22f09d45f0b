"""Repair of rule state that a reading from the future poisoned.

Before ingest refused readings measured far after their receipt, one HJ 212 frame dated
2099-12-31 could move a series' clock (``last_ts``, ``max_ts``) there: every later real reading
was then "late" and never judged, and the saved state kept it so across restarts. The repair
works on saved entries (:meth:`rules.engine.Engine.snapshot` form): every time after the bound
is taken out, and a condition that saw such a reading starts afresh; lifecycles keep their state
(a firing alert stays firing, so the next real reading can resolve it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from farsight.clock import from_epoch_ms, to_epoch_ms
from farsight.logs import kv
from rules.engine import CORRELATOR_ENTRY
from rules.state import RuleStateStore

log = logging.getLogger("farsight.rules.state")

_LC_TIMES = ("since", "true", "sent")


@dataclass(frozen=True, slots=True)
class EntryRepair:
    """What the repair changed in one rule instance's state."""

    rule: str
    scope: tuple[str, ...]
    changes: tuple[str, ...]

    def line(self) -> str:
        return f"{self.rule} {'/'.join(self.scope)}: {'; '.join(self.changes)}"


@dataclass(frozen=True, slots=True)
class StateRepair:
    """Every entry (repaired ones replaced), the repaired entries alone, and what changed."""

    entries: tuple[dict[str, Any], ...]
    repaired: tuple[dict[str, Any], ...]
    findings: tuple[EntryRepair, ...]


def repair_entries(entries: Sequence[dict[str, Any]], not_after: datetime) -> StateRepair:
    """Take every time after ``not_after`` out of rule state entries.

    Parameters
    ----------
    entries : sequence of dict
        Saved rule state (:meth:`rules.state.RuleStateStore.load`); not changed.
    not_after : datetime
        The latest believable time: now plus the widest allowed future skew.

    Returns
    -------
    StateRepair
        The entries with repaired copies in place of poisoned ones, and what changed in each.
    """
    bound = to_epoch_ms(not_after)
    out: list[dict[str, Any]] = []
    repaired: list[dict[str, Any]] = []
    findings: list[EntryRepair] = []
    for e in entries:
        fixed, changes = (e, []) if e["rule"] == CORRELATOR_ENTRY else _repair_entry(e, bound)
        out.append(fixed)
        if changes:
            repaired.append(fixed)
            findings.append(EntryRepair(e["rule"], tuple(e["scope"]), tuple(changes)))
    return StateRepair(tuple(out), tuple(repaired), tuple(findings))


def _repair_entry(e: dict[str, Any], bound: int) -> tuple[dict[str, Any], list[str]]:
    changes: list[str] = []
    fixed = dict(e)
    for key in ("last_ts", "max_ts"):
        v = e.get(key)
        if v is not None and v > bound:
            changes.append(f"{key} {_iso(v)} cleared")
            fixed[key] = None
    heap = e.get("heap", [])
    kept = [item for item in heap if item[0] <= bound]
    if len(kept) < len(heap):
        changes.append(f"{len(heap) - len(kept)} buffered reading(s) after the bound dropped")
        fixed["heap"] = kept
    if fixed.get("max_ts") is None and kept:
        fixed["max_ts"] = max(item[0] for item in kept)
    lcs: dict[str, Any] = {}
    for key, lc in e.get("lcs", {}).items():
        lc_fixed, what = _repair_lifecycle(lc, bound)
        if what:
            changes.append(f"lifecycle{' ' + key if key else ''}: {what}")
        if lc_fixed is not None:
            lcs[key] = lc_fixed
    if changes:
        fixed["lcs"] = lcs
        # The condition's own memory (windows, last-seen times) saw the same readings; which of
        # its fields hold times is the kind's business, so it starts afresh.
        fixed.pop("cond", None)
        changes.append("condition restarted")
    return fixed, changes


def _repair_lifecycle(lc: dict[str, Any], bound: int) -> tuple[dict[str, Any] | None, str]:
    late = [k for k in _LC_TIMES if lc.get(k) is not None and lc[k] > bound]
    if not late:
        return lc, ""
    if lc.get("s") == "firing":
        # Its alert is open: it stays firing, so the next real verdict resolves or refreshes it.
        return {**lc, **dict.fromkeys(late)}, f"firing kept, {', '.join(late)} cleared"
    return None, f"{lc.get('s')} from {_iso(max(lc[k] for k in late))} dropped"


def _iso(ms: int) -> str:
    return from_epoch_ms(ms).isoformat()


def repair_rule_state(
    store: RuleStateStore, not_after: datetime, *, dry_run: bool = False
) -> StateRepair:
    """Load the saved rule state, repair it against ``not_after`` and save what changed (unless
    ``dry_run``); each repaired instance is logged."""
    result = repair_entries(store.load(), not_after)
    for f in result.findings:
        log.warning(
            "rule state repaired" if not dry_run else "rule state needs repair",
            extra=kv(rule=f.rule, scope="/".join(f.scope), changes="; ".join(f.changes)),
        )
    if result.repaired and not dry_run:
        store.save(result.repaired)
    return result
