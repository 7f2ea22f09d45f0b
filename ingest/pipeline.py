"""The ingest pipeline: MQTT messages in, stored readings, dead letters and alerts out.

decode -> validate against the registry -> store (idempotent) -> evaluate rules on what was
new -> apply alert signals. Nothing here raises out of :meth:`IngestPipeline.process`: a bad
message becomes a dead letter with its reason, so one broken device never stops ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from farsight.clock import Clock, SystemClock
from farsight.errors import DecodeError, FarsightError
from farsight.logs import kv
from farsight.registry import Registry
from farsight.settings import IngestTimeSettings
from farsight.types import AlertSignal, Reading
from ingest import admission
from ingest.admission import AdmissionPolicy
from ingest.audit import AuditTrail
from ingest.codecs import get_codec
from ingest.codecs.base import Decoded, irregularity_name
from ingest.edge_batches import EdgeBatchDecoder, Expansion
from ingest.measure_time import future_refusal, live_flags
from ingest.message import Message
from ingest.store import DeadLetter, ReadingStore
from ingest.topics import CODEC_FOR_KIND, parse_topic

log = logging.getLogger("farsight.ingest")


class RuleEvaluator(Protocol):
    """What ingest needs of the rule engine (``rules.engine.Engine``).

    A rule set (what :meth:`RuleSource.poll` returns) is typed ``Any``: ingest may not import
    ``rules``, and only hands it from the source to the engine and the state store.
    """

    def evaluate(
        self, readings: Sequence[Reading], not_after: datetime | None = None
    ) -> list[AlertSignal]: ...

    def tick(self, now: datetime) -> list[AlertSignal]: ...

    def reload(self, rules: Any) -> object: ...

    def reset(self) -> None: ...

    def restore(self, entries: Sequence[dict[str, Any]]) -> int: ...

    def snapshot(self, only_dirty: bool = False) -> list[dict[str, Any]]: ...


class AlertSink(Protocol):
    def apply(self, signals: Sequence[AlertSignal]) -> list: ...


class RuleStateStore(Protocol):
    def save(self, entries: Sequence[dict[str, Any]]) -> int: ...

    def load(self) -> list[dict[str, Any]]: ...

    def prune(self, rules: Any) -> int: ...


class DevicePasswords(Protocol):
    """The devices' registered HJ 212 passwords (the credential store)."""

    def hj212_password_ok(self, site_id: str, device_id: str, pw: str | None) -> bool | None:
        """True when ``pw`` is the device's password, False when it is not, None when the device
        has none registered."""
        ...


class RuleSource(Protocol):
    def poll(self) -> Any | None: ...


@dataclass(slots=True)
class IngestStats:
    """Counters since start (exported at /metrics by the hub process that runs ingest)."""

    messages: int = 0
    readings: int = 0
    duplicates: int = 0
    rejected: int = 0
    signals: int = 0
    backfilled: int = 0
    # Older than the backfill horizon when received: stored, not evaluated.
    past_horizon: int = 0
    ticks: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchResult:
    stored: int
    duplicates: int
    rejected: int
    signals: tuple[AlertSignal, ...]


