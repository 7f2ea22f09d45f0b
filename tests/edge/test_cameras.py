"""Cameras at the site: the gateway analyses a simulated MJPEG camera, its findings go through the
site broker into the buffer and reach the hub as video readings, with evidence kept at the site."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from edge.config import parse_gateway_config
from edge.service import EdgeService
from farsight.errors import ConfigError
from farsight.evidence import EvidenceStore
from farsight.registry import parse_registry
from farsight.runtime import IngestService
from simulators.camera import ClipSpec, EventSpec
from simulators.camera_server import CameraServer
from tests.conftest import wait_until
from tests.factories import registry_doc


def _registry_with_camera():  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(registry_doc())
    for site in doc["sites"]:
        if site["id"] == "yc-stack-1":
            site["devices"].append({"id": "cam1", "kind": "camera", "metrics": ["video_smoke", "video_camera_covered"]})
    return parse_registry(doc)


def test_camera_findings_cross_the_gateway_to_the_hub(site_broker, central_broker, tmp_path: Path, gateway_key: str,
                                                      monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.edge.conftest import Hub

    monkeypatch.setenv("FARSIGHT_EDGE_KEY", gateway_key)
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    hub = Hub(central_broker, hub_dir, {"gw-test": gateway_key})
    hub.service = IngestService(hub.settings, _registry_with_camera())
    hub.service.start()
    spec = ClipSpec("stack", 320, 180, 5.0, 60.0, 7, events=(EventSpec("covered", 3.0, 60.0),))
    cams = CameraServer({"stack": spec}).start()
    folder = tmp_path / "cameras"
    folder.mkdir()
    (folder / "cam1.yaml").write_text(yaml.safe_dump({
        "camera": "cam1", "site": "yc-stack-1", "source": cams.url("stack"), "rate_fps": 5,
        "analysers": {"tamper": {"on_s": 2}}}), encoding="utf-8")
    raw = {
        "gateway_id": "gw-test", "data_dir": str(tmp_path / "edge"),
        "uplink": {"host": central_broker.host, "port": central_broker.port, "keepalive_s": 5},
        "collectors": {"mqtt_local": {"enabled": True, "host": site_broker.host, "port": site_broker.port},
                       "cameras": {"enabled": True, "folder": str(folder), "sites": {"yc-stack-1": "env"}, "resend_s": 1}},
        "health": {"interval_s": 0.5},
    }
    gw = EdgeService(parse_gateway_config(raw), raw)
    gw.start()
    try:
        def covered() -> list:
            return hub.service.readings.db.query(  # type: ignore[union-attr]
                "SELECT value FROM readings WHERE device = 'cam1' AND metric = 'video_camera_covered' AND value > 0")

        wait_until(lambda: len(covered()) >= 3, timeout=60, what="covered findings at the hub, restated")
        assert gw.collectors["cameras"].state.startswith("running 1 cameras")
        assert not hub.dead_letters()
        # The snapshot of the finding stays at the site, under the hash the finding carries.
        assert any(EvidenceStore(tmp_path / "edge" / "evidence").root.rglob("*.jpg"))
    finally:
        gw.stop()
        cams.stop()
        hub.stop()


def test_cameras_need_the_local_broker_and_their_sites(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mqtt_local.enabled"):
        parse_gateway_config({"collectors": {"cameras": {"enabled": True, "folder": str(tmp_path), "sites": {"s1": "env"}}}})
    with pytest.raises(ConfigError, match="cameras.folder and cameras.sites"):
        parse_gateway_config({"collectors": {"mqtt_local": {"enabled": True}, "cameras": {"enabled": True}}})
    with pytest.raises(ConfigError, match="site and department ids"):
        parse_gateway_config({"collectors": {"cameras": {"sites": {"bad id!": "env"}}}})
