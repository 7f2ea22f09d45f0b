"""``farsight audit verify`` as a function: the chain, its signed anchor, and the queue against it.

Three checks, on one snapshot of the database (:meth:`~farsight.db.Database.snapshot`):

1. the hash chain walks from the genesis to its head, and reaches the anchor's seq with the
   anchor's hash (:func:`alerts.audit.verify_chain`);
2. the anchor is signed by the trusted key (:func:`alerts.anchor_sign.anchor_problem`): an
   unsigned or wrongly signed anchor vouches for nothing, since whoever rewrites the chain can
   rewrite an anchor file too;
3. ``alerts`` and ``alert_events`` are what the verified chain recorded
   (:mod:`alerts.audit_replay`): a direct edit of a state, an actor or an event is reported
   with the alert and the audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from alerts import store_replay
from alerts.anchor_sign import anchor_problem
from alerts.audit import Anchor, VerifyResult, format_at, verify_chain
from alerts.audit_replay import QueueFinding, check_alerts
from farsight.db import Database

BATCH = 500
"""Alerts compared per read (one statement per table per batch)."""


@dataclass(frozen=True, slots=True)
class TrailReport:
    """What :func:`verify_trail` found; :attr:`ok` when all three checks pass."""

    chain: VerifyResult
    anchor: Anchor | None = None
    anchor_problem: str = ""
    findings: tuple[QueueFinding, ...] = ()
    alerts: int = 0
    events: int = 0
    queue_checked: bool = False

    @property
    def ok(self) -> bool:
        return (
            self.chain.ok and not self.anchor_problem and self.queue_checked and not self.findings
        )

    def lines(self) -> list[str]:
        """The report for people: the chain's line first (as ``audit verify`` always printed
        it), then the anchor's, then the queue's and one line per finding."""
        out = [self.chain.summary()]
        a = self.anchor
        if a is not None:
            if self.anchor_problem:
                out.append(f"anchor refused: {self.anchor_problem}")
            else:
                # The signature only: whether the chain still holds the anchor's hash is the
                # chain's line above.
                out.append(
                    f"anchor signature ok: seq {a.seq} of {format_at(a.at)}"
                    + (f" from {a.source}" if a.source else "")
                    + f", signed by key {a.key_id}"
                )
        if not self.queue_checked:
            out.append("queue not checked: the chain it is checked against is broken")
        elif self.findings:
            alerts = len({f.alert_id for f in self.findings})
            out.append(
                f"queue differs from the chain: {len(self.findings)} finding(s) in {alerts}"
                " alert(s)"
            )
            out.extend(f"  {f}" for f in self.findings)
        else:
            out.append(
                f"queue ok: {self.alerts} alerts and {self.events} events are what the chain"
                " recorded"
            )
        return out


def verify_trail(
    db: Database,
    anchor: Anchor | None = None,
    public_key: Ed25519PublicKey | None = None,
    *,
    batch: int = BATCH,
) -> TrailReport:
    """Check the chain, the anchor's signature and the queue on one snapshot of ``db``.

    Parameters
    ----------
    db : Database
        The queue's database (SQLite or PostgreSQL) with its ``audit_log``.
    anchor : Anchor, optional
        An anchor kept outside the database (a file, or the copy the upstream hub holds).
    public_key : Ed25519PublicKey, optional
        The key anchors must be signed with; an anchor is refused without one.
    batch : int
        Alerts read and compared at a time.

    Returns
    -------
    TrailReport
        The queue is compared only with a chain that verifies (a broken chain proves nothing).
    """
    problem = anchor_problem(anchor, public_key) if anchor is not None else ""
    with db.snapshot() as c:
        chain = verify_chain(store_replay.chain_rows(c), anchor)
        if not chain.ok:
            return TrailReport(chain, anchor, problem)
        head = chain.entries
        ids = sorted(set(store_replay.alert_ids(c)) | store_replay.chain_alert_ids(c, head))
        findings: list[QueueFinding] = []
        alerts = events = 0
        for i in range(0, len(ids), batch):
            chunk = ids[i : i + batch]
            rows = store_replay.alert_rows(c, chunk)
            evs = store_replay.event_rows(c, chunk)
            entries = store_replay.alert_entries(c, chunk, head)
            alerts += len(rows)
            events += sum(len(v) for v in evs.values())
            findings.extend(check_alerts(chunk, rows, evs, entries))
    return TrailReport(chain, anchor, problem, tuple(findings), alerts, events, True)


__all__ = ["BATCH", "TrailReport", "verify_trail"]
