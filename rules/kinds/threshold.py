"""``threshold``: a value compared with a fixed limit or the site's permit limit, with
hysteresis so that a value hovering at the limit does not flap."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from rules.conditions import Binding, Condition, Sample, Verdict
from rules.model import RuleModel
from rules.registry import RuleKind, register_kind

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class ThresholdModel(RuleModel):
    """A value compared with a limit, held for ``for``."""

    kind: Literal["threshold"] = Field("threshold", title="Kind", description="threshold")
    op: Literal[">", ">=", "<", "<="] = Field(
        ">", title="Operator", description="Comparison that means a violation."
    )
    threshold: float | Literal["site_limit"] = Field(
        title="Threshold",
        description="A number, or 'site_limit' for the site's permit limit of the metric (scaled"
        " by the credit-grade limit factor).",
    )
    clear_ratio: float | None = Field(
        None,
        title="Hysteresis",
        description="Once firing, the condition clears only past threshold x clear_ratio (e.g."
        " 0.9: an 'above 100' alert clears below 90).",
        gt=0,
        le=2,
    )

    @model_validator(mode="after")
    def _needs_metric(self) -> ThresholdModel:
        if not self.select.metric:
            raise ValueError("select.metric is required for a threshold rule")
        return self


class ThresholdCondition(Condition):
    __slots__ = ("active", "clear", "cmp", "limit", "metric")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(ThresholdModel)
        self.metric = binding.series_metric
        if spec.threshold == "site_limit":
            self.limit = binding.site_limit(self.metric)
        else:
            self.limit = float(spec.threshold) * binding.limit_factor
        self.clear = (
            self.limit * spec.clear_ratio
            if (self.limit is not None and spec.clear_ratio)
            else self.limit
        )
        self.cmp = OPERATORS[spec.op]
        self.active = False

    def observe(self, sample: Sample) -> Verdict | None:
        r = sample.readings.get(self.metric)
        limit, clear = self.limit, self.clear
        if r is None or limit is None or clear is None:
            return None  # no reading of the metric, or the site has no limit for it
        self.active = self.cmp(r.value, clear if self.active else limit)
        return Verdict(
            sample.ts, self.active, r.value, limit, sample.device, self.metric, unit=r.unit
        )

    def state(self) -> dict[str, Any]:
        return {"active": self.active}

    def restore(self, state: dict[str, Any]) -> None:
        self.active = bool(state.get("active", False))


register_kind(
    RuleKind(
        name="threshold",
        model=ThresholdModel,
        condition=ThresholdCondition,
        scope="series",
        description="A value above (or below) a fixed or site limit, with hysteresis, for and"
        " keep_firing_for.",
    )
)
