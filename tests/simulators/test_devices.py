"""Device value models: deterministic for a seed, physically plausible, always within limits."""

from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from farsight.clock import BEIJING
from farsight.registry import load_registry
from farsight.types import HJ212_FLAGS, Device
from simulators.devices import (
    AMBIENT_LIMITS,
    MODELS,
    CemsModel,
    DustNoiseModel,
    Sample,
    WimModel,
    legal_gross_weight_t,
    make_model,
    round_metric,
    soft_cap,
    stable_rng,
)

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # 08:00 in Yichang and Xiaogan
REPO = Path(__file__).resolve().parents[2]
PLATE_RE = re.compile(r"^[\u4e00-\u9fff][A-HJ-NP-Z]·[0-9A-HJ-NP-Z]{5}$")


@pytest.fixture(scope="module")
def registry():
    return load_registry(None)


def _devices(registry, kind: str | None = None):
    # Devices the simulator plays (cameras publish detections, not modelled values).
    return [
        (s, d)
        for s in registry
        for d in s.devices
        if d.kind in MODELS and (kind is None or d.kind == kind)
    ]


def _series(model, start: datetime, step: timedelta, n: int) -> list:
    return [model.sample(start + i * step, step.total_seconds())[0] for i in range(n)]


def _local(hour: float, day: int = 0) -> datetime:
    """UTC time of ``hour`` o'clock Beijing time, ``day`` days after 2026-11-26."""
    return datetime(2026, 11, 26, tzinfo=BEIJING) + timedelta(days=day, hours=hour)


# ------------------------------------------------------------------ seeding


def test_stable_rng_depends_on_seed_and_parts_only() -> None:
    a = stable_rng(7, "site", "dev", 1).random(4)
    assert np.array_equal(a, stable_rng(7, "site", "dev", 1).random(4))
    assert not np.array_equal(a, stable_rng(8, "site", "dev", 1).random(4))
    assert not np.array_equal(a, stable_rng(7, "site", "dev", 2).random(4))
    assert not np.array_equal(a, stable_rng(7, "site", "dev2", 1).random(4))


def test_stable_rng_is_independent_of_the_python_hash_seed() -> None:
    code = (
        "from simulators.devices import stable_rng; "
        "print(stable_rng(3, 'yc-aq-xiling', 'aq1').random())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": h, "PATH": "/usr/bin:/bin"},
        ).stdout
        for h in ("1", "2", "12345")
    }
    assert len(outs) == 1


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_stable_rng_refuses_bad_seeds(seed) -> None:
    with pytest.raises(ValueError):
        stable_rng(seed, "x")


def test_every_model_is_deterministic_per_seed_and_order_free(registry) -> None:
    times = [T0 + timedelta(minutes=m) for m in (0, 1, 37, 600)]
    for site, device in _devices(registry):
        a = make_model(site, device, seed=11)
        b = make_model(site, device, seed=11)
        c = make_model(site, device, seed=12)
        forward = [a.sample(t, 60.0) for t in times]
        backward = [b.sample(t, 60.0) for t in reversed(times)][::-1]
        assert forward == backward, f"{site.id}/{device.id}"
        other = [c.sample(t, 60.0) for t in times]
        assert other != forward, f"{site.id}/{device.id}: seed has no effect"


def test_make_model_refuses_kinds_without_a_model(registry) -> None:
    site = registry.sites[0]
    with pytest.raises(
        ValueError, match="known: air_quality, cems, dust_noise, water_quality, wim"
    ):
        make_model(site, Device(id="cam1", kind="camera"), seed=1)
    with pytest.raises(ValueError, match="models 'cems' devices"):
        CemsModel(site, site.devices[0], seed=1)
    assert set(MODELS) == {"air_quality", "cems", "water_quality", "dust_noise", "wim"}


def test_naive_time_is_refused(registry) -> None:
    site, device = _devices(registry, "air_quality")[0]
    with pytest.raises(ValueError):
        make_model(site, device, 1).sample(datetime(2026, 1, 1), 60.0)


# ------------------------------------------------------------------ helpers


def test_legal_gross_weight_follows_mot_order_2016_62() -> None:
    assert [legal_gross_weight_t(a) for a in (2, 3, 4, 5, 6, 7)] == [
        18.0,
        25.0,
        31.0,
        43.0,
        49.0,
        49.0,
    ]
    for bad in (0, 1, 2.0, True):
        with pytest.raises(ValueError):
            legal_gross_weight_t(bad)  # type: ignore[arg-type]  # wrong types on purpose


