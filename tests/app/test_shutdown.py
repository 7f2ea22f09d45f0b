"""Every long-running role ends whole on SIGTERM and on Ctrl-C.

Each test starts a role as a real process (``python -m app ...``) against a real mosquitto, waits
until it is up (its port, its log line, its worker processes reading their camera), records its
whole process tree (brokers, video workers, multiprocessing's resource tracker), stops it, and
asserts that within a deadline the role exited 0 and no process of that tree is left.

Two ways to stop: SIGTERM to the role's process alone (``kill PID``, a service manager), and
SIGINT to its whole process group (Ctrl-C in a terminal reaches the role and every child at once).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from farsight.broker import MosquittoBroker, free_port
from simulators.camera import ClipSpec
from simulators.camera_server import CameraServer
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

STOP_S = 30.0
"""How long a role may take from the signal until it and its whole tree are gone."""
UP_S = 60.0
"""How long a role may take to start (a loaded machine imports OpenCV slowly)."""

CAMERA_SITE, CAMERA_DEPT = "xg-cs-huaiyin-estate", "env"  # a camera site of the demo registry

STOPS = {
    "SIGTERM": lambda proc: os.kill(proc.pid, signal.SIGTERM),
    "ctrl-c": lambda proc: os.killpg(proc.pid, signal.SIGINT),
}


class Role:
    """``python -m app ARGS`` in a session of its own, logging to a file; see the module doc."""

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = workdir / "role.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("FARSIGHT")}
        base.update(FARSIGHT_DATA_DIR=str(workdir / "var"), PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            # A session (and so a process group) of its own: Ctrl-C reaches the role's group only.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", *args],
                cwd=workdir,
                env={**base, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.ps = psutil.Process(self.proc.pid)
        self.seen: list[psutil.Process] = []

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the role exited with {self.proc.returncode}:\n{self.text()}")
        return True

    def wait_for(self, condition: Callable[[], object], what: str) -> object:
        try:
            return wait_until(
                lambda: self.running() and condition(), timeout=UP_S, interval=0.1, what=what
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.text()[-3000:]}") from None

    def logged(self, text: str) -> bool:
        return text in self.text()

    def tree(self) -> list[psutil.Process]:
        """The role and every process below it, now."""
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def children_named(self, needle: str) -> list[psutil.Process]:
        found = []
        for p in self.tree()[1:]:
            try:
                if needle in " ".join(p.cmdline()):
                    found.append(p)
            except psutil.Error:
                continue
        return found

    def record(self) -> str:
        """Remember the role's tree as it is now; its processes, one a line."""
        self.seen = self.tree()
        assert self.seen, "the role is not running"
        return "\n".join(describe(p) for p in self.seen)

    def stop(self, how: str) -> tuple[int, str]:
        """Record the tree, stop the role ``how``; its exit status and the recorded tree."""
        names = self.record()
        STOPS[how](self.proc)
        try:
            rc = self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {STOP_S:.0f} s after {how}:\n{self.text()[-3000:]}"
            ) from None
        try:
            wait_until(
                lambda: not alive(self.seen),
                timeout=STOP_S,
                what="every process of the role's tree to end",
            )
        except AssertionError as exc:
            left = [describe(p) for p in alive(self.seen)]
            raise AssertionError(f"{exc}; left: {left}\n{self.text()[-3000:]}") from None
        return rc, names

    def kill(self) -> None:
        """Whatever is left (a failed test): SIGKILL the role and every process it had."""
        for p in [*self.seen, *self.tree()]:
            try:
                p.kill()
            except psutil.Error:
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)


StartRole = Callable[..., Role]
"""``roles(args, workdir, env)``: start a role (the fixture below)."""


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (a zombie has ended; a reused pid is not ours)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {' '.join(p.cmdline())[:120]}"
    except psutil.Error:
        return str(p.pid)


def assert_clean_stop(role: Role, how: str, expect: tuple[str, ...]) -> None:
    """Stop ``role``; exit 0, its tree had every process named in ``expect``, none is left."""
    rc, names = role.stop(how)
    for needle in expect:
        assert needle in names, f"no {needle!r} in the recorded tree: {names}"
    assert rc == 0, f"exit status {rc} after {how}:\n{role.text()[-3000:]}"
    assert "Traceback" not in role.text(), role.text()[-3000:]


