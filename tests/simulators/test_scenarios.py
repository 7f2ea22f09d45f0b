"""Scenarios: injections land exactly where the ground truth says, and nowhere else."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from farsight.clock import BEIJING
from farsight.errors import ConfigError
from farsight.metrics import BY_HJ212
from farsight.registry import load_registry
from simulators.devices import legal_gross_weight_t
from simulators.publisher import Simulator
from simulators.scenarios import (
    EXCEEDANCE_JITTER,
    SCENARIOS,
    Injection,
    Scenario,
    get_scenario,
    ground_truth,
    limit_for,
    scenario_problems,
)

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
STEP = 60.0


def _M(m: float) -> timedelta:
    return timedelta(minutes=m)


_TOPIC = re.compile(
    r"^fs/v1/(?P<dept>[^/]+)/(?P<site>[^/]+)/(?P<device>[^/]+)/(?P<kind>reading|hj212)$"
)
_CP_ITEM = re.compile(r"(?P<code>[A-Za-z0-9]+)-(?P<field>Rtd|Flag)=(?P<value>[^,;&]+)")


@pytest.fixture(scope="module")
def registry():
    return load_registry(None)


def decode(messages: list[tuple[str, bytes]]) -> list[dict]:
    """Messages to flat readings {site, device, metric, ts, value, flag, plate}, with a small
    test-local parser (ingest's codecs are not what is under test here)."""
    out = []
    for topic, payload in messages:
        m = _TOPIC.match(topic)
        assert m, topic
        site, device = m["site"], m["device"]
        if m["kind"] == "reading":
            doc = json.loads(payload)
            ts = datetime.fromisoformat(doc["ts"]).astimezone(UTC)
            for metric, value in doc["metrics"].items():
                out.append(
                    {
                        "site": site,
                        "device": device,
                        "metric": metric,
                        "ts": ts,
                        "value": value,
                        "flag": doc["flags"][metric],
                        "plate": doc.get("attrs", {}).get("plate"),
                    }
                )
        else:
            text = payload.decode()
            dt = re.search(r"DataTime=(\d{14})", text)[1]
            ts = datetime.strptime(dt, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING).astimezone(UTC)
            fields = defaultdict(dict)
            for item in _CP_ITEM.finditer(text):
                fields[item["code"]][item["field"]] = item["value"]
            for code, f in fields.items():
                out.append(
                    {
                        "site": site,
                        "device": device,
                        "metric": BY_HJ212[code].name,
                        "ts": ts,
                        "value": float(f["Rtd"]),
                        "flag": f["Flag"],
                        "plate": None,
                    }
                )
    return out


def play(
    registry, scenario: Scenario, minutes: int, seed: int = 2026
) -> tuple[Simulator, list[dict]]:
    sim = Simulator(registry, scenario, seed=seed, start=T0, step_s=STEP)
    readings = []
    for k in range(minutes):
        readings += decode(sim.messages(sim.round_time(k)))
    return sim, readings


def _elapsed_min(ts: datetime) -> float:
    return (ts - T0).total_seconds() / 60


# ------------------------------------------------------------------ the catalogue


def test_builtin_scenarios_fit_the_demo_registry(registry) -> None:
    assert {"demo", "quiet", "exceedance"} <= set(SCENARIOS)
    for scenario in SCENARIOS.values():
        assert scenario_problems(scenario, registry) == [], scenario.name
    assert get_scenario("quiet").injections == ()
    assert len(get_scenario("exceedance").injections) == 1


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as exc:
        get_scenario("storm")
    assert exc.value.problems[0].path == "simulator.scenario"
    for name in SCENARIOS:
        assert name in str(exc.value)


def test_demo_alerts_early_enough_for_a_live_demo(registry) -> None:
    """With the default 2 s interval and x30 speed-up, one wall minute is 30 simulated
    minutes: the demo's first exceedances start in the first two and last well past the
    rules' 'for' durations (10 min for PM2.5, 5 min for stacks)."""
    truth = ground_truth(get_scenario("demo"), registry)
    first = {(g["site"], g["metric"]): g for g in truth if g["kind"] == "exceedance"}
    pm = first[("yc-aq-wujiagang", "pm25")]
    so2 = first[("yc-cems-xiaoting-power", "so2")]
    assert (
        pm["start_s"] <= 120
        and pm["end_s"] - pm["start_s"] >= 15 * 60
        and pm["value"] > 1.5 * pm["limit"]
    )
    assert so2["start_s"] <= 120 and so2["value"] > 3 * so2["limit"] and so2["department"] == "env"
    assert {g["kind"] for g in truth} == {"exceedance", "flatline", "silence", "overload"}
    assert len({g["department"] for g in truth}) == 2


def test_ground_truth_lists_occurrences_with_times_and_limits(registry) -> None:
    demo = get_scenario("demo")
    truth = ground_truth(demo, registry, start=T0)
    assert [g["start_s"] for g in truth] == sorted(g["start_s"] for g in truth)
    assert len(truth) == len(demo.injections)
    overload = next(g for g in truth if g["kind"] == "overload")
    assert overload["limit"] == legal_gross_weight_t(overload["axles"]) < overload["value"]
    assert (
        overload["start"]
        == overload["end"]
        == (T0 + timedelta(seconds=overload["start_s"])).astimezone(BEIJING).isoformat()
    )
    silence = next(g for g in truth if g["kind"] == "silence")
    assert silence["metric"] is None and "limit" not in silence
    # The demo repeats every 6 hours: a 13-hour horizon holds three of each.
    assert len(ground_truth(demo, horizon=timedelta(hours=13))) == 3 * len(demo.injections)
    assert ground_truth(get_scenario("quiet")) == []


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kind": "meltdown", "start": _M(1), "duration": _M(1)}, "unknown injection kind"),
        (
            {
                "kind": "exceedance",
                "start": _M(-1),
                "duration": _M(1),
                "metric": "so2",
                "value": 90.0,
            },
            "non-negative",
        ),
        (
            {
                "kind": "exceedance",
                "start": _M(1),
                "duration": _M(0),
                "metric": "so2",
                "value": 90.0,
            },
            "positive duration",
        ),
        (
            {"kind": "exceedance", "start": _M(1), "duration": _M(1), "value": 90.0},
            "needs a metric",
        ),
        (
            {"kind": "exceedance", "start": _M(1), "duration": _M(1), "metric": "so2"},
            "positive value",
        ),
        ({"kind": "silence", "start": _M(1), "duration": _M(1), "metric": "so2"}, "whole device"),
        (
            {"kind": "overload", "start": _M(1), "axles": 6, "value": 48.0, "plate": "鄂E·00001"},
            "within the 49.0 t limit",
        ),
        ({"kind": "overload", "start": _M(1), "axles": 2, "value": 20.0}, "plate"),
        (
            {
                "kind": "overload",
                "start": _M(1),
                "duration": _M(1),
                "axles": 2,
                "value": 20.0,
                "plate": "鄂E·00001",
            },
            "duration must be 0",
        ),
    ],
)
def test_bad_injections_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Injection(site="s1", device="d1", **kwargs)


