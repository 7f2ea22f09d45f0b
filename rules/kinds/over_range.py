"""``over_range``: an analyser that reports its value over its measuring range (HJ 212 flag T).

HJ 212-2017 flags a value ``T`` (超测上限) when it is over the analyser's upper range. Such a value
is not a measurement (the analyser saturates: the stack may emit anything above the range), so it
counts toward no valid average and raises no exceedance (:mod:`farsight.validity`): the engine
never lets it reach a threshold, window, rate or near-limit rule. It is still a finding: ranges
are set at two to three times the permit limit (HJ 75-2017), so a stack over its analyser's range
is very likely over its limit too, and an analyser whose range is set too low hides every peak.
This kind raises that finding on its own alert series per metric, at the severity its rule gives
(the default pack's is below an exceedance's: nothing was measured).

The verdict holds while a metric's newest reading is flagged ``T`` and clears at the first one
flagged otherwise; ``for`` asks for the condition to hold a while (a single saturated minute).
State per device: the metrics currently over range.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rules.conditions import Binding, Condition, Sample, Verdict
from rules.model import RuleModel
from rules.registry import RuleKind, register_kind

OVER_RANGE_FLAG = "T"
"""HJ 212-2017's data flag for a value over the analyser's upper range (超测上限)."""


class OverRangeModel(RuleModel):
    """Values flagged T (over the analyser's range), per metric of a device."""

    kind: Literal["over_range"] = Field("over_range", title="Kind", description="over_range")
    metrics: tuple[str, ...] | None = Field(
        None,
        title="Metrics",
        description="Only these metrics' readings are judged (e.g. so2, nox); default every"
        " metric of the device. select.metric, when given, is added to them.",
        min_length=1,
        max_length=256,
    )


def _metrics(spec: OverRangeModel) -> frozenset[str] | None:
    names = set(spec.metrics or ())
    if spec.select.metric:
        names.add(spec.select.metric)
    return frozenset(names) or None


class OverRangeCondition(Condition):
    """Per device: the metrics whose newest reading is flagged T. One verdict per reading that
    is over range, and one when a metric comes back in range (which resolves its alert)."""

    accepts_flagged = True  # the flag is what it judges

    __slots__ = ("metrics", "over")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        self.metrics = _metrics(binding.rule.spec_as(OverRangeModel))
        self.over: set[str] = set()

    def observe(self, sample: Sample) -> list[Verdict] | None:
        out: list[Verdict] = []
        for metric, r in sample.readings.items():
            if self.metrics is not None and metric not in self.metrics:
                continue
            over = r.flag == OVER_RANGE_FLAG
            if not over and metric not in self.over:
                continue  # nearly every reading: in range and was in range, nothing to say
            if over:
                self.over.add(metric)
            else:
                self.over.discard(metric)
            out.append(
                Verdict(
                    sample.ts,
                    over,
                    r.value,
                    None,
                    sample.device,
                    metric,
                    key=metric,
                    unit=r.unit,
                    context={"flag": r.flag},
                )
            )
        return out or None

    def state(self) -> dict[str, Any]:
        return {"over": sorted(self.over)}

    def restore(self, state: dict[str, Any]) -> None:
        self.over = {str(m) for m in state.get("over", [])}


register_kind(
    RuleKind(
        name="over_range",
        model=OverRangeModel,
        condition=OverRangeCondition,
        scope="device",
        description="A metric whose readings are flagged T (over the analyser's measuring range,"
        " HJ 212-2017): not valid data, so no exceedance, but a finding of its own.",
        metrics=_metrics,
    )
)