def reads_from(proc: psutil.Process, port: int) -> bool:
    """``proc`` holds an open TCP connection to ``port`` (a worker reading its camera)."""
    try:
        return any(
            c.raddr and c.raddr[1] == port and c.status == psutil.CONN_ESTABLISHED
            for c in proc.net_connections(kind="tcp")
        )
    except psutil.Error:
        return False


def worker_reads_camera(role: Role, cams: CameraServer) -> bool:
    return any(reads_from(p, cams.port) for p in role.children_named("multiprocessing.spawn"))


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def refuses(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def roles() -> Iterator[StartRole]:
    """``roles(args, workdir, env)`` starts a role; every one is killed at the end if still up."""
    started: list[Role] = []

    def start(args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Role:
        role = Role(args, workdir, env)
        started.append(role)
        return role

    yield start
    for role in started:
        role.kill()


@pytest.fixture(scope="module")
def cameras() -> Iterator[CameraServer]:
    """One small simulated camera (MJPEG over HTTP) for the roles that run video workers."""
    with CameraServer({"quiet": ClipSpec("construction", 160, 90, 2.0, 30.0, 1)}) as server:
        yield server


def camera_folder(folder: Path, cams: CameraServer) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "camera": "cam1",
        "site": CAMERA_SITE,
        "source": cams.url("quiet"),
        "rate_fps": 2.0,
        "analysers": {"tamper": {}},
    }
    (folder / "cam1.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return folder


def demo_env(broker_port: int) -> dict[str, str]:
    """The demo on its own broker port, without the history backfill (less work to start)."""
    return {"FARSIGHT__BROKER__PORT": str(broker_port), "FARSIGHT__SIMULATOR__BACKFILL_MIN": "0"}


def broker_env(broker: MosquittoBroker) -> dict[str, str]:
    """The roles on an open test broker (``farsight ingest`` refuses one unless told it may)."""
    return {
        "FARSIGHT__BROKER__HOST": broker.host,
        "FARSIGHT__BROKER__PORT": str(broker.port),
        "FARSIGHT__BROKER__EMBEDDED": "none",
        "FARSIGHT__BROKER__ALLOW_ANONYMOUS": "true",
    }


HOW = pytest.mark.parametrize("how", list(STOPS))


@pytest.mark.parametrize("how", [*STOPS, "duration"])
def test_demo_ends_whole_with_its_broker_and_video_workers(
    roles: StartRole, tmp_path: Path, how: str
) -> None:
    hub_port, broker_port = free_port(), free_port()
    # The duration is counted from when every part has started: long enough to see it up.
    duration = "6" if how == "duration" else "600"
    role = roles(
        ["demo", "--port", str(hub_port), "--duration", duration],
        tmp_path,
        demo_env(broker_port),
    )
    role.wait_for(lambda: healthy(hub_port), "the demo's /healthz")
    role.wait_for(
        lambda: role.children_named("mosquitto") and role.children_named("multiprocessing.spawn"),
        "the demo's broker and video worker",
    )
    if how == "duration":
        names = role.record()
        rc = role.proc.wait(timeout=STOP_S + 6)
        wait_until(lambda: not alive(role.seen), timeout=STOP_S, what="the demo's tree to end")
        assert "mosquitto" in names and "multiprocessing.spawn" in names, names
        assert rc == 0, role.text()[-3000:]
        assert "Traceback" not in role.text(), role.text()[-3000:]
    else:
        assert_clean_stop(
            role, how, ("mosquitto", "multiprocessing.spawn", "multiprocessing.resource_tracker")
        )
    assert "Farsight demo stopped." in role.text()
    # The embedded broker is gone, not only its process: nothing listens on its port.
    assert refuses(broker_port) and refuses(hub_port)


def test_a_killed_demo_takes_its_broker_and_workers_with_it(
    roles: StartRole, tmp_path: Path
) -> None:
    """SIGKILL leaves the demo no chance to stop anything: its broker is armed to die with it
    (a parent-death signal) and its video workers watch their parent."""
    hub_port, broker_port = free_port(), free_port()
    role = roles(
        ["demo", "--port", str(hub_port), "--duration", "600"],
        tmp_path,
        demo_env(broker_port),
    )
    role.wait_for(lambda: healthy(hub_port), "the demo's /healthz")
    role.wait_for(
        lambda: role.children_named("mosquitto") and role.children_named("multiprocessing.spawn"),
        "the demo's broker and video worker",
    )
    names = role.record()
    role.proc.kill()
    assert role.proc.wait(timeout=STOP_S) == -signal.SIGKILL
    try:
        wait_until(lambda: not alive(role.seen), timeout=STOP_S, what="the demo's children to end")
    except AssertionError as exc:
        left = [describe(p) for p in alive(role.seen)]
        raise AssertionError(f"{exc}; left: {left}; tree was: {names}") from None
    # The broker process is gone (above); its port is not asserted closed: once free, another
    # test of a parallel run may be handed it.


@HOW
def test_ingest_ends_whole(
    roles: StartRole, fresh_mosquitto: MosquittoBroker, tmp_path: Path, how: str
) -> None:
    role = roles(["ingest"], tmp_path, broker_env(fresh_mosquitto))
    role.wait_for(lambda: role.logged("ingest running") and role.logged(" connected "), "ingest")
    assert_clean_stop(role, how, ())


@HOW
def test_hub_ends_whole(roles: StartRole, tmp_path: Path, how: str) -> None:
    port = free_port()
    role = roles(["hub", "--port", str(port)], tmp_path)
    role.wait_for(lambda: healthy(port), "the hub's /healthz")
    assert_clean_stop(role, how, ())
    assert refuses(port)


@HOW
def test_video_run_ends_whole_with_its_workers(
    roles: StartRole,
    fresh_mosquitto: MosquittoBroker,
    cameras: CameraServer,
    tmp_path: Path,
    how: str,
) -> None:
    folder = camera_folder(tmp_path / "cameras", cameras)
    role = roles(
        ["video", "run", "--cameras", str(folder), "--workers", "2"],
        tmp_path,
        broker_env(fresh_mosquitto),
    )
    role.wait_for(lambda: worker_reads_camera(role, cameras), "a video worker reading its camera")
    role.wait_for(
        lambda: len(role.children_named("multiprocessing.spawn")) == 2, "both video workers"
    )
    assert_clean_stop(role, how, ("multiprocessing.spawn", "multiprocessing.resource_tracker"))


@HOW
def test_edge_gateway_ends_whole_with_its_camera_workers(
    roles: StartRole, mosquitto_path: str, cameras: CameraServer, tmp_path: Path, how: str
) -> None:
    site = MosquittoBroker(data_dir=tmp_path / "site-broker")
    central = MosquittoBroker(data_dir=tmp_path / "central-broker")
    try:
        config: dict[str, Any] = {
            "gateway_id": "gw-stop",
            "data_dir": "var/edge",
            "uplink": {"host": central.host, "port": central.port, "reconnect_max_s": 0.5},
            "collectors": {
                "mqtt_local": {"enabled": True, "host": site.host, "port": site.port},
                "cameras": {
                    "enabled": True,
                    "folder": str(camera_folder(tmp_path / "cameras", cameras)),
                    "sites": {CAMERA_SITE: CAMERA_DEPT},
                },
            },
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        role = roles(["edge", "--config", str(path)], tmp_path, {"FARSIGHT_EDGE_KEY": "ab" * 32})
        role.wait_for(lambda: role.logged("uplink connected"), "the gateway's uplink")
        role.wait_for(
            lambda: worker_reads_camera(role, cameras), "the gateway's camera worker reading"
        )
        assert_clean_stop(role, how, ("multiprocessing.spawn", "multiprocessing.resource_tracker"))
    finally:
        site.close()
        central.close()


@HOW
def test_simulate_ends_whole(
    roles: StartRole, fresh_mosquitto: MosquittoBroker, tmp_path: Path, how: str
) -> None:
    role = roles(
        ["simulate", "--interval", "0.5", "--scenario", "quiet"],
        tmp_path,
        broker_env(fresh_mosquitto),
    )
    received: list[str] = []
    watcher = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"stop-{os.getpid()}"
    )
    watcher.on_connect = lambda c, *a: c.subscribe("fs/v1/#", qos=0)
    watcher.on_message = lambda c, u, msg: received.append(msg.topic)
    watcher.connect(fresh_mosquitto.host, fresh_mosquitto.port)
    watcher.loop_start()
    try:
        role.wait_for(lambda: received, "the simulator's first readings at the broker")
        assert_clean_stop(role, how, ())
    finally:
        watcher.loop_stop()
        watcher.disconnect()
