"""``upkeep_share``: a device whose data is flagged maintenance, calibration or fault much of a day.

HJ 212-2017 data flags ``M`` (maintenance), ``C`` (calibration) and ``D`` (fault) take a value out
of every average and every limit check (:mod:`farsight.validity`): the engine never lets such a
reading reach a threshold, near-limit, rate or window rule. That is right for the hour a week an
analyser is serviced, and an invitation to abuse beyond it: a plant whose analysers are "in
maintenance" whenever it emits cannot exceed a limit. HJ 75-2017's routine upkeep (daily zero and
span checks of minutes, weekly maintenance of a few hours) flags a few percent of a day; this kind
raises when the flagged share of a device's readings over a trailing window is larger.

Memory per device: one bucket per 1/96 of the window (15 min of a day), each with its reading
counts, so state stays small whatever the cadence.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from farsight.clock import to_epoch_ms
from farsight.types import HJ212_FLAGS
from farsight.validity import UPKEEP_FLAGS
from rules.conditions import Binding, Condition, Sample, Verdict
from rules.kinds.window import duration_ms, positive_duration
from rules.model import Duration, RuleModel
from rules.registry import RuleKind, register_kind

BUCKETS = 96
"""Buckets per window: a day's window counts in 15-minute steps."""


class UpkeepShareModel(RuleModel):
    """The share of a device's readings flagged M, C or D over a trailing window."""

    kind: Literal["upkeep_share"] = Field("upkeep_share", title="Kind", description="upkeep_share")
    flags: tuple[str, ...] = Field(
        tuple(sorted(UPKEEP_FLAGS)),
        title="Flags",
        description="HJ 212 data flags that count as upkeep (default M maintenance, C"
        " calibration, D fault).",
        min_length=1,
        max_length=len(HJ212_FLAGS),
    )
    max_share: float = Field(
        0.3,
        title="Largest share",
        description="The rule holds when more than this fraction (0..1) of the device's readings"
        " in the window carry one of the flags.",
        gt=0,
        lt=1,
    )
    window: Duration = Field(
        "24h",
        title="Window",
        description="Trailing window (event time) the share is taken over. A number of seconds or"
        " 30s, 5m, 1h, 1d.",
    )
    min_span: Duration = Field(
        "20h",
        title="Least span",
        description="A device is judged only once its readings span this long (HJ 75-2017: a"
        " daily value needs 20 valid hours), so a device calibrated in its first hour is not a"
        " finding.",
    )
    min_count: int = Field(
        10,
        title="Fewest readings",
        description="The window must hold at least this many readings to be judged.",
        ge=1,
        le=10_000_000,
    )
    metrics: tuple[str, ...] | None = Field(
        None,
        title="Metrics",
        description="Only these metrics' readings count (e.g. a stack's analysers); default all"
        " of the device's readings.",
        min_length=1,
        max_length=256,
    )

    @field_validator("flags")
    @classmethod
    def _flags(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [f for f in v if f not in HJ212_FLAGS]
        if bad:
            raise ValueError(
                f"{bad} are not HJ 212 data flags; use {', '.join(sorted(HJ212_FLAGS))}"
            )
        if "N" in v:
            raise ValueError("N (normal) is not upkeep")
        return v

    @field_validator("window", "min_span")
    @classmethod
    def _positive(cls, v: Duration) -> Duration:
        return positive_duration(v, "window or min_span")

    @model_validator(mode="after")
    def _span_within_window(self) -> UpkeepShareModel:
        if duration_ms(self.min_span) > duration_ms(self.window):
            raise ValueError("min_span must not be longer than window")
        return self


class UpkeepShareCondition(Condition):
    """Per device: reading counts per time bucket, total and per upkeep flag, with running sums
    over the buckets kept (O(1) per sample, amortised).

    At each sample the share is ``upkeep / total`` over the buckets of ``(t - window, t]``; the
    verdict is active when it exceeds ``max_share`` and the device's readings span ``min_span``.
    Value and threshold are percentages.
    """

    accepts_flagged = True  # the flags are what it counts

    __slots__ = (
        "buckets",
        "by_flag",
        "first",
        "flags",
        "metrics",
        "span_ms",
        "spec",
        "step",
        "total",
        "was_active",
        "window_ms",
    )

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        self.spec = binding.rule.spec_as(UpkeepShareModel)
        self.flags = frozenset(self.spec.flags)
        self.metrics = frozenset(self.spec.metrics) if self.spec.metrics else None
        self.window_ms = duration_ms(self.spec.window)
        self.span_ms = duration_ms(self.spec.min_span)
        self.step = max(1, self.window_ms // BUCKETS)
        # [bucket start ms, readings, {flag: readings}] oldest first
        self.buckets: deque[list[Any]] = deque()
        self.first: int | None = None
        # Sums over the buckets: readings, and readings per upkeep flag.
        self.total = 0
        self.by_flag: dict[str, int] = {}
        # Whether the last verdict was active: a device under the share, as nearly all are, needs
        # no verdict at each sample, only the one that ends an active stretch.
        self.was_active = False

    def observe(self, sample: Sample) -> Verdict | None:
        if self.metrics is None:
            counted = list(sample.readings.values())
        else:
            counted = [r for m, r in sample.readings.items() if m in self.metrics]
            if not counted:
                return None
        t = to_epoch_ms(sample.ts)
        start = t - t % self.step
        if self.buckets and start < self.buckets[-1][0]:
            return None  # older than the newest bucket: the counts have moved past it
        if self.buckets and self.buckets[-1][0] + self.step <= t - self.window_ms:
            # Back after a silence longer than the window: the span starts anew.
            self.buckets.clear()
            self.total, self.by_flag, self.first = 0, {}, None
        if self.first is None:
            self.first = t
        if not self.buckets or self.buckets[-1][0] != start:
            self.buckets.append([start, 0, {}])
        bucket = self.buckets[-1]
        bucket[1] += len(counted)
        self.total += len(counted)
        for r in counted:
            if r.flag in self.flags:
                bucket[2][r.flag] = bucket[2].get(r.flag, 0) + 1
                self.by_flag[r.flag] = self.by_flag.get(r.flag, 0) + 1
        cut = t - self.window_ms
        while self.buckets[0][0] + self.step <= cut:
            _, n, flags = self.buckets.popleft()
            self.total -= n
            for f, c in flags.items():
                self.by_flag[f] -= c
        total = self.total
        if total < self.spec.min_count or t - self.first < self.span_ms:
            return None
        upkeep = sum(self.by_flag.values())
        share = upkeep / total
        active = share > self.spec.max_share
        if not active and not self.was_active:
            return None
        self.was_active = active
        by_flag = {f: n for f, n in self.by_flag.items() if n}
        return Verdict(
            sample.ts,
            active,
            round(share * 100, 1),
            self.spec.max_share * 100,
            sample.device,
            "flags",
            unit="%",
            context={
                "share_pct": round(share * 100, 1),
                "flagged": upkeep,
                "readings": total,
                "by_flag": ", ".join(f"{f} {n}" for f, n in sorted(by_flag.items())) or "none",
                "window": self.spec.window,
            },
        )

    def state(self) -> dict[str, Any]:
        return {"b": [list(b) for b in self.buckets], "first": self.first, "a": self.was_active}

    def restore(self, state: dict[str, Any]) -> None:
        self.buckets = deque(
            [int(s), int(n), {str(f): int(c) for f, c in flags.items()}]
            for s, n, flags in state.get("b", [])
        )
        first = state.get("first")
        self.first = None if first is None else int(first)
        self.was_active = bool(state.get("a", False))
        self.total = sum(b[1] for b in self.buckets)
        self.by_flag = {}
        for b in self.buckets:
            for f, c in b[2].items():
                self.by_flag[f] = self.by_flag.get(f, 0) + c


register_kind(
    RuleKind(
        name="upkeep_share",
        model=UpkeepShareModel,
        condition=UpkeepShareCondition,
        scope="device",
        description="More than max_share (default 30 %) of a device's readings over a window"
        " (default 24 h) flagged M maintenance, C calibration or D fault: a site 'in"
        " maintenance' all the time.",
        metrics=lambda spec: frozenset(spec.metrics) if spec.metrics else None,
    )
)
