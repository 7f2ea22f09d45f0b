"""The simulator: device models plus a scenario, turned into MQTT messages and published.

:meth:`Simulator.messages` is the pure core: the ``(topic, payload)`` pairs of one round at
one simulated time. :meth:`Simulator.run` is the I/O edge: it paces rounds in wall-clock time
and publishes them at QoS 1 through a paho client that reconnects by itself.

Wire format (ARCHITECTURE.md, "MQTT topics"):

* JSON devices publish ``fs/v1/{dept}/{site}/{device}/reading`` with
  ``{"ts": "...+08:00", "metrics": {...}, "flags": {...}, "seq": n}``; a weigh station sends
  one such message per truck and adds the key ``"plate"``.
* HJ 212 devices publish ``fs/v1/{dept}/{site}/{device}/hj212`` with one CN=2011 real-time frame
  (ST 31 stack, 32 water, 22 ambient air) carrying every metric that has an HJ 212 code.
  Metrics without a code (the stack's ``running``) go in a JSON message on the same device's
  ``reading`` topic with the same timestamp: HJ 212-2017 has no pollutant code for plant
  status, and inventing one would make frames other parsers reject.

``seq`` counts JSON messages per device from 1; HJ 212 frames carry no sequence number.

Given the devices' secrets (:func:`farsight.credentials.read_secrets`), each device publishes
through a connection of its own, as its own broker identity (user name ``{dept}/{site}/{device}``,
the levels of its topics), and HJ 212 frames carry the device's ``PW``: a broker whose ACLs let a
device publish only its own topics takes them as it would take the real devices'.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt

from farsight.clock import BEIJING, to_epoch_ms
from farsight.credentials import Secret, device_username, username_of_topic
from farsight.errors import BrokerError
from farsight.hj212 import CN_REALTIME, build_data_frame
from farsight.logs import kv
from farsight.metrics import BY_NAME, unit_of
from farsight.mqttclient import PublishTracker, connect, make_client
from farsight.registry import Registry
from farsight.settings import BrokerSettings
from farsight.types import Device, Site
from simulators.devices import (
    DEVICE_UNITS,
    MODELS,
    DeviceModel,
    Sample,
    WimModel,
    make_model,
    round_metric,
    stable_rng,
)
from simulators.scenarios import (
    EXCEEDANCE_JITTER,
    PM10_PER_PM25,
    Scenario,
    get_scenario,
    scenario_problems,
)

log = logging.getLogger("farsight.simulators")

TOPIC_PREFIX = "fs/v1"
ST_BY_KIND: Mapping[str, str] = {
    "cems": "31",
    "water_quality": "32",
    "air_quality": "22",
    "dust_noise": "22",
}
"""HJ 212 system code (ST) per device kind: 31 air pollution source, 32 water pollution
source, 22 ambient air quality."""

Message = tuple[str, bytes]


def format_ts(ts: datetime) -> str:
    """ISO 8601 in Beijing time with its offset; milliseconds only when there are any."""
    local = ts.astimezone(BEIJING)
    return local.isoformat(timespec="milliseconds" if local.microsecond else "seconds")


def hj212_code(metric: str) -> str | None:
    """The HJ 212-2017 pollutant code of ``metric``, or ``None`` when it has none."""
    m = BY_NAME.get(metric)
    return m.hj212 if m else None


@dataclass
class PublishStats:
    """Counters of one simulator (mutable: the run loop and paho's thread update them)."""

    rounds: int = 0
    messages: int = 0
    acknowledged: int = 0
    dropped: int = 0
    disconnects: int = 0
    connected: bool = False
    by_kind: Counter = field(default_factory=Counter)
    last_round: datetime | None = None


class Simulator:
    """Simulated devices of a registry playing a scenario.

    Parameters
    ----------
    registry
        The sites; devices whose kind has a value model (:data:`simulators.devices.MODELS`)
        are simulated, others (cameras, gateways) are skipped.
    scenario
        A :class:`~simulators.scenarios.Scenario` or the name of a built-in one.
    seed
        Same seed, same start and same rounds give byte-identical messages.
    sites
        Simulate only these site ids (default: all). Injections at other sites are idle.
    start
        Simulated time of the first round, where scenario offsets count from. ``None``: the
        time of the first :meth:`messages` call (or :meth:`run`'s ``start``).
    step_s
        Simulated seconds between rounds; weigh stations report the trucks of the last step.
    secrets
        Plain secrets by broker user name: with them :meth:`run` connects once per device, as
        that device, and HJ 212 frames carry the device's ``PW``. None: one anonymous (or
        ``broker.username``) connection for every device, and the placeholder ``PW``.

    Raises
    ------
    ValueError
        When the scenario names sites, devices or metrics the registry does not have, or
        ``sites`` names unknown sites.
    """

    def __init__(
        self,
        registry: Registry,
        scenario: Scenario | str = "quiet",
        *,
        seed: int = 2026,
        sites: Iterable[str] | None = None,
        start: datetime | None = None,
        step_s: float = 60.0,
        secrets: Mapping[str, Secret] | None = None,
    ) -> None:
        self.scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
        problems = scenario_problems(self.scenario, registry)
        if problems:
            raise ValueError("scenario does not fit the registry:\n  " + "\n  ".join(problems))
        selected = list(registry.sites)
        if sites is not None:
            wanted = list(sites)
            unknown = [s for s in wanted if registry.get(s) is None]
            if unknown:
                raise ValueError(
                    f"unknown site(s) {', '.join(unknown)}; "
                    f"known: {', '.join(s.id for s in registry.sites)}"
                )
            selected = [s for s in registry.sites if s.id in set(wanted)]
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not step_s > 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        self.registry = registry
        self.seed = seed
        self.sites: tuple[Site, ...] = tuple(selected)
        self.start = start
        self.step_s = float(step_s)
        self.stats = PublishStats()
        self.secrets = dict(secrets) if secrets is not None else None
        self._models: list[tuple[Site, Device, DeviceModel]] = []
        for site in self.sites:
            for device in site.devices:
                if device.kind in MODELS:
                    self._models.append((site, device, make_model(site, device, seed)))
                else:
                    log.debug(
                        "device not simulated",
                        extra=kv(site=site.id, device=device.id, kind=device.kind),
                    )
        self._seq: Counter[tuple[str, str]] = Counter()

    @property
    def devices(self) -> list[tuple[Site, Device]]:
        """The simulated ``(site, device)`` pairs, in registry order."""
        return [(s, d) for s, d, _ in self._models]

    def round_time(self, k: int) -> datetime:
        """Simulated time of round ``k`` (0 is ``start``)."""
        if self.start is None:
            raise ValueError("the simulator has no start time yet")
        return self.start + timedelta(seconds=k * self.step_s)

    # ------------------------------------------------------------------ pure core

    def messages(self, t: datetime) -> list[Message]:
        """The ``(topic, payload)`` pairs every simulated device sends for round time ``t``.

        Deterministic in (seed, start, t) except for ``seq``, which counts the JSON messages
        this object has produced per device.
        """
        if t.tzinfo is None:
            raise ValueError("t must be timezone-aware")
        if self.start is None:
            self.start = t
        elapsed = t - self.start
        out: list[Message] = []
        for site, device, model in self._models:
            active = self.scenario.active(site.id, device.id, elapsed)
            if any(inj.kind == "silence" for inj, _ in active):
                continue
            if device.kind == "wim":
                for sample in self._trucks(site, device, model, t, self.start, elapsed):
                    out.append(self._json(site, device, sample))
                continue
            sample = model.sample(t, self.step_s)[0]
            values, flags = dict(sample.values), dict(sample.flags)
            for inj, s in active:
                m = inj.metric
                if m is None or m not in values:
                    continue
                if inj.kind == "exceedance":
                    u = float(
                        stable_rng(
                            self.seed, "exceedance", site.id, device.id, m, to_epoch_ms(t)
                        ).uniform(-1.0, 1.0)
                    )
                    values[m] = round_metric(m, inj.need_value() * (1.0 + EXCEEDANCE_JITTER * u))
                elif inj.kind == "flatline":
                    values[m] = (
                        inj.value
                        if inj.value is not None
                        else model.sample(self.start + s, self.step_s)[0].values[m]
                    )
                flags[m] = "N"  # the fraud or the excess is reported as a normal measurement
            injected = {inj.metric for inj, _ in active}
            if (
                "pm25" in injected
                and "pm10" not in injected
                and "pm25" in values
                and values.get("pm10", math.inf) < values["pm25"] * PM10_PER_PM25
            ):
                # PM2.5 is part of PM10: an injected PM2.5 episode lifts PM10 with it.
                values["pm10"] = round_metric("pm10", values["pm25"] * PM10_PER_PM25)
            out.extend(self._encode(site, device, Sample(sample.ts, values, flags, sample.extra)))
        return out

    def _trucks(
        self,
        site: Site,
        device: Device,
        model: DeviceModel,
        t: datetime,
        start: datetime,
        elapsed: timedelta,
    ) -> list[Sample]:
        samples = model.sample(t, self.step_s)
        window = timedelta(seconds=self.step_s)
        for inj, s in self.scenario.events(site.id, device.id, elapsed - window, elapsed):
            rng = stable_rng(self.seed, "overload", site.id, device.id, s.total_seconds())
            speed = model.speed(rng) if isinstance(model, WimModel) else 60.0
            values = {
                "gross_weight": round_metric("gross_weight", inj.need_value()),
                "axles": float(inj.need_axles()),
                "speed": round_metric("speed", speed),
            }
            keep = {m: v for m, v in values.items() if not device.metrics or m in device.metrics}
            samples.append(
                Sample(start + s, keep, {m: "N" for m in keep}, {"plate": str(inj.plate)})
            )
        # One truck per millisecond: a natural truck sharing the overload's instant moves 1 ms on.
        samples.sort(key=lambda x: x.ts)
        fixed: list[Sample] = []
        for smp in samples:
            if fixed and smp.ts <= fixed[-1].ts:
                smp = Sample(
                    fixed[-1].ts + timedelta(milliseconds=1), smp.values, smp.flags, smp.extra
                )
            fixed.append(smp)
        return fixed

    @staticmethod
    def _username(site: Site, device: Device) -> str:
        return device_username(site.department, site.id, device.id)

    def _topic(self, site: Site, device: Device, kind: str) -> str:
        return f"{TOPIC_PREFIX}/{site.department}/{site.id}/{device.id}/{kind}"

    def _json(self, site: Site, device: Device, sample: Sample) -> Message:
        key = (site.id, device.id)
        self._seq[key] += 1
        doc: dict[str, object] = {
            "ts": format_ts(sample.ts),
            "metrics": dict(sample.values),
            "flags": dict(sample.flags),
            "seq": self._seq[key],
        }
        units = {
            m: u
            for m, u in DEVICE_UNITS.get(device.kind, {}).items()
            if m in sample.values and u != unit_of(m)
        }
        if units:
            doc["units"] = units
        if sample.extra:
            doc["attrs"] = dict(sample.extra)
        payload = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self._topic(site, device, "reading"), payload

    def _encode(self, site: Site, device: Device, sample: Sample) -> list[Message]:
        if device.protocol != "hj212":
            return [self._json(site, device, sample)]
        coded = {code: m for m in sample.values if (code := hj212_code(m))}
        out: list[Message] = []
        if coded:
            secret = self.secrets.get(self._username(site, device)) if self.secrets else None
            frame = build_data_frame(
                pw=secret.hj212_pw if secret is not None and secret.hj212_pw else "123456",
                mn=str(device.mn),
                ts=sample.ts,
                st=ST_BY_KIND.get(device.kind, "31"),
                cn=CN_REALTIME,
                values={
                    code: {"Rtd": sample.values[m], "Flag": sample.flags.get(m, "N")}
                    for code, m in coded.items()
                },
            )
            out.append((self._topic(site, device, "hj212"), frame))
        rest = {m: v for m, v in sample.values.items() if not hj212_code(m)}
        if rest:
            flags = {m: sample.flags.get(m, "N") for m in rest}
            out.append(self._json(site, device, Sample(sample.ts, rest, flags)))
        return out

    # ------------------------------------------------------------------ I/O edge

    def run(
        self,
        broker: BrokerSettings | None = None,
        *,
        start: datetime | None = None,
        rounds: int | None = None,
        interval_s: float = 2.0,
        speedup: float = 30.0,
        stop_event: threading.Event | None = None,
        client_id: str | None = None,
        ack_timeout_s: float = 30.0,
        max_pending: int = 100_000,
        on_round: Callable[[int, datetime, int], None] | None = None,
        catch_up_until: datetime | None = None,
    ) -> PublishStats:
        """Publish rounds at QoS 1 until ``rounds`` are done or ``stop_event`` is set.

        Round ``k`` is simulated time ``start + k * interval_s * speedup``, published at wall
        time ``k * interval_s`` after the connection. The paho client connects in the background
        and reconnects with backoff. Order is kept across a lost link: after a disconnect,
        nothing new is published until paho has resent, and the broker acknowledged, everything
        that was in flight; rounds due meanwhile go out late, in order, once the link is back
        (as a data logger's store-and-forward would). After the last round, waits up to
        ``ack_timeout_s`` for every publish to be acknowledged (2 s when stopped).

        With ``secrets`` (see the class), each device has a client of its own, connected as
        that device; order then holds per device, which is all a device's own link promises.

        Parameters
        ----------
        broker
            Where to publish (default: ``BrokerSettings()``, 127.0.0.1:1883).
        start
            Simulated time of round 0, floored to the second because HJ 212 ``DataTime`` has
            whole seconds; default: the constructor's start, else now.
        rounds
            Number of rounds; ``None`` runs until ``stop_event``.
        interval_s, speedup
            Wall-clock seconds between rounds, and simulated seconds per wall-clock second.
        client_id
            Client id of the one shared connection (unused with ``secrets``: each device's
            client id is its user name).
        max_pending
            Stop producing while this many publishes await their acknowledgement.
        on_round
            Called after each round with ``(k, t, messages in the round)``.
        catch_up_until
            Rounds up to this simulated time are published without waiting (a backfill of
            history, e.g. the demo's last hour); later rounds follow the wall clock again.

        Returns
        -------
        PublishStats
            ``self.stats``, also readable while the run goes on.

        Raises
        ------
        ValueError
            Bad pacing arguments, or ``secrets`` that lack a simulated device.
        BrokerError
            When the broker refuses a connection's credentials (or their absence): trying again
            would not change its answer.
        """
        if not interval_s > 0 or not speedup > 0:
            raise ValueError(
                f"interval_s and speedup must be positive, got {interval_s} and {speedup}"
            )
        if rounds is not None and rounds < 0:
            raise ValueError(f"rounds must be non-negative, got {rounds}")
        broker = broker or BrokerSettings()
        stop = stop_event or threading.Event()
        if start is not None or self.start is None:
            start = start or datetime.now(UTC)
            if start.tzinfo is None:
                raise ValueError("start must be timezone-aware")
            self.start = start.replace(microsecond=0)
        self.step_s = interval_s * speedup
        links = self._links(broker, client_id)
        shared = links.get("")

        def link_of(topic: str) -> _Link:
            return shared or links[username_of_topic(topic) or ""]

        for link in links.values():
            link.start()
        log.info(
            "simulator started",
            extra=kv(
                scenario=self.scenario.name,
                seed=self.seed,
                devices=len(self._models),
                connections=len(links),
                start=format_ts(self.start),
                step_s=self.step_s,
            ),
        )

        def pending() -> int:
            return sum(link.tracker.pending for link in links.values())

        def acked() -> int:
            return sum(link.tracker.acked for link in links.values())

        try:
            for link in links.values():
                if not link.in_sync(stop):
                    break
            t0 = time.monotonic()
            k = 0
            while (rounds is None or k < rounds) and not stop.is_set():
                while pending() >= max_pending and not stop.is_set():
                    stop.wait(0.05)  # back-pressure: the broker is slower than the rounds
                t = self.round_time(k)
                batch = self.messages(t)
                finished = True
                for topic, payload in batch:
                    link = link_of(topic)
                    if not link.in_sync(stop):
                        finished = False
                        break
                    info = link.client.publish(topic, payload, qos=1)
                    if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                        self.stats.dropped += 1
                        continue
                    link.tracker.add(info)
                    self.stats.messages += 1
                    self.stats.by_kind[topic.rsplit("/", 1)[1]] += 1
                if not finished:
                    break  # stopped while the link was down: this round stays unfinished
                k += 1
                self.stats.rounds = k
                self.stats.last_round = t
                self.stats.acknowledged = acked()
                if on_round is not None:
                    on_round(k - 1, t, len(batch))
                if rounds is not None and k >= rounds:
                    break
                if catch_up_until is not None:
                    # History first, as fast as the broker takes it; then one round per step.
                    due = (
                        t0
                        + max(0.0, (self.round_time(k) - catch_up_until).total_seconds()) / speedup
                    )
                else:
                    due = t0 + k * interval_s
                stop.wait(max(0.0, due - time.monotonic()))
            deadline = time.monotonic() + (2.0 if stop.is_set() else ack_timeout_s)
            for link in links.values():
                if not link.tracker.wait(max(0.0, deadline - time.monotonic())):
                    log.warning("publishes not acknowledged", extra=kv(pending=pending()))
                    break
        finally:
            self.stats.acknowledged = acked()
            for link in links.values():
                link.close()
        log.info(
            "simulator stopped",
            extra=kv(
                rounds=self.stats.rounds,
                messages=self.stats.messages,
                acknowledged=self.stats.acknowledged,
                dropped=self.stats.dropped,
            ),
        )
        return self.stats

    def _links(self, broker: BrokerSettings, client_id: str | None) -> dict[str, _Link]:
        """The clients of a run: one per device user name with secrets, else one under ``""``."""
        if self.secrets is None:
            cid = client_id or f"farsight-sim-{os.getpid()}-{threading.get_ident()}"
            return {"": _Link(broker, cid, self.stats)}
        names = list(dict.fromkeys(self._username(s, d) for s, d, _ in self._models))
        missing = [n for n in names if n not in self.secrets]
        if missing:
            raise ValueError(
                f"no secret for {len(missing)} simulated device(s): {', '.join(missing[:5])}"
                f"{', ...' if len(missing) > 5 else ''}; `farsight devices issue --out FILE`"
                " makes them"
            )
        links = {
            name: _Link(
                broker.model_copy(
                    update={"username": name, "password": self.secrets[name].password}
                ),
                name,
                self.stats,
            )
            for name in names
        }
        peers = list(links.values())
        for link in peers:
            link.peers = peers
        return links


_AUTH_REFUSALS = frozenset({"Not authorized", "Bad user name or password"})
"""CONNACK reasons (MQTT 5 names; paho gives 3.1.1's return codes the same) for credentials."""


class _Link:
    """One paho client of a run and what keeps its publishes in order across a lost link.

    ``unsynced`` is set while not connected, or reconnected with resends outstanding: paho calls
    on_connect before it resends what was in flight, so a publish made then would overtake them.
    """

    def __init__(self, broker: BrokerSettings, client_id: str, stats: PublishStats) -> None:
        self.broker = broker
        self.stats = stats
        self.where = f"{broker.host}:{broker.port}"
        self.name = broker.username or client_id
        self.client = make_client(broker, client_id, persistent=False)
        self.tracker = PublishTracker(self.client)
        self.unsynced = threading.Event()
        self.unsynced.set()
        self.connected = False
        self.refused: object = None  # the broker's answer to credentials it does not take
        self.peers: list[_Link] = [self]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(
        self, c: mqtt.Client, userdata: object, flags: object, reason: object, props: object = None
    ) -> None:
        self.connected = not getattr(reason, "is_failure", False)
        self.stats.connected = all(link.connected for link in self.peers)
        if self.connected:
            log.info("simulator connected", extra=kv(broker=self.where, client=self.name))
        else:
            if str(reason) in _AUTH_REFUSALS:
                self.refused = reason
            log.warning(
                "broker refused the simulator",
                extra=kv(broker=self.where, client=self.name, reason=reason),
            )

    def _on_disconnect(
        self, c: mqtt.Client, userdata: object, flags: object, reason: object, props: object = None
    ) -> None:
        self.unsynced.set()
        self.connected = False
        self.stats.connected = False
        if getattr(reason, "is_failure", True):
            self.stats.disconnects += 1
            log.warning(
                "simulator lost the broker; paho reconnects",
                extra=kv(
                    broker=self.where, client=self.name, reason=reason, pending=self.tracker.pending
                ),
            )

    def start(self) -> None:
        connect(self.client, self.broker, persistent=False)

    def in_sync(self, stop: threading.Event) -> bool:
        """Wait until connected with nothing in flight from before a disconnect; False if
        stopped."""
        since, warned = time.monotonic(), False
        while not stop.is_set():
            if self.refused is not None:
                raise BrokerError(
                    f"the broker at {self.where} refused {self.name!r}: {self.refused}; a broker"
                    " that requires credentials takes each device's own (--secrets FILE)"
                )
            if not self.unsynced.is_set():
                return True
            if self.client.is_connected() and self.tracker.pending == 0:
                self.unsynced.clear()
                return True
            if not warned and time.monotonic() - since > 10:
                log.warning(
                    "simulator waiting for the broker",
                    extra=kv(broker=self.where, client=self.name, pending=self.tracker.pending),
                )
                warned = True
            stop.wait(0.01)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