def test_scenario_problems_catch_mismatches_with_the_registry(registry) -> None:
    bad = Scenario(
        "bad",
        "",
        (
            Injection("exceedance", "nowhere", "aq1", _M(1), _M(5), metric="pm25", value=100.0),
            Injection(
                "exceedance", "yc-aq-xiling", "aq9", _M(1), _M(5), metric="pm25", value=100.0
            ),
            Injection("exceedance", "yc-aq-xiling", "aq1", _M(1), _M(5), metric="cod", value=100.0),
            Injection("exceedance", "yc-aq-xiling", "aq1", _M(1), _M(5), metric="pm25", value=76.0),
            Injection(
                "exceedance", "yc-aq-xiling", "aq1", _M(1), _M(5), metric="pm25", value=140.0
            ),
            Injection(
                "overload", "yc-aq-xiling", "aq1", _M(1), axles=2, value=20.0, plate="鄂E·00001"
            ),
            Injection(
                "flatline",
                "yc-wim-g50-yichangdong",
                "wim1",
                _M(1),
                _M(5),
                metric="speed",
                value=60.0,
            ),
        ),
    )
    problems = scenario_problems(bad, registry)
    expected = [
        "no site 'nowhere'",
        "no device 'aq9'",
        "does not report 'cod'",
        "not clearly above the 75.0 limit",
        "PM10 lifted with PM2.5",
        "weigh stations (wim)",
        "use an overload injection",
    ]
    assert len(problems) == len(expected)
    for problem, text in zip(problems, expected):
        assert text in problem
    with pytest.raises(ValueError, match="does not fit the registry"):
        Simulator(registry, bad)