class IngestPipeline:
    """Turns batches of messages into stored readings, dead letters and alerts."""

    def __init__(
        self,
        registry: Registry,
        store: ReadingStore,
        engine: RuleEvaluator | None = None,
        alerts: AlertSink | None = None,
        unknown_site: str = "dead-letter",
        rule_state: RuleStateStore | None = None,
        rule_source: RuleSource | None = None,
        tickers: Sequence[Callable[[datetime], object]] = (),
        audit: AuditTrail | None = None,
        edge: EdgeBatchDecoder | None = None,
        passwords: DevicePasswords | None = None,
        time: IngestTimeSettings | None = None,
        clock: Clock | None = None,
        admission: AdmissionPolicy | None = None,
        *,
        checks: bool = True,
    ) -> None:
        self.registry = registry
        self.store = store
        self.engine = engine
        self.alerts = alerts
        self.unknown_site = unknown_site
        self.rule_state = rule_state
        self.rule_source = rule_source
        # Later stages of the alert pipeline that move with time (escalation, silences that end
        # by themselves); called with the wall clock's time on every tick, never with the
        # readings' time, which a device's clock decides.
        self.tickers = tuple(tickers)
        self.audit = audit
        # Verifies and unpacks edge gateway batches (ingest/edge_batches.py); None: no gateways.
        self.edge = edge
        # HJ 212 frames must carry their device's registered PW; None: PW is not checked (tests,
        # and deployments without a credential store).
        self.passwords = passwords
        self.time = time or IngestTimeSettings()
        # The least future skew of any device kind (see _judge_times); settings are fixed for the
        # pipeline's life.
        self._least_skew_s = min(
            (self.time.max_future_skew_s, *self.time.future_skew_by_kind.values())
        )
        self.clock = clock or SystemClock()
        # Caps, registered metrics and physical ranges (ingest/admission.py); on by default.
        self.admission = admission or AdmissionPolicy()
        # False only to measure what the door's checks cost (benchmarks/ingest.py): no size,
        # metric or range admission, no measure-time judgement (every reading is live), no HJ 212
        # MN/PW check. Deliberately not a setting: no operator can switch the door open.
        self.checks = checks
        self.stats = IngestStats()
        self._exported: dict[tuple[str, str], int] = {}

    def decode(
        self, msg: Message
    ) -> tuple[list[Reading], list[tuple[str, str, str]], dict[str, str], list[DeadLetter]]:
        """Decode and validate one message; raise :class:`DecodeError` to reject it whole.

        Returns the readings admitted, irregularities, the message's attributes and the dead
        letters of readings refused one by one (:mod:`ingest.admission`)."""
        topic = parse_topic(msg.topic)
        codec_name = CODEC_FOR_KIND.get(topic.kind)
        if codec_name is None:
            raise DecodeError("unsupported_topic", f"ingest does not consume '{topic.kind}' topics")
        site = self.registry.get(topic.site)
        if site is None and self.unknown_site == "dead-letter":
            raise DecodeError("unknown_site", f"site {topic.site!r} is not in the registry")
        if site is not None and site.department != topic.dept:
            raise DecodeError(
                "department_mismatch",
                f"site {topic.site!r} belongs to {site.department!r}, topic says {topic.dept!r}",
            )
        if self.checks:
            admission.check_size(len(msg.payload), self.admission)
        decoded = get_codec(codec_name).decode(msg.payload, site=topic.site, device=topic.device)
        # Counted per device under each irregularity's fixed name, once per message: the details
        # (which unknown code, what the length field said) vary without bound.
        names = dict.fromkeys(irregularity_name(what) for what in decoded.irregularities)
        irregular = [(topic.site, topic.device, name) for name in names]
        device = site.device(topic.device) if site is not None else None
        if site is not None:
            if device is None:
                irregular.append((topic.site, topic.device, "device not in registry"))
            elif codec_name == "hj212" and self.checks:
                self._check_hj212(topic.site, topic.device, device.mn, decoded)
        attrs = {k[5:]: v for k, v in decoded.meta.items() if k.startswith("attr.")}
        if not self.checks:
            return list(decoded.readings), irregular, attrs, []
        # Unknown metrics and impossible values: refused one by one (the rest of the message is
        # stored), each refusal kept as a dead letter of the whole payload for replay.
        admitted = admission.admit(
            decoded.readings, admission.registered_metrics(device), self.admission
        )
        irregular.extend((topic.site, topic.device, what) for what in admitted.flagged)
        refused = [
            DeadLetter(msg.topic, msg.payload, r.reason, r.detail, msg.received, codec=codec_name)
            for r in admitted.refusals
        ]
        return list(admitted.readings), irregular, attrs, refused

    def _judge_times(self, msg: Message, readings: Sequence[Reading]) -> list[bool]:
        """Refuse a message measured too far after its receipt (:class:`DecodeError`
        ``future_timestamp``); return, per reading, whether it is live (within the backfill
        horizon) rather than history to store only."""
        if not readings:
            return []
        if not self.checks:
            return [True] * len(readings)
        ahead = (max(r.ts for r in readings) - msg.received).total_seconds()
        # Within the smallest skew of any device kind, no device's skew is passed: the device's
        # kind is looked up only for a message measured further ahead of its receipt.
        if ahead > self._least_skew_s:
            kind = self._device_kind(readings[0].site, readings[0].device)
            refusal = future_refusal(readings, msg.received, self.time.skew_for(kind), kind)
            if refusal is not None:
                raise refusal
        return live_flags(readings, msg.received, self.time.backfill_horizon_s)

    def _device_kind(self, site_id: str, device_id: str) -> str | None:
        site = self.registry.get(site_id)
        device = site.device(device_id) if site is not None else None
        return device.kind if device is not None else None

    def _check_hj212(self, site: str, device: str, mn: str | None, decoded: Decoded) -> None:
        """Refuse a frame that does not prove it is the topic's device: its MN must be the one
        registered for the device, and its PW the device's password."""
        frame_mn = decoded.meta.get("MN")
        if mn and frame_mn != mn:
            # A frame whose MN is not the registered device's may be misrouted or forged.
            shown = "no MN" if frame_mn is None else f"MN {frame_mn[:24]!r}"
            raise DecodeError(
                "mn_mismatch", f"frame has {shown}, not {mn!r} registered for {site}/{device}"
            )
        if self.passwords is None:
            return
        ok = self.passwords.hj212_password_ok(site, device, decoded.password)
        if ok is None:
            raise DecodeError(
                "no_password",
                f"no HJ 212 password is registered for {site}/{device}; make one with"
                " `farsight devices issue`",
            )
        if not ok:
            raise DecodeError(
                "bad_password",
                f"frame PW is not the password registered for {site}/{device}"
                + ("" if decoded.password else " (the frame has no PW)"),
            )

    def tick(self, now: datetime | None = None) -> list[AlertSignal]:
        """Move the rule engine's clock (rules that notice silence) and apply what it raises."""
        if self.engine is None:
            return []
        if self.rule_source is not None:
            # Same thread as process(): the engine is never reloaded mid-batch.
            ruleset = self.rule_source.poll()
            if ruleset is not None:
                self.engine.reload(ruleset)
                if self.rule_state is not None:
                    self.rule_state.prune(ruleset)
                if self.audit is not None:
                    # A rule or threshold change is a supervision decision: it is audited.
                    self.audit.append(
                        "rules",
                        "rules.reload",
                        "rules",
                        {
                            "rules": {r.id: r.digest for r in ruleset},
                            "maintenance": len(ruleset.maintenance),
                        },
                    )
        now = now or self.clock.now()
        signals = self.engine.tick(now)
        if signals and self.alerts is not None:
            self.alerts.apply(signals)
        for tick in self.tickers:
            tick(now)
        self.save_rule_state()
        self.export_counters()
        self.stats.signals += len(signals)
        self.stats.ticks += 1
        return signals

    def _resync_engine(self) -> None:
        """The engine's memory moved on for a batch the database rolled back: go back to the
        state last committed, so the redelivered batch is judged as if for the first time."""
        if self.engine is None or self.rule_state is None:
            return
        self.engine.reset()
        self.engine.restore(self.rule_state.load())

    def export_counters(self) -> None:
        """Add what the rule engine counted since the last export to the shared counters, so
        the hub can report late, flagged and suppressed readings of every ingest worker."""
        stats = getattr(self.engine, "stats", None)
        if stats is None:
            return
        now: dict[tuple[str, str], int] = {
            ("rule_late_readings", rule): n for rule, n in stats.late_by_rule.items()
        }
        now.update(
            {("rule_flagged_readings", flag): n for flag, n in stats.flagged_by_flag.items()}
        )
        now[("alerts_suppressed_maintenance", "")] = stats.suppressed
        now[("rule_future_readings", "")] = getattr(stats, "future", 0)
        now[("ingest_readings_past_horizon", "")] = self.stats.past_horizon
        deltas = {k: v - self._exported.get(k, 0) for k, v in now.items()}
        try:
            self.store.add_counters(deltas)
        except FarsightError:
            log.exception("counters not exported")
            return
        self._exported = now

    def save_rule_state(self) -> None:
        """Persist the rule state the engine changed since the last save (a restart resumes it)."""
        if self.rule_state is None or self.engine is None:
            return
        try:
            self.rule_state.save(self.engine.snapshot(only_dirty=True))
        except FarsightError:
            # Losing some state costs at most a restarted `for` or window; stopping ingest
            # costs data.
            log.exception("rule state not saved")

    def process(self, messages: Sequence[Message], *, expand: bool = True) -> BatchResult:
        """Decode, store and evaluate a batch; returns what happened. Never raises on bad data.

        With ``expand=False`` gateway batches are not unpacked here: the messages were unpacked
        and verified already (a dead-lettered batch replayed, :mod:`ingest.dead_letters`).
        """
        readings: list[Reading] = []
        # Descriptive strings of a message (a truck's plate) keyed by what its readings share.
        attrs_at: dict[tuple[str, str, datetime], dict[str, str]] = {}
        dead: list[DeadLetter] = []
        irregular: list[tuple[str, str, str]] = []
        # Per reading: measured within the backfill horizon of its receipt (judged live).
        live: list[bool] = []
        # Per reading: when ingest received its message (stored: timeliness counts from it).
        received: list[datetime] = []
        edge = self.edge if expand else None
        expansion: Expansion | None = None
        if edge is not None:
            # Gateway batches become the messages they carry (or dead letters) before decoding.
            expansion = edge.expand(messages)
            messages, dead = expansion.messages, list(expansion.dead)
        for msg in messages:
            try:
                rs, irr, attrs, refused = self.decode(msg)
                rs_live = self._judge_times(msg, rs)  # a future message is refused whole
                dead.extend(refused)
                if getattr(msg, "backfilled", False) and rs:
                    # Forwarded late by a gateway after an outage: alerts it raises say so.
                    attrs = {**attrs, "backfilled": "true"}
                    self.stats.backfilled += len(rs)
                if attrs and rs:
                    attrs_at[(rs[0].site, rs[0].device, rs[0].ts)] = attrs
                readings.extend(rs)
                live.extend(rs_live)
                received.extend([msg.received] * len(rs))
                irregular.extend(irr)
            except DecodeError as exc:
                dead.append(
                    DeadLetter(
                        msg.topic, msg.payload, exc.reason, exc.detail, msg.received, codec=None
                    )
                )
            except Exception as exc:
                log.exception("decoder failed", extra=kv(topic=msg.topic))
                dead.append(
                    DeadLetter(
                        msg.topic,
                        msg.payload,
                        "internal_error",
                        f"{type(exc).__name__}: {exc}",
                        msg.received,
                    )
                )
        shared = all(
            getattr(x, "db", None) is self.store.db
            for x in (self.alerts, self.rule_state)
            if x is not None
        )
        try:
            # With one shared database the batch's readings, dead letters, alerts, audit entries
            # and rule state commit together: a failure leaves none of them, the messages stay
            # unacknowledged, and their redelivery is evaluated afresh.
            with self.store.db.transaction() if shared or expansion is not None else nullcontext():
                new_flags = self.store.write_batch(readings, dead, irregular, received)
                if edge is not None and expansion is not None:
                    # The gateways' sequence state commits with their readings, or not at all.
                    edge.commit(expansion)
                new = [r for r, is_new in zip(readings, new_flags) if is_new]
                new_live = [r for r, n, lv in zip(readings, new_flags, live) if n and lv]
                signals: list[AlertSignal] = []
                if self.engine is not None and new_live:
                    # The engine's clock never passes the wall clock plus the widest skew: a
                    # reading that got past the door with a future time cannot carry it on.
                    bound = self.clock.now() + timedelta(seconds=self.time.widest_skew_s)
                    signals = self.engine.evaluate(new_live, not_after=bound)
                    if attrs_at:
                        signals = [_with_attrs(s, attrs_at) for s in signals]
                if expansion is not None and expansion.signals:
                    signals = [*signals, *expansion.signals]  # gateway silent or backlogged
                if self.alerts is not None and signals:
                    self.alerts.apply(signals)
                if new:
                    self.save_rule_state()
        except Exception:
            log.exception(
                "batch not stored; it will be redelivered", extra=kv(messages=len(messages))
            )
            if shared:
                self._resync_engine()
            raise
        s = self.stats
        s.messages += len(messages)
        s.readings += len(new)
        s.past_horizon += len(new) - len(new_live)
        s.duplicates += len(readings) - len(new)
        s.rejected += len(dead)
        s.signals += len(signals)
        for d in dead:
            s.rejected_by_reason[d.reason] = s.rejected_by_reason.get(d.reason, 0) + 1
            log.warning("rejected", extra=kv(topic=d.topic, reason=d.reason, detail=d.detail))
        return BatchResult(len(new), len(readings) - len(new), len(dead), tuple(signals))


def _with_attrs(
    signal: AlertSignal, attrs_at: dict[tuple[str, str, datetime], dict[str, str]]
) -> AlertSignal:
    """Carry the attributes of the message that fired a signal (the overloaded truck's plate, a
    camera's zone) into its labels, so the alert names what an officer must find, and its
    evidence hashes into the signal's evidence."""
    attrs = attrs_at.get((signal.site, signal.device, signal.ts))
    if not attrs:
        return signal
    labels = dict(signal.labels)
    attrs = dict(attrs)
    # Evidence hashes (a camera's snapshot and raw frame) are the alert's evidence, which the
    # risk score counts and the outbox links, not a label.
    evidence = tuple(h for h in attrs.pop("evidence", "").split(",") if h)
    for k, v in attrs.items():
        labels.setdefault(k, v)
    return replace(
        signal,
        labels=tuple(sorted(labels.items())),
        evidence=tuple(dict.fromkeys(signal.evidence + evidence)),
    )
