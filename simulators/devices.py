"""Value models of simulated devices: one class per device kind, each a pure function of time.

A model is built once per device from ``(seed, site, device)`` and then answers
``sample(t, window_s)`` with the readings the device would send at simulated time ``t``. Every
number is a deterministic function of ``(seed, site id, device id, t)``: the random generators
are seeded from a stable BLAKE2 hash of those values (never Python's salted ``hash()``), so a
seed reproduces the same readings in any process, in any order of calls, on any machine.

Natural values stay below every limit (site permit, GB 3095-2012 for ambient air, the legal
gross weight for trucks) and never repeat exactly for long: every violation in a simulated run
is one a scenario injected, so a scenario's ground truth is complete (see
:mod:`simulators.scenarios`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np

from farsight.clock import BEIJING, to_epoch_ms
from farsight.types import Device, Site

AMBIENT_LIMITS: Mapping[str, float] = {
    "pm25": 75.0,
    "pm10": 150.0,
    "so2": 150.0,
    "no2": 80.0,
    "o3": 160.0,
    "co": 4.0,
}
"""GB 3095-2012 grade II limits for ambient air, in the units the stations send (ug/m3, CO
mg/m3): 24-hour means, O3 the 8-hour mean. Ambient sites carry no permit, so these apply."""

DEVICE_UNITS: Mapping[str, Mapping[str, str]] = {
    "air_quality": {
        "pm25": "ug/m3",
        "pm10": "ug/m3",
        "so2": "ug/m3",
        "no2": "ug/m3",
        "o3": "ug/m3",
        "co": "mg/m3",
    },
}
"""Units a device kind reports in, where they differ by setting: ambient SO2 is in ug/m3
(GB 3095-2012) while the catalogue's ``so2`` is the stack unit, mg/m3 (HJ 75-2017)."""

LEGAL_GROSS_WEIGHT_T: Mapping[int, float] = {2: 18.0, 3: 25.0, 4: 31.0, 5: 43.0, 6: 49.0}
"""Gross-weight limits in tonnes by axle count (GB 1589-2016, Ministry of Transport order 2016
No. 62). The lower figure is used where the order allows more for a combination (3 axles 27 t,
4 axles 36 t): the simulator never needs to know a truck's configuration."""

DECIMALS: Mapping[str, int] = {
    "pm25": 1, "pm10": 1, "tsp": 1, "so2": 2, "no2": 1, "o3": 1, "co": 3,
    "nox": 2, "particulate": 2, "o2": 2, "flue_flow": 0, "flue_temp": 1,
    "cod": 1, "nh3n": 3, "ph": 2, "water_flow": 1, "noise": 1,
    "gross_weight": 2, "axles": 0, "speed": 1, "running": 0,
}  # fmt: skip
"""Decimal places each metric is reported with, as typical analysers and loggers send them."""

NATURAL_FRACTION = 0.9
"""Natural concentrations stay below this fraction of their limit (soft-capped, never clipped:
a clipped series would sit at one value and look like a frozen sensor)."""

_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # GA 36-2018 serials never use I or O
_CITY_PLATE = {"宜昌": "E", "孝感": "K", "武汉": "A", "襄阳": "F", "荆州": "D", "荆门": "H"}
_OTHER_HUBEI = ("A", "F", "D", "H", "J", "L")
_OTHER_PROVINCES = ("湘A", "湘F", "豫A", "豫R", "渝B", "川A", "赣A", "陕A", "皖A")


