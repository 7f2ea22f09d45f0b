"""Scripted scenarios: violations injected into the simulated readings, with their ground truth.

A :class:`Scenario` lists :class:`Injection` s at offsets from the start of a run (the first
simulated round). The device models never break a limit on their own, so the ground truth of a
scenario (:func:`ground_truth`) is the complete list of violations a run contains; rule-engine
and end-to-end tests compare the alerts they get against it.

Injection kinds:

``exceedance``
    ``metric`` reads ``value`` (within +-``EXCEEDANCE_JITTER``, so it is not also a flat line)
    from ``start`` for ``duration``. A PM2.5 exceedance lifts PM10 along (``PM10_PER_PM25``).
``flatline``
    ``metric`` is frozen at ``value`` (or, when ``value`` is ``None``, at the reading the model
    gives at the start) from ``start`` for ``duration`` (a constant-value fraud, 恒值).
``silence``
    The device sends nothing from ``start`` for ``duration``.
``overload``
    One truck with ``axles`` axles and gross weight ``value`` (t), above the legal limit
    (:func:`simulators.devices.legal_gross_weight_t`), crosses a weigh station at ``start``.

A scenario with a ``period`` repeats its injections every period, so a demo left running keeps
producing leads for the duty officers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from farsight.clock import BEIJING
from farsight.errors import ConfigError, ConfigProblem
from farsight.registry import Registry
from farsight.types import ID_RE, Site
from simulators.devices import AMBIENT_LIMITS, legal_gross_weight_t

INJECTION_KINDS = ("exceedance", "flatline", "silence", "overload")
EXCEEDANCE_JITTER = 0.03
"""Relative noise on injected exceedance values: a constant value would also be a flat line."""
PM10_PER_PM25 = 1.12
"""An injected PM2.5 episode lifts PM10 to at least this multiple of PM2.5 (PM2.5 is part of
PM10); scenarios keep the lifted PM10 under its own limit, so it is not a second violation."""

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Injection:
    """One scripted violation at one device, at an offset from the start of the run."""

    kind: str
    site: str
    device: str
    start: timedelta
    duration: timedelta = _ZERO
    metric: str | None = None
    value: float | None = None
    axles: int | None = None
    plate: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in INJECTION_KINDS:
            raise ValueError(
                f"unknown injection kind {self.kind!r}; known: {', '.join(INJECTION_KINDS)}"
            )
        for name in ("site", "device"):
            value = getattr(self, name)
            if not isinstance(value, str) or not ID_RE.match(value):
                raise ValueError(f"injection {name} {value!r} must match {ID_RE.pattern}")
        if not isinstance(self.start, timedelta) or self.start < _ZERO:
            raise ValueError(f"injection start {self.start!r} must be a non-negative timedelta")
        if not isinstance(self.duration, timedelta) or self.duration < _ZERO:
            raise ValueError(
                f"injection duration {self.duration!r} must be a non-negative timedelta"
            )
        if self.value is not None and (
            isinstance(self.value, bool) or not math.isfinite(self.value)
        ):
            raise ValueError(f"injection value {self.value!r} must be a finite number")
        if self.kind == "overload":
            self._check_overload()
            return
        if self.duration <= _ZERO:
            raise ValueError(f"a {self.kind} injection needs a positive duration")
        if self.kind == "silence":
            if self.metric is not None or self.value is not None:
                raise ValueError(
                    "a silence injection silences the whole device: give no metric or value"
                )
        elif not self.metric:
            raise ValueError(f"a {self.kind} injection needs a metric")
        if self.kind == "exceedance" and (self.value is None or self.value <= 0):
            raise ValueError("an exceedance injection needs a positive value")

    def _check_overload(self) -> None:
        if self.metric not in (None, "gross_weight"):
            raise ValueError(
                f"an overload injection weighs the truck (gross_weight), not {self.metric!r}"
            )
        if self.duration != _ZERO:
            raise ValueError("an overload injection is one truck at one time: duration must be 0")
        if self.axles is None or self.value is None:
            raise ValueError("an overload injection needs axles and value (gross weight in t)")
        limit = legal_gross_weight_t(self.axles)
        if self.value <= limit:
            raise ValueError(
                f"overload of {self.value} t is within the {limit} t limit for {self.axles} axles"
            )
        if not self.plate:
            raise ValueError(
                "an overload injection needs the truck's plate (it is part of the ground truth)"
            )

    @property
    def end(self) -> timedelta:
        """Offset where the injection ends (exclusive); equal to ``start`` for an overload."""
        return self.start + self.duration

    def need_value(self) -> float:
        """``value`` of an injection that has one (exceedance, overload); raises ValueError if
        it has none."""
        if self.value is None:
            raise ValueError(f"the {self.kind} injection at {self.site}/{self.device} has no value")
        return self.value

    def need_axles(self) -> int:
        """``axles`` of an overload; raises ValueError for an injection without them."""
        if self.axles is None:
            raise ValueError(f"the {self.kind} injection at {self.site}/{self.device} has no axles")
        return self.axles

    @property
    def target_metric(self) -> str | None:
        """The metric affected: ``gross_weight`` for an overload, ``None`` for a silence."""
        return "gross_weight" if self.kind == "overload" else self.metric


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named script of injections; ``period`` repeats the script (``None``: play once)."""

    name: str
    description: str
    injections: tuple[Injection, ...] = ()
    period: timedelta | None = None

    def __post_init__(self) -> None:
        if not self.name or not ID_RE.match(self.name):
            raise ValueError(f"scenario name {self.name!r} must match {ID_RE.pattern}")
        if self.period is not None:
            if self.period <= _ZERO:
                raise ValueError("scenario period must be positive")
            late = [i for i in self.injections if i.end > self.period or i.start >= self.period]
            if late:
                raise ValueError(f"injections must end within the period {self.period}: {late[0]}")

    def _starts(self, inj: Injection, lo: timedelta, hi: timedelta) -> Iterator[timedelta]:
        """Occurrence starts of ``inj`` in ``[lo, hi)``."""
        if self.period is None:
            if lo <= inj.start < hi:
                yield inj.start
            return
        # Integer timedelta arithmetic: ceil((lo - start) / period) without float rounding.
        k = max(0, -((inj.start - lo) // self.period))
        while (s := inj.start + k * self.period) < hi:
            yield s
            k += 1

    def active(
        self, site: str, device: str, elapsed: timedelta
    ) -> list[tuple[Injection, timedelta]]:
        """Interval injections (exceedance, flatline, silence) in force at ``elapsed``.

        Returns ``(injection, occurrence start)`` pairs, in script order.
        """
        out = []
        for inj in self.injections:
            if inj.kind == "overload" or inj.site != site or inj.device != device:
                continue
            for s in self._starts(inj, elapsed - inj.duration, elapsed + timedelta.resolution):
                if s <= elapsed < s + inj.duration:
                    out.append((inj, s))
        return out

    def events(
        self, site: str, device: str, after: timedelta, until: timedelta
    ) -> list[tuple[Injection, timedelta]]:
        """Overload trucks at the device with occurrence time in ``(after, until]``, by time."""
        out: list[tuple[Injection, timedelta]] = []
        for inj in self.injections:
            if inj.kind != "overload" or inj.site != site or inj.device != device:
                continue
            lo, hi = after + timedelta.resolution, until + timedelta.resolution
            out.extend((inj, s) for s in self._starts(inj, lo, hi))
        return sorted(out, key=lambda pair: pair[1])

    def occurrences(self, horizon: timedelta | None = None) -> list[tuple[Injection, timedelta]]:
        """Every ``(injection, occurrence start)`` starting before ``horizon``, by start.

        ``horizon`` defaults to one period, or to the end of the last injection.
        """
        if horizon is None:
            horizon = (
                self.period
                if self.period is not None
                else max((i.end for i in self.injections), default=_ZERO) + timedelta.resolution
            )
        pairs = [(inj, s) for inj in self.injections for s in self._starts(inj, _ZERO, horizon)]
        return sorted(pairs, key=lambda pair: (pair[1], pair[0].site, pair[0].device))


def _m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


DEMO = Scenario(
    name="demo",
    description=(
        "A morning at the two pilot cities: within the first simulated minutes PM2.5 jumps at a "
        "Yichang air station and a power-plant stack emits SO2 far over its ultra-low permit; "
        "then an overloaded truck, a frozen NOx analyser, a silent dust monitor, a wastewater COD "
        "excess, construction noise, an overloaded truck leaving a chemical plant and an NH3-N "
        "excess at the same plant's outfall. Repeats every 6 h."
    ),
    injections=(
        Injection(
            "exceedance", "yc-aq-wujiagang", "aq1", _m(1), _m(19), metric="pm25", value=115.0
        ),
        Injection(
            "exceedance",
            "yc-cems-xiaoting-power",
            "cems1",
            _m(2),
            _m(78),
            metric="so2",
            value=120.0,
        ),
        Injection(
            "overload",
            "yc-wim-g50-yichangdong",
            "wim1",
            _m(3),
            axles=6,
            value=61.8,
            plate="鄂E·7C215",
        ),
        Injection(
            "flatline", "xg-cems-chuyan-chem", "cems1", _m(5), _m(120), metric="nox", value=42.0
        ),
        Injection("silence", "yc-cs-dongzhan", "dn1", _m(10), _m(60)),
        Injection(
            "exceedance", "xg-out-bishui-wwtp", "wq1", _m(15), _m(80), metric="cod", value=88.0
        ),
        Injection(
            "exceedance", "xg-cs-huaiyin-estate", "dn1", _m(20), _m(30), metric="noise", value=78.5
        ),
        Injection(
            "overload",
            "xg-wim-chuyan-chem-gate",
            "wim1",
            _m(25),
            axles=3,
            value=33.6,
            plate="鄂K·60318",
        ),
        Injection(
            "exceedance", "xg-out-chuyan-chem", "wq1", _m(40), _m(80), metric="nh3n", value=9.5
        ),
    ),
    period=timedelta(hours=6),
)

QUIET = Scenario(name="quiet", description="No injections: every reading is within its limits.")

EXCEEDANCE = Scenario(
    name="exceedance",
    description=(
        "One SO2 exceedance: yc-cems-xiaoting-power/cems1 at 120 mg/m3 (permit 35) "
        "from minute 2 for 90 minutes."
    ),
    injections=(
        Injection(
            "exceedance",
            "yc-cems-xiaoting-power",
            "cems1",
            _m(2),
            _m(90),
            metric="so2",
            value=120.0,
        ),
    ),
)

FLATLINE = Scenario(
    name="flatline",
    description=(
        "One frozen analyser: xg-cems-chuyan-chem/cems1 NOx constant at 42.0 mg/m3 "
        "from minute 5 for 2 hours."
    ),
    injections=(
        Injection(
            "flatline", "xg-cems-chuyan-chem", "cems1", _m(5), _m(120), metric="nox", value=42.0
        ),
    ),
)

SILENCE = Scenario(
    name="silence",
    description="One silent device: yc-aq-xiling/aq1 sends nothing from minute 10 for 30 minutes.",
    injections=(Injection("silence", "yc-aq-xiling", "aq1", _m(10), _m(30)),),
)

OVERLOAD = Scenario(
    name="overload",
    description=(
        "One overloaded truck: 6 axles, 61.8 t (limit 49 t) at yc-wim-g50-yichangdong/wim1 "
        "at minute 3."
    ),
    injections=(
        Injection(
            "overload",
            "yc-wim-g50-yichangdong",
            "wim1",
            _m(3),
            axles=6,
            value=61.8,
            plate="鄂E·7C215",
        ),
    ),
)

SCENARIOS: Mapping[str, Scenario] = {
    s.name: s for s in (DEMO, QUIET, EXCEEDANCE, FLATLINE, SILENCE, OVERLOAD)
}
"""The built-in scenarios by name."""


def get_scenario(name: str) -> Scenario:
    """The built-in scenario called ``name``.

    Raises
    ------
    ConfigError
        For an unknown name (it comes from ``simulator.scenario``), listing the known ones.
    """
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            [
                ConfigProblem(
                    "simulator.scenario", name, f"unknown scenario; known: {', '.join(SCENARIOS)}"
                )
            ]
        ) from None


def limit_for(site: Site, metric: str) -> float | None:
    """The limit an exceedance of ``metric`` at ``site`` breaks: the permit, else GB 3095-2012."""
    limit = site.limit(metric)
    if limit is not None:
        return float(limit)
    if any(d.kind == "air_quality" and metric in d.metrics for d in site.devices):
        return AMBIENT_LIMITS.get(metric)
    return None


def scenario_problems(scenario: Scenario, registry: Registry) -> list[str]:
    """Why ``scenario`` cannot run against ``registry`` (empty when it can).

    Checks that every injection names a known site, device and metric, that overloads target
    weigh stations, and that an exceedance stays above its limit even with its jitter.
    """
    problems: list[str] = []
    for n, inj in enumerate(scenario.injections):
        where = f"{scenario.name}.injections.{n} ({inj.kind} at {inj.site}/{inj.device})"
        site = registry.get(inj.site)
        if site is None:
            problems.append(f"{where}: no site {inj.site!r} in the registry")
            continue
        device = site.device(inj.device)
        if device is None:
            problems.append(
                f"{where}: site has no device {inj.device!r}; "
                f"it has {', '.join(d.id for d in site.devices)}"
            )
            continue
        if inj.kind == "overload":
            if device.kind != "wim":
                problems.append(
                    f"{where}: overloads happen at weigh stations (wim), not {device.kind}"
                )
            continue
        if device.kind == "wim":
            problems.append(f"{where}: a weigh station reports trucks; use an overload injection")
            continue
        metric = inj.target_metric
        if metric is not None and device.metrics and metric not in device.metrics:
            problems.append(
                f"{where}: device does not report {metric!r}; "
                f"it reports {', '.join(device.metrics)}"
            )
            continue
        if inj.kind == "exceedance" and metric is not None and inj.value is not None:
            limit = limit_for(site, metric)
            if limit is None:
                problems.append(
                    f"{where}: no limit known for {metric!r}, so an exceedance has no meaning"
                )
            elif inj.value * (1 - EXCEEDANCE_JITTER) <= limit:
                problems.append(f"{where}: {inj.value} is not clearly above the {limit} limit")
            lifted = inj.value * (1 + EXCEEDANCE_JITTER) * PM10_PER_PM25
            if (
                metric == "pm25"
                and "pm10" in device.metrics
                and lifted >= (limit_for(site, "pm10") or math.inf)
            ):
                problems.append(
                    f"{where}: PM10 lifted with PM2.5 would reach {lifted:.0f} "
                    "and exceed its own limit too"
                )
    return problems


def _iso(ts: datetime) -> str:
    return ts.astimezone(BEIJING).isoformat()


def ground_truth(
    scenario: Scenario,
    registry: Registry | None = None,
    start: datetime | None = None,
    horizon: timedelta | None = None,
) -> list[dict[str, object]]:
    """The violations a run of ``scenario`` contains, one dict per injection occurrence.

    Parameters
    ----------
    scenario
        The scenario played.
    registry
        When given, entries gain ``department`` and ``limit`` (the permit, GB 3095-2012 for
        ambient air, the legal gross weight for an overload).
    start
        The run's first simulated time; when given, entries gain ISO 8601 ``start`` and ``end``.
    horizon
        Include occurrences starting before this offset (default: one period, or all).

    Returns
    -------
    list of dict
        Ordered by start. Keys: ``scenario``, ``kind`` (the violation: exceedance, flatline,
        silence, overload), ``site``, ``device``, ``metric`` (``None`` for a silence),
        ``value``, ``start_s`` and ``end_s`` (offsets in seconds, end exclusive; equal for an
        overload), ``axles`` and ``plate`` for an overload, plus the optional keys above.
    """
    out: list[dict[str, object]] = []
    for inj, s in scenario.occurrences(horizon):
        entry: dict[str, object] = {
            "scenario": scenario.name,
            "kind": inj.kind,
            "site": inj.site,
            "device": inj.device,
            "metric": inj.target_metric,
            "value": inj.value,
            "start_s": s.total_seconds(),
            "end_s": (s + inj.duration).total_seconds(),
        }
        if inj.kind == "overload":
            entry["axles"] = inj.axles
            entry["plate"] = inj.plate
        if registry is not None:
            site = registry.get(inj.site)
            if site is not None:
                entry["department"] = site.department
                if inj.kind == "overload" and inj.axles is not None:
                    entry["limit"] = legal_gross_weight_t(inj.axles)
                elif inj.kind == "exceedance" and inj.metric is not None:
                    entry["limit"] = limit_for(site, inj.metric)
        if start is not None:
            entry["start"] = _iso(start + s)
            entry["end"] = _iso(start + s + inj.duration)
        out.append(entry)
    return out
