"""Process wiring: which objects make up each role, and how ``farsight demo`` runs them all."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farsight.broker import RunningBroker, free_port, start_embedded, wait_for_port
from farsight.db import redact
from farsight.errors import BrokerError, ConfigError
from farsight.logs import kv, setup_logging
from farsight.registry import Registry, load_registry
from farsight.settings import Settings

if TYPE_CHECKING:
    from simulators.camera_server import CameraServer
    from video.runner import VideoRunner

log = logging.getLogger("farsight.runtime")


class IngestService:
    """Ingest, rules and alerts for one broker: the consumer side of the platform."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        from alerts.store import AlertStore
        from farsight.db import Database
        from ingest.mqtt import MqttConsumer
        from ingest.pipeline import IngestPipeline
        from ingest.store import ReadingStore
        from rules.engine import Engine
        from rules.reload import RuleFileWatcher
        from rules.state import RuleStateStore

        self.settings = settings
        # One connection for the worker: a batch's readings, alerts, audit entries and rule state
        # commit in one transaction.
        self.db = Database.open(settings.database)
        self.readings = ReadingStore(self.db)
        self.alerts = AlertStore(self.db, risk=settings.alerts.risk)
        # Alerts the rules raise here reach the upstream outbox in the batch's transaction.
        from alerts.outbox import attach_outbox

        attach_outbox(self.alerts, settings.alerts.upstream.source)
        # The alert pipeline's later stages: deadlines are set in each event's transaction;
        # silences and inhibitions mute what the rules raise; both move with the clock on ticks.
        from alerts.escalation import Escalator
        from alerts.mute import MuteStage
        from alerts.silences import SilenceStore

        self.escalator = Escalator(self.alerts, settings.alerts.escalation)
        self.alerts.listeners.append(self.escalator.on_event)
        self.silences = SilenceStore(self.db, audit=self.alerts.audit)
        self.mute = MuteStage(self.alerts, self.silences, settings.alerts.inhibit)
        self.watcher = RuleFileWatcher(settings.rules.files, settings.rules.default_pack)
        self.engine = Engine(self.watcher.load(), registry)
        self.rule_state = RuleStateStore(self.db)
        restored = self.engine.restore(self.rule_state.load())
        pruned = self.rule_state.prune(self.engine.rules)  # rows of rules changed while stopped
        log.info("rule state restored", extra=kv(instances=restored, pruned=pruned))
        # Edge gateway batches (issue 7): consumed only when the hub has the gateways' keys.
        self.edge = None
        ingest_settings = settings.ingest
        if settings.edge.keys_file is not None:
            from ingest.edge_batches import EdgeBatchDecoder, load_keys
            from ingest.edge_health import GatewayMonitor

            monitor = GatewayMonitor(self.db, settings.edge, registry, audit=self.alerts.audit)
            self.edge = EdgeBatchDecoder(
                self.db, load_keys(settings.edge.keys_file), settings.edge, monitor
            )
            ingest_settings = ingest_settings.model_copy(
                update={
                    "topics": tuple(dict.fromkeys((*ingest_settings.topics, *self.edge.topics)))
                }
            )
        self.pipeline = IngestPipeline(
            registry,
            self.readings,
            self.engine,
            self.mute,
            settings.ingest.unknown_site,
            rule_state=self.rule_state,
            rule_source=self.watcher,
            # Silences end on wall time (people set them); escalation
            # runs on the engine's clock, the time of the data.
            tickers=(
                lambda _engine_now: self.mute.tick(),
                self.escalator.tick,
                lambda _engine_now: self.alerts.index_text(),
                # Gateways that stopped talking (wall clock: no data is the point).
                lambda _engine_now: (
                    self.edge
                    and (silent := self.edge.monitor.check_silent())
                    and self.mute.apply(silent)
                ),
            ),
            audit=self.alerts.audit,
            edge=self.edge,
        )
        self.consumer = MqttConsumer(
            settings.broker,
            ingest_settings,
            self.pipeline.process,
            periodic=self.pipeline.tick,
            period_s=settings.rules.tick_s,
        )

    def start(self, wait: bool = True) -> None:
        self.consumer.start(wait=wait)

    def stop(self) -> None:
        self.consumer.stop()
        self.pipeline.save_rule_state()  # the consumer thread has ended: nothing else touches the engine
        self.rule_state.close()
        self.readings.close()
        self.alerts.close()


