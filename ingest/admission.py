"""Admission: which decoded readings ingest stores, which it refuses and which it flags, and why.

Pure functions, called by the pipeline around the codec: :func:`check_size` before a payload is
decoded, :func:`admit` on what the codec made of it. A whole message is refused (raise
:class:`~farsight.errors.DecodeError`, so it becomes one dead letter) when it is larger than the
payload cap or carries more metrics than the per-message cap. Otherwise each reading is judged
on its own, so one bad metric never costs a device the rest of its message:

- a metric the device is not registered for (or, where the registry lists none for the device,
  one missing from the catalogue) is refused as ``unknown_metric``;
- a value outside its metric's physical range (:data:`farsight.metrics.CATALOGUE` ``bounds``) is
  refused as ``out_of_range``, or stored with the data flag ``D`` (instrument fault) when the
  policy says ``flag`` for that metric.

What is refused comes back as :class:`Refusal` values (the pipeline keeps each as a dead letter
with the whole payload, so a replay after a registry fix stores what was missing and nothing
twice); what is flagged comes back as irregularity texts (counted per device).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from farsight.errors import DecodeError
from farsight.hj212 import DATA_CNS
from farsight.metrics import BY_NAME, Metric
from farsight.settings import IngestSettings
from farsight.types import Device, Reading

OutOfRange = Literal["refuse", "flag"]

INVALID_FLAG = "D"
"""HJ 212-2017 flag a value outside its physical range is stored with under the ``flag`` policy:
D (fault), since no working instrument reports it; rules keep flagged readings out of violation
checks, and validity counts them invalid."""

MAX_DETAIL_ITEMS = 10
"""Metrics a refusal's detail names before it says how many more there were."""


def _aggregate_suffixes() -> frozenset[str]:
    # The suffixes the HJ 212 codec gives values of a data CN (ingest/codecs/hj212.py _layout):
    # real-time values keep the bare name (or ".zs"), period values ".{field}_{period}".
    periods = [p for p in DATA_CNS.values() if p != "rtd"]
    fields = ("avg", "min", "max", "cou", "zs_avg", "zs_min", "zs_max")
    return frozenset({"", "zs"} | {f"{f}_{p}" for f in fields for p in periods})


AGGREGATE_SUFFIXES = _aggregate_suffixes()
"""What may follow a metric's name after a ``.`` (``so2.avg_1h``); empty: the bare name."""

COUNT_BOUNDS = (0.0, 1e12)
"""Range of a period's summed emission or volume (``.cou_*``, kg or m3): never negative; the
upper bound is a day of the largest stack's flow with room to spare."""

_UNIT_FAMILIES: dict[str, dict[str, float]] = {
    # Mass concentration, in mg/m3.
    "mass_conc": {"g/m3": 1e3, "mg/m3": 1.0, "ug/m3": 1e-3, "µg/m3": 1e-3, "μg/m3": 1e-3},
    # Flow, in L/s.
    "flow": {"L/s": 1.0, "l/s": 1.0, "m3/s": 1e3, "m3/h": 1e3 / 3600, "m3/d": 1e3 / 86_400},
}
"""Units a reading may state instead of its metric's catalogue unit, with their scale: a value
sent in µg/m3 is judged against the mg/m3 bounds after conversion."""
_UNIT_SCALE: dict[str, tuple[str, float]] = {
    unit: (family, factor)
    for family, units in _UNIT_FAMILIES.items()
    for unit, factor in units.items()
}


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """What ingest admits: caps, the out-of-range policy and the catalogue it judges by."""

    out_of_range: OutOfRange = "refuse"
    out_of_range_by_metric: Mapping[str, OutOfRange] = field(
        default_factory=lambda: MappingProxyType({})
    )
    max_metrics: int = 300
    max_payload_bytes: int = 64 * 1024
    catalogue: Mapping[str, Metric] = field(default_factory=lambda: MappingProxyType(BY_NAME))

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> AdmissionPolicy:
        """The policy of ``ingest`` settings."""
        return cls(
            out_of_range=settings.out_of_range,
            out_of_range_by_metric=MappingProxyType(dict(settings.out_of_range_metrics)),
            max_metrics=settings.max_metrics,
            max_payload_bytes=settings.max_payload_bytes,
        )

    def action(self, metric: str) -> OutOfRange:
        """What to do with an out-of-range value of ``metric`` (a bare catalogue name)."""
        return self.out_of_range_by_metric.get(metric, self.out_of_range)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Readings of one message refused for one reason; the rest of the message is stored."""

    reason: str
    detail: str
    metrics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Admitted:
    """What :func:`admit` made of one message's readings."""

    readings: tuple[Reading, ...]
    """The readings to store (out-of-range ones flagged, under the ``flag`` policy)."""
    refusals: tuple[Refusal, ...] = ()
    flagged: tuple[str, ...] = ()
    """Irregularity texts of values stored flagged invalid (one per metric, without the value,
    so the per-device counts stay a handful of rows)."""


def check_size(size: int, policy: AdmissionPolicy) -> None:
    """Refuse a payload larger than the cap before anything decodes it.

    Raises
    ------
    DecodeError
        ``too_large``, naming the size and the cap.
    """
    if size > policy.max_payload_bytes:
        raise DecodeError(
            "too_large",
            f"{size} bytes exceeds ingest.max_payload_bytes {policy.max_payload_bytes}",
        )


