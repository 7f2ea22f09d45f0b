"""``missing_data``: a device (or one of its streams) that stopped sending, noticed on the
engine's clock.

Silence cannot be seen in the data, only in its absence, so this kind judges in
:meth:`Condition.tick` (the engine's clock) rather than on readings. Every stream
``(device, metric)`` a matching site should send is expected at its registry cadence
(``Device.cadence_s``); one silent for ``k`` cadences is offline. ThingsBoard users complain of
inactivity alarms that come far too late; here the delay is ``k`` cadences plus one tick.

Granularity (``per``):

``device`` (default)
    One alert series per device: the device is silent when none of its expected metrics
    arrived for ``k`` cadences (its cadence; a device that still sends some metrics is alive).
``stream``
    One alert series per ``device/metric``: a single analyser channel that dropped out shows.

When every series of a site with two or more series is silent, the site (its link, its
power, its data logger) is what failed: ONE site verdict (key ``site``) fires and the
per-series verdicts are held inactive, so a duty officer gets one alert, not one per device
(the site alert inhibits them). A site with a single series never collapses: its one alert
already says everything. The site verdict's device is ``""``, or the device's id when the site
has one expected device (so a single-device site's alert still names what to fix).

Which clock measures the silence. Live, it is the engine's clock. But data often arrives
faster than real time: an edge gateway's store-and-forward backlog, the queue an ingest worker
finds after a restart, the demo's replayed history. Judged on wall time, every site of such a
backlog would look silent until its turn came ("server time used where data time was meant").
So a series that has been seen is judged on its site's event time: the newest reading time of
the site, advanced by the engine time since that reading arrived, capped at the engine clock.
Live, the two coincide; in a replay, a site keeps its own pace. When the engine provides its
event-time watermark (the newest reading time of all sites, hook
:attr:`MissingDataCondition.watermark`),
the site clock is at least that, so a site that stops while the others' backlog is replayed is
still seen to be silent. Before the first tick, and after a restart, a reading's arrival is
taken as the next tick: the downtime is not held against the devices, whose backlog may still
be on its way.

A device never seen since start counts as silent from the engine's first tick, on the engine
clock (not from the epoch, and not forever-fine): after a restart with no state, a device that
never comes back is reported ``k`` cadences after the first tick. Any sample of an expected
stream marks it seen, flagged data included (an analyser in calibration is online), and the
inactive verdicts are returned from :meth:`observe` so the alerts resolve as soon as data
returns. Verdicts carry the site's event time.

Event-driven devices (a weigh-in-motion scale sends one message per truck) have no cadence:
``max_silence`` gives, per device kind, the silence that counts as offline instead. Cameras and
gateways send detections and status, not readings, and are skipped by default.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from farsight.clock import BEIJING
from rules.conditions import Binding, Condition, Sample, Verdict, ms_ts, ts_ms
from rules.model import Duration, RuleModel, parse_duration
from rules.registry import RuleKind, register_kind

SITE_KEY = "site"
"""Verdict key of the one alert raised when every series of a site is silent."""

WILDCARD = "*"
"""Stream name of a device whose registry entry lists no metrics: any reading counts."""


class MissingDataModel(RuleModel):
    """Every matching device (or stream) must report at its cadence."""

    kind: Literal["missing_data"] = Field("missing_data", title="Kind", description="missing_data")
    k: float = Field(
        3,
        title="Missed cadences",
        description="A series is offline after this many cadences (Device.cadence_s) without data.",
        ge=1,
        le=10_000,
    )
    per: Literal["device", "stream"] = Field(
        "device",
        title="Granularity",
        description="One alert per device (silent when none of its metrics arrives) or per"
        " device/metric stream.",
    )
    metrics: tuple[str, ...] = Field(
        (),
        title="Metrics",
        description="Only these metrics are expected (default: every metric the registry lists for"
        " the device).",
        max_length=100,
    )
    max_silence: dict[str, Duration] = Field(
        default_factory=dict,
        title="Silence by device kind",
        description="Per device kind, the silence that counts as offline instead of k x cadence"
        " (event-driven devices such as weigh stations report per truck, not on a cadence). A"
        " number of seconds or 30s, 5m, 1h, 1d.",
    )
    ignore_device_kinds: tuple[str, ...] = Field(
        ("camera", "gateway"),
        title="Ignored device kinds",
        description="Device kinds never expected to send readings (cameras send detections,"
        " gateways status).",
    )
    summary: str | None = Field(
        "No data from {site_name} {device} for {silent_for_min} min (last seen {last_seen};"
        " expected every {cadence_s} s)",
        title="Summary",
        description="Shorthand for annotations.summary.",
        max_length=500,
    )

    @field_validator("max_silence")
    @classmethod
    def _durations(cls, v: dict[str, Duration]) -> dict[str, Duration]:
        for kind, d in v.items():
            if parse_duration(d).total_seconds() <= 0:
                raise ValueError(f"max_silence for {kind!r} must be positive")
        return v


class _Series:
    """One alert series: a device or a device/metric stream, and the streams that feed it."""

    __slots__ = ("cadence_s", "device", "key", "limit_s", "metric")

    def __init__(
        self, key: str, device: str, metric: str, limit_s: float, cadence_s: float
    ) -> None:
        self.key = key
        self.device = device
        self.metric = metric
        self.limit_s = limit_s
        self.cadence_s = cadence_s


class MissingDataCondition(Condition):
    """Per site: last-seen times of the expected series, judged against the engine's clock."""

    # A flagged reading (calibration, maintenance) still proves the device is online.
    accepts_flagged = True

    __slots__ = (
        "arrived",
        "devices",
        "first_tick",
        "last_now",
        "newest",
        "off",
        "route",
        "seen",
        "series",
        "site_device",
        "site_off",
        "watermark",
    )

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(MissingDataModel)
        site = binding.site
        wanted = set(spec.metrics)
        silence = {kind: parse_duration(d).total_seconds() for kind, d in spec.max_silence.items()}
        self.series: dict[str, _Series] = {}
        # (device, metric) -> series key; metric WILDCARD: any reading of the device.
        self.route: dict[tuple[str, str], str] = {}
        devices: list[str] = []
        for dev in site.devices:
            if dev.kind in spec.ignore_device_kinds or not spec.select.matches_device(site, dev.id):
                continue
            if dev.metrics:
                streams = [m for m in dev.metrics if not wanted or m in wanted]
                if not streams:
                    continue  # the rule narrows to metrics this device does not report
            elif wanted:
                streams = sorted(wanted)  # the registry does not say; expect what the rule names
            else:
                streams = [WILDCARD]
            limit_s = silence.get(dev.kind, spec.k * dev.cadence_s)
            devices.append(dev.id)
            for m in streams:
                key = dev.id if spec.per == "device" else f"{dev.id}/{m}"
                self.route[(dev.id, m)] = key
                if key not in self.series:
                    self.series[key] = _Series(
                        key,
                        dev.id,
                        "" if spec.per == "device" or m == WILDCARD else m,
                        limit_s,
                        dev.cadence_s,
                    )
        self.site_device = devices[0] if len(devices) == 1 else ""
        self.devices = frozenset(devices)
        self.first_tick: int | None = None
        self.seen: dict[str, int] = {}
        self.off: dict[str, int] = {}
        """Series with an active verdict out (pending or firing), and its last verdict time (ms)."""
        self.site_off: int | None = None
        self.newest: int | None = None
        """Newest event time (ms) of any expected series of the site."""
        self.arrived: int | None = None
        """Engine time (ms) at which that newest sample arrived (not persisted: see observe)."""
        self.last_now: int | None = None
        """Engine time (ms) of the last tick."""
        self.watermark: Callable[[], datetime | None] | None = None
        """Optional hook the engine may set: its event-time watermark (the newest reading time
        it has evaluated, all sites). With it, a site that stops sending while the others'
        backlog is replayed is still seen to be silent."""

    # -- readings ---------------------------------------------------------------------------

    def observe(self, sample: Sample) -> list[Verdict] | None:
        if not self.series:
            return None
        t = ts_ms(sample.ts)
        assert t is not None
        keys = {
            self.route[(sample.device, m)]
            for m in sample.readings
            if (sample.device, m) in self.route
        }
        if (sample.device, WILDCARD) in self.route:
            keys.add(self.route[(sample.device, WILDCARD)])
        if not keys:
            return None
        if self.newest is None or t > self.newest:
            self.newest = t
            # Data cannot arrive before it was measured; a replayed backlog arrives "now" (the
            # last tick). Before the first tick (or after a restart) arrival is taken as the
            # next tick, so a backlog read at start-up never counts as silence.
            self.arrived = max(self.last_now, t) if self.last_now is not None else None
        out: list[Verdict] = []
        # The gap this sample ends (reported in the resolved signal): from the last data of
        # the silent series, or from the first tick for series never seen.
        start = self.first_tick if self.first_tick is not None else t
        gap = {key: max(0, t - self.seen.get(key, start)) for key in keys}
        site_gap = max(0, t - max((self.seen.get(k, start) for k in self.series), default=start))
        for key in keys:
            if key in self.off:
                # Data is back: resolve at once, not on the next tick. Never before the alert's
                # own last verdict (a replayed backlog carries old timestamps).
                since = self.off.pop(key)
                out.append(self._verdict(self.series[key], max(t, since), False, gap[key]))
            elif (
                key in self.seen
                and gap[key] >= self.series[key].limit_s * 1000
                and self.site_off is None
            ):
                # A gap no tick saw (a backlog replayed faster than the clock ticks): record the
                # outage after the fact, offline from when it became overdue until this sample.
                overdue = self.seen[key] + int(self.series[key].limit_s * 1000)
                out.append(self._verdict(self.series[key], overdue, True, overdue - self.seen[key]))
                out.append(self._verdict(self.series[key], t, False, gap[key]))
        if self.site_off is not None:
            # One series is alive: the site as a whole is not offline. Series still silent get
            # their own alerts on the next tick, now that the site alert no longer covers them.
            out.append(self._site_verdict(max(t, self.site_off), False, site_gap))
            self.site_off = None
        for key in keys:
            if t > self.seen.get(key, -1):
                self.seen[key] = t
        return out or None

    # -- the engine's clock -----------------------------------------------------------------

    def _site_clock(self, n: int) -> int:
        """The site's event time at engine time ``n`` (ms): its newest sample's time, advanced
        by the engine time since that sample arrived, capped at ``n``; at least the engine's
        event-time watermark when the engine provides one (see :attr:`watermark`)."""
        assert self.newest is not None
        if self.arrived is None:
            self.arrived = n
        clock = self.newest + max(0, n - self.arrived)
        if self.watermark is not None:
            w = ts_ms(self.watermark())
            if w is not None:
                clock = max(clock, w)
        return min(n, clock)

    def tick(self, now: datetime) -> list[Verdict] | None:
        if not self.series:
            return None
        n = ts_ms(now)
        assert n is not None
        self.last_now = n
        if self.first_tick is None:
            # Devices never seen count from here: the engine cannot know what came before.
            self.first_tick = n
        # Series seen are judged on the site's event time, so a backlog replayed faster than
        # real time (edge store-and-forward, an ingest restart, the demo's history) is not
        # silence; in live operation the site clock is the engine clock. Series never seen
        # count on the engine clock from its first tick.
        t = self._site_clock(n) if self.newest is not None else n
        silent = {
            key: (t - self.seen[key]) if key in self.seen else (n - self.first_tick)
            for key in self.series
        }
        offline = {key for key, s in silent.items() if s >= self.series[key].limit_s * 1000}
        out: list[Verdict] = []
        if len(self.series) > 1 and len(offline) == len(self.series):
            # Every series is silent: one site alert, per-series alerts held inactive.
            for key in list(self.off):
                del self.off[key]
                out.append(self._verdict(self.series[key], t, False, silent[key]))
            self.site_off = t
            out.append(self._site_verdict(t, True, min(silent.values())))
            return out
        if self.site_off is not None:
            self.site_off = None
            out.append(self._site_verdict(t, False, min(silent.values())))
        for key in sorted(offline):
            self.off[key] = t
            out.append(self._verdict(self.series[key], t, True, silent[key]))
        return out or None

    # -- verdicts ---------------------------------------------------------------------------

    def _last_seen(self, keys: list[str]) -> str:
        seen = [self.seen[k] for k in keys if k in self.seen]
        if not seen:
            return "never"
        dt = ms_ts(max(seen))
        assert dt is not None
        return dt.astimezone(BEIJING).isoformat(timespec="seconds")

    def _verdict(
        self, s: _Series, ts: datetime | int, active: bool, silent_ms: int | None
    ) -> Verdict:
        when = ms_ts(ts) if isinstance(ts, int) else ts
        assert when is not None
        silent_min = round(silent_ms / 60_000, 1) if silent_ms is not None else 0.0
        return Verdict(
            when,
            active,
            value=silent_min if active else None,
            threshold=round(s.limit_s / 60, 2),
            device=s.device,
            metric=s.metric,
            key=s.key,
            unit="min",
            context={
                "silent_for_min": silent_min,
                "last_seen": self._last_seen([s.key]),
                "cadence_s": s.cadence_s,
            },
        )

    def _site_verdict(self, ts: datetime | int, active: bool, silent_ms: int | None) -> Verdict:
        when = ms_ts(ts) if isinstance(ts, int) else ts
        assert when is not None
        silent_min = round(silent_ms / 60_000, 1) if silent_ms is not None else 0.0
        limit_s = min(s.limit_s for s in self.series.values())
        return Verdict(
            when,
            active,
            value=silent_min if active else None,
            threshold=round(limit_s / 60, 2),
            device=self.site_device,
            metric="",
            key=SITE_KEY,
            unit="min",
            context={
                "silent_for_min": silent_min,
                "last_seen": self._last_seen(list(self.series)),
                "cadence_s": min(s.cadence_s for s in self.series.values()),
            },
        )

    # -- persistence ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "first": self.first_tick,
            "seen": dict(self.seen),
            "off": dict(self.off),
            "site": self.site_off,
            "newest": self.newest,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.first_tick = state.get("first")
        # Series the registry no longer lists are dropped.
        self.seen = {k: int(v) for k, v in state.get("seen", {}).items() if k in self.series}
        self.off = {k: int(v) for k, v in state.get("off", {}).items() if k in self.series}
        self.site_off = state.get("site")
        self.newest = state.get("newest")
        # Arrival is not restored: the downtime is not held against the devices, whose backlog
        # may still be on its way; silence counts again from the first tick after the restart.
        self.arrived = None
        self.last_now = None


register_kind(
    RuleKind(
        name="missing_data",
        model=MissingDataModel,
        condition=MissingDataCondition,
        scope="site",
        description="A device or stream silent for k times its cadence (engine clock); one site"
        " alert when the whole site is silent.",
        metrics=lambda spec: None,
        eager=True,
    )
)