def stable_rng(seed: int, *parts: object) -> np.random.Generator:
    """A numpy generator seeded from ``seed`` and ``parts`` through a stable hash.

    Parameters
    ----------
    seed
        Non-negative run seed.
    parts
        Anything with a stable ``str()``: site id, device id, a purpose, epoch milliseconds.

    Returns
    -------
    numpy.random.Generator
        PCG64 generator; the same arguments give the same stream in every process.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    digest = hashlib.blake2b(
        "\x1f".join(str(p) for p in parts).encode("utf-8"), digest_size=16
    ).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def legal_gross_weight_t(axles: int) -> float:
    """Legal gross weight in tonnes for a truck with ``axles`` axles (6 or more: 49 t)."""
    if isinstance(axles, bool) or not isinstance(axles, int) or axles < 2:
        raise ValueError(f"a truck has at least 2 axles, got {axles!r}")
    return LEGAL_GROSS_WEIGHT_T[min(axles, 6)]


def round_metric(metric: str, value: float) -> float:
    """``value`` rounded to the decimals the metric is reported with (3 when unknown)."""
    return round(float(value), DECIMALS.get(metric, 3)) + 0.0  # + 0.0 turns -0.0 into 0.0


def soft_cap(x: float, cap: float, knee: float | None = None) -> float:
    """Identity below ``knee`` (default 0.8 * cap), then a tanh approach to ``cap``, never reached.

    Keeps a value under its cap while it still moves with the noise, unlike a clip.
    """
    knee = 0.8 * cap if knee is None else knee
    if x <= knee:
        return x
    span = cap - knee
    # tanh rounds to 1.0 far out; stay one float step under the cap even there.
    return min(knee + span * math.tanh((x - knee) / span), math.nextafter(cap, -math.inf))


def _bump(h: float, centre: float, width: float) -> float:
    """A Gaussian bump on the 24-hour circle: 1 at ``centre`` hours, falling off over ``width``."""
    d = (h - centre + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / width) ** 2)


@dataclass(frozen=True, slots=True)
class Sample:
    """What a device sends at one time: values, their HJ 212 data flags and extra payload keys.

    The mappings are not copied; treat them as read-only.
    """

    ts: datetime
    values: Mapping[str, float]
    flags: Mapping[str, str]
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Clock:
    """Simulated time split the ways the models use it."""

    hour: float  # Beijing local time of day, 0..24
    doy: int  # day of year, 1..366
    days: float  # days since the Unix epoch


def _clock(t: datetime) -> _Clock:
    lt = t.astimezone(BEIJING)
    hour = lt.hour + lt.minute / 60.0 + (lt.second + lt.microsecond / 1e6) / 3600.0
    return _Clock(hour=hour, doy=lt.timetuple().tm_yday, days=to_epoch_ms(t) / 86_400_000.0)


class DeviceModel:
    """Base of the value models: profile drawn once, noise drawn per sample time.

    Parameters
    ----------
    site, device
        The registry entries; limits, tags and the city shape the values.
    seed
        Run seed; with the site and device ids it fixes every number the model produces.

    Notes
    -----
    ``metrics`` is the device's metric list, or the model's own when the registry lists none;
    metrics the model does not know are not produced.
    """

    kind: ClassVar[str] = ""
    produces: ClassVar[tuple[str, ...]] = ()

    def __init__(self, site: Site, device: Device, seed: int) -> None:
        if device.kind != self.kind:
            raise ValueError(
                f"{type(self).__name__} models {self.kind!r} devices, not {device.kind!r}"
            )
        self.site = site
        self.device = device
        self.seed = seed
        wanted = device.metrics or self.produces
        self.metrics: tuple[str, ...] = tuple(m for m in wanted if m in self.produces)
        profile = stable_rng(seed, site.id, device.id, "profile")
        # Stations of one city share the weather, so their readings rise and fall together.
        weather = stable_rng(seed, site.city or site.id, "weather")
        self._weather_phase = tuple(float(p) for p in weather.uniform(0.0, 2 * math.pi, 2))
        self._setup(profile)

    def _setup(self, rng: np.random.Generator) -> None:
        """Draw the device's fixed character (base levels, capacity, phases)."""

    def sample(self, t: datetime, window_s: float) -> list[Sample]:
        """The messages the device sends for simulated time ``t``.

        Parameters
        ----------
        t
            Timezone-aware simulated time of the round.
        window_s
            Simulated seconds since the previous round: event devices (weigh stations) report
            what happened in ``(t - window_s, t]``; sampling devices send one reading at ``t``.

        Returns
        -------
        list of Sample
            Time-ordered; one element for sampling devices, zero or more for event devices.
        """
        if t.tzinfo is None:
            raise ValueError("t must be timezone-aware")
        values, flags = self._values(t, _clock(t), self._noise(t))
        keep = {m: round_metric(m, values[m]) for m in self.metrics if m in values}
        return [Sample(ts=t, values=keep, flags={m: flags.get(m, "N") for m in keep})]

    def _values(
        self, t: datetime, c: _Clock, rng: np.random.Generator
    ) -> tuple[dict[str, float], dict[str, str]]:
        raise NotImplementedError

    def _noise(self, t: datetime, *purpose: object) -> np.random.Generator:
        return stable_rng(self.seed, self.site.id, self.device.id, *purpose, to_epoch_ms(t))

    def _weather(self, c: _Clock) -> float:
        """Synoptic weather factor around 1 (0.66..1.34): fronts every few days."""
        p1, p2 = self._weather_phase
        return (
            1.0
            + 0.22 * math.sin(2 * math.pi * c.days / 3.7 + p1)
            + 0.12 * math.sin(2 * math.pi * c.days / 9.3 + p2)
        )

    def _limit(self, metric: str, default: float) -> float:
        limit = self.site.limit(metric)
        return float(limit) if limit is not None else default

    @staticmethod
    def _winter(c: _Clock, amplitude: float) -> float:
        """Seasonal factor peaking mid-January (heating season, stagnant winter air)."""
        return 1.0 + amplitude * math.cos(2 * math.pi * (c.doy - 15) / 365.0)