def test_period_must_hold_every_injection() -> None:
    with pytest.raises(ValueError, match="within the period"):
        Scenario("p", "", (Injection("silence", "s", "d", _M(50), _M(20)),), period=_M(60))


def test_periodic_scenario_repeats_its_injections() -> None:
    inj = Injection("silence", "s", "d", _M(10), _M(5))
    ov = Injection("overload", "s", "w", _M(3), axles=2, value=20.0, plate="鄂E·00001")
    sc = Scenario("p", "", (inj, ov), period=_M(60))
    active = [m for m in range(200) if sc.active("s", "d", _M(m))]
    assert active == [
        10,
        11,
        12,
        13,
        14,
        70,
        71,
        72,
        73,
        74,
        130,
        131,
        132,
        133,
        134,
        190,
        191,
        192,
        193,
        194,
    ]
    assert sc.active("s", "d", _M(10))[0][1] == _M(10) and sc.active("s", "d", _M(131))[0][1] == _M(
        130
    )
    assert [s for _, s in sc.events("s", "w", _M(0), _M(200))] == [_M(3), _M(63), _M(123), _M(183)]
    assert (
        sc.events("s", "w", _M(3), _M(62)) == []
    )  # (after, until]: 3 itself belongs to the window before
    assert [s for _, s in sc.events("s", "w", _M(2), _M(3))] == [_M(3)]


# ------------------------------------------------------------------ injections in the data


def _exceedances(registry, readings) -> set[tuple[str, str, str, float]]:
    out = set()
    for r in readings:
        site = registry.get(r["site"])
        if r["metric"] == "gross_weight":
            continue
        limit = limit_for(site, r["metric"])
        if limit is not None and r["value"] > limit:
            out.add((r["site"], r["device"], r["metric"], _elapsed_min(r["ts"])))
    return out


def _overloads(readings) -> list[tuple[str, float, int, float, str]]:
    by_truck = defaultdict(dict)
    for r in readings:
        if r["metric"] in ("gross_weight", "axles"):
            by_truck[(r["site"], r["ts"], r["plate"])][r["metric"]] = r["value"]
    return sorted(
        (site, _elapsed_min(ts), int(v["axles"]), v["gross_weight"], plate)
        for (site, ts, plate), v in by_truck.items()
        if v["gross_weight"] > legal_gross_weight_t(int(v["axles"]))
    )


def _expected(truth, kind: str):
    return [g for g in truth if g["kind"] == kind]


