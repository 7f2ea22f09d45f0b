"""``stuck_at_zero`` and ``zero_drift``: an analyser's zero that is wrong.

``stuck_at_zero`` is a value at or below a zero level held for ``for``: an analyser switched
off, a sample line disconnected, or a reading zeroed on purpose. For stack O2 a zero is
physically impossible while burning with excess air, and it pays: the reported concentration
is corrected to the reference O2 (HJ 75-2017), ``C_ref = C x (21 - O2_ref) / (21 - O2)``,
so a lower O2 lowers every corrected figure.

``zero_drift`` watches the series' lower envelope, the rolling minimum over a trailing
window, against the level the analyser should show at zero (``reference``): an analyser whose
zero has drifted up never comes back down to it; one that has drifted down reports negative
concentrations, which no gas or dust can have. HJ 75-2017 requires periodic zero checks for
exactly this reason; between checks the data show it.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from farsight.clock import to_epoch_ms
from rules.conditions import Binding, Condition, Sample, Verdict
from rules.kinds.window import duration_ms, positive_duration
from rules.model import Duration, RuleModel
from rules.registry import RuleKind, register_kind

# -- stuck_at_zero -------------------------------------------------------------------------------


class StuckAtZeroModel(RuleModel):
    """A value at or below a zero level, held for ``for``."""

    kind: Literal["stuck_at_zero"] = Field(
        "stuck_at_zero", title="Kind", description="stuck_at_zero"
    )
    zero_level: float = Field(
        0.0,
        title="Zero level",
        description="A reading at or below this level counts as zero (in the metric's unit); a"
        " small positive level absorbs an analyser's noise around zero.",
        ge=-1e9,
        le=1e9,
    )

    @model_validator(mode="after")
    def _needs_metric(self) -> StuckAtZeroModel:
        if not self.select.metric:
            raise ValueError("select.metric is required for a stuck_at_zero rule")
        return self


class StuckAtZeroCondition(Condition):
    """``value <= zero_level`` at each reading; the duration comes from the rule's ``for``.

    Stateless: the lifecycle's pending state carries the "since when". Readings flagged by the
    logger (HJ 212 ``F`` stopped, ``M`` maintenance, ``C`` calibration...) never reach a series
    condition, so a plant that reports its stop is not "stuck".
    """

    __slots__ = ("metric", "zero")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(StuckAtZeroModel)
        self.metric = binding.series_metric
        self.zero = spec.zero_level

    def observe(self, sample: Sample) -> Verdict | None:
        r = sample.readings.get(self.metric)
        if r is None:
            return None
        return Verdict(
            sample.ts,
            r.value <= self.zero,
            r.value,
            self.zero,
            self.b.device or "",
            self.metric,
            unit=r.unit,
            context={"zero_level": self.zero},
        )


# -- zero_drift ----------------------------------------------------------------------------------


class ZeroDriftModel(RuleModel):
    """The rolling minimum (lower envelope) away from the expected zero."""

    kind: Literal["zero_drift"] = Field("zero_drift", title="Kind", description="zero_drift")
    window: Duration = Field(
        title="Window",
        description="Trailing window (t - window, t] whose minimum is the baseline. A number of"
        " seconds or 30s, 5m, 1h, 1d.",
    )
    reference: float = Field(
        0.0,
        title="Reference",
        description="The level the baseline should sit at (an analyser's zero), in the metric's"
        " unit.",
        ge=-1e9,
        le=1e9,
    )
    max_drift: float = Field(
        title="Maximum drift",
        description="Largest tolerated |baseline - reference|, in the metric's unit.",
        gt=0,
    )
    direction: Literal["up", "down", "both"] = Field(
        "both",
        title="Direction",
        description="up: the baseline lifted above the reference (the series never comes down to"
        " zero); down: below it (negative readings); both.",
    )
    min_count: int = Field(
        10,
        title="Fewest readings",
        description="The window must hold at least this many readings to be judged.",
        ge=1,
        le=1_000_000,
    )

    @field_validator("window")
    @classmethod
    def _window(cls, v: Duration) -> Duration:
        return positive_duration(v, "window")

    @model_validator(mode="after")
    def _needs_metric(self) -> ZeroDriftModel:
        if not self.select.metric:
            raise ValueError("select.metric is required for a zero_drift rule")
        return self


class ZeroDriftCondition(Condition):
    """Rolling minimum of one series against a reference.

    With baseline ``b = min(v in (t - window, t])`` and drift ``d = b - reference`` the
    condition holds when ``d > max_drift`` (up), ``d < -max_drift`` (down) or either (both).
    Up asks that every reading of the window stayed above ``reference + max_drift``; down is
    met by any reading below ``reference - max_drift``, so pair it with a ``for`` longer than
    the window to ask for repeated negative readings rather than one. Windows with fewer than
    ``min_count`` readings give no verdict.

    Memory: the window's timestamps (to count readings) plus a monotonic deque for the minimum,
    O(1) amortised per reading.
    """

    __slots__ = ("direction", "lo", "max_drift", "metric", "min_count", "ref", "size", "times")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(ZeroDriftModel)
        self.metric = binding.series_metric
        self.size = duration_ms(spec.window)
        self.ref = spec.reference
        self.max_drift = spec.max_drift
        self.direction = spec.direction
        self.min_count = spec.min_count
        self.times: deque[int] = deque()
        self.lo: deque[tuple[int, float]] = deque()

    def _push(self, t: int, v: float) -> None:
        self.times.append(t)
        while self.lo and self.lo[-1][1] >= v:
            self.lo.pop()
        self.lo.append((t, v))

    def observe(self, sample: Sample) -> Verdict | None:
        r = sample.readings.get(self.metric)
        if r is None:
            return None
        t = to_epoch_ms(sample.ts)
        self._push(t, r.value)
        cut = t - self.size
        while self.times[0] <= cut:
            self.times.popleft()
        while self.lo[0][0] <= cut:
            self.lo.popleft()
        if len(self.times) < self.min_count:
            return None
        base = self.lo[0][1]
        d = base - self.ref
        up = d > self.max_drift
        down = d < -self.max_drift
        active = (
            up if self.direction == "up" else down if self.direction == "down" else (up or down)
        )
        below = self.direction == "down" or (self.direction == "both" and d < 0)
        threshold = self.ref - self.max_drift if below else self.ref + self.max_drift
        return Verdict(
            sample.ts,
            active,
            base,
            threshold,
            self.b.device or "",
            self.metric,
            unit=r.unit,
            context={
                "baseline": base,
                "reference": self.ref,
                "drift": d,
                "count": len(self.times),
                "level": r.value,
            },
        )

    def state(self) -> dict[str, Any]:
        return {"times": list(self.times), "lo": [[t, v] for t, v in self.lo]}

    def restore(self, state: dict[str, Any]) -> None:
        self.times = deque(int(t) for t in state.get("times", []))
        self.lo = deque((int(t), float(v)) for t, v in state.get("lo", []))


register_kind(
    RuleKind(
        name="stuck_at_zero",
        model=StuckAtZeroModel,
        condition=StuckAtZeroCondition,
        scope="series",
        description="A value at or below a zero level (default 0) held for `for`: analyser off,"
        " line disconnected or zeroed data.",
    )
)
register_kind(
    RuleKind(
        name="zero_drift",
        model=ZeroDriftModel,
        condition=ZeroDriftCondition,
        scope="series",
        description="The rolling minimum over a window drifts more than max_drift from the"
        " reference zero (up, down or both).",
    )
)