class AirQualityModel(DeviceModel):
    """Ambient air-quality station (GB 3095-2012 pollutants, ug/m3; CO mg/m3).

    PM2.5 follows the season (winter high), the weather shared by the city's stations and a
    diurnal cycle with morning and evening peaks and an afternoon dip when the mixing layer is
    deep; PM10 is PM2.5 times a coarse-fraction ratio; NO2 and CO follow rush-hour traffic; O3
    is photochemical, peaking mid-afternoon and in summer. All stay under
    ``NATURAL_FRACTION`` of the GB 3095-2012 grade II limits.
    """

    kind = "air_quality"
    produces = ("pm25", "pm10", "so2", "no2", "o3", "co")

    def _setup(self, rng: np.random.Generator) -> None:
        tags = set(self.site.tags)
        self.pm25_base = float(rng.uniform(22.0, 32.0))
        self.pm10_ratio = float(rng.uniform(1.45, 1.75))
        self.no2_base = float(rng.uniform(16.0, 26.0)) + (6.0 if "urban" in tags else 0.0)
        self.so2_base = float(rng.uniform(5.0, 10.0)) + (4.0 if "industrial_park" in tags else 0.0)
        self.o3_amp = float(rng.uniform(55.0, 85.0))
        self.co_base = float(rng.uniform(0.45, 0.7))

    def _values(
        self, t: datetime, c: _Clock, rng: np.random.Generator
    ) -> tuple[dict[str, float], dict[str, str]]:
        h = c.hour
        weather = self._weather(c)
        diurnal = 1.0 + 0.15 * _bump(h, 8, 2) + 0.2 * _bump(h, 21, 2.5) - 0.18 * _bump(h, 15, 3)
        traffic = 1.0 + 0.35 * _bump(h, 8, 1.5) + 0.3 * _bump(h, 18, 1.8) - 0.2 * _bump(h, 3, 3)
        z = rng.standard_normal(6)
        cap = {m: NATURAL_FRACTION * AMBIENT_LIMITS[m] for m in self.produces}
        pm25 = soft_cap(
            self.pm25_base * self._winter(c, 0.35) * weather * diurnal * math.exp(0.06 * z[0]),
            cap["pm25"],
        )
        pm10 = soft_cap(pm25 * self.pm10_ratio * math.exp(0.04 * z[1]), cap["pm10"])
        no2 = soft_cap(
            self.no2_base * traffic * math.sqrt(weather) * math.exp(0.08 * z[2]), cap["no2"]
        )
        so2 = soft_cap(
            self.so2_base * self._winter(c, 0.25) * math.sqrt(weather) * math.exp(0.1 * z[3]),
            cap["so2"],
        )
        # Summer-peaking photochemistry: sunlight from about 07:00 to 20:00, maximum mid-afternoon.
        sun = max(0.0, math.sin(math.pi * (h - 7.0) / 13.0)) ** 1.6
        summer = 1.0 + 0.3 * math.cos(2 * math.pi * (c.doy - 196) / 365.0)
        o3 = soft_cap((10.0 + self.o3_amp * summer * sun) * math.exp(0.08 * z[4]), cap["o3"])
        co = soft_cap(
            self.co_base
            * math.sqrt(self._winter(c, 0.35) * traffic * weather)
            * math.exp(0.06 * z[5]),
            cap["co"],
        )
        return {
            "pm25": pm25,
            "pm10": max(pm10, pm25),
            "so2": so2,
            "no2": no2,
            "o3": o3,
            "co": co,
        }, {}


