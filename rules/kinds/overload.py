"""``wim_overload``: a truck weighed in motion above its legal gross weight (治超, non-site
overload enforcement), after allowing for the scale's maximum permissible error.

Legal gross weight by axle count, Ministry of Transport order 2016 No. 62 (超限运输车辆行驶公路
管理规定, article 3) following GB 1589-2016: 2 axles 18 t; 3 axles 25 t (27 t for a
combination: semi-trailer, centre-axle or full trailer); 4 axles 31 t (36 t for a combination);
5 axles 43 t; 6 or more axles 49 t (46 t for a combination whose tractor has a single drive
axle).

Measurement error: a weigh-in-motion scale is verified under JJG 907-2006 (动态公路车辆自动衡器,
adopting OIML R 134-1), whose vehicle-total-weight accuracy classes are 0.2, 0.5, 1, 2, 5 and
10. The maximum permissible error for weighing in motion is, in percent of the vehicle
weight, half the class number at initial verification and the class number in service (class 2:
+-1 % initial, +-2 % in service; class 5: +-2.5 % / +-5 %; class 10: +-5 % / +-10 %). A scale in
use may err by the in-service MPE, so a truck is cited only when even the lowest weight the
scale's reading allows, ``weight x (1 - MPE)``, is above the limit: no truck is cited on
measurement error alone. Class 7 is accepted (same rule, 7 %) for scales certified to it under
other schemes, although JJG 907-2006 has no class 7.

One sample is one truck. Each overloaded truck is its own alert: the verdict's key is the
truck's timestamp in epoch milliseconds (the simulator and real stations give each truck a
distinct millisecond), so the engine's fingerprint differs per truck. The verdict is active for
that truck and is made inactive when the device's next sample (the next truck) arrives, so the
alert resolves on its own and the risk queue keeps it open for the officers (its handling state
is theirs). Use no ``for`` with this kind: a truck is an instant, never "held". Legal trucks
raise no verdict at all.

Plates: the JSON codec puts the payload's ``attrs`` (the plate) into ``Decoded.meta``, not into
readings, so the plate is not available to the rule; the integrator should join it to the alert
by (site, device, ts).

Optional payload metrics refine the limit: ``combination`` (1 combination vehicle, 0 rigid
truck; without it the rule's ``combination`` field decides) and ``drive_axles`` (1 on a 6+ axle
combination: 46 t).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from rules.conditions import Binding, Condition, Sample, Verdict, ts_ms
from rules.model import RuleModel, parse_duration
from rules.registry import RuleKind, register_kind

RIGID_LIMIT_T: dict[int, float] = {2: 18.0, 3: 25.0, 4: 31.0, 5: 43.0, 6: 49.0}
"""Legal gross weight (t) by axle count, order 2016 No. 62 art. 3 / GB 1589-2016 (6: 6 or more)."""

COMBINATION_LIMIT_T: dict[int, float] = {2: 18.0, 3: 27.0, 4: 36.0, 5: 43.0, 6: 49.0}
"""The same for combinations (tractor and trailer): 3 axles 27 t, 4 axles 36 t."""

SINGLE_DRIVE_AXLE_LIMIT_T = 46.0
"""6+ axle combination whose tractor has a single drive axle (order 2016 No. 62 art. 3)."""

IN_SERVICE_MPE_PCT: dict[float, float] = {
    0.2: 0.2,
    0.5: 0.5,
    1: 1.0,
    2: 2.0,
    5: 5.0,
    7: 7.0,
    10: 10.0,
}
"""In-service maximum permissible error (% of the vehicle weight) by accuracy class, JJG 907-2006
/ OIML R 134-1 vehicle weighing in motion (initial verification: half of it)."""


def legal_limit_t(
    axles: int, combination: bool = False, drive_axles: int | None = None
) -> float | None:
    """The legal gross weight in tonnes; ``None`` for fewer than 2 axles (not a truck reading)."""
    if axles < 2:
        return None
    n = min(axles, 6)
    if n == 6 and combination and drive_axles == 1:
        return SINGLE_DRIVE_AXLE_LIMIT_T
    return (COMBINATION_LIMIT_T if combination else RIGID_LIMIT_T)[n]


class WimOverloadModel(RuleModel):
    """A weighed truck above its legal gross weight beyond the scale's error."""

    kind: Literal["wim_overload"] = Field("wim_overload", title="Kind", description="wim_overload")
    accuracy_class: float = Field(
        5,
        title="Accuracy class",
        description="The scale's JJG 907 vehicle-weight accuracy class (0.2, 0.5, 1, 2, 5, 7"
        " or 10); its in-service MPE (class number, in % of the weight) is deducted before"
        " comparing.",
        json_schema_extra={"enum": [*IN_SERVICE_MPE_PCT]},
    )

    @field_validator("accuracy_class")
    @classmethod
    def _known_class(cls, v: float) -> float:
        # Literal[] cannot hold floats for a type checker; the classes are checked here.
        if v not in IN_SERVICE_MPE_PCT:
            known = ", ".join(f"{c:g}" for c in sorted(IN_SERVICE_MPE_PCT))
            raise ValueError(f"accuracy class {v:g} is not one of JJG 907's: {known}")
        return v

    combination: bool = Field(
        False,
        title="Combination",
        description="Use the combination-vehicle limits (3 axles 27 t, 4 axles 36 t) when the"
        " payload has no 'combination' metric.",
    )
    weight_metric: str = Field(
        "gross_weight",
        title="Weight metric",
        description="Gross vehicle weight (t; kg is converted).",
        min_length=1,
        max_length=64,
    )
    axles_metric: str = Field(
        "axles", title="Axles metric", description="Axle count.", min_length=1, max_length=64
    )
    summary: str | None = Field(
        "{axles}-axle truck at {site_name} weighed {value} t, limit {limit_t} t: {excess_t} t"
        " ({excess_pct} %) over, beyond the scale's {mpe_pct} % error",
        title="Summary",
        description="Shorthand for annotations.summary.",
        max_length=500,
    )

    @field_validator("for_")
    @classmethod
    def _instant(cls, v: str | float) -> str | float:
        if parse_duration(v).total_seconds() != 0:
            raise ValueError("a truck is weighed once: wim_overload takes no 'for'")
        return v


