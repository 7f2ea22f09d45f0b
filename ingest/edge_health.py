"""Hub side of gateway health: heartbeats and configuration acknowledgements from site gateways.

Gateways publish a retained heartbeat on ``fs/v1/gw/{gateway}/status`` (``{"state": "offline"}``
as their last will) and acknowledge pushed configuration on ``fs/v1/gw/{gateway}/config/ack``.
The hub keeps each gateway's latest status, writes every acknowledgement to the audit chain, and
raises two alerts:

- ``gateway-silent`` (major): the will said offline, or no heartbeat for ``silent_after_s``;
- ``gateway-backlog`` (warning): the oldest buffered message is older than ``backlog_age_s``, or
  the buffer grew on each of the last ``backlog_beats`` heartbeats while the link was up (the
  uplink is slower than the site).

Both resolve when the condition clears. Heartbeats are not signed (broker ACLs decide who may
publish on a gateway's topics); the data they describe is, in the batches.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from farsight.clock import to_epoch_ms
from farsight.db import Database
from farsight.logs import kv
from farsight.migrate import ensure_schema
from farsight.registry import Registry
from farsight.settings import EdgeHubSettings
from farsight.types import AlertSignal
from ingest.audit import AuditTrail

log = logging.getLogger("farsight.ingest.edge_health")

SILENT = "gateway-silent"
BACKLOG = "gateway-backlog"


def _fingerprint(rule_id: str, site: str, device: str, metric: str) -> str:
    # The rule engine's formula (rules/engine.py), so gateway alerts dedup like every other.
    return hashlib.sha256(f"{rule_id}\x1f{site}\x1f{device}\x1f{metric}".encode()).hexdigest()[:16]


@dataclass(slots=True)
class _Gateway:
    last_seen: datetime | None = None
    state: str = "unknown"
    depths: deque = field(default_factory=lambda: deque(maxlen=16))
    firing: set[str] = field(default_factory=set)


def status_kind(topic: str) -> tuple[str, str] | None:
    """``(gateway, "status" | "ack")`` for a gateway status or config-ack topic, else ``None``."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[:3] == ["fs", "v1", "gw"] and parts[4] == "status":
        return parts[3], "status"
    if len(parts) == 6 and parts[:3] == ["fs", "v1", "gw"] and parts[4:] == ["config", "ack"]:
        return parts[3], "ack"
    return None


