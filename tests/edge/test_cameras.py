"""Cameras at the site: the gateway analyses a simulated MJPEG camera, its findings go through the
site broker into the buffer and reach the hub as video readings, with evidence kept at the site."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from app.roles.ingest import IngestService
from edge.config import parse_gateway_config
from edge.service import EdgeService
from farsight.errors import ConfigError
from farsight.evidence import EvidenceStore
from farsight.registry import parse_registry
from hub.app import create_app
from hub.auth import TokenStore
from simulators.camera import ClipSpec, EventSpec
from simulators.camera_server import CameraServer
from tests.conftest import wait_until
from tests.factories import registry_doc
from tests.hub.conftest import start_server, stop_server


def _registry_with_camera():
    doc = copy.deepcopy(registry_doc())
    for site in doc["sites"]:
        if site["id"] == "yc-stack-1":
            site["devices"].append(
                {"id": "cam1", "kind": "camera", "metrics": ["video_smoke", "video_camera_covered"]}
            )
    return parse_registry(doc)


def test_camera_findings_cross_the_gateway_to_the_hub(
    site_broker, central_broker, tmp_path: Path, gateway_key: str, monkeypatch
) -> None:
    from tests.edge.conftest import Hub

    monkeypatch.setenv("FARSIGHT_EDGE_KEY", gateway_key)
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    hub = Hub(central_broker, hub_dir, {"gw-test": gateway_key})
    registry = _registry_with_camera()
    hub.service = IngestService(hub.settings, registry)
    hub.service.start()
    # The hub's API, where the gateway sends its evidence files (a real HTTP server).
    app = create_app(
        hub.settings,
        registry,
        readings=hub.service.readings,
        alerts=hub.service.alerts,
        tokens=TokenStore(hub.settings.database, departments=registry.departments),
    )
    monkeypatch.setenv(
        "FARSIGHT_EDGE_HUB_TOKEN", app.state.hub.tokens.issue("gw-test", "env", role="officer")
    )
    server, thread, base_url = start_server(app)
    spec = ClipSpec("stack", 320, 180, 5.0, 60.0, 7, events=(EventSpec("covered", 3.0, 60.0),))
    cams = CameraServer({"stack": spec}).start()
    folder = tmp_path / "cameras"
    folder.mkdir()
    (folder / "cam1.yaml").write_text(
        yaml.safe_dump(
            {
                "camera": "cam1",
                "site": "yc-stack-1",
                "source": cams.url("stack"),
                "rate_fps": 5,
                "analysers": {"tamper": {"on_s": 2}},
            }
        ),
        encoding="utf-8",
    )
    raw = {
        "gateway_id": "gw-test",
        "data_dir": str(tmp_path / "edge"),
        "uplink": {"host": central_broker.host, "port": central_broker.port, "keepalive_s": 5},
        "collectors": {
            "mqtt_local": {"enabled": True, "host": site_broker.host, "port": site_broker.port},
            "cameras": {
                "enabled": True,
                "folder": str(folder),
                "sites": {"yc-stack-1": "env"},
                "resend_s": 1,
            },
        },
        "health": {"interval_s": 0.5},
        "evidence": {"hub_url": base_url, "interval_s": 0.2},
    }
    gw = EdgeService(parse_gateway_config(raw), raw)
    gw.start()
    try:

        def covered() -> list:
            return hub.service.readings.db.query(
                "SELECT value FROM readings WHERE device = 'cam1' AND metric ="
                " 'video_camera_covered' AND value > 0"
            )

        wait_until(
            lambda: len(covered()) >= 3, timeout=60, what="covered findings at the hub, restated"
        )
        assert gw.collectors["cameras"].state.startswith("running 1 cameras")
        assert not hub.dead_letters()
        # The snapshot and raw frame are made at the site and sent to the hub under their hashes.
        site_files = wait_until(
            lambda: list((tmp_path / "edge" / "evidence").rglob("*.jpg")),
            timeout=15,
            what="site snapshots",
        )
        hub_store = EvidenceStore.for_data_dir(hub_dir)
        wait_until(
            lambda: all(p.name.split(".")[0] in hub_store for p in site_files),
            timeout=30,
            what="evidence at the hub",
        )
        for p in site_files:
            assert hub_store.path(p.name.split(".")[0]).read_bytes() == p.read_bytes()
        assert gw.evidence.pending() == [] or all(
            q not in site_files for q in gw.evidence.pending()
        )
        assert "evidence_upload" in gw.heartbeat()["collectors"]
    finally:
        gw.stop()
        cams.stop()
        stop_server(server, thread)
        hub.stop()


def test_cameras_need_the_local_broker_and_their_sites(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mqtt_local.enabled"):
        parse_gateway_config(
            {
                "collectors": {
                    "cameras": {"enabled": True, "folder": str(tmp_path), "sites": {"s1": "env"}}
                }
            }
        )
    with pytest.raises(ConfigError, match="cameras.folder and cameras.sites"):
        parse_gateway_config(
            {"collectors": {"mqtt_local": {"enabled": True}, "cameras": {"enabled": True}}}
        )
    with pytest.raises(ConfigError, match="site and department ids"):
        parse_gateway_config({"collectors": {"cameras": {"sites": {"bad id!": "env"}}}})