def test_soft_cap_is_identity_below_the_knee_and_never_reaches_the_cap() -> None:
    assert soft_cap(50.0, 100.0) == 50.0
    values = [soft_cap(x, 100.0) for x in (81.0, 90.0, 150.0, 1e6)]
    assert values == sorted(values) and all(80.0 < v < 100.0 for v in values)
    assert round_metric("pm25", 12.345) == 12.3 and round_metric("co", -0.0001) == 0.0


# ------------------------------------------------------------------ plausibility over two days


@pytest.fixture(scope="module")
def two_days(registry):
    """Every non-WIM device sampled every 10 minutes for two days."""
    out = {}
    for site, device in _devices(registry):
        if device.kind == "wim":
            continue
        out[(site.id, device.id)] = (
            site,
            device,
            _series(make_model(site, device, 2026), T0, timedelta(minutes=10), 288),
        )
    return out


def test_values_are_finite_flagged_and_exactly_the_device_metrics(two_days) -> None:
    for site, device, samples in two_days.values():
        for s in samples:
            assert tuple(s.values) == device.metrics
            assert set(s.flags) == set(device.metrics) and set(s.flags.values()) <= HJ212_FLAGS
            assert all(math.isfinite(v) and v >= 0 for v in s.values.values())


def test_natural_values_stay_below_every_limit(two_days) -> None:
    for site, device, samples in two_days.values():
        limits = dict(site.limits) or (AMBIENT_LIMITS if device.kind == "air_quality" else {})
        for m, limit in limits.items():
            worst = max(s.values[m] for s in samples)
            assert worst < limit, f"{site.id} {m} reached {worst} (limit {limit})"


def test_air_quality_is_plausible(two_days) -> None:
    for site, device, samples in two_days.values():
        if device.kind != "air_quality":
            continue
        assert all(s.values["pm10"] >= s.values["pm25"] > 0 for s in samples)
        assert 15 < np.mean([s.values["pm25"] for s in samples]) < 70

        def hour(s: Sample) -> int:
            return s.ts.astimezone(BEIJING).hour

        afternoon = np.mean([s.values["o3"] for s in samples if 13 <= hour(s) < 17])
        night = np.mean([s.values["o3"] for s in samples if 1 <= hour(s) < 5])
        assert afternoon > 2 * night, "O3 is photochemical: it peaks in the afternoon"
        assert all(0.1 < s.values["co"] < 4 for s in samples)


def test_cems_o2_falls_and_flow_and_temperature_rise_with_load(two_days) -> None:
    checked = 0
    for site, device, samples in two_days.values():
        if device.kind != "cems" or "shift_operation" in site.tags:
            continue
        o2, flow, temp = (
            np.array([s.values[m] for s in samples]) for m in ("o2", "flue_flow", "flue_temp")
        )
        assert all(s.values["running"] == 1.0 for s in samples)
        assert np.corrcoef(o2, flow)[0, 1] < -0.5, site.id
        assert np.corrcoef(temp, flow)[0, 1] > 0.5, site.id
        assert 3 < o2.min() and o2.max() < 12
        checked += 1
    assert checked >= 4


def test_shift_plant_reports_stopped_at_night_with_flag_f(registry) -> None:
    site = registry.get("yc-cems-hengda-foundry")
    model = make_model(site, site.devices[0], 5)
    assert isinstance(model, CemsModel) and model.shifts
    night = model.sample(_local(2.5), 60.0)[0]
    day = model.sample(_local(10.0), 60.0)[0]
    assert night.values["running"] == 0.0 and day.values["running"] == 1.0
    assert night.values["o2"] > 20.0 and night.values["flue_flow"] < 0.1 * day.values["flue_flow"]
    assert night.values["flue_temp"] < day.values["flue_temp"] - 50
    assert {m: f for m, f in night.flags.items() if m != "running"} == dict.fromkeys(
        ["so2", "nox", "particulate", "o2", "flue_flow", "flue_temp"], "F"
    )
    assert set(day.flags.values()) == {"N"}
    assert model.load(_local(2.5)) == 0.0 and 0.4 <= model.load(_local(10.0)) <= 1.0


