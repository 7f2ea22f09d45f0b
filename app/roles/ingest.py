"""``farsight ingest``: the consumer side of the platform (MQTT in, readings, rules, alerts)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from cryptography.x509.oid import NameOID

from alerts.anchor_sign import load_signing_key
from alerts.anchoring import AnchorScheduler
from alerts.model import Alert
from alerts.pipeline import build_alert_pipeline
from app.lifecycle import Shutdown, run_until_stopped, stop_on_signals
from farsight.clock import Clock, SystemClock
from farsight.credentials import INGEST, CredentialStore
from farsight.db import Database
from farsight.errors import ConfigError, ConfigProblem, FarsightError
from farsight.logs import kv, setup_logging
from farsight.mqttclient import anonymous_accepted
from farsight.pki import read_certificate
from farsight.registry import Registry, load_registry
from farsight.settings import Settings
from farsight.tls import broker_context
from ingest.admission import AdmissionPolicy
from ingest.edge_batches import EdgeBatchDecoder, load_keys
from ingest.edge_health import GatewayMonitor
from ingest.mqtt import MqttConsumer
from ingest.pipeline import IngestPipeline
from ingest.retention import DeadLetterRetention
from ingest.store import ReadingStore
from rules.engine import Engine
from rules.reload import RuleFileWatcher
from rules.state import RuleStateStore
from rules.state_repair import repair_rule_state

log = logging.getLogger("farsight.runtime")


class IngestService:
    """Ingest, rules and alerts for one broker: the consumer side of the platform."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        clock: Clock | None = None,
        *,
        checks: bool = True,
    ) -> None:
        """``checks=False`` turns the pipeline's admission, measure-time and HJ 212 MN/PW checks
        off, for the ingest benchmark to measure what they cost; it is no setting, so a deployment
        cannot run without them."""
        self.settings = settings
        self.clock = clock or SystemClock()
        # One connection for the worker: a batch's readings, alerts, audit entries and rule state
        # commit in one transaction.
        self.db = Database.open(settings.database)
        self.readings = ReadingStore(self.db, keep_bytes=settings.ingest.dead_letters.keep_bytes)
        self.alert_pipeline = build_alert_pipeline(self.db, settings.alerts)
        self.alerts = self.alert_pipeline.store
        self.watcher = RuleFileWatcher(settings.rules.files, settings.rules.default_pack)
        self.engine = Engine(self.watcher.load(), registry)
        self.rule_state = RuleStateStore(self.db)
        # State a reading from the future poisoned before ingest refused such readings is
        # repaired (and saved) before the engine resumes from it.
        skew = timedelta(seconds=settings.ingest.time.widest_skew_s)
        repair = repair_rule_state(self.rule_state, self.clock.now() + skew)
        restored = self.engine.restore(repair.entries)
        pruned = self.rule_state.prune(self.engine.rules)  # rows of rules changed while stopped
        log.info(
            "rule state restored",
            extra=kv(instances=restored, pruned=pruned, repaired=len(repair.findings)),
        )
        # Edge gateway batches: consumed only when the hub has the gateways' keys.
        self.edge: EdgeBatchDecoder | None = None
        ingest_settings = settings.ingest
        if settings.edge.keys_file is not None:
            monitor = GatewayMonitor(self.db, settings.edge, registry, audit=self.alerts.audit)
            self.edge = EdgeBatchDecoder(
                self.db,
                load_keys(settings.edge.keys_file),
                settings.edge,
                monitor,
                assigned_sites=lambda gw: gateway_sites(registry, settings, gw),
            )
            topics = tuple(dict.fromkeys((*ingest_settings.topics, *self.edge.topics)))
            ingest_settings = ingest_settings.model_copy(update={"topics": topics})
        self.pipeline = IngestPipeline(
            registry,
            self.readings,
            self.engine,
            self.alert_pipeline,
            settings.ingest.unknown_site,
            rule_state=self.rule_state,
            rule_source=self.watcher,
            tickers=(self.alert_pipeline.tick, self._index_text, self._gateways_silent),
            audit=self.alerts.audit,
            edge=self.edge,
            passwords=hj212_passwords(settings),
            time=settings.ingest.time,
            clock=self.clock,
            admission=AdmissionPolicy.from_settings(settings.ingest),
            checks=checks,
        )
        self.anchors = _anchor_scheduler(settings)
        self.retention = DeadLetterRetention(self.readings, settings.ingest.dead_letters)
        self.consumer = MqttConsumer(
            settings.broker,
            ingest_settings,
            self.pipeline.process,
            periodic=self._periodic,
            period_s=settings.rules.tick_s,
        )

    def _periodic(self) -> None:
        self.pipeline.tick()
        # Here rather than a pipeline ticker: those move with the engine's event time and wait
        # for a first reading; retention runs on the wall clock, also when only dead letters come.
        try:
            self.retention()
        except FarsightError:
            log.exception("dead-letter retention failed")

    def _index_text(self, _now: datetime) -> int:
        return self.alerts.index_text()

    def _gateways_silent(self, _now: datetime) -> list[Alert]:
        # Wall clock: a gateway that sends nothing moves no event time.
        monitor = self.edge.monitor if self.edge is not None else None
        if monitor is None:
            return []
        silent = monitor.check_silent()
        return self.alert_pipeline.apply(silent) if silent else []

    def start(self, wait: bool = True) -> None:
        self.consumer.start(wait=wait)
        if self.anchors is not None:
            self.anchors.start()

    def stop(self) -> None:
        if self.anchors is not None:
            self.anchors.stop()
        self.consumer.stop()
        # The consumer thread has ended: nothing else touches the engine.
        self.pipeline.save_rule_state()
        self.rule_state.close()
        self.readings.close()
        self.alert_pipeline.close()


