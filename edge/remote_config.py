"""Configuration pushed by the hub on the retained topic ``fs/v1/gw/{gateway}/config``.

The payload is ``{"version": 7, "config": {...}}``: a partial gateway configuration laid over the
gateway's own file. A version not above the applied one is ignored (the retained message comes
again on every reconnect). A new version is validated as a whole before anything changes; a
valid one is applied, and if applying fails the previous configuration is applied again. Every
outcome is acknowledged on ``fs/v1/gw/{gateway}/config/ack`` (retained) with the version now
applied, and an applied configuration is kept in the data directory so a restart resumes it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge.config import GatewayConfig, merge, parse_gateway_config
from farsight.errors import ConfigError
from farsight.logs import kv

log = logging.getLogger("farsight.edge.remote_config")

STATE_FILE = "remote-config.json"
# What a push may not change: the gateway's identity and where its buffer lives.
FIXED = ("gateway_id", "data_dir")


def load_applied(data_dir: Path) -> dict[str, Any] | None:
    """The last applied remote configuration ``{"version", "config"}``, if any."""
    path = Path(data_dir) / STATE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("version"), int) else None


def effective_config(base_raw: Mapping[str, Any], source: str = "gateway config") -> GatewayConfig:
    """The file's configuration, with the last applied remote configuration laid over it when
    newer."""
    base = parse_gateway_config(base_raw, source)
    applied = load_applied(base.data_dir)
    if applied is None or applied["version"] <= base.version:
        return base
    try:
        return parse_gateway_config(
            merge(base_raw, {**applied.get("config", {}), "version": applied["version"]}),
            "applied remote config",
        )
    except ConfigError as exc:
        log.error(
            "stored remote configuration no longer valid; using the file", extra=kv(error=exc)
        )
        return base


class RemoteConfig:
    """Validates, applies, rolls back and acknowledges pushed configurations."""

    def __init__(
        self,
        base_raw: Mapping[str, Any],
        current: GatewayConfig,
        apply: Callable[[GatewayConfig], None],
    ) -> None:
        self.base_raw = dict(base_raw)
        self.current = current
        self.apply = apply
        self.history: list[dict[str, Any]] = []

    def _ack(self, version: Any, status: str, errors: list[str] | None = None) -> dict[str, Any]:
        ack = {
            "gateway": self.current.gateway_id,
            "version": version,
            "status": status,
            "applied_version": self.current.version,
            "errors": errors or [],
        }
        self.history.append(ack)
        log.info(
            "remote configuration",
            extra=kv(
                gateway=self.current.gateway_id,
                version=version,
                status=status,
                applied=self.current.version,
                errors=len(errors or []),
            ),
        )
        return ack

    def handle(self, payload: bytes) -> dict[str, Any] | None:
        """Handle one pushed payload; returns the acknowledgement, or ``None`` for an old
        version."""
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._ack(None, "rejected", [f"not JSON: {exc}"])
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("version"), int)
            or isinstance(doc.get("version"), bool)
            or not isinstance(doc.get("config", {}), dict)
        ):
            return self._ack(
                doc.get("version") if isinstance(doc, dict) else None,
                "rejected",
                ['expected {"version": <integer>, "config": {...}}'],
            )
        version, pushed = doc["version"], doc.get("config", {})
        if version <= self.current.version:
            return None
        changed = [
            k
            for k in FIXED
            if k in pushed and pushed[k] != self.base_raw.get(k, getattr(self.current, k))
        ]
        if changed:
            return self._ack(
                version, "rejected", [f"{k}: cannot be changed remotely" for k in changed]
            )
        try:
            new = parse_gateway_config(
                merge(self.base_raw, {**pushed, "version": version}), f"remote config v{version}"
            )
        except ConfigError as exc:
            return self._ack(version, "rejected", [str(p) for p in exc.problems])
        old = self.current
        try:
            self.apply(new)
        except Exception as exc:
            log.exception(
                "remote configuration failed to apply; rolling back", extra=kv(version=version)
            )
            try:
                self.apply(old)
            except Exception:
                log.exception("rollback failed", extra=kv(version=old.version))
                return self._ack(version, "rollback_failed", [f"{type(exc).__name__}: {exc}"])
            return self._ack(version, "rolled_back", [f"{type(exc).__name__}: {exc}"])
        self.current = new
        self._persist(version, pushed)
        return self._ack(version, "applied")

    def _persist(self, version: int, pushed: Mapping[str, Any]) -> None:
        path = Path(self.current.data_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"version": version, "config": pushed}), encoding="utf-8")
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            tmp.replace(path)
        except OSError as exc:
            log.error(
                "applied configuration not saved; a restart returns to the file's",
                extra=kv(error=exc),
            )
