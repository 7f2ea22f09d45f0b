"""``flatline`` (恒值异常): a series that stops moving.

A live analyser's readings always wander a little: sampling, optics and the process itself
add noise in the last reported decimal. A value repeated for half an hour means a frozen
analyser, a data logger resending its last value, or numbers typed in rather than measured:
one of the CEMS data-fraud patterns regulators look for (constant values, see DOMAIN.md).
Natural data can repeat a value a few times in a row (about six at one-minute resolution),
hence ``min_count``.

Plant stopped? The condition sees one series only (series scope), so it cannot read the
``running`` metric. Two things keep a stopped plant from looking frozen: the engine never
feeds readings flagged ``F`` (HJ 212-2017 "stopped") or any other non-``N`` flag to a series
rule, and ``ignore_below`` treats a value at or below a floor (a stopped plant's zero reported
with flag ``N`` by loggers that do not flag) as "no flat line": such a reading clears the window.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from farsight.clock import BEIJING, to_epoch_ms
from rules.conditions import Binding, Condition, Sample, Verdict, ms_ts
from rules.kinds.window import duration_ms, population_stddev, positive_duration
from rules.model import Duration, RuleModel
from rules.registry import RuleKind, register_kind


class FlatlineModel(RuleModel):
    """The value unchanged over a trailing window."""

    kind: Literal["flatline"] = Field("flatline", title="Kind", description="flatline")
    window: Duration = Field(
        "30m",
        title="Window",
        description="Trailing window (t - window, t] judged at every reading. A number of seconds"
        " or 30s, 5m, 1h, 1d.",
    )
    min_count: int = Field(
        10,
        title="Fewest readings",
        description="The window must hold at least this many readings (natural analyser data"
        " repeat a value up to about 6 times at one-minute resolution).",
        ge=2,
        le=1_000_000,
    )
    epsilon: float = Field(
        0.0,
        title="Tolerance",
        description="Largest spread still counted as flat, in the metric's unit: max - min"
        " (measure range) or the standard deviation (measure stddev). 0: exactly the same"
        " value.",
        ge=0,
    )
    measure: Literal["range", "stddev"] = Field(
        "range",
        title="Spread measure",
        description="range: max - min of the window; stddev: population standard deviation of the"
        " window.",
    )
    ignore_below: float | None = Field(
        None,
        title="Ignore at or below",
        description="A reading at or below this level (a stopped plant's zero) is never part of a"
        " flat line: it clears the window. None: every level counts.",
    )

    @field_validator("window")
    @classmethod
    def _window(cls, v: Duration) -> Duration:
        return positive_duration(v, "window")

    @model_validator(mode="after")
    def _needs_metric(self) -> FlatlineModel:
        if not self.select.metric:
            raise ValueError("select.metric is required for a flatline rule")
        return self


class FlatlineCondition(Condition):
    """Spread of the trailing window of one series.

    At each reading ``t`` the readings of ``(t - window, t]`` are judged: the condition holds
    when there are at least ``min_count`` of them and their spread (range ``max - min``, or
    population standard deviation) is at most ``epsilon``. A window that already spreads more
    than ``epsilon`` is "not flat" even with few readings; a flat window with too few readings
    gives no verdict yet. With continuous data the flat stretch must therefore cover the whole
    window: older, moving readings in the window keep it from holding. ``flat_for_min`` counts
    from the oldest reading of the first flat window of a run.

    Memory: the readings of one window (window / cadence; 30 for 30 min of minute data).
    Time: the range uses monotonic deques, O(1) amortised per reading; the standard deviation
    is recomputed over the window, O(n).
    """

    __slots__ = (
        "buf",
        "eps",
        "floor",
        "hi",
        "lo",
        "measure",
        "metric",
        "min_count",
        "since",
        "size",
        "unit",
    )

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(FlatlineModel)
        self.metric = binding.series_metric
        self.size = duration_ms(spec.window)
        self.min_count = spec.min_count
        self.eps = spec.epsilon
        self.measure = spec.measure
        self.floor = spec.ignore_below
        self.buf: deque[tuple[int, float]] = deque()
        # Monotonic deques (ascending minima, descending maxima) give the window's min and max
        # in O(1) amortised time (the "sliding window minimum" technique).
        self.lo: deque[tuple[int, float]] = deque()
        self.hi: deque[tuple[int, float]] = deque()
        self.since: int | None = None
        self.unit = ""

    def _push(self, t: int, v: float) -> None:
        self.buf.append((t, v))
        while self.lo and self.lo[-1][1] >= v:
            self.lo.pop()
        self.lo.append((t, v))
        while self.hi and self.hi[-1][1] <= v:
            self.hi.pop()
        self.hi.append((t, v))

    def _evict(self, t: int) -> None:
        cut = t - self.size
        while self.buf and self.buf[0][0] <= cut:
            self.buf.popleft()
        while self.lo and self.lo[0][0] <= cut:
            self.lo.popleft()
        while self.hi and self.hi[0][0] <= cut:
            self.hi.popleft()

    def _clear(self) -> None:
        self.buf.clear()
        self.lo.clear()
        self.hi.clear()
        self.since = None

    def observe(self, sample: Sample) -> Verdict | None:
        r = sample.readings.get(self.metric)
        if r is None:
            return None
        self.unit = r.unit
        t, v = to_epoch_ms(sample.ts), r.value
        if self.floor is not None and v <= self.floor:
            # A stopped plant's zero: not a frozen analyser, and not part of a flat line either
            # side.
            self._clear()
            return Verdict(
                sample.ts,
                False,
                v,
                None,
                self.b.device or "",
                self.metric,
                unit=r.unit,
                context={"flat_for_min": 0.0, "count": 0, "level": v},
            )
        self._push(t, v)
        self._evict(t)
        values = [x for _, x in self.buf] if self.measure == "stddev" else None
        spread = population_stddev(values) if values is not None else self.hi[0][1] - self.lo[0][1]
        n = len(self.buf)
        if spread > self.eps:
            self.since = None
            return Verdict(
                sample.ts,
                False,
                v,
                None,
                self.b.device or "",
                self.metric,
                unit=r.unit,
                context={"flat_for_min": 0.0, "count": n, "level": v, "spread": spread},
            )
        if n < self.min_count:
            return None
        if self.since is None:
            self.since = self.buf[0][0]
        level = math.fsum(x for _, x in self.buf) / n
        return Verdict(
            sample.ts,
            True,
            level,
            None,
            self.b.device or "",
            self.metric,
            unit=r.unit,
            context={
                "flat_for_min": round((t - self.since) / 60_000, 1),
                "count": n,
                "level": level,
                "spread": spread,
                "flat_since": ms_ts(self.since).astimezone(BEIJING).isoformat(),
            },
        )

    def state(self) -> dict[str, Any]:
        return {"buf": [[t, v] for t, v in self.buf], "since": self.since, "unit": self.unit}

    def restore(self, state: dict[str, Any]) -> None:
        self._clear()
        for t, v in state.get("buf", []):
            self._push(int(t), float(v))
        self.since = state.get("since")
        self.unit = state.get("unit", "")


register_kind(
    RuleKind(
        name="flatline",
        model=FlatlineModel,
        condition=FlatlineCondition,
        scope="series",
        description="恒值异常: the value unchanged (range or stddev within epsilon) over a trailing"
        " window with at least min_count readings.",
    )
)