class CemsModel(DeviceModel):
    """Continuous emission monitoring on a stack (HJ 75-2017), concentrations in mg/m3.

    Plant load ``L`` (0.4..1) follows the grid's daily demand. Flue-gas flow and temperature
    rise with load; O2 falls with it (less excess air at high firing rate), which is the
    physical consistency regulators check. Pollutants sit around 40-60 % of the permit. A plant
    tagged ``shift_operation`` runs 06:00-22:00 Beijing time; stopped, it reports ``running`` 0,
    near-zero pollutants, ambient O2 (20.6 %) and temperature, a natural-draft trickle of flow,
    and HJ 212 flag ``F`` (stopped) on every analyser value.
    """

    kind = "cems"
    produces = ("so2", "nox", "particulate", "o2", "flue_flow", "flue_temp", "running")
    _DEFAULT_LIMITS: ClassVar[Mapping[str, float]] = {
        "so2": 100.0,
        "nox": 100.0,
        "particulate": 20.0,
    }

    def _setup(self, rng: np.random.Generator) -> None:
        tags = set(self.site.tags)
        self.limits = {m: self._limit(m, d) for m, d in self._DEFAULT_LIMITS.items()}
        self.q_max = float(
            rng.uniform(4.0e5, 9.0e5) if "power" in tags else rng.uniform(1.2e5, 3.5e5)
        )
        self.fraction = {
            "so2": float(rng.uniform(0.35, 0.5)),
            "nox": float(rng.uniform(0.42, 0.58)),
            "particulate": float(rng.uniform(0.3, 0.48)),
        }
        # After wet desulphurisation flue gas leaves saturated at about 50 degC; dry stacks run hot.
        if "wet_fgd" in tags:
            self.t0, self.dt = float(rng.uniform(45.0, 49.0)), float(rng.uniform(4.0, 7.0))
        else:
            self.t0, self.dt = float(rng.uniform(95.0, 120.0)), float(rng.uniform(15.0, 30.0))
        self.o2_a, self.o2_b = float(rng.uniform(9.0, 10.0)), float(rng.uniform(4.0, 4.6))
        self.load_phase = float(rng.uniform(0.0, 2 * math.pi))
        self.shifts = "shift_operation" in tags

    def running_at(self, t: datetime) -> bool:
        """Whether the plant produces at ``t`` (shift plants: 06:00-22:00 Beijing time)."""
        h = _clock(t).hour
        return not self.shifts or 6.0 <= h < 22.0

    def load(self, t: datetime) -> float:
        """Plant load 0.4..1 at ``t`` (0 when stopped)."""
        if not self.running_at(t):
            return 0.0
        return self._load(_clock(t), self._noise(t, "load"))

    def _load(self, c: _Clock, rng: np.random.Generator) -> float:
        h = c.hour
        load = (
            0.68
            + 0.14 * _bump(h, 11, 3)
            + 0.14 * _bump(h, 20, 2.5)
            - 0.12 * _bump(h, 3.5, 2.5)
            + 0.05 * math.sin(2 * math.pi * c.days / 2.3 + self.load_phase)
            + 0.015 * float(rng.standard_normal())
        )
        return min(1.0, max(0.4, load))

    def _values(
        self, t: datetime, c: _Clock, rng: np.random.Generator
    ) -> tuple[dict[str, float], dict[str, str]]:
        z = rng.standard_normal(6)
        if not self.running_at(t):
            ambient = (
                15.0
                + 8.0 * math.cos(2 * math.pi * (c.doy - 200) / 365.0)
                + 5.0 * math.sin(2 * math.pi * (c.hour - 9.0) / 24.0)
            )
            values = {
                "so2": abs(0.01 * self.limits["so2"] * z[0]),
                "nox": abs(0.01 * self.limits["nox"] * z[1]),
                "particulate": abs(0.01 * self.limits["particulate"] * z[2]),
                "o2": min(20.95, 20.6 + 0.08 * z[3]),
                "flue_flow": 0.03 * self.q_max * math.exp(0.1 * z[4]),
                "flue_temp": ambient + 0.5 * z[5],
                "running": 0.0,
            }
            # HJ 212-2017 data flag F: the monitored facility is stopped.
            return values, {m: "F" for m in values if m != "running"}
        load = self._load(c, self._noise(t, "load"))
        values = {
            "o2": min(15.0, max(2.5, self.o2_a - self.o2_b * load + 0.12 * z[3])),
            "flue_flow": self.q_max * (0.25 + 0.75 * load) * math.exp(0.012 * z[4]),
            "flue_temp": self.t0 + self.dt * load + 0.4 * z[5],
            "running": 1.0,
        }
        for i, m in enumerate(("so2", "nox", "particulate")):
            limit = self.limits[m]
            raw = limit * self.fraction[m] * (0.8 + 0.35 * load) * math.exp(0.07 * z[i])
            # Held well below the permit: values pressed just under a limit (贴限) are a fraud sign.
            values[m] = soft_cap(raw, 0.8 * limit, knee=0.65 * limit)
        return values, {}


