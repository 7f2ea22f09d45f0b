"""``effective_rate``: a site whose effective data transmission rate (有效数据传输率) of a local
day falls below a threshold.

The rate is valid values over values owed by the registered cadence (see
:mod:`farsight.quality`, which the API and the monthly report use with the same definitions and
validity rule): per metric stream of every matching device, one value per cadence slot counts,
and only when its HJ 212 flag is valid. Regulators assess it per day and month; a site that
sends little, or sends mostly maintenance and fault data, is not being supervised.

A day is judged once it is over: when a reading of a later day arrives, or when the site's
clock passes the day's end plus ``grace`` (late data of the day still counts until then). The
site's clock is the newest reading time advanced by the engine time since it arrived, capped at
the engine clock (as ``missing_data`` keeps it), so a replayed backlog is judged on its own
time, and a site that sends nothing at all is judged on the engine's clock. One verdict per day,
at the day's end: active when the rate is below the threshold, so the alert fires on a bad day
and resolves on the next good one.

A device's declared stoppages (the registry's ``stoppages``) are owed nothing, and its readings
then are not counted, as :mod:`farsight.quality` leaves them out; data flagged F (stopped)
outside a declared stoppage is owed and not valid.

A day the engine began to watch part-way (a fresh start, a device that came into the registry)
owes only from then. After a long outage at most :data:`MAX_DAYS_BEHIND` missing days are
judged, each with rate 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from farsight.clock import BEIJING
from farsight.quality import (
    EVENT_DEVICE_KINDS,
    Window,
    counts_as_valid,
    in_windows,
    overlap_ms,
    stopped_windows,
    streams_of,
)
from rules.conditions import Binding, Condition, Sample, Verdict, ms_ts, ts_ms
from rules.model import Duration, RuleModel, parse_duration
from rules.registry import RuleKind, register_kind

DAY_MS = 86_400_000
MAX_DAYS_BEHIND = 31
"""Most missed days judged after an outage (older ones are skipped, not raised one by one)."""

_OFFSET_MS = 8 * 3_600_000
"""Beijing time (``farsight.clock.BEIJING``) is UTC+8 all year: no daylight saving."""


def local_day(ms: int) -> int:
    """Start (epoch ms) of the Beijing day holding ``ms``."""
    return (ms + _OFFSET_MS) // DAY_MS * DAY_MS - _OFFSET_MS


class EffectiveRateModel(RuleModel):
    """A site's effective data transmission rate of a day below ``threshold``."""

    kind: Literal["effective_rate"] = Field(
        "effective_rate", title="Kind", description="effective_rate"
    )
    threshold: float = Field(
        0.9,
        title="Threshold",
        description="Lowest acceptable effective data transmission rate of a day, as a fraction"
        " (0.9: 90 %).",
        gt=0,
        le=1,
    )
    grace: Duration = Field(
        "1h",
        title="Grace",
        description="After a day ends, how long its late data still counts before it is judged.",
    )
    metrics: tuple[str, ...] = Field(
        (),
        title="Metrics",
        description="Only these metrics are owed (default: every metric the registry lists).",
        max_length=100,
    )
    ignore_device_kinds: tuple[str, ...] = Field(
        EVENT_DEVICE_KINDS,
        title="Ignored device kinds",
        description="Device kinds that owe no values on a cadence (weigh stations, cameras,"
        " gateways, GPS trackers).",
    )
    summary: str | None = Field(
        "Effective data transmission rate of {site_name} on {day}: {value} % (threshold"
        " {threshold} %; {valid} of {expected} values owed arrived valid)",
        title="Summary",
        description="Shorthand for annotations.summary.",
        max_length=500,
    )