def _wait_for_signal(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def run_ingest(settings: Settings) -> int:
    """``farsight ingest``: consume until SIGINT or SIGTERM."""
    setup_logging(settings.logging.level)
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    service = IngestService(settings, registry)
    service.start(wait=False)
    log.info(
        "ingest running",
        extra=kv(broker=f"{settings.broker.host}:{settings.broker.port}", db=settings.db_path),
    )
    _wait_for_signal(threading.Event())
    service.stop()
    return 0


def run_video(
    settings: Settings, cameras_dir: Path | None = None, workers: int | None = None
) -> int:
    """``farsight video run``: analyse a folder of live cameras until SIGINT or SIGTERM."""
    from video.runner import VideoRunner

    setup_logging(settings.logging.level)
    folder = cameras_dir or settings.video.cameras_dir
    if folder is None:
        raise ConfigError(
            "no camera folder: pass --cameras DIR or set video.cameras_dir (one CAMERA.yaml per camera)"
        )
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    runner = VideoRunner(
        settings.broker,
        {site.id: site.department for site in registry.sites},
        cameras_dir=Path(folder),
        evidence_root=settings.evidence_dir,
        workers=workers or settings.video.workers,
        resend_s=settings.video.resend_s,
        clear_after_s=settings.video.clear_after_s,
    )
    runner.start()
    log.info(
        "video running",
        extra=kv(folder=str(folder), cameras=len(runner.cameras), workers=runner.n_workers),
    )
    for name, why in runner.problems.items():
        print(f"camera {name} refused: {why}", flush=True)
    try:
        _wait_for_signal(threading.Event())
    finally:
        runner.stop()
    return 0


def start_demo_video(
    settings: Settings, registry: Registry
) -> tuple[CameraServer | None, VideoRunner | None, str]:
    """The demo's cameras: simulated ones served as MJPEG (or ``video.cameras_dir``), analysed
    by a :class:`~video.runner.VideoRunner`. Returns (camera server or None, runner or None, a
    line for the banner)."""
    if not settings.video.enabled:
        return None, None, "off (video.enabled: false)"
    from video.runner import VideoRunner

    departments = {site.id: site.department for site in registry.sites}
    common: dict[str, Any] = dict(
        evidence_root=settings.evidence_dir,
        workers=settings.video.workers,
        resend_s=settings.video.resend_s,
        clear_after_s=settings.video.clear_after_s,
        client_id="farsight-demo-video",
    )
    if settings.video.cameras_dir is not None:
        runner = VideoRunner(
            settings.broker, departments, cameras_dir=Path(settings.video.cameras_dir), **common
        )
        runner.start()
        return None, runner, f"{len(runner.cameras)} camera(s) from {settings.video.cameras_dir}"
    sim = settings.simulator.cameras
    if not (settings.simulator.enabled and sim.enabled):
        return None, None, "off (no camera folder, simulated cameras off)"
    from simulators.camera_server import CameraServer, demo_cameras
    from video.camera_config import parse_camera_config

    kinds = {
        site.id: site.kind
        for site in registry.sites
        if any(d.kind == "camera" for d in site.devices)
    }
    cams = demo_cameras(kinds, sim.width, sim.height, sim.fps, sim.cycle_s, settings.simulator.seed)
    if not cams:
        return None, None, "none (no site in the registry has a camera)"
    server = CameraServer({f"{c.site}.{c.camera}": c.spec for c in cams}).start()
    configs = [
        parse_camera_config(
            {
                "camera": c.camera,
                "site": c.site,
                "source": server.url(f"{c.site}.{c.camera}"),
                "rate_fps": sim.fps,
                "analysers": c.analysers,
                "evidence": {"snapshot_interval_s": 30, "clip_pre_s": 3, "clip_post_s": 5},
            },
            source=f"demo camera {c.site}.{c.camera}",
        )
        for c in cams
    ]
    runner = VideoRunner(settings.broker, departments, configs=configs, **common)
    runner.start()
    return (
        server,
        runner,
        (
            f"{len(cams)} simulated cameras (MJPEG on http://{server.host}:{server.port}/), "
            f"analysed at {sim.fps:g} fps; scripted smoke, black smoke and a covered lens every {sim.cycle_s:g} s"
        ),
    )


def start_demo_satellite(settings: Settings, data_dir: Path) -> tuple[threading.Thread | None, str]:
    """The demo's satellite scenes: one simulated pair over an area with an ecological red line,
    processed as ``rs watch --queue`` would, in a thread (a few seconds). Returns (thread, banner line)."""
    if not settings.simulator.enabled:
        return None, "off (simulators off)"
    from remote_sensing.demo import AOI, run_demo_watch

    def work() -> None:
        try:
            run_demo_watch(settings, data_dir / "rs")
        except Exception:  # the demo goes on without its satellite part
            log.exception("satellite demo failed")

    t = threading.Thread(target=work, name="demo-satellite", daemon=True)
    t.start()
    return (
        t,
        f"area {AOI}: two simulated Sentinel-2 scenes; a change inside the ecological red line becomes an alert with its quicklook",
    )


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def run_demo(settings: Settings, port: int | None = None, duration_s: float | None = None) -> int:
    """``farsight demo``: broker, simulators, ingest, rules, alerts and hub in one process."""
    from hub.app import create_app, make_server
    from hub.auth import TokenStore
    from simulators.publisher import Simulator
    from simulators.scenarios import get_scenario

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

    broker: RunningBroker | None = None
    b = settings.broker
    if b.embedded != "none":
        bport = b.port if _port_free(b.host, b.port) else free_port()
        broker = start_embedded(b.embedded, bport, data_dir)
        # amqtt speaks MQTT 3.1.1 only: a version 5 CONNECT is never answered.
        protocol = "3.1.1" if broker.kind == "amqtt" else b.protocol
        settings = settings.model_copy(
            update={
                "broker": b.model_copy(
                    update={"port": bport, "host": broker.host, "protocol": protocol}
                )
            }
        )
    else:
        wait_for_port(b.host, b.port, timeout=10)

    ingest = IngestService(settings, registry)
    ingest.start()

    tokens = TokenStore(settings.database, departments=registry.departments)
    token = tokens.issue("demo-officer", None)
    token_file = data_dir / "demo-token"
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(0o600)

    stop = threading.Event()
    sim_thread = None
    if settings.simulator.enabled:
        scenario = get_scenario(settings.simulator.scenario)
        sim = settings.simulator

        def simulate() -> None:
            # History first, at one-minute steps and as fast as the broker takes it, so the
            # dashboard opens on the scenario's first violations within seconds; then the same
            # scenario plays live from now, one round every interval.
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            if sim.backfill_min > 0:
                history = Simulator(registry, scenario, seed=sim.seed)
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
                live = Simulator(registry, scenario, seed=sim.seed + 1)
                live.run(
                    settings.broker,
                    start=datetime.now(UTC),
                    rounds=None,
                    interval_s=sim.interval_s,
                    speedup=sim.speedup,
                    stop_event=stop,
                    client_id="farsight-demo-simulator",
                )

        sim_thread = threading.Thread(target=simulate, name="simulator", daemon=True)
        sim_thread.start()

    camera_server, video_runner, video_desc = start_demo_video(settings, registry)
    rs_thread, rs_desc = start_demo_satellite(settings, data_dir)

    app = create_app(
        settings, registry, readings=ingest.readings, alerts=ingest.alerts, tokens=tokens
    )
    server = make_server(app, settings.hub.host, hub_port, log_level="warning")

    broker_desc = (
        f"{broker.kind} (embedded) on {settings.broker.host}:{settings.broker.port}"
        if broker
        else f"external broker {b.host}:{b.port}"
    )
    print(
        "\nFarsight demo running\n"
        f"  dashboard   http://{settings.hub.host}:{hub_port}/#token={token}\n"
        "              (the link signs the browser in as demo-officer, like Jupyter's token link)\n"
        f"  API docs    http://{settings.hub.host}:{hub_port}/docs\n"
        f"  broker      {broker_desc}\n"
        f"  ingest      client {settings.ingest.client_id}, topics {', '.join(settings.ingest.topics)}\n"
        f"  rules       {len(ingest.engine.rules)} rules; alerts in the risk queue\n"
        f"  video       {video_desc}\n"
        f"  satellite   {rs_desc}\n"
        f"  simulators  {len(registry)} sites, scenario '{settings.simulator.scenario}', {settings.simulator.backfill_min:g} min of history, then a round every {settings.simulator.interval_s:g} s (x{settings.simulator.speedup:g} time)\n"
        f"  data        {redact(str(settings.database)) if settings.database_url else f'{settings.db_path} (SQLite, WAL)'}\n"
        f"  token       {token_file} (bearer token of user demo-officer: reads, and every handling step)\n"
        "Stop with Ctrl-C.\n",
        flush=True,
    )
    if duration_s:
        threading.Timer(duration_s, lambda: setattr(server, "should_exit", True)).start()
    try:
        server.run()
    finally:
        stop.set()
        if sim_thread is not None:
            sim_thread.join(timeout=10)
        if rs_thread is not None:
            rs_thread.join(timeout=60)
        if video_runner is not None:
            video_runner.stop()
        if camera_server is not None:
            camera_server.stop()
        ingest.stop()
        if broker is not None:
            broker.stop()
        print("Farsight demo stopped.", flush=True)
    return 0
