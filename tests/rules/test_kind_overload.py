"""``wim_overload``: legal gross weight by axles (order 2016 No. 62 / GB 1589-2016) after the
scale's JJG 907 in-service error; one alert per truck."""

from __future__ import annotations

import pytest

from farsight.errors import RuleError
from farsight.types import Reading
from rules.engine import Engine
from rules.kinds.overload import legal_limit_t
from rules.loader import parse_ruleset
from tests.factories import reading, registry

SITE, DEV = "xg-wim-1", "wim1"


def _engine(**fields: object) -> Engine:
    rule = {
        "id": "overload",
        "kind": "wim_overload",
        "select": {"device_kind": "wim"},
        "severity": "major",
        **fields,
    }
    return Engine(parse_ruleset({"rules": [rule]}), registry())


def truck(
    minutes: float, weight: float, axles: int, unit: str = "t", **extra: float
) -> list[Reading]:
    rs = [
        reading("gross_weight", weight, minutes, site=SITE, device=DEV, unit=unit),
        reading("axles", axles, minutes, site=SITE, device=DEV, unit="1"),
    ]
    rs += [reading(m, v, minutes, site=SITE, device=DEV, unit="1") for m, v in extra.items()]
    return rs


@pytest.mark.parametrize(
    ("axles", "combination", "drive", "limit"),
    [
        (2, False, None, 18),
        (3, False, None, 25),
        (3, True, None, 27),
        (4, False, None, 31),
        (4, True, None, 36),
        (5, False, None, 43),
        (6, False, None, 49),
        (7, True, None, 49),
        (6, True, 1, 46),
        (6, True, 2, 49),
        (1, False, None, None),
    ],
)
def test_legal_limits_follow_gb_1589(
    axles: int, combination: bool, drive: int | None, limit: float | None
) -> None:
    assert legal_limit_t(axles, combination, drive) == limit


@pytest.mark.parametrize(
    ("accuracy_class", "axles", "weight", "cited"),
    [
        (5, 6, 61.8, True),
        (5, 6, 51.5, False),  # 51.5 x 0.95 = 48.9 <= 49: could be scale error
        (5, 6, 51.6, True),  # 51.6 x 0.95 = 49.02 > 49
        (
            2,
            6,
            50.0,
            False,
        ),  # class 2: 50 x 0.98 = 49.0 is not above 49 (the limit itself is legal)
        (2, 6, 50.1, True),  # 50.1 x 0.98 = 49.1
        (10, 2, 19.9, False),  # class 10: 19.9 x 0.9 = 17.91
        (10, 2, 20.1, True),  # 20.1 x 0.9 = 18.09 > 18
        (0.5, 3, 25.2, True),  # 25.2 x 0.995 = 25.07 > 25
        (5, 3, 26.3, False),  # 26.3 x 0.95 = 24.99
    ],
)
def test_a_truck_is_cited_only_beyond_the_scale_error(
    accuracy_class: float, axles: int, weight: float, cited: bool
) -> None:
    e = _engine(accuracy_class=accuracy_class)
    sigs = e.evaluate(truck(0, weight, axles))
    assert [s.status for s in sigs] == (["firing"] if cited else [])


def test_the_alert_carries_the_citation_context() -> None:
    e = _engine(accuracy_class=5)
    sigs = e.evaluate(truck(3, 61.8, 6))
    assert len(sigs) == 1
    s = sigs[0]
    assert (s.status, s.site, s.device, s.metric, s.value, s.threshold, s.severity) == (
        "firing",
        SITE,
        DEV,
        "gross_weight",
        61.8,
        49,
        "major",
    )
    assert (
        s.summary
        == "6-axle truck at Xiaogan G4 weigh station weighed 61.8 t, limit 49 t: 12.8 t (26.1 %)"
        " over, beyond the scale's 5 % error"
    )


def test_each_overloaded_truck_is_its_own_alert_closed_by_the_next_truck() -> None:
    e = _engine()
    a = e.evaluate(truck(0, 61.8, 6))
    b = e.evaluate(truck(0.5, 58.0, 6))  # the next truck, also overloaded
    assert [s.status for s in a] == ["firing"]
    assert sorted(s.status for s in b) == ["firing", "resolved"]
    resolved = next(s for s in b if s.status == "resolved")
    fired = next(s for s in b if s.status == "firing")
    assert resolved.fingerprint == a[0].fingerprint and fired.fingerprint != a[0].fingerprint
    assert resolved.summary == a[0].summary  # the resolved signal still describes that truck
    c = e.evaluate(truck(1, 30.0, 6))  # a legal truck closes the second one
    assert [(s.status, s.fingerprint) for s in c] == [("resolved", fired.fingerprint)]
    assert e.evaluate(truck(2, 31.0, 6)) == []  # legal trucks raise nothing


def cited(sigs: list) -> list[float | None]:
    return [s.threshold for s in sigs if s.status == "firing"]


def test_the_payload_configuration_overrides_the_rule_default() -> None:
    e = _engine()
    assert cited(e.evaluate(truck(0, 35.0, 4))) == [31]
    assert cited(e.evaluate(truck(1, 35.0, 4, combination=1))) == []  # 36 t for a combination
    e2 = _engine(combination=True)
    assert cited(e2.evaluate(truck(0, 35.0, 4))) == []
    assert cited(e2.evaluate(truck(1, 35.0, 4, combination=0))) == [31]
    assert cited(e2.evaluate(truck(2, 49.0, 6, drive_axles=1))) == [46]


def test_kilograms_are_converted() -> None:
    e = _engine()
    assert [s.value for s in e.evaluate(truck(0, 61800, 6, unit="kg"))] == [61.8]


def test_a_truck_has_no_for() -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [{"id": "o", "kind": "wim_overload", "for": "5m"}]})
    assert "takes no 'for'" in str(info.value)
    with pytest.raises(RuleError):
        parse_ruleset({"rules": [{"id": "o", "kind": "wim_overload", "accuracy_class": 3}]})


def test_state_survives_a_restart_and_still_closes_the_open_truck() -> None:
    e = _engine()
    first = e.evaluate(truck(0, 61.8, 6))
    e2 = _engine()
    e2.restore(e.snapshot())
    assert [(s.status, s.fingerprint) for s in e2.evaluate(truck(1, 30.0, 6))] == [
        ("resolved", first[0].fingerprint)
    ]
