"""``rate_of_change`` and ``step``: a series that moves faster than physics allows.

A stack's SO2 cannot halve within a minute while load is steady, nor can a dust monitor's PM10
fall from 120 to 10 ug/m3 unless something (a mist cannon aimed at the sampling head, a bag
over it) is acting on the instrument. ``rate_of_change`` judges the slope between consecutive
readings; ``step`` judges a reading against the median of the readings before it, which one
noisy reading cannot move.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from farsight.clock import to_epoch_ms
from rules.conditions import Binding, Condition, Sample, Verdict
from rules.kinds.window import duration_ms, positive_duration
from rules.model import Duration, RuleModel
from rules.registry import RuleKind, register_kind

Direction = Literal["up", "down", "both"]

_PER_MS = {"second": 1_000, "minute": 60_000, "hour": 3_600_000}
_PER_UNIT = {"second": "s", "minute": "min", "hour": "h"}


def _moves(delta: float, bound: float, direction: str) -> bool:
    """Whether a signed change ``delta`` goes past ``bound`` (>= 0) in ``direction``."""
    if direction == "up":
        return delta > bound
    if direction == "down":
        return -delta > bound
    return abs(delta) > bound


# -- rate_of_change ------------------------------------------------------------------------------


class RateOfChangeModel(RuleModel):
    """The slope between consecutive readings above a maximum rate."""

    kind: Literal["rate_of_change"] = Field(
        "rate_of_change", title="Kind", description="rate_of_change"
    )
    max_rate: float = Field(
        title="Maximum rate",
        description="Largest plausible change, in the metric's unit per `per`; scaled by the"
        " credit-grade limit factor.",
        gt=0,
    )
    per: Literal["second", "minute", "hour"] = Field(
        "minute", title="Per", description="Time unit of max_rate."
    )
    max_gap: Duration = Field(
        "5m",
        title="Maximum gap",
        description="Consecutive readings further apart are not compared: a slope across a data"
        " gap says nothing. A number of seconds or 30s, 5m, 1h, 1d.",
    )
    direction: Direction = Field(
        "both",
        title="Direction",
        description="up: only rises count; down: only falls; both: either.",
    )

    @field_validator("max_gap")
    @classmethod
    def _gap(cls, v: Duration) -> Duration:
        return positive_duration(v, "max_gap")

    @model_validator(mode="after")
    def _needs_metric(self) -> RateOfChangeModel:
        if not self.select.metric:
            raise ValueError("select.metric is required for a rate_of_change rule")
        return self


class RateOfChangeCondition(Condition):
    """Slope of one series between consecutive readings.

    The rate is the finite difference ``(v[i] - v[i-1]) / (t[i] - t[i-1])`` expressed per
    ``per``; it is judged only when the readings are at most ``max_gap`` apart, otherwise the
    reading just becomes the new reference (no verdict). Memory: the previous reading.
    """

    __slots__ = ("direction", "gap", "max_rate", "metric", "per", "prev")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(RateOfChangeModel)
        self.metric = binding.series_metric
        self.max_rate = spec.max_rate * binding.limit_factor
        self.per = spec.per
        self.gap = duration_ms(spec.max_gap)
        self.direction = spec.direction
        self.prev: tuple[int, float] | None = None

    def observe(self, sample: Sample) -> Verdict | None:
        r = sample.readings.get(self.metric)
        if r is None:
            return None
        t = to_epoch_ms(sample.ts)
        prev, self.prev = self.prev, (t, r.value)
        if prev is None or t - prev[0] > self.gap or t <= prev[0]:
            return None
        delta = r.value - prev[1]
        rate = delta / ((t - prev[0]) / _PER_MS[self.per])
        return Verdict(
            sample.ts,
            _moves(rate, self.max_rate, self.direction),
            rate,
            self.max_rate,
            self.b.device or "",
            self.metric,
            unit=f"{r.unit}/{_PER_UNIT[self.per]}" if r.unit else f"/{_PER_UNIT[self.per]}",
            context={
                "previous": prev[1],
                "level": r.value,
                "delta": delta,
                "gap_s": (t - prev[0]) / 1000,
                "rate_abs": abs(rate),
                "per": self.per,
            },
        )

    def state(self) -> dict[str, Any]:
        return {"prev": list(self.prev) if self.prev else None}

    def restore(self, state: dict[str, Any]) -> None:
        p = state.get("prev")
        self.prev = (int(p[0]), float(p[1])) if p else None


# -- step ----------------------------------------------------------------------------------------


class StepModel(RuleModel):
    """A reading far from the median of the readings before it."""

    kind: Literal["step"] = Field("step", title="Kind", description="step")
    previous: int = Field(
        10,
        title="Baseline readings",
        description="How many previous readings the median baseline is taken over; nothing is"
        " judged until there are this many.",
        ge=2,
        le=10_000,
    )
    min_step: float | None = Field(
        None,
        title="Smallest step",
        description="Smallest |value - median| that counts, in the metric's unit; scaled by the"
        " credit-grade limit factor.",
        gt=0,
    )
    min_ratio: float | None = Field(
        None,
        title="Smallest relative step",
        description="Smallest |value - median| / |median| that counts (0.75: a fall to a quarter"
        " of the baseline, or a rise by three quarters).",
        gt=0,
    )
    direction: Direction = Field(
        "both",
        title="Direction",
        description="up: only rises count; down: only falls; both: either.",
    )
    max_gap: Duration | None = Field(
        None,
        title="Maximum gap",
        description="Baseline readings older than this before the current one are forgotten (none:"
        " keep them whatever their age). A number of seconds or 30s, 5m, 1h, 1d.",
    )

    @field_validator("max_gap")
    @classmethod
    def _gap(cls, v: Duration | None) -> Duration | None:
        return positive_duration(v, "max_gap")

    @model_validator(mode="after")
    def _consistent(self) -> StepModel:
        if not self.select.metric:
            raise ValueError("select.metric is required for a step rule")
        if self.min_step is None and self.min_ratio is None:
            raise ValueError("a step rule needs min_step (absolute), min_ratio (relative) or both")
        return self


class StepCondition(Condition):
    """One reading against the median of the ``previous`` readings before it.

    With baseline ``m = median(v[i-N..i-1])`` and step ``d = v[i] - m``, the condition holds
    when ``d`` goes the configured ``direction`` and ``|d| > min_step`` and
    ``|d| / |m| > min_ratio`` (each criterion only when given; both must hold when both are
    given, so that a big relative change of a tiny value, or a big absolute change of a large
    one, does not count alone). The median is robust: up to ``N/2 - 1`` outliers in the
    baseline do not move it. A lasting step stops being one once it fills half the baseline,
    so pair ``for`` (shorter than ``N/2`` readings) with ``keep_firing_for``.
    Memory: the last ``N`` readings.
    """

    __slots__ = ("direction", "gap", "hist", "metric", "min_ratio", "min_step", "n")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(StepModel)
        self.metric = binding.series_metric
        self.n = spec.previous
        self.min_step = spec.min_step * binding.limit_factor if spec.min_step is not None else None
        self.min_ratio = spec.min_ratio
        self.direction = spec.direction
        self.gap = duration_ms(spec.max_gap) if spec.max_gap is not None else None
        self.hist: deque[tuple[int, float]] = deque(maxlen=self.n)

    def observe(self, sample: Sample) -> Verdict | None:
        r = sample.readings.get(self.metric)
        if r is None:
            return None
        t, v = to_epoch_ms(sample.ts), r.value
        if self.gap is not None:
            while self.hist and t - self.hist[0][0] > self.gap:
                self.hist.popleft()
        full = len(self.hist) == self.n
        median = statistics.median(x for _, x in self.hist) if full else 0.0
        self.hist.append((t, v))
        if not full:
            return None
        d = v - median
        ratio = abs(d) / abs(median) if median else (float("inf") if d else 0.0)
        active = (
            _moves(d, 0.0, self.direction)
            and (self.min_step is None or abs(d) > self.min_step)
            and (self.min_ratio is None or ratio > self.min_ratio)
        )
        # The level the value had to pass: the larger of the absolute and relative criteria.
        need = max(self.min_step or 0.0, (self.min_ratio or 0.0) * abs(median))
        threshold = (
            median - need
            if (d < 0 if self.direction == "both" else self.direction == "down")
            else median + need
        )
        return Verdict(
            sample.ts,
            active,
            v,
            threshold,
            self.b.device or "",
            self.metric,
            unit=r.unit,
            context={"median": median, "step": d, "ratio": ratio, "previous": self.n},
        )

    def state(self) -> dict[str, Any]:
        return {"hist": [[t, v] for t, v in self.hist]}

    def restore(self, state: dict[str, Any]) -> None:
        self.hist = deque(((int(t), float(v)) for t, v in state.get("hist", [])), maxlen=self.n)


register_kind(
    RuleKind(
        name="rate_of_change",
        model=RateOfChangeModel,
        condition=RateOfChangeCondition,
        scope="series",
        description="The slope between consecutive readings (per second, minute or hour) above a"
        " maximum rate, up, down or both.",
    )
)
register_kind(
    RuleKind(
        name="step",
        model=StepModel,
        condition=StepCondition,
        scope="series",
        description="A reading that departs from the median of the previous N readings by more"
        " than an absolute and/or relative step.",
    )
)