def gateway_sites(registry: Registry, settings: Settings, gateway: str) -> frozenset[str]:
    """The sites ``gateway`` may forward for: the registry's ``gateways`` entry, else its home
    site in ``edge.sites``, else none (its batches then carry nothing the hub takes)."""
    entry = registry.gateway(gateway)
    if entry is not None:
        return frozenset(entry.sites)
    home = settings.edge.sites.get(gateway)
    return frozenset({home}) if home else frozenset()


def hj212_passwords(settings: Settings) -> CredentialStore | None:
    """The credential store that HJ 212 frames' PW is checked against, when there is one."""
    path = settings.credential_store_path
    if path.exists():
        return CredentialStore(path)
    if not settings.broker.allow_anonymous:
        log.warning(
            "HJ 212 PW not checked: no credential store",
            extra=kv(path=path, fix="farsight devices issue"),
        )
    return None


def _anchor_scheduler(settings: Settings) -> AnchorScheduler | None:
    """Signed anchors of the audit chain, every ``alerts.anchor_every_s``, from the process that
    writes the queue; off (with a warning) without a signing key."""
    alerts = settings.alerts
    if alerts.anchor_every_s <= 0:
        return None
    if alerts.anchor_key_file is None:
        log.warning(
            "audit anchors off: set alerts.anchor_key_file (made by `farsight audit keygen`) so"
            " that a rewritten chain is caught against the copies sent upstream"
        )
        return None
    return AnchorScheduler(
        settings.database,
        load_signing_key(alerts.anchor_key_file),
        alerts.upstream.source,
        alerts.anchor_every_s,
    )