class WaterQualityModel(DeviceModel):
    """Outfall analyser: COD and NH3-N (mg/L), pH, effluent flow (L/s).

    A municipal plant (tag ``wwtp``) discharges several hundred L/s with the town's daily
    rhythm; an industrial outfall tens of L/s, more during day shifts. Concentrations follow
    the influent load around 35-55 % (COD) and 12-30 % (NH3-N) of the permit.
    """

    kind = "water_quality"
    produces = ("cod", "nh3n", "ph", "water_flow")

    def _setup(self, rng: np.random.Generator) -> None:
        self.wwtp = "wwtp" in self.site.tags
        self.q_base = float(rng.uniform(520.0, 880.0) if self.wwtp else rng.uniform(18.0, 45.0))
        self.limits = {"cod": self._limit("cod", 50.0), "nh3n": self._limit("nh3n", 5.0)}
        self.fraction = {
            "cod": float(rng.uniform(0.35, 0.55)),
            "nh3n": float(rng.uniform(0.12, 0.3)),
        }
        self.ph0 = float(rng.uniform(6.9, 7.5))
        self.phase = float(rng.uniform(0.0, 2 * math.pi))

    def _values(
        self, t: datetime, c: _Clock, rng: np.random.Generator
    ) -> tuple[dict[str, float], dict[str, str]]:
        h = c.hour
        z = rng.standard_normal(4)
        if self.wwtp:
            shape = 1.0 + 0.18 * _bump(h, 10, 3) + 0.12 * _bump(h, 20, 3) - 0.2 * _bump(h, 4, 3)
        else:
            shape = (
                0.75
                + 0.3 / (1.0 + math.exp(-3.0 * (h - 7.0)))
                - 0.3 / (1.0 + math.exp(-3.0 * (h - 21.0)))
            )
        load = (
            1.0
            + 0.12 * math.sin(2 * math.pi * (h - 14.0) / 24.0)
            + 0.08 * math.sin(2 * math.pi * c.days / 4.1 + self.phase)
        )
        values = {"water_flow": self.q_base * shape * math.exp(0.02 * z[0])}
        for i, m in enumerate(("cod", "nh3n"), start=1):
            limit = self.limits[m]
            values[m] = soft_cap(
                limit * self.fraction[m] * load * math.exp(0.06 * z[i]), NATURAL_FRACTION * limit
            )
        values["ph"] = min(
            8.7, max(6.3, self.ph0 + 0.12 * math.sin(2 * math.pi * (h - 15.0) / 24.0) + 0.05 * z[3])
        )
        return values, {}


