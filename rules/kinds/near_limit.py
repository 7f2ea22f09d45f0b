"""``near_limit`` (贴限排放): emissions held just under the limit, day after day.

A plant that really controls its emissions scatters around its own operating level, usually
well below the permit. Readings pressed into the last few percent under the limit, most of
the day, point to a controller or a hand tuning the reported figure to the permit rather than
the process (one of the CEMS data-fraud patterns in DOMAIN.md). Over each tumbling window
(a day by default, aligned to Beijing midnight like the other daily figures) the condition
counts the share of readings in the band ``[(1 - band) x limit, limit]``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from farsight.clock import to_epoch_ms
from rules.conditions import Binding, Condition, Sample, Verdict, ms_ts
from rules.kinds.window import (
    OFFSET_PATTERN,
    aligned_start,
    duration_ms,
    local_iso,
    offset_ms,
    positive_duration,
)
from rules.model import Duration, RuleModel
from rules.registry import RuleKind, register_kind


class NearLimitModel(RuleModel):
    """The share of readings just under the limit, per tumbling window, above a minimum."""

    kind: Literal["near_limit"] = Field("near_limit", title="Kind", description="near_limit")
    window: Duration = Field(
        "24h",
        title="Window",
        description="Length of the tumbling windows, aligned in local time (utc_offset). A number"
        " of seconds or 30s, 5m, 1h, 1d.",
    )
    limit: float | Literal["site_limit"] = Field(
        "site_limit",
        title="Limit",
        description="A number, or 'site_limit' for the site's permit limit of the metric. Not"
        " scaled by the credit-grade limit factor: the pattern is defined against the limit"
        " the plant actually holds.",
    )
    band: float = Field(
        0.1,
        title="Band",
        description="Width of the band under the limit as a fraction of it: 0.1 counts readings"
        " from 90 % to 100 % of the limit.",
        gt=0,
        lt=1,
    )
    min_share: float = Field(
        0.6,
        title="Smallest share",
        description="The window is a violation when more than this fraction of its readings lie in"
        " the band.",
        gt=0,
        le=1,
    )
    min_count: int = Field(
        1,
        title="Fewest readings",
        description="A window with fewer readings is not judged (e.g. 1200 minute values: 20"
        " hours, the GB 3095-2012 table 4 rule for daily means).",
        ge=1,
        le=10_000_000,
    )
    utc_offset: str = Field(
        "+08:00",
        title="Alignment offset",
        description="Windows start at whole multiples of the window in local time at this UTC"
        " offset (+08:00: a 1d window is the Beijing natural day).",
        pattern=OFFSET_PATTERN,
    )

    @field_validator("window")
    @classmethod
    def _window(cls, v: Duration) -> Duration:
        return positive_duration(v, "window")

    @model_validator(mode="after")
    def _needs_metric(self) -> NearLimitModel:
        if not self.select.metric:
            raise ValueError("select.metric is required for a near_limit rule")
        return self


class NearLimitCondition(Condition):
    """Share of readings of each tumbling window held in the band just under the limit.

    For a window with ``n`` readings, ``in_band`` of them in ``[(1 - band) L, L]`` and
    ``above`` of them over ``L``, the share is ``in_band / n``: exceedances stay in the
    denominator (they are readings of the day) but are not near-limit readings, they are
    counted apart and left to the exceedance rules. The window closes on the first reading at
    or past its end and yields one verdict stamped with the end; a window with fewer than
    ``min_count`` readings yields none. Memory: three counters for the open window.
    """

    __slots__ = (
        "above",
        "in_band",
        "limit",
        "low",
        "metric",
        "min_count",
        "min_share",
        "n",
        "off",
        "size",
        "start",
        "unit",
    )

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        spec = binding.rule.spec_as(NearLimitModel)
        self.metric = binding.series_metric
        # The site's own limit, deliberately without the credit-grade factor (see the model).
        self.limit = (
            binding.site.limit(self.metric) if spec.limit == "site_limit" else float(spec.limit)
        )
        self.low = None if self.limit is None else self.limit * (1.0 - spec.band)
        self.min_share = spec.min_share
        self.min_count = spec.min_count
        self.size = duration_ms(spec.window)
        self.off = offset_ms(spec.utc_offset)
        self.start: int | None = None
        self.n = self.in_band = self.above = 0
        self.unit = ""

    def observe(self, sample: Sample) -> Verdict | None:
        r = sample.readings.get(self.metric)
        limit, low = self.limit, self.low
        if r is None or limit is None or low is None:
            return None
        self.unit = r.unit
        t = to_epoch_ms(sample.ts)
        out = None
        if self.start is not None and t >= self.start + self.size:
            out = self._verdict()
            self.start = None
        if self.start is None:
            self.start, self.n, self.in_band, self.above = (
                aligned_start(t, self.size, self.off),
                0,
                0,
                0,
            )
        self.n += 1
        if r.value > limit:
            self.above += 1
        elif r.value >= low:
            self.in_band += 1
        return out

    def _verdict(self) -> Verdict | None:
        start = self.start
        if start is None or self.n < self.min_count:
            return None
        end = start + self.size
        share = self.in_band / self.n
        return Verdict(
            ms_ts(end),
            share > self.min_share,
            share,
            self.min_share,
            self.b.device or "",
            self.metric,
            context={
                "share": share,
                "share_pct": round(100 * share, 1),
                "count": self.n,
                "in_band": self.in_band,
                "above": self.above,
                "limit": self.limit,
                "band_low": self.low,
                "level_unit": self.unit,
                "window_start": local_iso(start, self.off),
                "window_end": local_iso(end, self.off),
            },
        )

    def state(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "n": self.n,
            "in_band": self.in_band,
            "above": self.above,
            "unit": self.unit,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.start = state.get("start")
        self.n, self.in_band, self.above = (
            int(state.get("n", 0)),
            int(state.get("in_band", 0)),
            int(state.get("above", 0)),
        )
        self.unit = state.get("unit", "")


register_kind(
    RuleKind(
        name="near_limit",
        model=NearLimitModel,
        condition=NearLimitCondition,
        scope="series",
        description="贴限排放: per tumbling window, the share of readings within a band just under"
        " the"
        " limit above min_share.",
    )
)
