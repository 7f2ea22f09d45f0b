"""The demo's video path end to end: a simulated MJPEG camera shows smoke at a construction site,
the video runner publishes the finding over mosquitto, ingest decodes it, the default rule pack
holds it 30 s and raises an alert whose evidence (annotated snapshot, raw frame, clip) the hub
serves to the dashboard by hash.

The demo's cameras play their scenario SPEED times faster than real time; their frames carry the
scenario's time, which the analysers, the runner's keep-alives and the rules' 30 s hold follow,
so the whole path runs as it does live, in a fraction of the wall time; ingest accepts camera
readings as far ahead of its clock as the sped-up scenario runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from app.demos.platform import start_demo_video
from app.lifecycle import Shutdown
from app.roles.ingest import IngestService
from farsight.registry import load_registry
from farsight.settings import Settings
from hub.app import create_app
from hub.auth import TokenStore
from tests.conftest import wait_until
from tests.hub.conftest import bearer, start_server, stop_server

pytestmark = pytest.mark.e2e

SPEED = 8.0


def test_demo_camera_smoke_becomes_an_alert_with_its_snapshot(
    fresh_mosquitto, data_dir: Path
) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "broker": {
                "host": fresh_mosquitto.host,
                "port": fresh_mosquitto.port,
                "embedded": "none",
            },
            "rules": {"tick_s": 0.5},
            "video": {"resend_s": 2},
            "simulator": {"cameras": {"speed": SPEED}},
            # The cameras' scenario time runs ahead of the wall clock by (SPEED - 1) x elapsed.
            "ingest": {"time": {"future_skew_by_kind": {"camera": 3600}}},
        }
    )
    registry = load_registry(None)
    ingest = IngestService(settings, registry)
    ingest.start()
    shutdown = Shutdown()
    server = thread = None
    try:
        runner, banner = start_demo_video(settings, registry, shutdown)
        assert runner is not None and "4 simulated cameras" in banner and "8x" in banner
        app = create_app(
            settings,
            registry,
            readings=ingest.readings,
            alerts=ingest.alerts,
            tokens=TokenStore(settings.database, departments=registry.departments),
        )
        token = app.state.hub.tokens.issue("officer", "env", role="officer")
        server, thread, base_url = start_server(app)

        def smoke_alert():
            alerts, _ = ingest.alerts.list(limit=100)
            return [a for a in alerts if a.rule_id == "video-construction-smoke"]

        try:
            found = wait_until(
                smoke_alert, timeout=180, what="a construction smoke alert from the camera"
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; cameras: {runner.status()}; runner: {runner.stats}; "
                f"readings: {ingest.pipeline.stats}"
            ) from None
        alert = found[0]
        assert (
            alert.site == "xg-cs-huaiyin-estate" and alert.device == "cam1"
        )  # the camera the demo scripts smoke on
        assert alert.department == "env" and alert.metric == "video_smoke"
        # No alert from the quiet construction camera or the stacks' cameras in this time.
        assert not [
            a
            for a in ingest.alerts.list(limit=100)[0]
            if a.metric.startswith("video") and a.id != alert.id
        ]

        with httpx.Client(base_url=base_url, headers=bearer(token), timeout=10) as http:
            listed = http.get("/api/alerts", params={"rule_id": "video-construction-smoke"}).json()[
                "items"
            ]
            assert [a["id"] for a in listed] == [alert.id]
            evidence = listed[0]["evidence"]
            assert (
                len(evidence) >= 2
            )  # annotated snapshot and raw frame; the clip when it was done in time
            r = http.get(f"/api/evidence/{evidence[0]}")
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert hashlib.sha256(r.content).hexdigest() == evidence[0]
            snap = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
            assert snap.shape == (360, 640, 3)  # the demo cameras' size
            # The annotated snapshot differs from the raw frame where the box and label are drawn.
            raw = cv2.imdecode(
                np.frombuffer(http.get(f"/api/evidence/{evidence[1]}").content, np.uint8),
                cv2.IMREAD_COLOR,
            )
            assert np.abs(snap.astype(int) - raw.astype(int)).max() > 100
    finally:
        if server is not None:
            stop_server(server, thread)
        shutdown.close()  # the video workers and the camera server
        ingest.stop()
