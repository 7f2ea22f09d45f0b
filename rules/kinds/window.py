"""``window``: an aggregate of one series over event-time windows, compared with a limit.

The hourly mean of a stack's SO2 against its permit (HJ 75-2017 CEMS data are judged as hourly
means), the 24-hour mean of ambient PM2.5 against GB 3095-2012 grade II (75 ug/m3), the
95th percentile of ten minutes of noise. Three window shapes, as in Flink and eKuiper:

* tumbling (``every`` omitted): back-to-back windows of length ``window``;
* hopping (``every`` < ``window``): windows of length ``window`` starting every ``every``;
* sliding (``sliding: true``): the trailing ``window`` judged at every reading.

Tumbling and hopping windows are aligned to the epoch in local time (``utc_offset``, Beijing by
default, so a 1-day window is the natural day 00:00-24:00 that GB 3095-2012 daily means use;
Flink's window offset does the same). A window closes when the first reading at or past its
end arrives (the engine's ``lateness`` has already put late readings in order) and yields one
verdict stamped with the window end. A window that saw fewer than ``min_count`` readings yields
no verdict: too little data to judge, so an alert neither fires nor resolves on it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator, model_validator

from farsight.clock import to_epoch_ms
from farsight.errors import RuleError
from rules.conditions import Binding, Condition, Sample, Verdict, ms_ts
from rules.kinds.threshold import OPERATORS
from rules.model import Duration, RuleModel, parse_duration
from rules.registry import RuleKind, register_kind

Aggregate = Literal["avg", "min", "max", "sum", "count", "percentile", "stddev"]

MAX_OPEN_WINDOWS = 1440
"""Most hopping windows one series may have open at once (``window / every``): one day of
1-minute hops. Bounds memory per series."""

OFFSET_PATTERN = r"^[+-](0\d|1[0-4]):[0-5]\d$"


# -- helpers shared with the other windowed kinds ------------------------------------------------


def duration_ms(value: Duration) -> int:
    """A validated duration (``"1h"``, seconds) in integer milliseconds."""
    return round(parse_duration(value).total_seconds() * 1000)


# Generic so that a validator of a required duration gets a ``Duration`` back, not an Optional.
_MaybeDuration = TypeVar("_MaybeDuration", bound=Duration | None)


def positive_duration(value: _MaybeDuration, name: str) -> _MaybeDuration:
    """Validate a duration that must be longer than zero (``None`` passes)."""
    if value is not None and duration_ms(value) <= 0:
        raise ValueError(f"{name} must be longer than 0, e.g. 1h")
    return value


def offset_ms(utc_offset: str) -> int:
    """``"+08:00"`` to milliseconds east of UTC."""
    sign = -1 if utc_offset.startswith("-") else 1
    hours, minutes = utc_offset[1:].split(":")
    return sign * (int(hours) * 3600 + int(minutes) * 60) * 1000


def aligned_start(t_ms: int, size_ms: int, off_ms: int) -> int:
    """Start (epoch ms) of the ``size_ms`` window holding ``t_ms``, aligned in local time.

    Windows start where local time (UTC + ``off_ms``) is a whole multiple of ``size_ms`` since
    the epoch: with ``+08:00`` a 1-day window starts at 00:00 Beijing time (16:00 UTC).
    """
    return t_ms - (t_ms + off_ms) % size_ms


def local_iso(t_ms: int, off_ms: int) -> str:
    """Epoch ms as ISO 8601 in local time, for annotations (``2026-11-25T09:00:00+08:00``)."""
    tz = timezone(timedelta(milliseconds=off_ms))
    return datetime.fromtimestamp(t_ms / 1000, tz=tz).isoformat(timespec="seconds")


def resolve_limit(binding: Binding, threshold: float | str, metric: str) -> float | None:
    """A rule's limit for one binding: a number scaled by the credit-grade limit factor, or the
    site's permit limit of ``metric`` (already scaled); ``None`` when the site has none."""
    if threshold == "site_limit":
        return binding.site_limit(metric)
    return float(threshold) * binding.limit_factor


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between order statistics.

    Parameters
    ----------
    values
        At least one number.
    q
        Percentile in [0, 100].

    Returns
    -------
    float
        ``s[h_lo] + (h - h_lo) * (s[h_lo + 1] - s[h_lo])`` with ``s`` sorted and
        ``h = (n - 1) q / 100``: Hyndman and Fan's definition 7, numpy's default ``linear``
        method, so a figure can be checked with ``numpy.percentile``.
    """
    s = sorted(values)
    h = (len(s) - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def population_stddev(values: list[float]) -> float:
    """Population standard deviation (divisor n), two-pass for accuracy.

    Exactly 0 when every value is equal: the rounded mean of equal values such as 0.1 need not
    equal them, and a frozen series must not show a spread of 1e-17.
    """
    if min(values) == max(values):
        return 0.0
    n = len(values)
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / n)


# -- model ---------------------------------------------------------------------------------------


class WindowModel(RuleModel):
    """An aggregate over tumbling, hopping or sliding event-time windows against a limit."""

    kind: Literal["window"] = Field("window", title="Kind", description="window")
    window: Duration = Field(
        title="Window",
        description="Length of each window, e.g. 1h, 24h. A number of seconds or 30s, 5m, 1h, 1d.",
    )
    every: Duration | None = Field(
        None,
        title="Hop",
        description="A new window starts this often (hopping windows); omitted: every = window"
        " (tumbling). At most 1440 windows may overlap.",
    )
    sliding: bool = Field(
        False,
        title="Sliding",
        description="Judge the trailing window (t - window, t] at every reading instead of aligned"
        " windows; cost grows with the readings in the window, so keep sliding windows short"
        " (minutes).",
    )
    agg: Aggregate = Field(
        "avg",
        title="Aggregate",
        description="avg (arithmetic mean), min, max, sum, count (readings), percentile (needs q),"
        " stddev (population, divisor n).",
    )
    q: float | None = Field(
        None,
        title="Percentile",
        description="Which percentile for agg percentile, 0-100 (95: the value 95 % of readings"
        " stay at or under).",
        ge=0,
        le=100,
    )
    op: Literal[">", ">=", "<", "<="] = Field(
        ">",
        title="Operator",
        description="Comparison of the aggregate with the threshold that means a violation.",
    )
    threshold: float | Literal["site_limit"] = Field(
        title="Threshold",
        description="A number, or 'site_limit' for the site's permit limit of the metric; either"
        " is scaled by the credit-grade limit factor.",
    )
    min_count: int = Field(
        1,
        title="Fewest readings",
        description="A window with fewer readings is not judged (no verdict): e.g. 45 one-minute"
        " values for an hourly mean, the 45-minute rule of GB 3095-2012 table 4.",
        ge=1,
        le=10_000_000,
    )
    utc_offset: str = Field(
        "+08:00",
        title="Alignment offset",
        description="Aligned windows start at whole multiples of the window (or hop) in local time"
        " at this UTC offset: with +08:00 a 1d window is the Beijing natural day.",
        pattern=OFFSET_PATTERN,
    )

    @field_validator("window")
    @classmethod
    def _window(cls, v: Duration) -> Duration:
        return positive_duration(v, "window")

    @field_validator("every")
    @classmethod
    def _every(cls, v: Duration | None) -> Duration | None:
        return positive_duration(v, "every")

    @model_validator(mode="after")
    def _consistent(self) -> WindowModel:
        if not self.select.metric:
            raise ValueError("select.metric is required for a window rule")
        if self.agg == "percentile" and self.q is None:
            raise ValueError("agg percentile needs q (0-100), e.g. q: 95")
        if self.agg != "percentile" and self.q is not None:
            raise ValueError("q applies only to agg percentile")
        if self.sliding and self.every is not None:
            raise ValueError(
                "a sliding window moves with every reading: give either sliding or every, not both"
            )
        if self.every is not None:
            size, hop = duration_ms(self.window), duration_ms(self.every)
            if hop > size:
                raise ValueError(
                    "every must not be longer than window (gaps between windows would go unjudged)"
                )
            if math.ceil(size / hop) > MAX_OPEN_WINDOWS:
                raise ValueError(
                    f"window / every must be at most {MAX_OPEN_WINDOWS} overlapping windows"
                )
        return self


# -- condition -----------------------------------------------------------------------------------


class _Acc:
    """Running aggregate of one open window: O(1) memory whatever the number of readings.

    ``mean`` and ``m2`` follow Welford's online algorithm (Welford 1962; Knuth TAOCP vol. 2,
    4.2.2), numerically stable where sum-of-squares cancels: a near-constant series such as a
    frozen analyser has a variance of almost zero.
    """

    __slots__ = ("hi", "lo", "m2", "mean", "n", "start", "total")

    def __init__(self, start: int) -> None:
        self.start = start
        self.n = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, v: float) -> None:
        self.n += 1
        self.total += v
        self.lo = min(self.lo, v)
        self.hi = max(self.hi, v)
        d = v - self.mean
        self.mean += d / self.n
        self.m2 += d * (v - self.mean)

    def to_list(self) -> list[Any]:
        return [self.start, self.n, self.total, self.lo, self.hi, self.mean, self.m2]

    @classmethod
    def from_list(cls, row: list[Any]) -> _Acc:
        acc = cls(int(row[0]))
        acc.n, acc.total, acc.lo, acc.hi, acc.mean, acc.m2 = (
            int(row[1]),
            *(float(x) for x in row[2:7]),
        )
        return acc


class WindowCondition(Condition):
    """Aggregates of one series over aligned (tumbling, hopping) or sliding windows.

    Memory per series: aligned windows keep one running aggregate per open window (at most
    ``ceil(window / every)``); ``percentile`` also keeps the values of the open windows (one
    shared buffer, not one copy per hopping window); sliding windows keep the readings of the
    trailing window.
    """

    __slots__ = (
        "agg",
        "buf",
        "closed_until",
        "cmp",
        "grace_ms",
        "hop",
        "limit",
        "metric",
        "min_count",
        "off",
        "open",
        "q",
        "size",
        "sliding",
        "unit",
        "watermark",
    )

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(WindowModel)
        self.metric = binding.series_metric
        self.limit = resolve_limit(binding, spec.threshold, self.metric)
        self.cmp = OPERATORS[spec.op]
        self.size = duration_ms(spec.window)
        self.hop = duration_ms(spec.every) if spec.every is not None else self.size
        self.off = offset_ms(spec.utc_offset)
        self.agg = spec.agg
        self.q = spec.q
        self.min_count = spec.min_count
        self.sliding = spec.sliding
        self.open: dict[int, _Acc] = {}
        self.buf: deque[tuple[int, float]] = deque()
        self.unit = ""
        # Windows end no later than this have been judged: a straggler cannot reopen them.
        self.closed_until = 0
        # A silent device's window is closed by the other streams' event time (the engine's
        # watermark) once it is this far past the window's end: the rule's allowed lateness,
        # and at least two of the device's reporting intervals, so a slow reporter is not cut off.
        device = binding.site.device(binding.device or "")
        cadence_ms = int((device.cadence_s if device else 60.0) * 2000)
        self.grace_ms = max(int(binding.rule.lateness.total_seconds() * 1000), cadence_ms)
        self.watermark = None  # set by the engine: a callable returning its newest event time

    def observe(self, sample: Sample) -> list[Verdict] | Verdict | None:
        r = sample.readings.get(self.metric)
        if r is None or self.limit is None:
            return None
        self.unit = r.unit
        t = to_epoch_ms(sample.ts)
        if self.sliding:
            return self._slide(t, r.value)
        out = self._close(t)
        self._add(t, r.value)
        return out or None

    # aligned windows

    def tick(self, now: datetime) -> list[Verdict] | None:
        """Close windows of a series gone quiet once the engine's event time is past them."""
        if self.sliding or not self.open or self.watermark is None:
            return None
        wm = self.watermark()
        if wm is None:
            return None
        return self._close(to_epoch_ms(wm) - self.grace_ms) or None

    def _add(self, t: int, v: float) -> None:
        start = aligned_start(t, self.hop, self.off)
        while start > t - self.size:  # every window [start, start + size) that holds t
            if start + self.size <= self.closed_until:
                break  # this and every earlier window holding t was judged already
            acc = self.open.get(start)
            if acc is None:
                acc = self.open[start] = _Acc(start)
            acc.add(v)
            start -= self.hop
        if self.agg == "percentile":
            self.buf.append((t, v))

    def _close(self, t: int) -> list[Verdict]:
        out: list[Verdict] = []
        for start in sorted(s for s in self.open if s + self.size <= t):
            acc = self.open.pop(start)
            self.closed_until = max(self.closed_until, start + self.size)
            if acc.n >= self.min_count:
                out.append(self._verdict(acc))
        if self.buf:
            oldest = min(self.open) if self.open else t
            while self.buf and self.buf[0][0] < oldest:
                self.buf.popleft()
        return out

    def _aggregate(self, acc: _Acc) -> float:
        if self.agg == "avg":
            return acc.total / acc.n
        if self.agg == "sum":
            return acc.total
        if self.agg == "min":
            return acc.lo
        if self.agg == "max":
            return acc.hi
        if self.agg == "count":
            return float(acc.n)
        if self.agg == "stddev":
            return math.sqrt(max(acc.m2, 0.0) / acc.n)
        end = acc.start + self.size
        return percentile((v for ts, v in self.buf if acc.start <= ts < end), self._q())

    def _q(self) -> float:
        # WindowModel rejects agg percentile without q; this states it where q is used.
        if self.q is None:
            raise RuleError(f"rule {self.b.rule.id!r} (window): agg percentile needs q (0-100)")
        return self.q

    def _bound(self) -> float:
        # Windows open only in observe(), which returns early for a site without a limit; NaN
        # would compare false, never firing.
        return math.nan if self.limit is None else self.limit

    def _verdict(self, acc: _Acc) -> Verdict:
        end = acc.start + self.size
        value = self._aggregate(acc)
        return Verdict(
            ms_ts(end),
            self.cmp(value, self._bound()),
            value,
            self.limit,
            self.b.device or "",
            self.metric,
            unit="" if self.agg == "count" else self.unit,
            context={
                "window_start": local_iso(acc.start, self.off),
                "window_end": local_iso(end, self.off),
                "count": acc.n,
                "agg": self.agg,
            },
        )

    # sliding window

    def _slide(self, t: int, v: float) -> Verdict | None:
        self.buf.append((t, v))
        while self.buf[0][0] <= t - self.size:  # trailing window (t - size, t]
            self.buf.popleft()
        if len(self.buf) < self.min_count:
            return None
        values = [x for _, x in self.buf]
        if self.agg == "avg":
            value = math.fsum(values) / len(values)
        elif self.agg == "sum":
            value = math.fsum(values)
        elif self.agg == "min":
            value = min(values)
        elif self.agg == "max":
            value = max(values)
        elif self.agg == "count":
            value = float(len(values))
        elif self.agg == "stddev":
            value = population_stddev(values)
        else:
            value = percentile(values, self._q())
        return Verdict(
            ms_ts(t),
            self.cmp(value, self._bound()),
            value,
            self.limit,
            self.b.device or "",
            self.metric,
            unit="" if self.agg == "count" else self.unit,
            context={
                "window_start": local_iso(t - self.size, self.off),
                "window_end": local_iso(t, self.off),
                "count": len(values),
                "agg": self.agg,
            },
        )

    # persistence

    def state(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "open": [a.to_list() for a in self.open.values()],
            "buf": [[t, v] for t, v in self.buf],
            "closed": self.closed_until,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.unit = state.get("unit", "")
        self.open = {int(row[0]): _Acc.from_list(row) for row in state.get("open", [])}
        self.buf = deque((int(t), float(v)) for t, v in state.get("buf", []))
        self.closed_until = int(state.get("closed", 0))


register_kind(
    RuleKind(
        name="window",
        model=WindowModel,
        condition=WindowCondition,
        scope="series",
        description="An aggregate (avg, min, max, sum, count, percentile, stddev) over tumbling,"
        " hopping or sliding event-time windows against a fixed or site limit.",
    )
)