def _minutes(g) -> range:
    return range(int(g["start_s"] // 60), int(-(-g["end_s"] // 60)))


def test_demo_injections_appear_exactly_where_the_ground_truth_says(registry) -> None:
    minutes = 140  # past the end of every demo injection
    sim, readings = play(registry, get_scenario("demo"), minutes)
    truth = ground_truth(sim.scenario, registry)

    # Exceedances: every reading above a limit is an injected one, and every injected round is
    # above.
    want = {
        (g["site"], g["device"], g["metric"], float(m))
        for g in _expected(truth, "exceedance")
        for m in _minutes(g)
    }
    assert _exceedances(registry, readings) == want
    for g in _expected(truth, "exceedance"):
        values = [
            r["value"]
            for r in readings
            if (r["site"], r["metric"]) == (g["site"], g["metric"])
            and g["start_s"] <= _elapsed_min(r["ts"]) * 60 < g["end_s"]
        ]
        assert len(values) == len(_minutes(g))
        assert all(abs(v / g["value"] - 1) <= EXCEEDANCE_JITTER + 1e-3 for v in values)
        assert len(set(values)) > 1, "an exceedance must not also be a flat line"

    # Flat line: the value is frozen inside the window only.
    (flat,) = _expected(truth, "flatline")
    series = [
        (_elapsed_min(r["ts"]), r["value"])
        for r in readings
        if (r["site"], r["device"], r["metric"]) == (flat["site"], flat["device"], flat["metric"])
    ]
    inside = {v for m, v in series if m in _minutes(flat)}
    assert inside == {flat["value"]}
    assert sum(v == flat["value"] for m, v in series if m not in _minutes(flat)) <= 1

    # Silence: no message at all from the device inside the window, one every round outside.
    (quiet,) = _expected(truth, "silence")
    heard = {
        _elapsed_min(r["ts"])
        for r in readings
        if (r["site"], r["device"]) == (quiet["site"], quiet["device"])
    }
    assert heard == {float(m) for m in range(minutes)} - {float(m) for m in _minutes(quiet)}

    # Overloads: exactly the injected trucks, at their time, with their plate.
    want_trucks = sorted(
        (g["site"], g["start_s"] / 60, g["axles"], g["value"], g["plate"])
        for g in _expected(truth, "overload")
    )
    assert _overloads(readings) == want_trucks


def test_pm25_episode_lifts_pm10_without_breaking_its_limit(registry) -> None:
    _, readings = play(registry, get_scenario("demo"), 25)
    at = defaultdict(dict)
    for r in readings:
        if r["site"] == "yc-aq-wujiagang":
            at[r["ts"]][r["metric"]] = r["value"]
    for values in at.values():
        assert values["pm25"] <= values["pm10"] < 150.0


def test_quiet_scenario_has_no_violation(registry) -> None:
    _, readings = play(registry, get_scenario("quiet"), 90)
    assert _exceedances(registry, readings) == set()
    assert _overloads(readings) == []


def test_exceedance_scenario_is_one_known_exceedance(registry) -> None:
    sim, readings = play(registry, get_scenario("exceedance"), 100)
    (g,) = ground_truth(sim.scenario, registry)
    assert (g["site"], g["device"], g["metric"], g["value"], g["limit"]) == (
        "yc-cems-xiaoting-power",
        "cems1",
        "so2",
        120.0,
        35.0,
    )
    assert _exceedances(registry, readings) == {
        (g["site"], g["device"], "so2", float(m)) for m in range(2, 92)
    }


def test_injections_at_filtered_out_sites_are_idle(registry) -> None:
    sim = Simulator(registry, "demo", seed=1, start=T0, sites=["yc-aq-xiling", "xg-aq-xiaonan"])
    readings = [r for k in range(30) for r in decode(sim.messages(sim.round_time(k)))]
    assert {r["site"] for r in readings} == {"yc-aq-xiling", "xg-aq-xiaonan"}
    assert _exceedances(registry, readings) == set()


def test_flatline_without_value_freezes_the_reading_at_its_start(registry) -> None:
    sc = Scenario(
        "f", "", (Injection("flatline", "yc-out-qingyuan-wwtp", "wq1", _M(3), _M(10), metric="ph"),)
    )
    _, readings = play(registry, sc, 20)
    ph = [
        (_elapsed_min(r["ts"]), r["value"])
        for r in readings
        if r["site"] == "yc-out-qingyuan-wwtp" and r["metric"] == "ph"
    ]
    frozen = {v for m, v in ph if 3 <= m < 13}
    assert len(frozen) == 1
    _, natural = play(registry, get_scenario("quiet"), 4)
    assert frozen == {
        r["value"]
        for r in natural
        if r["site"] == "yc-out-qingyuan-wwtp"
        and r["metric"] == "ph"
        and _elapsed_min(r["ts"]) == 3
    }