class DustNoiseModel(DeviceModel):
    """Construction-site dust and noise monitor: PM10 and TSP (ug/m3), noise LAeq (dB(A)).

    The city background (season, weather) plus site work from 07:00 to 19:00 Beijing time with
    a lunch break: earthworks raise PM10 and TSP, machines raise noise to 60-65 dB(A). Night
    noise stays under the GB 12523-2011 night limit (55 dB(A)), day noise 3 dB under the site
    limit (default 70), dust under ``NATURAL_FRACTION`` of the site limits.
    """

    kind = "dust_noise"
    produces = ("pm10", "tsp", "noise")

    def _setup(self, rng: np.random.Generator) -> None:
        self.bg = float(rng.uniform(45.0, 62.0))
        self.activity = float(rng.uniform(25.0, 45.0))
        self.tsp_ratio = float(rng.uniform(1.6, 1.95))
        self.noise_day = float(rng.uniform(60.0, 64.0))
        self.noise_night = float(rng.uniform(44.0, 48.0))
        self.limits = {
            "pm10": self._limit("pm10", 150.0),
            "tsp": self._limit("tsp", 300.0),
            "noise": self._limit("noise", 70.0),
        }

    @staticmethod
    def working(hour: float) -> bool:
        """Site work hours: 07:00-12:00 and 13:30-19:00 Beijing time."""
        return 7.0 <= hour < 12.0 or 13.5 <= hour < 19.0

    def _values(
        self, t: datetime, c: _Clock, rng: np.random.Generator
    ) -> tuple[dict[str, float], dict[str, str]]:
        z = rng.standard_normal(4)
        work = self.working(c.hour)
        pm10 = (
            self.bg * self._winter(c, 0.35) * self._weather(c)
            + (self.activity * math.exp(0.2 * z[0]) if work else 0.0)
        ) * math.exp(0.06 * z[1])
        pm10 = soft_cap(pm10, NATURAL_FRACTION * self.limits["pm10"])
        tsp = max(
            pm10,
            soft_cap(
                pm10 * self.tsp_ratio * math.exp(0.05 * z[2]), NATURAL_FRACTION * self.limits["tsp"]
            ),
        )
        if work:
            noise = soft_cap(
                self.noise_day + 1.5 * z[3],
                self.limits["noise"] - 3.0,
                knee=self.limits["noise"] - 5.0,
            )
        else:
            noise = soft_cap(self.noise_night + 1.2 * z[3], 52.0, knee=50.0)
        return {"pm10": pm10, "tsp": tsp, "noise": noise}, {}


