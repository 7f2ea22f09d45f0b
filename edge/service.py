"""The running gateway: buffer, collectors, uplink, heartbeat and remote configuration, wired."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from edge.batch import load_gateway_key
from edge.buffer import Buffer
from edge.collectors.hj212_tcp import Hj212TcpCollector
from edge.collectors.mqtt_local import MqttLocalCollector
from edge.config import GatewayConfig
from edge.errors import EdgeError
from edge.evidence_upload import EvidenceUploader
from edge.health import heartbeat, require_psutil, sntp_offset
from edge.remote_config import RemoteConfig
from edge.uplink import Uplink
from farsight.logs import kv

log = logging.getLogger("farsight.edge")

# Changing these needs a new connection or a new buffer file: a push that changes them is
# refused (and rolled back) rather than half-applied.
_RESTART_ONLY = ("gateway_id", "data_dir")


class EdgeService:
    """One site gateway."""

    def __init__(self, config: GatewayConfig, raw: Mapping[str, Any] | None = None) -> None:
        require_psutil()
        self.config = config
        self.started = time.time()
        self.key = load_gateway_key(config.uplink.hmac_key_file)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.buffer = Buffer(
            config.buffer_path, config.buffer, online=lambda: self.uplink.connected
        )
        self.remote = (
            RemoteConfig(raw or config.model_dump(mode="json"), config, self.apply)
            if config.remote_config
            else None
        )
        self.uplink = Uplink(
            config,
            self.buffer,
            self.key,
            heartbeat=self.heartbeat,
            on_config=self.remote.handle if self.remote else None,
        )
        self.collectors: dict[str, Any] = {}
        self.local_rules = None
        if config.rules.enabled:
            from edge.local_rules import LocalRules

            self.local_rules = LocalRules(config)
            self.buffer.listeners.append(self.local_rules.feed)
        self._clock_offset: float | None = None
        self._next_ntp = 0.0
        self.evidence = EvidenceUploader(config.data_dir, config.evidence)

    def _build_collectors(self, config: GatewayConfig) -> dict[str, Any]:
        out: dict[str, Any] = {}
        c = config.collectors
        if c.mqtt_local.enabled:
            out["mqtt_local"] = MqttLocalCollector(config.gateway_id, c.mqtt_local, self.buffer)
        if c.hj212_tcp.enabled:
            out["hj212_tcp"] = Hj212TcpCollector(config.gateway_id, c.hj212_tcp, self.buffer)
        if c.cameras.enabled:
            from edge.collectors.cameras import (
                CamerasCollector,
            )  # imports OpenCV: only when there are cameras

            out["cameras"] = CamerasCollector(config)
        return out

    def start(self) -> None:
        if self.local_rules is not None:
            self.local_rules.start()
        self.collectors = self._build_collectors(self.config)
        started = []
        try:
            for col in self.collectors.values():
                col.start()
                started.append(col)
        except EdgeError:
            for col in started:
                col.stop()
            self.buffer.close()
            raise
        self.uplink.start()
        self.evidence.start()
        log.info(
            "gateway running",
            extra=kv(
                gateway=self.config.gateway_id,
                version=self.config.version,
                collectors=",".join(self.collectors) or "none",
                backlog=self.buffer.depth,
                central=f"{self.config.uplink.host}:{self.config.uplink.port}",
            ),
        )

    def stop(self) -> None:
        for col in self.collectors.values():
            col.stop()
        self.evidence.stop()
        self.uplink.stop()
        self.buffer.close()
        if self.local_rules is not None:
            self.local_rules.stop()

    def apply(self, new: GatewayConfig) -> None:
        """Apply a validated configuration: bounds, forwarding and health at once; collectors
        whose settings changed are restarted. Raises on failure (the caller rolls back)."""
        for k in _RESTART_ONLY:
            if getattr(new, k) != getattr(self.config, k):
                raise EdgeError(f"{k} cannot change while running")
        if new.uplink.model_dump(
            exclude={
                "batch_max",
                "batch_max_bytes",
                "batch_wait_ms",
                "inflight",
                "backfill_after_s",
            }
        ) != self.config.uplink.model_dump(
            exclude={
                "batch_max",
                "batch_max_bytes",
                "batch_wait_ms",
                "inflight",
                "backfill_after_s",
            }
        ):
            raise EdgeError(
                "uplink connection settings (host, port, credentials, TLS, key) take effect only "
                "on restart"
            )
        if new.rules != self.config.rules:
            raise EdgeError("local rules take effect only on restart")
        if (
            new.buffer.path != self.config.buffer.path
            or new.buffer.synchronous != self.config.buffer.synchronous
        ):
            raise EdgeError("buffer.path and buffer.synchronous take effect only on restart")
        if new.collectors != self.config.collectors:
            for col in self.collectors.values():
                col.stop()
            fresh = self._build_collectors(new)
            started = []
            try:
                for col in fresh.values():
                    col.start()
                    started.append(col)
            except EdgeError:
                for col in started:
                    col.stop()
                # Leave the old collectors running again before reporting the failure.
                self.collectors = self._build_collectors(self.config)
                for col in self.collectors.values():
                    col.start()
                raise
            self.collectors = fresh
        self.buffer.settings = new.buffer
        self.uplink.update(new)
        self.config = new

    def heartbeat(self) -> dict[str, Any]:
        if self.config.health.ntp_server and time.monotonic() >= self._next_ntp:
            self._next_ntp = time.monotonic() + 300
            self._clock_offset = sntp_offset(self.config.health.ntp_server)
        return heartbeat(
            self.config.gateway_id,
            self.config.version,
            self.buffer.stats(),
            {
                **{name: col.state for name, col in self.collectors.items()},
                **(
                    {"evidence_upload": f"{self.evidence.state}, {self.evidence.sent} sent"}
                    if self.config.evidence.hub_url
                    else {}
                ),
            },
            {
                "connected": self.uplink.connected,
                "inflight": self.uplink.inflight,
                "sent_batches": self.uplink.sent_batches,
                "acked_messages": self.uplink.acked_messages,
                "reconnects": self.uplink.reconnects,
            },
            self.config.data_dir,
            self._clock_offset,
            self.started,
        )