class GatewayMonitor:
    """Keeps gateway status and raises the silent and backlog alerts; see the module docstring."""

    topics = ("fs/v1/gw/+/status", "fs/v1/gw/+/config/ack")

    def __init__(
        self,
        db: Database,
        settings: EdgeHubSettings,
        registry: Registry | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.db = ensure_schema(Database.of(db))
        self.settings = settings
        self.registry = registry
        self.audit = audit
        self._gw: dict[str, _Gateway] = {}

    def _signal(
        self,
        gateway: str,
        rule: str,
        firing: bool,
        now: datetime,
        summary: str,
        value: float | None = None,
        threshold: float | None = None,
    ) -> AlertSignal | None:
        g = self._gw.setdefault(gateway, _Gateway())
        if firing == (rule in g.firing):
            return None
        (g.firing.add if firing else g.firing.discard)(rule)
        named = self.registry.gateway(gateway) if self.registry is not None else None
        # The registry's home site wins; edge.sites in the settings is the older fallback.
        site_id = named.site_id if named else self.settings.sites.get(gateway, gateway)
        site = self.registry.get(site_id) if self.registry is not None else None
        metric = "gateway_heartbeat" if rule == SILENT else "gateway_backlog"
        log.warning(
            "gateway alert",
            extra=kv(rule=rule, gateway=gateway, status="firing" if firing else "resolved"),
        )
        return AlertSignal(
            rule_id=rule,
            fingerprint=_fingerprint(rule, site_id, gateway, metric),
            status="firing" if firing else "resolved",
            site=site_id,
            device=gateway,
            metric=metric,
            severity="major" if rule == SILENT else "warning",
            summary=summary,
            ts=now,
            value=value,
            threshold=threshold,
            department=site.department if site else "",
            entity_id=site.entity_id if site else "",
            item_code=site.item_code if site else "",
            credit_grade=site.credit_grade if site else "B",
            labels=(("gateway", gateway),),
        )

    def observe(
        self, gateway: str, kind: str, payload: bytes, now: datetime | None = None
    ) -> tuple[list[AlertSignal], dict | None, dict | None]:
        """Take one status or ack message; returns (signals, status row, audit entry)."""
        now = now or datetime.now(UTC)
        try:
            doc = json.loads(payload)
            problem = None if isinstance(doc, dict) else "not an object"
        except (ValueError, UnicodeDecodeError) as exc:
            problem = str(exc)
        if problem is not None:
            log.warning(
                "unreadable gateway message", extra=kv(gateway=gateway, kind=kind, error=problem)
            )
            return [], None, None
        if kind == "ack":
            return (
                [],
                None,
                {
                    "gateway": gateway,
                    **{k: doc.get(k) for k in ("version", "status", "applied_version", "errors")},
                },
            )
        g = self._gw.setdefault(gateway, _Gateway())
        g.last_seen, g.state = now, str(doc.get("state", "unknown"))
        signals: list[AlertSignal | None] = []
        buf = doc.get("buffer") or {}
        depth, age = buf.get("depth"), buf.get("oldest_age_s")
        if g.state == "offline":
            signals.append(
                self._signal(
                    gateway, SILENT, True, now, f"gateway {gateway} went offline (last will)"
                )
            )
        else:
            signals.append(
                self._signal(gateway, SILENT, False, now, f"gateway {gateway} is back online")
            )
            if isinstance(depth, int):
                g.depths.append(depth)
            beats = list(g.depths)[-(self.settings.backlog_beats + 1) :]
            rising = len(beats) > self.settings.backlog_beats and all(
                b > a for a, b in itertools.pairwise(beats)
            )
            old = isinstance(age, (int, float)) and age >= self.settings.backlog_age_s
            if rising or old:
                why = (
                    f"oldest buffered reading {age:.0f} s old"
                    if old
                    else f"buffer grew on {self.settings.backlog_beats} heartbeats in a row"
                )
                signals.append(
                    self._signal(
                        gateway,
                        BACKLOG,
                        True,
                        now,
                        f"gateway {gateway} backlog: {depth} messages, {why}",
                        value=float(age or 0),
                        threshold=float(self.settings.backlog_age_s),
                    )
                )
            elif not isinstance(age, (int, float)) or age < self.settings.backlog_age_s / 2:
                signals.append(
                    self._signal(
                        gateway,
                        BACKLOG,
                        False,
                        now,
                        f"gateway {gateway} backlog cleared",
                        value=float(age or 0),
                    )
                )
        row = {
            "gateway": gateway,
            "state": g.state,
            "received": to_epoch_ms(now),
            "depth": depth if isinstance(depth, int) else None,
            "oldest_age_s": age if isinstance(age, (int, float)) else None,
            "config_version": doc.get("config_version")
            if isinstance(doc.get("config_version"), int)
            else None,
            "doc": json.dumps(doc, separators=(",", ":"))[:65536],
        }
        return [s for s in signals if s is not None], row, None

    def check_silent(self, now: datetime | None = None) -> list[AlertSignal]:
        """Gateways with no heartbeat for ``silent_after_s`` (call it periodically)."""
        now = now or datetime.now(UTC)
        out = []
        for gateway, g in self._gw.items():
            if g.last_seen is None or g.state == "offline":
                continue
            silent_s = (now - g.last_seen).total_seconds()
            if silent_s >= self.settings.silent_after_s:
                s = self._signal(
                    gateway,
                    SILENT,
                    True,
                    now,
                    f"gateway {gateway} silent for {silent_s:.0f} s",
                    value=silent_s,
                    threshold=float(self.settings.silent_after_s),
                )
                if s is not None:
                    out.append(s)
        return out

    def commit(self, rows: Sequence[Mapping[str, Any]], acks: Sequence[Mapping[str, Any]]) -> None:
        """Store status rows and audit the acknowledgements (inside the caller's transaction)."""
        if not rows and not acks:
            return
        with self.db.transaction() as c:
            for r in rows:
                c.execute(
                    "INSERT INTO edge_status"
                    " (gateway, state, received, depth, oldest_age_s, config_version, doc)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (gateway) DO UPDATE SET state = excluded.state,"
                    " received = excluded.received, depth = excluded.depth,"
                    " oldest_age_s = excluded.oldest_age_s,"
                    " config_version = excluded.config_version, doc = excluded.doc",
                    (
                        r["gateway"],
                        r["state"],
                        r["received"],
                        r["depth"],
                        r["oldest_age_s"],
                        r["config_version"],
                        r["doc"],
                    ),
                )
            if self.audit is not None:
                for a in acks:
                    # Who changed a site's data path, to which version, whether it took: audited.
                    self.audit.append_in(
                        c,
                        f"gateway:{a['gateway']}",
                        f"edge.config.{a.get('status')}",
                        f"gateway/{a['gateway']}",
                        dict(a),
                    )

    def status(self) -> list[dict[str, Any]]:
        """The latest status of every gateway."""
        return [dict(r) for r in self.db.query("SELECT * FROM edge_status ORDER BY gateway")]
