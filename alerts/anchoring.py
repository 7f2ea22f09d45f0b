"""Signed anchors of the audit chain, made on a schedule and sent upstream through the outbox.

The process that writes the queue (``farsight ingest``) runs an :class:`AnchorScheduler`: every
``alerts.anchor_every_s`` it verifies what was appended to the chain since its last anchor
(the whole chain once, at start), signs the head with the installation's Ed25519 key
(:mod:`alerts.anchor_sign`) and queues it in the outbox (:func:`alerts.outbox.enqueue_anchor`),
whose senders deliver it to the provincial hub with the alert events. The receiver keeps a copy
the operator cannot reach, so a chain rewritten with recomputed hashes, and an anchor file
rewritten with it, is still caught against that copy (``farsight audit verify --anchor``).

A chain that no longer verifies is not anchored: the anchor would vouch for the tampering.
The scheduler logs it at each attempt, and the last good anchor upstream stays the reference.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from alerts.anchor_sign import sign_anchor
from alerts.audit import GENESIS, Anchor, at_to_ms, ms_to_at
from alerts.audit_store import SqlAuditLog
from alerts.outbox import enqueue_anchor
from farsight.clock import Clock, SystemClock, to_epoch_ms
from farsight.db import Database
from farsight.errors import FarsightError
from farsight.logs import kv

log = logging.getLogger(__name__)


class AnchorScheduler:
    """Anchors the chain of ``target`` every ``every_s`` seconds, on a thread of its own.

    Parameters
    ----------
    target : path, URL or Database
        The queue's database; a path or URL gets a connection of its own (verifying never
        waits on ingest's transactions, nor holds them up).
    key : Ed25519PrivateKey
        The installation's signing key (:func:`alerts.anchor_sign.load_signing_key`).
    source : str
        The installation's id (``alerts.upstream.source``): in the anchor and its outbox key.
    every_s : float
        Seconds between anchors; the first is made at :meth:`start`.
    clock : Clock, optional
        Dates the anchors (tests give a manual one).
    """

    def __init__(
        self,
        target: Path | str | Database,
        key: Ed25519PrivateKey,
        source: str,
        every_s: float,
        clock: Clock | None = None,
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive, got {every_s}")
        self.log = SqlAuditLog(target)
        self.key = key
        self.source = source
        self.every_s = every_s
        self.clock = clock or SystemClock()
        self._verified: tuple[int, str] = (0, GENESIS)
        self._anchored = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.anchors = 0
        """Anchors queued since start."""

    def anchor_once(self, now: datetime | None = None) -> Anchor | None:
        """Verify what was appended since the last anchor; sign and queue the head if it moved.

        Returns the anchor queued, or ``None`` (nothing new, an empty chain, or a chain that
        does not verify, which is logged).
        """
        seq, head = self._verified
        result = self.log.verify_from(seq, head)
        if not result.ok:
            log.error(
                "audit chain broken: not anchoring it",
                extra=kv(first_bad_seq=result.first_bad_seq, reason=result.reason),
            )
            return None
        self._verified = (result.entries, result.head)
        if result.entries == 0 or result.entries == self._anchored:
            return None
        when = ms_to_at(at_to_ms(now or self.clock.now()))
        anchor = sign_anchor(
            Anchor(
                seq=result.entries,
                hash=result.head,
                at=when,
                entries=result.entries,
                source=self.source,
            ),
            self.key,
        )
        enqueue_anchor(self.log.db, anchor, self.source, to_epoch_ms(when))
        self._anchored = anchor.seq
        self.anchors += 1
        log.info(
            "audit anchor queued upstream",
            extra=kv(seq=anchor.seq, hash=anchor.hash, key=anchor.key_id),
        )
        return anchor

    def _run(self) -> None:
        while True:
            try:
                self.anchor_once()
            # The database is down, a bug: log, and try again at the next interval.
            except (FarsightError, ValueError) as exc:
                log.error("audit anchor not made", extra=kv(error=f"{type(exc).__name__}: {exc}"))
            if self._stop.wait(self.every_s):
                return

    def start(self) -> AnchorScheduler:
        """Anchor now, then every ``every_s`` seconds until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="audit-anchors", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread (after the anchor in progress, if any) and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            if self._thread.is_alive():
                log.warning("audit anchor thread did not stop in time")
                return
        self.log.close()


__all__ = ["AnchorScheduler"]