class EffectiveRateCondition(Condition):
    """Per site: the current day's valid values per stream, judged when the day is over."""

    # Flagged values still arrived: the condition applies the validity rule itself.
    accepts_flagged = True

    __slots__ = (
        "arrived",
        "counts",
        "day",
        "devices",
        "grace_ms",
        "last_now",
        "newest",
        "since",
        "stopped",
        "streams",
        "threshold",
    )

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(EffectiveRateModel)
        site = binding.site
        wanted = set(spec.metrics)
        self.streams: dict[tuple[str, str], int] = {
            (s.device, s.metric): max(1, int(s.cadence_s * 1000))
            for s in streams_of([site], spec.ignore_device_kinds)
            if spec.select.matches_device(site, s.device) and (not wanted or s.metric in wanted)
        }
        self.devices = frozenset(d for d, _ in self.streams)
        # Declared stoppages per device (merged windows, epoch ms); most devices have none.
        self.stopped: dict[str, tuple[Window, ...]] = {
            d: w for d in self.devices if (w := stopped_windows(site, d))
        }
        self.threshold = spec.threshold
        self.grace_ms = int(parse_duration(spec.grace).total_seconds() * 1000)
        self.day: int | None = None
        """Start (epoch ms) of the local day being counted."""
        self.since: int | None = None
        """When that day began to be owed (its start, or when the engine began watching)."""
        self.counts: dict[str, list[int]] = {}
        """``device/metric`` -> [received, valid, last slot counted]."""
        self.newest: int | None = None
        self.arrived: int | None = None
        self.last_now: int | None = None

    # -- counting ---------------------------------------------------------------------------

    def observe(self, sample: Sample) -> list[Verdict] | None:
        if not self.streams:
            return None
        t = ts_ms(sample.ts)
        if self.newest is None or t > self.newest:
            self.newest = t
            # Data cannot arrive before it was measured; a replayed backlog arrives "now".
            self.arrived = max(self.last_now, t) if self.last_now is not None else None
        if self.day is None:
            self.day, self.since = local_day(t), t
        out = self._roll(t)
        if t < self.day:
            return out or None  # a reading of a day already judged
        stopped = self.stopped.get(sample.device)
        if stopped and in_windows(t, stopped):
            return out or None  # declared stopped: owed nothing, counted nothing
        for metric, r in sample.readings.items():
            cadence = self.streams.get((sample.device, metric))
            if cadence is None:
                continue
            key = f"{sample.device}/{metric}"
            slot = t // cadence
            c = self.counts.get(key)
            if c is None:
                c = self.counts[key] = [0, 0, slot - 1]
            if slot > c[2]:
                # One value per cadence slot: a device sending faster is not more than complete.
                c[0] += 1
                c[1] += counts_as_valid(r.flag)
                c[2] = slot
        return out or None

    def tick(self, now: datetime) -> list[Verdict] | None:
        if not self.streams:
            return None
        n = ts_ms(now)
        self.last_now = n
        if self.day is None:
            # Never seen: owed from the engine's first tick on.
            self.day, self.since = local_day(n), n
            return None
        clock = n
        if self.newest is not None:
            if self.arrived is None:
                self.arrived = n
            clock = min(n, self.newest + max(0, n - self.arrived))
        return self._roll(clock - self.grace_ms) or None

    # -- judging ----------------------------------------------------------------------------

    def _roll(self, t: int) -> list[Verdict]:
        """Judge every day that ended at or before ``t``."""
        out: list[Verdict] = []
        assert self.day is not None
        if t - self.day > (MAX_DAYS_BEHIND + 1) * DAY_MS:
            self.day = self.since = local_day(t) - MAX_DAYS_BEHIND * DAY_MS
            self.counts = {}
        while self.day + DAY_MS <= t:
            v = self._close()
            if v is not None:
                out.append(v)
        return out

    def _close(self) -> Verdict | None:
        assert self.day is not None and self.since is not None
        start, end = self.day, self.day + DAY_MS
        owed_from = max(start, min(self.since, end))
        expected = received = valid = 0
        for (device, metric), cadence in self.streams.items():
            free = end - owed_from
            stopped = self.stopped.get(device)
            if stopped:
                free -= overlap_ms(stopped, owed_from, end)
            owed = free // cadence
            c = self.counts.get(f"{device}/{metric}", [0, 0, 0])
            expected += owed
            received += min(c[0], owed)
            valid += min(c[1], owed)
        self.day, self.since, self.counts = end, end, {}
        if expected == 0:
            return None
        rate = valid / expected
        return Verdict(
            ms_ts(end),
            rate < self.threshold,
            value=round(rate * 100, 2),
            threshold=round(self.threshold * 100, 2),
            unit="%",
            context={
                "day": ms_ts(start).astimezone(BEIJING).date().isoformat(),
                "expected": expected,
                "received": received,
                "valid": valid,
            },
        )

    # -- persistence ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "since": self.since,
            "counts": {k: list(v) for k, v in self.counts.items()},
            "newest": self.newest,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.day = state.get("day")
        self.since = state.get("since")
        known = {f"{d}/{m}" for d, m in self.streams}
        self.counts = {
            k: [int(x) for x in v] for k, v in state.get("counts", {}).items() if k in known
        }
        self.newest = state.get("newest")
        # Arrival is not restored: the downtime is not held against the site, whose backlog may
        # still be on its way.
        self.arrived = None
        self.last_now = None


register_kind(
    RuleKind(
        name="effective_rate",
        model=EffectiveRateModel,
        condition=EffectiveRateCondition,
        scope="site",
        description="A site's effective data transmission rate (valid values over values owed by"
        " the registered cadence) of a local day below a threshold.",
        metrics=lambda spec: None,
        eager=True,
    )
)
