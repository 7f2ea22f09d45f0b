"""Collector for the site's cameras: the video runner at the gateway.

Cameras are analysed where they are (a 4G uplink cannot carry their streams); the runner
publishes findings on the site broker, so the local MQTT collector buffers and forwards them with
the site's other data, through the same outages. Snapshots and clips are written to
``<data_dir>/evidence`` at the gateway.
"""

from __future__ import annotations

from typing import Any

from edge.config import GatewayConfig
from edge.errors import EdgeError
from farsight.errors import FarsightError
from farsight.settings import BrokerSettings


class CamerasCollector:
    """Runs a :class:`~video.runner.VideoRunner` against the site broker."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._runner: Any = None
        self._state = "stopped"

    @property
    def state(self) -> str:
        """``running`` with the number of cameras and refused files, or ``stopped``/``failed``."""
        if self._runner is None:
            return self._state
        cams = self._runner.status()
        lost = sum(1 for c in cams if c["status"] in ("lost", "error"))
        return (
            f"running {len(cams)} cameras"
            + (f", {lost} without video" if lost else "")
            + (f", {len(self._runner.problems)} refused" if self._runner.problems else "")
        )

    def start(self) -> None:
        from video.runner import VideoRunner

        cams, local = self.config.collectors.cameras, self.config.collectors.mqtt_local
        broker = BrokerSettings(
            host=local.host,
            port=local.port,
            username=local.username,
            password=local.password,
            embedded="none",
        )
        try:
            self._runner = VideoRunner(
                broker,
                dict(cams.sites),
                cameras_dir=cams.folder,
                evidence_root=self.config.data_dir / "evidence",
                workers=cams.workers,
                resend_s=cams.resend_s,
                clear_after_s=cams.clear_after_s,
                client_id=f"farsight-gw-{self.config.gateway_id}-video",
            )
            self._runner.start()
        except FarsightError as exc:
            self._runner, self._state = None, "failed"
            raise EdgeError(f"cameras collector: {exc}") from None

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        self._state = "stopped"