def registered_metrics(device: Device | None) -> frozenset[str] | None:
    """The metric names the registry lists for ``device``; ``None`` when it lists none (or the
    device is not in the registry), and the catalogue decides."""
    if device is None or not device.metrics:
        return None
    return frozenset(device.metrics)


def admit(
    readings: Sequence[Reading],
    registered: Collection[str] | None,
    policy: AdmissionPolicy,
) -> Admitted:
    """Judge one message's readings.

    Parameters
    ----------
    readings
        What the codec decoded from one payload.
    registered
        Metric names registered for the sending device (bare names, as in the registry); ``None``
        when the registry is silent: then any catalogue metric is accepted. A name is judged by
        its part before the first ``.``, and what follows must be an aggregate suffix of
        :data:`AGGREGATE_SUFFIXES` (``so2.avg_1h``). An HJ 212 code with no catalogue metric
        arrives as its lower-cased code (``a99001``): registering that name admits it.
    policy
        Caps and the out-of-range policy.

    Returns
    -------
    Admitted
        Readings to store, refusals (at most one per reason) and flagged irregularities.

    Raises
    ------
    DecodeError
        ``too_many_metrics`` when the message carries more readings than ``policy.max_metrics``:
        such a message is refused whole.
    """
    if len(readings) > policy.max_metrics:
        raise DecodeError(
            "too_many_metrics",
            f"{len(readings)} metrics in one message exceeds ingest.max_metrics"
            f" {policy.max_metrics}",
        )
    kept: list[Reading] = []
    unknown: list[str] = []
    out_of_range: list[tuple[str, str]] = []
    flagged: list[str] = []
    catalogue = policy.catalogue
    known = catalogue if registered is None else registered
    for reading in readings:
        base, _, suffix = reading.metric.partition(".")
        if suffix not in AGGREGATE_SUFFIXES or base not in known:
            unknown.append(reading.metric)
            continue
        metric = catalogue.get(base)
        # Every reading of a message takes this path, and nearly all are inside their range:
        # the cheap test first, the explanation only for a value outside.
        if metric is None or _in_range(reading, metric, suffix):
            kept.append(reading)
            continue
        problem = _range_problem(reading, metric, suffix)
        if problem is None:
            kept.append(reading)
        elif policy.action(base) == "refuse":
            out_of_range.append((reading.metric, problem))
        else:
            flagged.append(f"out of range {reading.metric}: stored flagged {INVALID_FLAG}")
            # A value already flagged (maintenance, calibration) keeps what the logger said.
            kept.append(replace(reading, flag=INVALID_FLAG) if reading.is_normal else reading)
    refusals: list[Refusal] = []
    if unknown:
        allowed = "the catalogue" if registered is None else "the device's registered metrics"
        refusals.append(
            Refusal(
                "unknown_metric",
                f"not in {allowed}: {_listing(unknown)}",
                tuple(unknown),
            )
        )
    if out_of_range:
        refusals.append(
            Refusal(
                "out_of_range",
                _listing([text for _, text in out_of_range]),
                tuple(name for name, _ in out_of_range),
            )
        )
    return Admitted(tuple(kept), tuple(refusals), tuple(dict.fromkeys(flagged)))


def bounds_for(metric: Metric, suffix: str) -> tuple[float, float]:
    """The physical range of ``metric`` with aggregate ``suffix``, in the catalogue unit."""
    if suffix.startswith("cou_"):
        return COUNT_BOUNDS
    # Averages, minima and maxima of a period, and values converted to reference oxygen (zs),
    # are the quantity itself.
    return metric.bounds


def _in_range(reading: Reading, metric: Metric, suffix: str) -> bool:
    """True when ``reading`` is inside its metric's physical range (what :func:`_range_problem`
    explains when it is not; a value that is not a number is never inside)."""
    if suffix.startswith("cou_"):
        lo, hi = COUNT_BOUNDS
        return lo <= reading.value <= hi
    lo, hi = metric.bounds
    value, unit = reading.value, reading.unit
    if unit and unit != metric.unit:
        value = _in_unit(value, unit, metric.unit)[0]
    return lo <= value <= hi


def _range_problem(reading: Reading, metric: Metric, suffix: str) -> str | None:
    """Why ``reading`` is outside its metric's physical range, or ``None`` when it is inside."""
    lo, hi = bounds_for(metric, suffix)
    value = reading.value
    if not math.isfinite(value):  # codecs refuse these first; a Reading cannot hold one
        return f"{reading.metric}={value!r} is not finite"
    unit = metric.unit
    if not suffix.startswith("cou_"):
        value, unit = _in_unit(value, reading.unit, metric.unit)
    if lo <= value <= hi:
        return None
    stated = "" if reading.unit in ("", unit) else f" (sent as {reading.value:g} {reading.unit})"
    return f"{reading.metric}={value:g}{stated} outside {lo:g}..{hi:g} {unit}"


def _in_unit(value: float, unit: str, target: str) -> tuple[float, str]:
    """``value`` in ``unit`` converted to ``target`` when both are of one family; else as is."""
    if unit == target or not unit:
        return value, target
    have, want = _UNIT_SCALE.get(unit), _UNIT_SCALE.get(target)
    if have is None or want is None or have[0] != want[0]:
        return value, target
    return value * have[1] / want[1], target


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_DETAIL_ITEMS])
    more = len(items) - MAX_DETAIL_ITEMS
    return shown + (f" and {more} more" if more > 0 else "")