def test_water_quality_is_plausible(two_days) -> None:
    flows = {}
    for site, device, samples in two_days.values():
        if device.kind != "water_quality":
            continue
        assert all(6.0 < s.values["ph"] < 9.0 for s in samples)
        assert all(0 < s.values["nh3n"] < s.values["cod"] for s in samples)
        flows[site.id] = np.mean([s.values["water_flow"] for s in samples])
    wwtp = [v for k, v in flows.items() if "wwtp" in k]
    industry = [v for k, v in flows.items() if "wwtp" not in k]
    assert min(wwtp) > 5 * max(industry)


def test_dust_and_noise_follow_work_hours(two_days) -> None:
    for site, device, samples in two_days.values():
        if device.kind != "dust_noise":
            continue

        def hour(s: Sample) -> float:
            local = s.ts.astimezone(BEIJING)
            return local.hour + local.minute / 60

        work = [s for s in samples if DustNoiseModel.working(hour(s))]
        night = [s for s in samples if hour(s) < 6 or hour(s) >= 22]
        assert (
            np.mean([s.values["noise"] for s in work])
            > np.mean([s.values["noise"] for s in night]) + 10
        )
        assert max(s.values["noise"] for s in night) < 55.0, "GB 12523-2011 night limit"
        assert np.mean([s.values["pm10"] for s in work]) > np.mean(
            [s.values["pm10"] for s in night]
        )
        assert all(s.values["tsp"] >= s.values["pm10"] for s in samples)


def test_natural_series_never_freeze(registry) -> None:
    """Six hours at one-minute steps: no metric repeats its value 8 times running (a flat line
    is a fraud signal, so only a scenario may produce one)."""
    for site, device in _devices(registry):
        if device.kind == "wim":
            continue
        samples = _series(make_model(site, device, 3), T0, timedelta(minutes=1), 360)
        for m in device.metrics:
            if m == "running":
                continue
            values = [s.values[m] for s in samples]
            run = longest = 1
            for a, b in itertools.pairwise(values):
                run = run + 1 if a == b else 1
                longest = max(longest, run)
            assert longest < 8, f"{site.id} {m} repeated {longest} times"


# ------------------------------------------------------------------ weigh-in-motion


def test_trucks_are_legal_plausible_and_inside_their_window(registry) -> None:
    total = 0
    for site, device in _devices(registry, "wim"):
        model = make_model(site, device, 9)
        assert isinstance(model, WimModel)
        for k in range(120):
            t = T0 + timedelta(minutes=k)
            trucks = model.sample(t, 60.0)
            stamps = [s.ts for s in trucks]
            assert stamps == sorted(set(stamps))
            assert all(t - timedelta(seconds=60) < ts <= t for ts in stamps)
            for s in trucks:
                axles = s.values["axles"]
                assert axles in (2.0, 3.0, 4.0, 5.0, 6.0)
                assert 3.0 < s.values["gross_weight"] < legal_gross_weight_t(int(axles))
                assert 3.0 <= s.values["speed"] <= 98.0
                assert PLATE_RE.match(s.extra["plate"]), s.extra["plate"]
                assert set(s.flags.values()) == {"N"}
            total += len(trucks)
    # Seven stations for two hours of a weekday morning: expressways busy, gates quieter.
    assert 300 < total < 1500


def test_city_plates_dominate(registry) -> None:
    for sid, prefix in (("yc-wim-g50-yichangdong", "鄂E"), ("xg-wim-g4-xiaogan", "鄂K")):
        site = registry.get(sid)
        model = make_model(site, site.devices[0], 1)
        plates = [
            s.extra["plate"]
            for k in range(60)
            for s in model.sample(T0 + timedelta(minutes=k), 60.0)
        ]
        share = sum(p.startswith(prefix) for p in plates) / len(plates)
        assert 0.65 < share < 0.95


def test_factory_gate_is_quiet_at_night(registry) -> None:
    site = registry.get("yc-wim-sanxia-cement-gate")
    model = make_model(site, site.devices[0], 1)
    night = sum(len(model.sample(_local(1.0) + timedelta(minutes=k), 60.0)) for k in range(240))
    day = sum(len(model.sample(_local(9.0) + timedelta(minutes=k), 60.0)) for k in range(240))
    assert night < day / 5 and day > 20


def test_empty_window_has_no_trucks(registry) -> None:
    site, device = _devices(registry, "wim")[0]
    assert make_model(site, device, 1).sample(T0, 0.0) == []
