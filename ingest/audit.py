"""What ingest writes to the platform's audit chain.

Ingest may not import ``alerts``, where the audit logs live, so it names the two calls it makes;
the audit logs of ``alerts.audit`` satisfy this Protocol structurally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from farsight.db import Connection


class AuditTrail(Protocol):
    """An append-only audit log: who did what to which subject, with its data."""

    def append(
        self, actor: str, action: str, subject: str, data: Mapping[str, Any] | None = None
    ) -> object:
        """Append an entry in a transaction of its own."""
        ...

    def append_in(
        self,
        conn: Connection,
        actor: str,
        action: str,
        subject: str,
        data: Mapping[str, Any] | None = None,
    ) -> object:
        """Append an entry inside the caller's open transaction on ``conn``."""
        ...
