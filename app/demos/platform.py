"""``farsight demo``: every role in one process on embedded defaults.

A broker (mosquitto with credentials and ACLs made from the registry, or amqtt, open, when
mosquitto is missing), the simulated sites (history, then live, each device as itself), ingest
with the rules and the alert pipeline, simulated cameras analysed by the video workers, one
satellite scene pair, and the hub with the dashboard. Everything started is registered on one
:class:`~app.lifecycle.Shutdown`, so Ctrl-C, SIGTERM or ``--duration`` stop it all: the broker
process and the video worker processes end with the demo.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.anchor_sign import generate_key, public_path
from app.demos.satellite import AOI, run_demo_watch
from app.demos.trust import DemoCredentials, demo_credentials
from app.lifecycle import Shutdown, stop_on_signals
from app.roles.ingest import IngestService
from farsight.broker import (
    RunningBroker,
    free_port,
    mosquitto_binary,
    start_embedded,
    wait_for_port,
)
from farsight.credentials import INGEST, VIDEO, Secret
from farsight.db import redact
from farsight.errors import BrokerError
from farsight.logs import setup_logging
from farsight.registry import Registry, load_registry
from farsight.settings import BrokerSettings, Settings
from hub.app import create_app, make_server
from hub.auth import Role, TokenStore
from simulators.camera_server import CameraServer, demo_cameras
from simulators.publisher import Simulator
from simulators.scenarios import get_scenario
from video.camera_config import parse_camera_config
from video.runner import VideoRunner

log = logging.getLogger("farsight.runtime")


def start_demo_video(
    settings: Settings,
    registry: Registry,
    shutdown: Shutdown,
    broker: BrokerSettings | None = None,
) -> tuple[VideoRunner | None, str]:
    """The demo's cameras: simulated ones served as MJPEG (or ``video.cameras_dir``), analysed
    by a :class:`~video.runner.VideoRunner` connected as ``broker`` says (default:
    ``settings.broker``); both registered on ``shutdown``. Returns the runner (None when video
    is off) and a line for the banner."""
    if not settings.video.enabled:
        return None, "off (video.enabled: false)"
    broker = broker or settings.broker
    departments = {site.id: site.department for site in registry.sites}
    common: dict[str, Any] = {
        "evidence_root": settings.evidence_dir,
        "workers": settings.video.workers,
        "resend_s": settings.video.resend_s,
        "clear_after_s": settings.video.clear_after_s,
        "client_id": "farsight-demo-video",
    }
    if settings.video.cameras_dir is not None:
        runner = VideoRunner(
            broker, departments, cameras_dir=Path(settings.video.cameras_dir), **common
        )
        shutdown.on_close("video workers", runner.stop)
        runner.start()
        return runner, f"{len(runner.cameras)} camera(s) from {settings.video.cameras_dir}"
    sim = settings.simulator.cameras
    if not (settings.simulator.enabled and sim.enabled):
        return None, "off (no camera folder, simulated cameras off)"
    kinds = {
        site.id: site.kind
        for site in registry.sites
        if any(d.kind == "camera" for d in site.devices)
    }
    cams = demo_cameras(kinds, sim.width, sim.height, sim.fps, sim.cycle_s, settings.simulator.seed)
    if not cams:
        return None, "none (no site in the registry has a camera)"
    server = CameraServer({f"{c.site}.{c.camera}": c.spec for c in cams}, speed=sim.speed).start()
    shutdown.on_close("camera server", server.stop)
    configs = [
        parse_camera_config(
            {
                "camera": c.camera,
                "site": c.site,
                "source": server.url(f"{c.site}.{c.camera}"),
                "rate_fps": sim.fps,
                # The simulator's capture times: the scenario's own timeline at any speed.
                "frame_time": "camera",
                "analysers": c.analysers,
                "evidence": {"snapshot_interval_s": 30, "clip_pre_s": 3, "clip_post_s": 5},
            },
            source=f"demo camera {c.site}.{c.camera}",
        )
        for c in cams
    ]
    runner = VideoRunner(broker, departments, configs=configs, **common)
    shutdown.on_close("video workers", runner.stop)
    runner.start()
    return runner, (
        f"{len(cams)} simulated cameras (MJPEG on http://{server.host}:{server.port}/), "
        f"analysed at {sim.fps:g} fps; scripted smoke, black smoke and a covered lens every"
        f" {sim.cycle_s:g} s" + (f", played at {sim.speed:g}x" if sim.speed != 1 else "")
    )


def start_demo_satellite(settings: Settings, data_dir: Path, shutdown: Shutdown) -> str:
    """The demo's satellite scenes: one simulated pair over an area with an ecological red line,
    processed as ``rs watch --queue`` would, in a thread (a few seconds). Returns a banner line."""
    if not settings.simulator.enabled:
        return "off (simulators off)"

    def work() -> None:
        try:
            run_demo_watch(settings, data_dir / "rs")
        except Exception:  # the demo goes on without its satellite part
            log.exception("satellite demo failed")

    t = threading.Thread(target=work, name="demo-satellite", daemon=True)
    shutdown.on_close("satellite", lambda: t.join(timeout=60))
    t.start()
    return (
        f"area {AOI}: two simulated Sentinel-2 scenes; a change inside the ecological red line"
        " becomes an alert with its quicklook"
    )


def start_demo_sites(
    settings: Settings,
    registry: Registry,
    shutdown: Shutdown,
    secrets: dict[str, Secret] | None = None,
) -> None:
    """The simulated sites publish in a thread: history at one-minute steps as fast as the
    broker takes it (so the dashboard opens on the scenario's first violations within seconds),
    then the same scenario live from now, one round every interval. With ``secrets`` each
    device connects as itself."""
    if not settings.simulator.enabled:
        return
    scenario = get_scenario(settings.simulator.scenario)
    sim = settings.simulator
    stop = shutdown.event

    def simulate() -> None:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        if sim.backfill_min > 0:
            history = Simulator(registry, scenario, seed=sim.seed, secrets=secrets)
            history.run(
                settings.broker,
                start=now - timedelta(minutes=sim.backfill_min),
                rounds=int(sim.backfill_min) + 1,
                interval_s=60,
                speedup=1,
                stop_event=stop,
                client_id="farsight-demo-history",
                catch_up_until=now,
            )
        if not stop.is_set():
            live = Simulator(registry, scenario, seed=sim.seed + 1, secrets=secrets)
            live.run(
                settings.broker,
                start=datetime.now(UTC),
                rounds=None,
                interval_s=sim.interval_s,
                speedup=sim.speedup,
                stop_event=stop,
                client_id="farsight-demo-simulator",
            )

    t = threading.Thread(target=simulate, name="simulator", daemon=True)
    shutdown.on_close("simulators", lambda: t.join(timeout=10))
    t.start()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _start_broker(
    settings: Settings, registry: Registry, data_dir: Path, shutdown: Shutdown
) -> tuple[Settings, RunningBroker | None, DemoCredentials | None]:
    """The embedded broker (settings point at it afterwards, ingest with its credentials), or
    wait for the external one. An embedded mosquitto authenticates every client and enforces
    the registry's ACLs; amqtt cannot, and runs open (with a warning)."""
    b = settings.broker
    if b.embedded == "none":
        wait_for_port(b.host, b.port, timeout=10)
        return settings, None, None
    mosquitto = b.embedded == "mosquitto" or (b.embedded == "auto" and mosquitto_binary())
    trust = demo_credentials(settings, registry) if mosquitto else None
    if trust is None:
        log.warning(
            "amqtt cannot enforce broker credentials and ACLs: this demo's broker lets anyone on"
            " its network publish for any site (broker.allow_anonymous set for this run);"
            " install mosquitto for the authenticated demo"
        )
    bport = b.port if _port_free(b.host, b.port) else free_port()
    broker = start_embedded(b.embedded, bport, data_dir, trust.auth if trust else None)
    shutdown.on_close("broker", broker.stop)
    # amqtt speaks MQTT 3.1.1 only: a version 5 CONNECT is never answered.
    protocol = "3.1.1" if broker.kind == "amqtt" else b.protocol
    update: dict[str, object] = {"port": bport, "host": broker.host, "protocol": protocol}
    ingest = settings.ingest
    if trust is not None:
        update.update(username=INGEST, password=trust.secrets[INGEST].password)
        ingest = ingest.model_copy(update={"client_id": INGEST})
    else:
        update["allow_anonymous"] = True
    settings = settings.model_copy(update={"broker": b.model_copy(update=update), "ingest": ingest})
    return settings, broker, trust


def _with_anchor_key(settings: Settings, data_dir: Path) -> Settings:
    """The demo signs its audit chain's anchors like a deployment: a key made in its data folder
    on the first run (a deployment keeps it outside), unless the settings name one."""
    a = settings.alerts
    if a.anchor_key_file is not None or a.anchor_every_s <= 0:
        return settings
    key = data_dir / "trust" / "audit-anchor.key"
    if not key.exists():
        generate_key(key)
    update = {"anchor_key_file": key, "anchor_public_key_file": public_path(key)}
    return settings.model_copy(update={"alerts": a.model_copy(update=update)})


def _banner(lines: dict[str, str]) -> str:
    return "\nFarsight demo running\n" + "".join(f"  {k:<11} {v}\n" for k, v in lines.items())


def run_demo(settings: Settings, port: int | None = None, duration_s: float | None = None) -> int:
    """Run the whole platform until Ctrl-C, SIGTERM or ``duration_s``; then stop every part."""
    setup_logging(settings.logging.level)
    data_dir = Path(os.environ.get("FARSIGHT_DATA_DIR") or settings.data_dir)
    settings = settings.model_copy(update={"data_dir": data_dir})
    data_dir.mkdir(parents=True, exist_ok=True)
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    hub_port = port or settings.hub.port
    if not _port_free(settings.hub.host, hub_port):
        raise BrokerError(
            f"hub port {settings.hub.host}:{hub_port} is in use; stop what uses it or pass --port"
        )
    shutdown = Shutdown()
    # Handlers first: a signal while the parts start stops what has started, and uvicorn,
    # which re-raises the signal it caught once it has stopped, hands it back to us rather
    # than to the default handler (which would end the process before the broker and the
    # video workers are stopped).
    with stop_on_signals(shutdown):
        try:
            _run(settings, registry, data_dir, hub_port, duration_s, shutdown)
        finally:
            shutdown.close()
            print("Farsight demo stopped.", flush=True)
    return 0


def _run(
    settings: Settings,
    registry: Registry,
    data_dir: Path,
    hub_port: int,
    duration_s: float | None,
    shutdown: Shutdown,
) -> None:
    settings, broker, trust = _start_broker(settings, registry, data_dir, shutdown)
    settings = _with_anchor_key(settings, data_dir)
    ingest = IngestService(settings, registry)
    shutdown.on_close("ingest", ingest.stop)
    ingest.start()

    tokens = TokenStore(
        settings.database,
        departments=registry.departments,
        ttl=timedelta(hours=settings.hub.token_ttl_h),
        session_ttl=timedelta(hours=settings.hub.session_ttl_h),
    )
    shutdown.on_close("tokens", tokens.close)
    # The desk's token: a supervisor, since the desk silences, reopens and exports as well as
    # handling alerts; the operations views (dead letters) need an admin's token.
    token = tokens.issue("demo-officer", None, role=Role.SUPERVISOR)
    token_file = data_dir / "demo-token"
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(0o600)

    video_broker = settings.broker
    if trust is not None:
        video_broker = video_broker.model_copy(
            update={"username": VIDEO, "password": trust.secrets[VIDEO].password}
        )
    start_demo_sites(settings, registry, shutdown, trust.secrets if trust else None)
    _, video_desc = start_demo_video(settings, registry, shutdown, video_broker)
    rs_desc = start_demo_satellite(settings, data_dir, shutdown)

    app = create_app(
        settings, registry, readings=ingest.readings, alerts=ingest.alerts, tokens=tokens
    )
    server = make_server(app, settings.hub.host, hub_port, log_level="warning")

    def end_server_on_stop() -> None:
        # A stop from a signal, the duration or a failing part ends the server's loop.
        shutdown.wait()
        server.should_exit = True

    threading.Thread(target=end_server_on_stop, name="demo-stop", daemon=True).start()
    if duration_s:
        timer = threading.Timer(duration_s, shutdown.request)
        timer.daemon = True  # never keeps the process alive after Ctrl-C
        shutdown.on_close("duration", timer.cancel)
        timer.start()

    b = settings.broker
    sim = settings.simulator
    host = settings.hub.host
    scheme = "https" if settings.hub.tls else "http"
    database = (
        redact(str(settings.database))
        if settings.database_url
        else f"{settings.db_path} (SQLite, WAL)"
    )
    print(
        _banner(
            {
                "dashboard": f"{scheme}://{host}:{hub_port}/#token={token}\n"
                "              (the link signs the browser in as demo-officer, like Jupyter's"
                " token link)",
                "API docs": f"{scheme}://{host}:{hub_port}/docs",
                "broker": f"{broker.kind} (embedded) on {b.host}:{b.port}"
                if broker
                else f"external broker {b.host}:{b.port}",
                "credentials": f"{trust.secrets_file} (MQTT passwords of ingest, video and"
                " every device, mode 0600; the broker lets in no one else)"
                if trust
                else "none: the broker is open to anonymous clients (amqtt cannot check them)"
                if broker
                else "as the broker settings say",
                "ingest": f"client {settings.ingest.client_id},"
                f" topics {', '.join(settings.ingest.topics)}",
                "rules": f"{len(ingest.engine.rules)} rules; alerts in the risk queue",
                "video": video_desc,
                "satellite": rs_desc,
                "simulators": f"{len(registry)} sites, scenario '{sim.scenario}',"
                f" {sim.backfill_min:g} min of history, then a round every"
                f" {sim.interval_s:g} s (x{sim.speedup:g} time)",
                "data": database,
                "audit": f"signed anchors every {settings.alerts.anchor_every_s:g} s, key"
                f" {settings.alerts.anchor_key_file}; check: farsight audit verify --db"
                f" {settings.db_path} --public-key {settings.alerts.anchor_public_key_file}",
                "token": f"{token_file} (bearer token of user demo-officer, role supervisor:"
                " reads, every handling step, silences and exports; `farsight token issue"
                " --role admin` for the operations views)",
            }
        )
        + "Stop with Ctrl-C.\n",
        flush=True,
    )
    if not shutdown.requested:
        server.run()
