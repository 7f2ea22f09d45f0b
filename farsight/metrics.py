"""The metric catalogue: Farsight's metric names, their units and their HJ 212 codes.

Metric names are short, lower-case and unit-free (``so2``, ``pm25``); the unit travels in
``Reading.unit``. HJ 212-2017 pollutant codes and the older 2005-style names map onto them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    """One measured quantity."""

    name: str
    unit: str
    label: str
    hj212: str | None = None
    hj212_2005: tuple[str, ...] = ()


CATALOGUE: tuple[Metric, ...] = (
    # Ambient air (GB 3095-2012) and stack gases (HJ 75-2017). Gas concentrations in mg/m3 at the
    # stack and µg/m3 (CO mg/m3) in ambient air, as the standards state them.
    Metric("so2", "mg/m3", "SO2", "a21026", ("02", "SO2")),
    Metric("nox", "mg/m3", "NOx", "a21002", ("03", "NOX", "NOx")),
    Metric("no2", "ug/m3", "NO2", "a21004", ("NO2",)),
    Metric("no", "mg/m3", "NO", "a21003", ("NO",)),
    Metric("co", "mg/m3", "CO", "a21005", ("04", "CO")),
    Metric("o3", "ug/m3", "O3", "a05024", ("O3",)),
    Metric("pm25", "ug/m3", "PM2.5", "a34004", ("PM25", "PM2.5")),
    Metric("pm10", "ug/m3", "PM10", "a34002", ("PM10",)),
    Metric("tsp", "ug/m3", "TSP", "a34001", ("TSP",)),
    Metric("particulate", "mg/m3", "Particulate (smoke dust)", "a34013", ("01", "PM")),
    Metric("o2", "%", "O2", "a19001", ("S01", "O2")),
    Metric("flue_flow", "m3/h", "Flue gas flow", "a00000", ("B02",)),
    Metric("flue_temp", "degC", "Flue gas temperature", "a01012", ("S03",)),
    Metric("flue_pressure", "kPa", "Flue gas pressure", "a01013", ("S08",)),
    Metric("flue_humidity", "%", "Flue gas humidity", "a01014", ("S05",)),
    Metric("flue_velocity", "m/s", "Flue gas velocity", "a01011", ("S02",)),
    Metric("temp", "degC", "Air temperature", "a01001", ("T",)),
    Metric("humidity", "%", "Relative humidity", "a01002", ("RH",)),
    Metric("pressure", "kPa", "Air pressure", "a01006", ("P",)),
    Metric("wind_speed", "m/s", "Wind speed", "a01007", ("WS",)),
    Metric("wind_dir", "deg", "Wind direction", "a01008", ("WD",)),
    Metric("noise", "dB(A)", "Noise level (LAeq)", "LA", ("LA", "B03")),
    # Water (outfalls).
    Metric("cod", "mg/L", "COD", "w01018", ("011",)),
    Metric("nh3n", "mg/L", "NH3-N", "w21003", ("060",)),
    Metric("ph", "pH", "pH", "w01001", ("001",)),
    Metric("tp", "mg/L", "Total phosphorus", "w21011", ("101",)),
    Metric("tn", "mg/L", "Total nitrogen", "w21001", ("065",)),
    Metric("water_flow", "L/s", "Effluent flow", "w00000", ("B01",)),
    # Plant state, used by cross-sensor rules (running 1, stopped 0).
    Metric("running", "1", "Production running"),
    # Weigh-in-motion.
    Metric("gross_weight", "t", "Gross vehicle weight"),
    Metric("axles", "1", "Axle count"),
    Metric("speed", "km/h", "Vehicle speed"),
    # Video detections (fs/v1/.../{camera}/detection): the analyser's confidence 0..1, 0 when the
    # condition has cleared. Black smoke's Ringelmann grade (GB 13271 / HJ/T 398, 0..5) is its own
    # metric.
    Metric("video_smoke", "1", "Smoke seen on camera"),
    Metric("video_fire", "1", "Fire seen on camera"),
    Metric("video_black_smoke", "1", "Black smoke seen on camera"),
    Metric("video_ringelmann", "Ringelmann", "Smoke blackness (Ringelmann grade)"),
    Metric("video_motion", "1", "Motion in a camera zone"),
    Metric("video_camera_covered", "1", "Camera covered or blinded"),
    Metric("video_camera_defocused", "1", "Camera defocused"),
    Metric("video_camera_moved", "1", "Camera moved off its view"),
    Metric("video_stopped_vehicle", "1", "Vehicle stopped in a camera zone"),
    Metric("video_stream_lost", "1", "Camera stream lost (1 while lost, 0 once frames flow again)"),
    Metric("video_intrusion", "1", "Person in a camera's restricted zone"),
    Metric(
        "video_count_forward",
        "1",
        "Vehicles across a camera's counting line, forward (running total)",
    ),
    Metric(
        "video_count_backward",
        "1",
        "Vehicles across a camera's counting line, backward (running total)",
    ),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}
BY_HJ212: dict[str, Metric] = {}
for _m in CATALOGUE:
    if _m.hj212:
        BY_HJ212[_m.hj212] = _m
    for _old in _m.hj212_2005:
        BY_HJ212.setdefault(_old, _m)


def unit_of(metric: str, default: str = "") -> str:
    """The catalogue unit of ``metric`` (aggregate suffixes such as ``.avg_1h`` ignored)."""
    m = BY_NAME.get(metric.split(".", 1)[0])
    return m.unit if m else default