def _certificate_identity(settings: Settings) -> str | None:
    """The CN of ingest's TLS client certificate, which a broker with ``use_identity_as_username``
    takes as its user name; None without one (or when it cannot be read: ``broker_context``
    reports that with the key path)."""
    tls = settings.broker.tls
    if not tls.enabled or tls.cert_file is None:
        return None
    try:
        cert = read_certificate(tls.cert_file)
    except FarsightError:
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def credential_problems(settings: Settings) -> list[ConfigProblem]:
    """What keeps ingest from connecting as its own identity: unusable TLS files, credentials
    missing (unless ``broker.allow_anonymous``), or a client id other than the user name (a
    password's, or a client certificate's CN)."""
    b, problems = settings.broker, []
    if b.tls.enabled:
        try:
            broker_context(b.tls)  # the files exist, parse and match
        except ConfigError as exc:
            problems += exc.problems
    cn = _certificate_identity(settings)
    identity, where = (b.username, "broker.username") if b.username is not None else (cn, "CN")
    if identity is not None and settings.ingest.client_id != identity:
        problems.append(
            ConfigProblem(
                "ingest.client_id",
                settings.ingest.client_id,
                f"must equal the user name {identity!r} ({where}): the broker runs with "
                "use_username_as_clientid and keeps ingest's persistent session under the user "
                f"name; set ingest.client_id: {identity} (FARSIGHT__INGEST__CLIENT_ID)",
            )
        )
    if not b.allow_anonymous and cn is None:
        fix = (
            f"ingest connects as {INGEST} with the password `farsight devices issue` printed"
            " (FARSIGHT__BROKER__USERNAME, FARSIGHT__BROKER__PASSWORD), or with a TLS client"
            " certificate (broker.tls.cert_file, `farsight pki client`); for an open test broker"
            " set broker.allow_anonymous: true"
        )
        if b.username is None:
            problems.append(ConfigProblem("broker.username", None, f"not set: {fix}"))
        if b.password is None:
            problems.append(ConfigProblem("broker.password", None, f"not set: {fix}"))
    return problems


def refuse_open_broker(settings: Settings, stop: threading.Event | None = None) -> None:
    """Raise :class:`ConfigError` when the broker lets anonymous clients in and
    ``broker.allow_anonymous`` is false; while the broker does not answer, ask again (backing off
    to 30 s) until it does or ``stop`` is set."""
    b = settings.broker
    if b.allow_anonymous:
        return
    stop = stop or threading.Event()
    delay = 1.0
    while not stop.is_set():
        accepted = anonymous_accepted(b)
        if accepted is False:
            return
        if accepted:
            raise ConfigError(
                [
                    ConfigProblem(
                        "broker.allow_anonymous",
                        False,
                        f"the broker at {b.host}:{b.port} accepts anonymous clients, so anyone on"
                        " its network can publish readings for any site: run it with"
                        " allow_anonymous false, a password_file and an acl_file"
                        " (deploy/mosquitto.conf, `farsight devices sync`), or set"
                        " broker.allow_anonymous: true (FARSIGHT__BROKER__ALLOW_ANONYMOUS=true)"
                        " on a test bench",
                    )
                ],
                source="farsight ingest",
            )
        log.warning(
            "broker not answering; asking again before ingest starts",
            extra=kv(broker=f"{b.host}:{b.port}", retry_s=delay),
        )
        stop.wait(delay)
        delay = min(delay * 2, 30.0)


def run_ingest(settings: Settings) -> int:
    """``farsight ingest``: consume until SIGINT or SIGTERM; refuses an open broker and missing
    credentials unless ``broker.allow_anonymous``."""
    setup_logging(settings.logging.level)
    problems = credential_problems(settings)
    if problems:
        raise ConfigError(problems, source="farsight ingest")
    shutdown = Shutdown()
    with stop_on_signals(shutdown):  # a stop while the broker is down ends the wait
        refuse_open_broker(settings, shutdown.event)
    if shutdown.requested:
        return 0
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    service = IngestService(settings, registry)
    shutdown.on_close("ingest", service.stop)
    service.start(wait=False)
    log.info(
        "ingest running",
        extra=kv(broker=f"{settings.broker.host}:{settings.broker.port}", db=settings.db_path),
    )
    run_until_stopped(shutdown)
    return 0
