"""The site registry: the built-in demo registry, and every kind of bad entry refused with its
key path."""

from __future__ import annotations

import copy
from collections import defaultdict

import pytest

from farsight.credit import ALPHABET, credit_code_problem, make_credit_code
from farsight.errors import RegistryError
from farsight.metrics import BY_NAME
from farsight.registry import DEVICE_KINDS, load_registry, parse_registry

COMPANY = make_credit_code("91420500MA4900001")


def _doc() -> dict:
    return {
        "sites": [
            {
                "id": "yc-aq-1",
                "name": "宜昌市测试空气站",
                "department": "env",
                "entity_id": make_credit_code("11420500011003670"),
                "location": {"lon": 111.29, "lat": 30.70},
                "city": "宜昌",
                "kind": "air_quality",
                "devices": [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25", "pm10"]}],
            },
            {
                "id": "yc-stack-1",
                "name": "宜昌测试电厂烟囱",
                "department": "env",
                "entity_id": COMPANY,
                "location": {"lon": 111.35, "lat": 30.65},
                "city": "宜昌",
                "kind": "stack",
                "credit_grade": "C",
                "limits": {"so2": 35, "nox": 50, "particulate": 10},
                "devices": [
                    {
                        "id": "cems1",
                        "kind": "cems",
                        "protocol": "hj212",
                        "mn": "42050000000001",
                        "metrics": ["so2", "nox"],
                    }
                ],
            },
        ]
    }


def _paths(exc: pytest.ExceptionInfo[RegistryError]) -> list[str]:
    return [p.path for p in exc.value.problems]


# ------------------------------------------------------------------ the demo registry


@pytest.fixture(scope="module")
def demo():
    return load_registry(None)


def test_demo_registry_loads_with_enough_sites_in_both_cities_and_departments(demo) -> None:
    assert len(demo) >= 24
    assert set(demo.departments) == {"env", "transport"}
    cities = {(s.city, s.department) for s in demo}
    assert cities == {
        ("宜昌", "env"),
        ("宜昌", "transport"),
        ("孝感", "env"),
        ("孝感", "transport"),
    }


def test_demo_sites_lie_in_their_pilot_city(demo) -> None:
    boxes = {"宜昌": ((111.0, 111.6), (30.4, 30.9)), "孝感": ((113.8, 114.1), (30.8, 31.1))}
    for s in demo:
        (lon0, lon1), (lat0, lat1) = boxes[s.city]
        assert lon0 <= s.location.lon <= lon1 and lat0 <= s.location.lat <= lat1, s.id


def test_demo_entities_have_valid_hubei_credit_codes(demo) -> None:
    for s in demo:
        assert credit_code_problem(s.entity_id) is None, s.id
        assert s.entity_id[:2] in ("91", "11"), s.id
        assert s.entity_id[2:4] == "42", f"{s.id}: not a Hubei administrative code"
        city_code = {"宜昌": "4205", "孝感": "4209"}[s.city]
        if s.entity_id.startswith("11"):  # government bodies are registered in their own city
            assert s.entity_id[2:6] == city_code, s.id
        assert s.entity_name and s.item_code and s.credit_grade in "ABCD"


def test_demo_entity_has_one_name_and_grade_and_some_span_departments(demo) -> None:
    by_entity = defaultdict(list)
    for s in demo:
        by_entity[s.entity_id].append(s)
    for sites in by_entity.values():
        assert len({s.entity_name for s in sites}) == 1
        assert len({s.credit_grade for s in sites}) == 1
    joint = [
        e for e, sites in by_entity.items() if {s.department for s in sites} == {"env", "transport"}
    ]
    assert len(joint) >= 2, "joint inspections need entities watched by both departments"
    assert {s.credit_grade for s in demo} == {"A", "B", "C", "D"}


def test_demo_devices_cover_every_simulated_kind_with_their_metrics(demo) -> None:
    expected = {
        "air_quality": ("json", {"pm25", "pm10", "so2", "no2", "o3", "co"}),
        "cems": ("hj212", {"so2", "nox", "particulate", "o2", "flue_flow", "flue_temp", "running"}),
        "dust_noise": ("json", {"pm10", "tsp", "noise"}),
        "water_quality": ("hj212", {"cod", "nh3n", "ph", "water_flow"}),
        "wim": ("json", {"gross_weight", "axles", "speed"}),
        "camera": (
            "json",
            {
                "video_smoke",
                "video_fire",
                "video_black_smoke",
                "video_ringelmann",
                "video_motion",
                "video_camera_covered",
                "video_camera_defocused",
                "video_camera_moved",
                "video_stopped_vehicle",
                "video_stream_lost",
                "video_intrusion",
                "video_count_forward",
                "video_count_backward",
            },
        ),
    }
    seen = set()
    mns = []
    for s in demo:
        for d in s.devices:
            protocol, metrics = expected[d.kind]
            assert d.protocol == protocol and set(d.metrics) == metrics, f"{s.id}/{d.id}"
            assert all(m in BY_NAME for m in d.metrics)
            if d.protocol == "hj212":
                assert d.mn and 14 <= len(d.mn) <= 24
                mns.append(d.mn)
            if d.kind == "wim":
                assert s.department == "transport"
            else:
                assert s.department == "env"
            seen.add(d.kind)
    assert seen == set(expected)
    assert len(mns) == len(set(mns))
    assert demo.by_mn(mns[0]) is not None


def test_demo_limits_match_the_site_kind(demo) -> None:
    for s in demo:
        limits = dict(s.limits)
        if s.kind == "stack":
            assert limits in (
                {"so2": 35, "nox": 50, "particulate": 10},
                {"so2": 100, "nox": 100, "particulate": 20},
            ), s.id
        elif s.kind == "outfall":
            assert limits == {"cod": 50, "nh3n": 5}
        elif s.kind == "construction":
            assert set(limits) == {"pm10", "tsp", "noise"}
        else:
            assert not limits, s.id


# ------------------------------------------------------------------ bad registries


def test_valid_document_parses() -> None:
    reg = parse_registry(_doc())
    assert [s.id for s in reg] == ["yc-aq-1", "yc-stack-1"]
    assert reg.get("yc-stack-1").limit("so2") == 35
    assert reg.by_mn("42050000000001")[1].id == "cems1"


def test_bad_credit_code_check_character_is_refused_with_its_key_path() -> None:
    doc = _doc()
    good = doc["sites"][1]["entity_id"]
    wrong = ALPHABET[(ALPHABET.index(good[-1]) + 1) % len(ALPHABET)]
    doc["sites"][1]["entity_id"] = good[:-1] + wrong
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert _paths(exc) == ["sites.1.entity_id"]
    assert "check character" in str(exc.value)


def test_duplicate_site_id_is_refused() -> None:
    doc = _doc()
    doc["sites"].append(copy.deepcopy(doc["sites"][0]))
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert "sites.2.id" in _paths(exc)
    assert "duplicate" in str(exc.value)


def test_unknown_device_kind_is_refused_listing_known_kinds() -> None:
    doc = _doc()
    doc["sites"][0]["devices"][0]["kind"] = "radar"
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert _paths(exc) == ["sites.0.devices.0.kind"]
    for kind in DEVICE_KINDS:
        assert kind in str(exc.value)


@pytest.mark.parametrize(
    "field,value", [("lon", 181.0), ("lon", -180.5), ("lat", 90.01), ("lat", -91.0)]
)
def test_coordinates_out_of_range_are_refused(field: str, value: float) -> None:
    doc = _doc()
    doc["sites"][1]["location"][field] = value
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert _paths(exc) == [f"sites.1.location.{field}"]


def test_unknown_department_is_refused() -> None:
    doc = _doc()
    doc["sites"][0]["department"] = "health"
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert _paths(exc) == ["sites.0.department"]
    assert "env" in str(exc.value) and "transport" in str(exc.value)


def test_departments_in_the_document_override_the_default() -> None:
    doc = _doc()
    doc["departments"] = ["env"]
    parse_registry(doc)
    doc["sites"][0]["department"] = "transport"
    with pytest.raises(RegistryError):
        parse_registry(doc)


def test_every_problem_is_reported_at_once() -> None:
    doc = _doc()
    doc["sites"][0]["department"] = "health"
    doc["sites"].append(copy.deepcopy(_doc()["sites"][1]))
    doc["sites"][2]["devices"][0]["id"] = "cems2"
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    # Second site repeated: its id and its MN are both duplicates.
    assert set(_paths(exc)) == {"sites.0.department", "sites.2.id", "sites.2.devices.0.mn"}


def test_hj212_device_without_mn_is_refused() -> None:
    doc = _doc()
    del doc["sites"][1]["devices"][0]["mn"]
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert _paths(exc) == ["sites.1.devices.0.mn"]


def test_unknown_key_is_refused() -> None:
    doc = _doc()
    doc["sites"][0]["owner"] = "someone"
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert _paths(exc) == ["sites.0.owner"]


# ------------------------------------------------------------------ declared stoppages

STOP = {"start": "2026-11-24T22:00:00+08:00", "end": "2026-11-25T06:00:00+08:00", "reason": "检修"}


def test_a_declared_stoppage_is_read_with_its_devices() -> None:
    doc = _doc()
    doc["sites"][0]["stoppages"] = [STOP | {"devices": ["aq1"]}, STOP | {"reason": "whole site"}]
    site = parse_registry(doc).get("yc-aq-1")
    assert site is not None
    first, second = site.stoppages
    assert (first.end - first.start).total_seconds() == 8 * 3600 and first.devices == ("aq1",)
    assert first.covers("aq1") and not first.covers("aq2") and second.covers("aq2")


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"end": "2026-11-24T21:00:00+08:00"}, "sites.0.stoppages.0", "not after start"),
        ({"start": "2026-11-24T22:00:00"}, "sites.0.stoppages.0.start", "timezone"),
        ({"end": "2028-01-01T00:00:00+08:00"}, "sites.0.stoppages.0", "at most 366 days"),
        ({"reason": ""}, "sites.0.stoppages.0.reason", "at least 1"),
        ({"devices": ["aq9"]}, "sites.0", "stoppages.0.devices: 'aq9' not devices of the site"),
        ({"until": "x"}, "sites.0.stoppages.0.until", "Extra inputs"),
    ],
)
def test_a_bad_stoppage_is_refused_by_key_path(change: dict, path: str, message: str) -> None:
    doc = _doc()
    doc["sites"][0]["stoppages"] = [STOP | change]
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert _paths(exc) == [path]
    assert message in str(exc.value)
