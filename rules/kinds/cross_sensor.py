"""Cross-sensor consistency of a stack (CEMS, HJ 75-2017): frauds that no single value shows.

A CEMS reports pollutant concentrations together with O2, flue-gas flow and temperature, and
those move together by physics: burning fuel consumes O2 and heats the gas, fans move it. A
value that is plausible alone can contradict its neighbours, which is how regulators catch
data fraud (DOMAIN.md, "Stack emissions"). Two kinds:

``running_mismatch`` (标停未停, "reported stopped but running"), scope site
    The plant reports itself stopped (``running`` == 0, or the stack's analysers flag their
    data ``F``, the HJ 212-2017 "stopped" flag, which takes the data out of every limit check)
    while the flue gas still flows above ``min_flow`` (or is hotter than ``min_temp``): the
    plant is operating behind a "stopped" report. Flagged readings are exactly the evidence
    here, so this kind accepts them. Site scope, because the plant status can come from a
    different device (a DCS feed) than the stack analysers, and the HJ 212 frame and the
    JSON ``running`` message of one device may arrive as separate samples: the condition keeps
    the newest value of each metric per device and combines values at most ``max_age`` apart.

``physical_consistency``, scope device, checks chosen in ``checks``
    ``dilution``: O2 near ambient (>= ``o2_ambient``, default 19 %; air is 20.9 %) while the
    flue gas flows (> ``min_flow``) and is hot (> ``min_temp``). A firing plant's flue gas
    holds a few to about 15 % O2; ambient O2 in a hot, flowing flue means air is drawn into
    the sample line (diluting every concentration, and hence its reported value) or the probe
    sits outside the flue.
    ``zero_flow``: flow at or below ``zero_flow`` while O2 is below ``o2_min`` (default 15 %):
    the analyser sees combustion gas, so gas is moving, yet the flow meter reads nothing. A
    blocked or zeroed flow sensor under-reports the mass emitted (concentration x flow).
    Flagged readings (stopped, calibration, maintenance) are not judged.

Neither kind scales its thresholds by the credit-grade limit factor: they are physical
boundaries, not permit limits.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rules.conditions import Binding, Condition, Sample, Verdict, ms_ts, ts_ms
from rules.model import Duration, RuleModel, parse_duration
from rules.registry import RuleKind, register_kind

STOPPED_FLAG = "F"
"""HJ 212-2017 data flag: the monitored facility is stopped (停运)."""


class RunningMismatchModel(RuleModel):
    """The plant reports itself stopped while its flue gas still flows (标停未停)."""

    kind: Literal["running_mismatch"] = Field(
        "running_mismatch", title="Kind", description="running_mismatch"
    )
    running_metric: str = Field(
        "running",
        title="Running metric",
        description="Plant status metric: 1 running, 0 stopped.",
        min_length=1,
        max_length=64,
    )
    flow_metric: str = Field(
        "flue_flow",
        title="Flow metric",
        description="Flue-gas flow metric.",
        min_length=1,
        max_length=64,
    )
    min_flow: float | None = Field(
        None,
        title="Minimum flow",
        description="Flow (in the flow metric's unit, m3/h) above which the plant is operating;"
        " above the stack's natural-draft flow when stopped, below its flow at minimum load.",
        gt=0,
    )
    temp_metric: str = Field(
        "flue_temp",
        title="Temperature metric",
        description="Flue-gas temperature metric.",
        min_length=1,
        max_length=64,
    )
    min_temp: float | None = Field(
        None,
        title="Minimum temperature",
        description="Flue-gas temperature (degC) above which the plant is operating (none:"
        " temperature not used; a stack cools for hours after a shutdown, so use with a long"
        " `for`).",
        gt=-50,
        lt=1500,
    )
    analysers: tuple[str, ...] = Field(
        ("so2", "nox", "particulate", "o2"),
        title="Analysers",
        description="Metrics whose HJ 212 stopped flag F counts as a 'stopped' report.",
    )
    max_age: Duration = Field(
        "5m",
        title="Maximum age",
        description="Values further apart than this are not combined (a stale status is no"
        " report). A number of seconds or 30s, 5m.",
    )
    summary: str | None = Field(
        "{site_name} reports stopped ({stopped_by}) while its flue is still in use: flow {flow},"
        " temperature {temp}",
        title="Summary",
        description="Shorthand for annotations.summary.",
        max_length=500,
    )

    @model_validator(mode="after")
    def _needs_evidence(self) -> RunningMismatchModel:
        if self.min_flow is None and self.min_temp is None:
            raise ValueError(
                "give min_flow, min_temp or both: the evidence that the plant operates"
            )
        if parse_duration(self.max_age).total_seconds() <= 0:
            raise ValueError("max_age must be positive")
        return self


class RunningMismatchCondition(Condition):
    """Per site: the newest value and flag of each relevant metric per device."""

    accepts_flagged = True  # the F flag is the "stopped" report being checked

    __slots__ = ("last", "max_age_ms", "spec")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        self.spec = binding.rule.spec_as(RunningMismatchModel)
        self.max_age_ms = int(parse_duration(self.spec.max_age).total_seconds() * 1000)
        # device -> metric -> [value, flag, ts ms, unit]
        self.last: dict[str, dict[str, list[Any]]] = {}

    def observe(self, sample: Sample) -> list[Verdict] | None:
        s = self.spec
        wanted = {s.running_metric, s.flow_metric, s.temp_metric, *s.analysers}
        t = ts_ms(sample.ts)
        assert t is not None
        mine = self.last.setdefault(sample.device, {})
        touched = False
        for m, r in sample.readings.items():
            if m in wanted:
                mine[m] = [r.value, r.flag, t, r.unit]
                touched = True
        if not touched:
            return None
        out = [v for dev in sorted(self.last) if (v := self._judge(dev, t)) is not None]
        return out or None

    def _fresh(self, dev: str, metric: str, t: int) -> list[Any] | None:
        row = self.last.get(dev, {}).get(metric)
        return row if row is not None and abs(t - row[2]) <= self.max_age_ms else None

    def _judge(self, dev: str, t: int) -> Verdict | None:
        s = self.spec
        flow = self._fresh(dev, s.flow_metric, t)
        temp = self._fresh(dev, s.temp_metric, t)
        if flow is None and temp is None:
            return None  # this device measures no flue gas
        # The status of the stack's own device first, else any device of the site (a DCS feed).
        running = self._fresh(dev, s.running_metric, t)
        if running is None:
            running = next(
                (
                    r
                    for d in sorted(self.last)
                    if d != dev and (r := self._fresh(d, s.running_metric, t))
                ),
                None,
            )
        reasons = []
        if running is not None and running[0] < 0.5:
            reasons.append(f"{s.running_metric}=0")
        flagged = sorted(
            m
            for m in s.analysers
            if (r := self._fresh(dev, m, t)) is not None and r[1] == STOPPED_FLAG
        )
        if flagged:
            reasons.append(f"flag F on {','.join(flagged)}")
        by_flow = s.min_flow is not None and flow is not None and flow[0] > s.min_flow
        by_temp = s.min_temp is not None and temp is not None and temp[0] > s.min_temp
        active = bool(reasons) and (by_flow or by_temp)
        if by_flow or (not by_temp and flow is not None and s.min_flow is not None):
            metric, row, threshold = s.flow_metric, flow, s.min_flow
        else:
            metric, row, threshold = s.temp_metric, temp, s.min_temp
        ctx = {
            "stopped_by": " and ".join(reasons) or "not reported stopped",
            "running": running[0] if running is not None else "",
            "flow": _whole(flow[0]) if flow is not None else "",
            "temp": temp[0] if temp is not None else "",
        }
        return Verdict(
            ms_ts(t),
            active,
            value=row[0] if row else None,
            threshold=threshold,
            device=dev,
            metric=metric,
            key=dev,
            unit=row[3] if row else "",
            context=ctx,
        )

    def state(self) -> dict[str, Any]:
        return {"last": {d: {m: list(r) for m, r in ms.items()} for d, ms in self.last.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.last = {
            d: {m: list(r) for m, r in ms.items()} for d, ms in state.get("last", {}).items()
        }


CHECKS = ("dilution", "zero_flow")


class PhysicalConsistencyModel(RuleModel):
    """O2, flue-gas flow and temperature of one stack must agree with each other."""

    kind: Literal["physical_consistency"] = Field(
        "physical_consistency", title="Kind", description="physical_consistency"
    )
    checks: tuple[Literal["dilution", "zero_flow"], ...] = Field(
        ("dilution",),
        title="Checks",
        description="dilution: ambient O2 in a hot, flowing flue; zero_flow: no flow while O2"
        " shows combustion gas.",
        min_length=1,
    )
    o2_metric: str = Field(
        "o2", title="O2 metric", description="Flue-gas O2 (%).", min_length=1, max_length=64
    )
    flow_metric: str = Field(
        "flue_flow", title="Flow metric", description="Flue-gas flow.", min_length=1, max_length=64
    )
    temp_metric: str = Field(
        "flue_temp",
        title="Temperature metric",
        description="Flue-gas temperature (degC).",
        min_length=1,
        max_length=64,
    )
    o2_ambient: float = Field(
        19.0,
        title="Ambient O2",
        description="O2 (%) at or above which the sample is (nearly) ambient air; air holds 20.9"
        " %.",
        ge=15,
        le=21,
    )
    min_flow: float = Field(
        title="Minimum flow",
        description="Flow above which the flue carries gas (the stack's flow at minimum load is"
        " well above it, natural draft well below).",
        gt=0,
    )
    min_temp: float | None = Field(
        None,
        title="Minimum temperature",
        description="Temperature (degC) above which the flue gas is hot combustion gas (none: not"
        " checked).",
        gt=-50,
        lt=1500,
    )
    o2_min: float = Field(
        15.0,
        title="Combustion O2",
        description="zero_flow check: O2 (%) below which the analyser sees combustion gas, not"
        " air.",
        gt=0,
        le=20.9,
    )
    zero_flow: float = Field(
        0.0,
        title="Zero flow",
        description="zero_flow check: flow at or below this counts as no flow.",
        ge=0,
    )
    summary: str | None = Field(
        "{site_name} {device}: {check} - O2 {o2} %, flow {flow}, temperature {temp} degC",
        title="Summary",
        description="Shorthand for annotations.summary.",
        max_length=500,
    )

    @model_validator(mode="after")
    def _unique(self) -> PhysicalConsistencyModel:
        if len(set(self.checks)) != len(self.checks):
            raise ValueError("each check once")
        return self


class PhysicalConsistencyCondition(Condition):
    """Per device: judges each sample that carries O2 and flow (and temperature when used)."""

    __slots__ = ("spec",)

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        self.spec = binding.rule.spec_as(PhysicalConsistencyModel)

    def observe(self, sample: Sample) -> list[Verdict] | None:
        s = self.spec
        # The engine strips flagged readings from multi-reading samples; a lone one may pass.
        normal = {m: r for m, r in sample.readings.items() if r.flag == "N"}
        o2, flow, temp = (
            normal.get(s.o2_metric),
            normal.get(s.flow_metric),
            normal.get(s.temp_metric),
        )
        if o2 is None or flow is None:
            return None
        ctx = {
            "o2": o2.value,
            "flow": _whole(flow.value),
            "temp": temp.value if temp is not None else "",
        }
        out: list[Verdict] = []
        if "dilution" in s.checks and (s.min_temp is None or temp is not None):
            hot = s.min_temp is None or (temp is not None and temp.value > s.min_temp)
            active = o2.value >= s.o2_ambient and flow.value > s.min_flow and hot
            out.append(
                Verdict(
                    sample.ts,
                    active,
                    o2.value,
                    s.o2_ambient,
                    sample.device,
                    s.o2_metric,
                    key="dilution",
                    unit=o2.unit,
                    context={**ctx, "check": "diluted sample (ambient O2 in a hot, flowing flue)"},
                )
            )
        if "zero_flow" in s.checks:
            active = flow.value <= s.zero_flow and o2.value < s.o2_min
            out.append(
                Verdict(
                    sample.ts,
                    active,
                    flow.value,
                    s.zero_flow,
                    sample.device,
                    s.flow_metric,
                    key="zero_flow",
                    unit=flow.unit,
                    context={**ctx, "check": "no flow while O2 shows combustion gas"},
                )
            )
        return out or None


def _whole(x: float) -> int | float:
    """Flows of 1e5 m3/h read better as 150000 than as the engine's 4-digit 1.5e+05."""
    return round(x) if abs(x) >= 1000 else x


def _metrics_running(spec: RunningMismatchModel) -> frozenset[str]:
    return frozenset({spec.running_metric, spec.flow_metric, spec.temp_metric, *spec.analysers})


def _metrics_physical(spec: PhysicalConsistencyModel) -> frozenset[str]:
    return frozenset({spec.o2_metric, spec.flow_metric, spec.temp_metric})


register_kind(
    RuleKind(
        name="running_mismatch",
        model=RunningMismatchModel,
        condition=RunningMismatchCondition,
        scope="site",
        description="标停未停: the plant reports stopped (running 0 or HJ 212 flag F) while flue"
        " gas"
        " flows above min_flow or is hotter than min_temp.",
        metrics=_metrics_running,
    )
)

register_kind(
    RuleKind(
        name="physical_consistency",
        model=PhysicalConsistencyModel,
        condition=PhysicalConsistencyCondition,
        scope="device",
        description="O2, flow and temperature of a stack disagree: ambient O2 in a hot flowing"
        " flue (dilution), or no flow with combustion O2.",
        metrics=_metrics_physical,
    )
)
