"""`farsight video run` behaviour: simulated MJPEG cameras -> worker processes -> findings over
a real mosquitto.

Covers start, keep-alive and cleared messages, a lost and restored stream, hot reload of the
camera folder (a valid change restarts the camera, an invalid one is refused and the camera keeps
running), and evidence files that exist under their hashes.

The simulated cameras play SPEED times faster than real time and stamp each frame with its
capture time; the cameras are configured with ``frame_time: camera``, so the analysers,
keep-alives and clears measure the clip's own seconds and each test sees its scripted timeline
in a fraction of the wall time.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from farsight.errors import ConfigError
from farsight.settings import BrokerSettings
from simulators.camera import ClipSpec, EventSpec
from simulators.camera_server import CameraServer, demo_cameras
from tests.conftest import wait_until
from video.evidence import EvidenceStore
from video.runner import CameraClock, VideoRunner

pytestmark = pytest.mark.e2e

W, H, FPS = 320, 180, 5.0
SPEED = 8.0
SMOKE_BOX = (140, 50, 90, 80)


class Collector:
    """Subscribes to every detection topic; keeps (topic, payload) in arrival order."""

    def __init__(self, broker) -> None:
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-collector"
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe("fs/v1/+/+/+/detection", qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, what="collector connected")

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload)))

    def of(self, kind: str, state: str | None = None) -> list[dict]:
        with self._lock:
            return [
                p
                for _, p in self.messages
                if p["kind"] == kind and (state is None or p["state"] == state)
            ]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def collector(mosquitto):
    c = Collector(mosquitto)
    yield c
    c.close()


def smoke_spec(
    seed: int = 3, start: float = 8.0, end: float = 20.0, seconds: float = 60.0
) -> ClipSpec:
    # The smoke analyser learns its background over its first seconds (a median, so that a
    # vehicle passing then leaves no ghost): the plume starts after that (the clip starts when
    # the runner first asks for it).
    return ClipSpec(
        "construction",
        W,
        H,
        FPS,
        seconds,
        seed,
        events=(EventSpec("smoke", start, end, SMOKE_BOX),),
    )


def write_camera(folder: Path, name: str, doc: dict) -> Path:
    path = folder / f"{name}.yaml"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(yaml.safe_dump(doc), encoding="utf-8")
    tmp.replace(path)  # atomic, as an editor's save is
    return path


def broker_settings(mosquitto) -> BrokerSettings:
    return BrokerSettings(host=mosquitto.host, port=mosquitto.port, embedded="none")


def test_smoke_is_published_kept_alive_and_cleared_with_evidence(mosquitto, collector, tmp_path):
    with CameraServer({"c1": smoke_spec()}, speed=SPEED) as cams:
        folder = tmp_path / "cameras"
        folder.mkdir()
        write_camera(
            folder,
            "c1",
            {
                "camera": "cam1",
                "site": "yc-cs-dongzhan",
                "source": cams.url("c1"),
                "rate_fps": FPS,
                "frame_time": "camera",
                "analysers": {"smoke": {}, "tamper": {}},
                "evidence": {"snapshot_interval_s": 5, "clip_pre_s": 2, "clip_post_s": 3},
            },
        )
        runner = VideoRunner(
            broker_settings(mosquitto),
            {"yc-cs-dongzhan": "env"},
            cameras_dir=folder,
            evidence_root=tmp_path / "evidence",
            resend_s=2.0,
            clear_after_s=2.0,
        )
        runner.start()
        try:
            wait_until(lambda: collector.of("smoke", "cleared"), timeout=60, what="smoke cleared")
        finally:
            runner.stop()
    active = collector.of("smoke", "active")
    assert active, "no smoke finding published"
    topics = {t for t, p in collector.messages if p["kind"] == "smoke"}
    assert topics == {"fs/v1/env/yc-cs-dongzhan/cam1/detection"}
    assert all(
        p["site"] == "yc-cs-dongzhan" and p["camera"] == "cam1" and "offset_s" not in p
        for p in active
    )
    # Keep-alives: smoke lasts ~12 s and is re-stated every 2 s while it lasts.
    assert len(active) >= 3
    times = [p["ts"] for p in active]
    assert times == sorted(times) and len(set(times)) == len(times)  # each one a new reading
    cleared = collector.of("smoke", "cleared")
    assert len(cleared) == 1 and cleared[0]["confidence"] == 0.0 and cleared[0]["ts"] > times[-1]
    # Evidence: the snapshot pair from the start, the clip once written; every hash is a file.
    store = EvidenceStore(tmp_path / "evidence")
    first = active[0]["evidence"]
    assert len(first) == 2
    last = active[-1]["evidence"]
    assert len(last) == 3, "the clip never reached a published finding"
    clip = store.path(last[2])
    assert clip.suffix == ".mp4" and clip.stat().st_size > 1000
    for sha in first + last:
        assert store.path(sha).exists()


def test_lost_stream_is_latched_and_cleared_on_restore(mosquitto, collector, tmp_path):
    quiet = ClipSpec("construction", W, H, FPS, 60.0, 5)
    with CameraServer({"q": quiet}, speed=SPEED) as cams:
        cfg_dir = tmp_path / "cams"
        cfg_dir.mkdir()
        write_camera(
            cfg_dir,
            "q",
            {
                "camera": "cam1",
                "site": "yc-cs-dongzhan",
                "source": cams.url("q"),
                "rate_fps": FPS,
                "frame_time": "camera",
                "analysers": {"tamper": {}},
            },
        )
        runner = VideoRunner(
            broker_settings(mosquitto),
            {"yc-cs-dongzhan": "env"},
            cameras_dir=cfg_dir,
            resend_s=0.5,
            clear_after_s=2.0,
        )
        runner.start()
        try:
            wait_until(lambda: runner.status()[0]["frames"] > 0, timeout=30, what="frames analysed")
            cams.cut("q")
            wait_until(
                lambda: len(collector.of("stream_lost", "active")) >= 3,
                timeout=30,
                what="stream_lost re-stated",
            )
            assert not collector.of("stream_lost", "cleared")
            assert runner.status()[0]["status"] == "lost"
            cams.restore("q")
            wait_until(
                lambda: collector.of("stream_lost", "cleared"),
                timeout=30,
                what="stream_lost cleared",
            )
        finally:
            runner.stop()
    lost = collector.of("stream_lost", "active")
    assert lost[0]["detail"]["state"] == "active" and lost[0]["confidence"] == 1.0


def test_hot_reload_applies_valid_changes_and_refuses_invalid_ones(mosquitto, collector, tmp_path):
    # Puffs of smoke every 30 s: whenever the reload lands, a puff starts after it (smoke is a
    # change against the background the analyser learns, so a plume already there is not one).
    spec = ClipSpec(
        "construction",
        W,
        H,
        FPS,
        600.0,
        4,
        events=tuple(EventSpec("smoke", s, s + 15.0, SMOKE_BOX) for s in range(20, 600, 30)),
    )
    with CameraServer({"c": spec}, speed=SPEED) as cams:
        folder = tmp_path / "cameras"
        folder.mkdir()
        doc = {
            "camera": "cam1",
            "site": "yc-cs-dongzhan",
            "source": cams.url("c"),
            "rate_fps": FPS,
            "frame_time": "camera",
            "analysers": {"tamper": {}},
        }
        write_camera(folder, "c", doc)
        runner = VideoRunner(
            broker_settings(mosquitto),
            {"yc-cs-dongzhan": "env"},
            cameras_dir=folder,
            resend_s=1.0,
            clear_after_s=2.0,
            reload_poll_s=0.2,
        )
        runner.start()
        try:
            wait_until(
                lambda: runner.status() and runner.status()[0]["frames"] >= 10,
                timeout=30,
                what="camera running",
            )
            assert not collector.of("smoke")  # smoke analyser not configured yet
            # An invalid change (a zone with two points, an unknown key) is refused; the camera
            # keeps going.
            write_camera(
                folder,
                "c",
                {**doc, "zones": [{"name": "yard", "points": [[0, 0], [10, 10]]}], "colour": "red"},
            )
            wait_until(lambda: "c" in runner.problems, timeout=15, what="invalid file refused")
            assert "zones.0.points" in runner.problems["c"] and "colour" in runner.problems["c"]
            frames = runner.status()[0]["frames"]
            wait_until(
                lambda: runner.status()[0]["frames"] > frames + 5,
                timeout=15,
                what="camera still running",
            )
            assert runner.stats.reloads == 0
            # A valid change adds the smoke analyser: smoke now reaches the broker.
            write_camera(folder, "c", {**doc, "analysers": {"tamper": {}, "smoke": {}}})
            wait_until(
                lambda: collector.of("smoke", "active"), timeout=60, what="smoke after reload"
            )
            assert runner.stats.reloads == 1 and "c" not in runner.problems
            # Removing the file stops the camera and clears what it had open.
            (folder / "c.yaml").unlink()
            wait_until(
                lambda: collector.of("smoke", "cleared"),
                timeout=15,
                what="smoke cleared on removal",
            )
            assert runner.status() == []
        finally:
            runner.stop()


def test_camera_of_unknown_site_is_refused(mosquitto, tmp_path):
    folder = tmp_path / "cameras"
    folder.mkdir()
    write_camera(
        folder, "x", {"camera": "cam1", "site": "nowhere", "source": "http://127.0.0.1:9/x.mjpg"}
    )
    runner = VideoRunner(broker_settings(mosquitto), {"yc-cs-dongzhan": "env"}, cameras_dir=folder)
    runner.start()
    try:
        assert "not in the site registry" in runner.problems["x"]
        assert runner.status() == []
    finally:
        runner.stop()
    with pytest.raises(ConfigError, match="does not exist"):
        VideoRunner(broker_settings(mosquitto), {}, cameras_dir=tmp_path / "missing")


def test_demo_cameras_cover_each_camera_site():
    cams = demo_cameras(
        {
            "a-cs": "construction",
            "b-cs": "construction",
            "c-st": "stack",
            "d-st": "stack",
            "e-x": "outfall",
        }
    )
    assert [c.site for c in cams] == ["a-cs", "b-cs", "c-st", "d-st"]
    kinds = [{e.kind for e in c.spec.events} for c in cams]
    assert kinds == [{"smoke"}, set(), {"covered"}, {"black_smoke"}]
    assert all(c.analysers["black_smoke"]["enabled"] for c in cams if c.spec.scene == "stack")


def test_camera_clock_follows_frames_runs_on_between_them_and_never_goes_back():
    clock = CameraClock()
    assert clock.now(mono=50.0, fallback=123.0) == 123.0  # no frame yet: the caller's clock
    assert clock.frame(1000.0, mono=50.0) == 1000.0
    assert clock.now(mono=52.5, fallback=0.0) == 1002.5  # no frames: runs with the wall clock
    # A sped-up camera: its frames run ahead of the wall clock, and the clock follows them.
    assert clock.frame(1010.0, mono=53.0) == 1010.0
    # A frame older than the clock's time (a stalled camera's buffer) does not move it back.
    assert clock.frame(1009.0, mono=54.0) == 1011.0
    assert clock.now(mono=53.0, fallback=0.0) == 1011.0  # nor does a stale monotonic reading
