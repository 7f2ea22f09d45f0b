"""The metric catalogue: Farsight's metric names, their units and their HJ 212 codes.

Metric names are short, lower-case and unit-free (``so2``, ``pm25``); the unit travels in
``Reading.unit``. HJ 212-2017 pollutant codes and the older 2005-style names map onto them.

Each metric has a physical range (``bounds``, in its catalogue unit): a value outside it is not a
measurement of the quantity at all (a negative concentration, 1e308), and ingest refuses or flags
it (``ingest/admission.py``). The bounds are deliberately generous: they mark what no instrument
on a real site can report, not what is unusual or illegal (exceedances are the rules' business).
Where a metric is reported in two units (ambient SO2 in µg/m3, stack SO2 in mg/m3), the bound
covers both readings of the number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    """One measured quantity."""

    name: str
    unit: str
    label: str
    hj212: str | None = None
    hj212_2005: tuple[str, ...] = ()
    bounds: tuple[float, float] = (-math.inf, math.inf)
    """Physical range (lowest, highest) in ``unit``, both inclusive."""


# Bounds of gas concentrations: the top of the widest CEMS analyser ranges (HJ 76-2017 lists
# ranges up to a few thousand mg/m3; raw flue gas of high-sulphur coal reaches ~10,000 ppm SO2,
# ~28,600 mg/m3), rounded up. Ambient analysers' full scales (HJ 193/654: 0..1 ppm for SO2, NO2,
# O3; 0..50 ppm CO) are far below them.
_PPM_10K_SO2 = 30_000.0  # 10,000 ppm SO2 = 28,600 mg/m3
_PPM_10K_NOX = 21_000.0  # 10,000 ppm NOx as NO2 = 20,500 mg/m3
_PPM_10K_NO = 14_000.0  # 10,000 ppm NO = 13,400 mg/m3
_CO_10PCT = 125_000.0  # 10 % CO by volume = 125,000 mg/m3 (top of infrared CO analysers)
# Particulate: β-ray / light-scattering ambient monitors read up to 10 mg/m3 (10,000 µg/m3); dust
# storms have given hourly PM10 near 10,000 µg/m3 (Beijing, March 2021), so twice the full scale.
_DUST_UG = 20_000.0
_TSP_UG = 100_000.0  # construction-site TSP monitors (HJ 653 class) to 100 mg/m3
_STACK_DUST_MG = 100_000.0  # 100 g/m3: raw flue gas upstream of any filter is below this
_PERCENT = (0.0, 100.0)  # volume fractions, relative humidity
_ONE = (0.0, 1.0)  # analyser confidences and on/off states

CATALOGUE: tuple[Metric, ...] = (
    # Ambient air (GB 3095-2012) and stack gases (HJ 75-2017). Gas concentrations in mg/m3 at the
    # stack and µg/m3 (CO mg/m3) in ambient air, as the standards state them.
    Metric("so2", "mg/m3", "SO2", "a21026", ("02", "SO2"), bounds=(0.0, _PPM_10K_SO2)),
    Metric("nox", "mg/m3", "NOx", "a21002", ("03", "NOX", "NOx"), bounds=(0.0, _PPM_10K_NOX)),
    Metric("no2", "ug/m3", "NO2", "a21004", ("NO2",), bounds=(0.0, _PPM_10K_NOX)),
    Metric("no", "mg/m3", "NO", "a21003", ("NO",), bounds=(0.0, _PPM_10K_NO)),
    Metric("co", "mg/m3", "CO", "a21005", ("04", "CO"), bounds=(0.0, _CO_10PCT)),
    # O3: ambient only; 10 ppm (21,400 µg/m3) is ten times an ozone analyser's full scale.
    Metric("o3", "ug/m3", "O3", "a05024", ("O3",), bounds=(0.0, 21_400.0)),
    Metric("pm25", "ug/m3", "PM2.5", "a34004", ("PM25", "PM2.5"), bounds=(0.0, _DUST_UG)),
    Metric("pm10", "ug/m3", "PM10", "a34002", ("PM10",), bounds=(0.0, _DUST_UG)),
    Metric("tsp", "ug/m3", "TSP", "a34001", ("TSP",), bounds=(0.0, _TSP_UG)),
    Metric(
        "particulate",
        "mg/m3",
        "Particulate (smoke dust)",
        "a34013",
        ("01", "PM"),
        bounds=(0.0, _STACK_DUST_MG),
    ),
    Metric("o2", "%", "O2", "a19001", ("S01", "O2"), bounds=_PERCENT),
    # Flue gas flow: a 1,000 MW coal unit emits ~3.5e6 m3/h; 1e8 leaves a factor of 25.
    Metric("flue_flow", "m3/h", "Flue gas flow", "a00000", ("B02",), bounds=(0.0, 1e8)),
    # Flue gas temperature: below any outdoor air (-60) up to furnace exit (1,500 degC).
    Metric("flue_temp", "degC", "Flue gas temperature", "a01012", ("S03",), bounds=(-60.0, 1500.0)),
    # Flue gas pressure: gauge static pressure can be a fan's draught below ambient (never below
    # -101.325 kPa, a vacuum) and an absolute reading ~101 kPa; 1,000 kPa is far above both.
    Metric(
        "flue_pressure",
        "kPa",
        "Flue gas pressure",
        "a01013",
        ("S08",),
        bounds=(-101.325, 1000.0),
    ),
    Metric("flue_humidity", "%", "Flue gas humidity", "a01014", ("S05",), bounds=_PERCENT),
    # Flue gas velocity: stacks are designed for 10..30 m/s (GB 50051); 150 m/s is beyond a fan.
    Metric("flue_velocity", "m/s", "Flue gas velocity", "a01011", ("S02",), bounds=(0.0, 150.0)),
    # Air temperature: the records on Earth are -89.2 (Vostok) and 56.7 degC (Death Valley).
    Metric("temp", "degC", "Air temperature", "a01001", ("T",), bounds=(-90.0, 70.0)),
    Metric("humidity", "%", "Relative humidity", "a01002", ("RH",), bounds=_PERCENT),
    # Air pressure: ~31 kPa on Everest's summit, record high 108.4 kPa (Mongolia, 2001).
    Metric("pressure", "kPa", "Air pressure", "a01006", ("P",), bounds=(30.0, 115.0)),
    # Wind speed: the highest gust measured is 113 m/s (Barrow Island, 1996).
    Metric("wind_speed", "m/s", "Wind speed", "a01007", ("WS",), bounds=(0.0, 120.0)),
    Metric("wind_dir", "deg", "Wind direction", "a01008", ("WD",), bounds=(0.0, 360.0)),
    # Noise: 194 dB is the loudest undistorted sound in air at sea level; LAeq is never below 0
    # on a sound level meter (IEC 61672 class 1 meters floor near 20 dB(A)).
    Metric("noise", "dB(A)", "Noise level (LAeq)", "LA", ("LA", "B03"), bounds=(0.0, 194.0)),
    # Water (outfalls). Concentrations: high-strength industrial wastewater (landfill leachate,
    # fermentation) reaches tens of thousands of mg/L COD and thousands of mg/L NH3-N; the
    # bounds are a few times those.
    Metric("cod", "mg/L", "COD", "w01018", ("011",), bounds=(0.0, 200_000.0)),
    Metric("nh3n", "mg/L", "NH3-N", "w21003", ("060",), bounds=(0.0, 20_000.0)),
    Metric("ph", "pH", "pH", "w01001", ("001",), bounds=(0.0, 14.0)),  # the pH scale of water
    Metric("tp", "mg/L", "Total phosphorus", "w21011", ("101",), bounds=(0.0, 20_000.0)),
    Metric("tn", "mg/L", "Total nitrogen", "w21001", ("065",), bounds=(0.0, 50_000.0)),
    # Effluent flow: 1e6 L/s (1,000 m3/s) is a large river; the largest outfalls are ~20 m3/s.
    Metric("water_flow", "L/s", "Effluent flow", "w00000", ("B01",), bounds=(0.0, 1e6)),
    # Plant state, used by cross-sensor rules (running 1, stopped 0).
    Metric("running", "1", "Production running", bounds=_ONE),
    # Weigh-in-motion: the heaviest legal Chinese truck is 49 t (GB 1589-2016); abnormal loads on
    # modular trailers reach ~200 t, beyond what a road WIM scale weighs.
    Metric("gross_weight", "t", "Gross vehicle weight", bounds=(0.0, 200.0)),
    # Axles: 2..6 on ordinary trucks, modular heavy-haul trailers carry a few dozen.
    Metric("axles", "1", "Axle count", bounds=(0.0, 100.0)),
    # Speed: no road vehicle on a WIM lane passes at 300 km/h.
    Metric("speed", "km/h", "Vehicle speed", bounds=(0.0, 300.0)),
    # Video detections (fs/v1/.../{camera}/detection): the analyser's confidence 0..1, 0 when the
    # condition has cleared. Black smoke's Ringelmann grade (GB 13271 / HJ/T 398, 0..5) is its own
    # metric.
    Metric("video_smoke", "1", "Smoke seen on camera", bounds=_ONE),
    Metric("video_fire", "1", "Fire seen on camera", bounds=_ONE),
    Metric("video_black_smoke", "1", "Black smoke seen on camera", bounds=_ONE),
    Metric(
        "video_ringelmann",
        "Ringelmann",
        "Smoke blackness (Ringelmann grade)",
        bounds=(0.0, 5.0),  # the Ringelmann chart's grades
    ),
    Metric("video_motion", "1", "Motion in a camera zone", bounds=_ONE),
    Metric("video_camera_covered", "1", "Camera covered or blinded", bounds=_ONE),
    Metric("video_camera_defocused", "1", "Camera defocused", bounds=_ONE),
    Metric("video_camera_moved", "1", "Camera moved off its view", bounds=_ONE),
    Metric("video_stopped_vehicle", "1", "Vehicle stopped in a camera zone", bounds=_ONE),
    Metric(
        "video_stream_lost",
        "1",
        "Camera stream lost (1 while lost, 0 once frames flow again)",
        bounds=_ONE,
    ),
    Metric("video_intrusion", "1", "Person in a camera's restricted zone", bounds=_ONE),
    # Running totals of a counting line: the detection codec refuses counts above 1e12.
    Metric(
        "video_count_forward",
        "1",
        "Vehicles across a camera's counting line, forward (running total)",
        bounds=(0.0, 1e12),
    ),
    Metric(
        "video_count_backward",
        "1",
        "Vehicles across a camera's counting line, backward (running total)",
        bounds=(0.0, 1e12),
    ),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}
BY_HJ212: dict[str, Metric] = {}
for _m in CATALOGUE:
    if _m.hj212:
        BY_HJ212[_m.hj212] = _m
    for _old in _m.hj212_2005:
        BY_HJ212.setdefault(_old, _m)


_BY_CODE_FOLDED: dict[str, Metric] = {}
for _code, _m in BY_HJ212.items():
    _BY_CODE_FOLDED.setdefault(_code.casefold(), _m)


def by_hj212_code(code: str) -> Metric | None:
    """The catalogue metric of an HJ 212 pollutant code, in any letter case (``a34004``,
    ``A34004``, the 2005-style ``PM25`` or ``pm25``): HJ 212 codes name the same pollutant
    whatever case a data logger writes them in."""
    return BY_HJ212.get(code) or _BY_CODE_FOLDED.get(code.casefold())


def canonical_metric(name: str) -> str:
    """The one spelling of a metric name that the registry, the codecs and admission share.

    A catalogue name in any case is that name (``PM25`` -> ``pm25``); an HJ 212 code of a
    catalogue metric is its name (``a34004``/``A34004`` -> ``pm25``); any other name is
    lower-cased, as the hj212 codec writes a code it does not know (``A99001`` -> ``a99001``).
    An aggregate suffix (``.avg_1h``) is kept, lower-cased.
    """
    base, dot, suffix = name.partition(".")
    folded = base.casefold()
    if folded not in BY_NAME:
        metric = by_hj212_code(base)
        if metric is not None:
            folded = metric.name
    return folded + dot + suffix.lower()


def unit_of(metric: str, default: str = "") -> str:
    """The catalogue unit of ``metric`` (aggregate suffixes such as ``.avg_1h`` ignored)."""
    m = BY_NAME.get(metric.split(".", 1)[0])
    return m.unit if m else default