class WimModel(DeviceModel):
    """Weigh-in-motion station with plate camera: one message per truck.

    Trucks arrive as a Poisson process: 90-140 an hour on an expressway, 40-70 on a national
    road, 10-18 an hour in working hours at a factory gate (tag ``source_loading``). Axles 2-6,
    loaded or empty; a loaded truck carries 70-94 % of its legal gross weight, so natural
    traffic is always legal (overloads come from scenarios). Plates are mostly the station's
    city (鄂E Yichang, 鄂K Xiaogan), some from elsewhere in Hubei and from other provinces.
    """

    kind = "wim"
    produces = ("gross_weight", "axles", "speed")
    _AXLES: ClassVar[tuple[int, ...]] = (2, 3, 4, 5, 6)
    _AXLE_P: ClassVar[tuple[float, ...]] = (0.3, 0.12, 0.08, 0.1, 0.4)
    _TARE_T: ClassVar[Mapping[int, tuple[float, float]]] = {
        2: (4.0, 7.0),
        3: (9.0, 12.0),
        4: (12.0, 15.0),
        5: (14.0, 17.0),
        6: (15.0, 18.0),
    }

    def _setup(self, rng: np.random.Generator) -> None:
        tags = set(self.site.tags)
        if "source_loading" in tags:
            self.road, self.rate_h, self.p_loaded = "gate", float(rng.uniform(10.0, 18.0)), 0.55
        elif "expressway" in tags:
            self.road, self.rate_h, self.p_loaded = (
                "expressway",
                float(rng.uniform(90.0, 140.0)),
                0.65,
            )
        else:
            self.road, self.rate_h, self.p_loaded = (
                "national_road",
                float(rng.uniform(40.0, 70.0)),
                0.6,
            )
        self.city_letter = _CITY_PLATE.get(self.site.city, "A")

    def _rate(self, hour: float) -> float:
        """Trucks per hour at ``hour`` (Beijing time)."""
        if self.road == "gate":
            return self.rate_h if 7.0 <= hour < 20.0 else 0.05 * self.rate_h
        # Freight runs around the clock on Chinese highways, a little less before dawn.
        return self.rate_h * (0.8 + 0.25 * math.sin(2 * math.pi * (hour - 9.0) / 24.0))

    def speed(self, rng: np.random.Generator) -> float:
        """A truck's speed in km/h over this station's scale."""
        if self.road == "gate":
            return min(25.0, max(3.0, 12.0 + 3.0 * float(rng.standard_normal())))
        if self.road == "expressway":
            return min(98.0, max(50.0, 78.0 + 8.0 * float(rng.standard_normal())))
        return min(80.0, max(35.0, 62.0 + 8.0 * float(rng.standard_normal())))

    def plate(self, rng: np.random.Generator) -> str:
        """A plausible plate: province character, city letter, a middle dot and 5 characters."""
        r = float(rng.random())
        if r < 0.8:
            prefix = "鄂" + self.city_letter
        elif r < 0.9:
            prefix = "鄂" + _OTHER_HUBEI[int(rng.integers(len(_OTHER_HUBEI)))]
        else:
            prefix = _OTHER_PROVINCES[int(rng.integers(len(_OTHER_PROVINCES)))]
        digits = [str(int(d)) for d in rng.integers(0, 10, 5)]
        if rng.random() < 0.35:  # many serials carry one letter
            digits[int(rng.integers(0, 5))] = _PLATE_LETTERS[int(rng.integers(len(_PLATE_LETTERS)))]
        return f"{prefix}·{''.join(digits)}"

    def sample(self, t: datetime, window_s: float) -> list[Sample]:
        """The trucks that crossed the scale in ``(t - window_s, t]``, in order of time."""
        if t.tzinfo is None:
            raise ValueError("t must be timezone-aware")
        if window_s <= 0:
            return []
        rng = stable_rng(
            self.seed,
            self.site.id,
            self.device.id,
            "trucks",
            to_epoch_ms(t),
            round(window_s * 1000),
        )
        mid = _clock(t - timedelta(seconds=window_s / 2))
        n = int(rng.poisson(self._rate(mid.hour) * window_s / 3600.0))
        # Whole milliseconds before t, distinct, so (device, metric, ts) identifies each truck.
        window_ms = round(window_s * 1000)
        back = (
            sorted({int(b) for b in rng.integers(0, window_ms, n)}, reverse=True)
            if window_ms > 0
            else []
        )
        out: list[Sample] = []
        for b in back:
            axles = int(rng.choice(self._AXLES, p=self._AXLE_P))
            limit = legal_gross_weight_t(axles)
            if rng.random() < self.p_loaded:
                weight = limit * float(rng.uniform(0.7, 0.94))
            else:
                lo, hi = self._TARE_T[axles]
                weight = float(rng.uniform(lo, hi))
            values = {"gross_weight": weight, "axles": float(axles), "speed": self.speed(rng)}
            keep = {m: round_metric(m, values[m]) for m in self.metrics}
            out.append(
                Sample(
                    ts=t - timedelta(milliseconds=b),
                    values=keep,
                    flags={m: "N" for m in keep},
                    extra={"plate": self.plate(rng)},
                )
            )
        return out

    def _values(
        self, t: datetime, c: _Clock, rng: np.random.Generator
    ) -> tuple[dict[str, float], dict[str, str]]:
        raise NotImplementedError("WimModel reports events; use sample()")


MODELS: Mapping[str, type[DeviceModel]] = {
    m.kind: m for m in (AirQualityModel, CemsModel, WaterQualityModel, DustNoiseModel, WimModel)
}
"""Value model per device kind; kinds without a model (cameras, gateways) are not simulated here."""


def make_model(site: Site, device: Device, seed: int) -> DeviceModel:
    """The value model for ``device`` at ``site``.

    Raises
    ------
    ValueError
        When the device kind has no model; the message lists the kinds that have one.
    """
    cls = MODELS.get(device.kind)
    if cls is None:
        raise ValueError(
            f"no value model for device kind {device.kind!r}; known: {', '.join(sorted(MODELS))}"
        )
    return cls(site, device, seed)