class WimOverloadCondition(Condition):
    """Per weigh station: the open (overloaded) trucks to resolve when the next one crosses."""

    __slots__ = ("mpe", "open", "spec")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        self.spec = binding.rule.spec_as(WimOverloadModel)
        self.mpe = IN_SERVICE_MPE_PCT[float(self.spec.accuracy_class)] / 100.0
        self.open: list[dict[str, Any]] = []
        """Overloaded trucks whose verdict is still active: key, ts (ms), value, limit, context."""

    def observe(self, sample: Sample) -> list[Verdict] | None:
        s = self.spec
        t = ts_ms(sample.ts)
        assert t is not None
        # The next truck closes the previous overloaded trucks' alerts (a second message of the
        # same truck, with the same timestamp, does not). The resolving verdict repeats the
        # truck's values so the resolved signal's summary still describes that truck.
        out = [
            Verdict(
                sample.ts,
                False,
                value=o["value"],
                threshold=o["limit"],
                device=sample.device,
                metric=s.weight_metric,
                key=o["key"],
                unit="t",
                context=dict(o["context"]),
            )
            for o in self.open
            if o["ts"] != t
        ]
        self.open = [o for o in self.open if o["ts"] == t]
        w, a = sample.readings.get(s.weight_metric), sample.readings.get(s.axles_metric)
        if w is not None and a is not None:
            v = self._judge(
                sample,
                w.value / 1000.0 if w.unit.lower() == "kg" else w.value,
                round(a.value),
                t,
            )
            if v is not None:
                out.append(v)
        return out or None

    def _judge(self, sample: Sample, weight: float, axles: int, t: int) -> Verdict | None:
        comb_r = sample.readings.get("combination")
        combination = self.spec.combination if comb_r is None else comb_r.value >= 0.5
        drive_r = sample.readings.get("drive_axles")
        limit = legal_limit_t(
            axles, combination, round(drive_r.value) if drive_r is not None else None
        )
        if limit is None:
            return None
        # JJG 907: the true weight may be as low as the reading less the in-service MPE.
        if weight * (1.0 - self.mpe) <= limit:
            return None
        key = str(t)
        excess = weight - limit
        context = {
            "axles": axles,
            "limit_t": limit,
            "mpe_pct": self.mpe * 100,
            "excess_t": round(excess, 2),
            "excess_pct": round(100.0 * excess / limit, 1),
            "cited_t": round(weight * (1.0 - self.mpe), 2),
            "combination": "yes" if combination else "no",
        }
        self.open = [o for o in self.open if o["key"] != key]
        self.open.append({"key": key, "ts": t, "value": weight, "limit": limit, "context": context})
        return Verdict(
            sample.ts,
            True,
            value=weight,
            threshold=limit,
            device=sample.device,
            metric=self.spec.weight_metric,
            key=key,
            unit="t",
            context=dict(context),
        )

    def state(self) -> dict[str, Any]:
        return {"open": [dict(o, context=dict(o["context"])) for o in self.open]}

    def restore(self, state: dict[str, Any]) -> None:
        self.open = [dict(o, context=dict(o["context"])) for o in state.get("open", [])]


register_kind(
    RuleKind(
        name="wim_overload",
        model=WimOverloadModel,
        condition=WimOverloadCondition,
        scope="device",
        description="A truck above its legal gross weight (order 2016 No. 62, GB 1589-2016) after"
        " deducting the scale's JJG 907 in-service error; one alert per truck.",
        metrics=lambda spec: frozenset({spec.weight_metric, spec.axles_metric}),
    )
)
