"""Small, valid test data: a two-site registry, readings and signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from farsight.credit import make_credit_code
from farsight.registry import Registry, parse_registry
from farsight.types import AlertSignal, Reading

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
ENTITY = make_credit_code("91420500MA4900001")


def registry_doc() -> dict:
    return {
        "sites": [
            {
                "id": "yc-aq-1",
                "name": "Yichang Xiling air station",
                "department": "env",
                "entity_id": make_credit_code("12420500MB0000001"),
                "location": {"lon": 111.29, "lat": 30.70},
                "city": "Yichang",
                "kind": "air_quality",
                "devices": [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25", "pm10"]}],
            },
            {
                "id": "yc-stack-1",
                "name": "Yichang power plant stack 1",
                "department": "env",
                "entity_id": ENTITY,
                "location": {"lon": 111.35, "lat": 30.65},
                "city": "Yichang",
                "kind": "stack",
                "credit_grade": "C",
                "limits": {"so2": 35, "nox": 50, "particulate": 10},
                "devices": [
                    {
                        "id": "cems1",
                        "kind": "cems",
                        "protocol": "hj212",
                        "mn": "42050000000001",
                        "metrics": ["so2", "nox", "particulate"],
                    }
                ],
            },
            {
                "id": "xg-wim-1",
                "name": "Xiaogan G4 weigh station",
                "department": "transport",
                "entity_id": make_credit_code("11420900MB0000002"),
                "location": {"lon": 113.92, "lat": 30.93},
                "city": "Xiaogan",
                "kind": "wim",
                "devices": [{"id": "wim1", "kind": "wim", "metrics": ["gross_weight", "axles"]}],
            },
        ],
        # The edge tests' gateway, at the Yichang stack, forwarding for the two env sites.
        "gateways": [{"id": "gw-test", "site": "yc-stack-1", "sites": ["yc-aq-1", "yc-stack-1"]}],
    }


def registry() -> Registry:
    return parse_registry(registry_doc())


def reading(
    metric: str,
    value: float,
    minutes: float,
    site: str = "yc-aq-1",
    device: str = "aq1",
    flag: str = "N",
    unit: str = "ug/m3",
) -> Reading:
    return Reading(
        site=site,
        device=device,
        metric=metric,
        value=value,
        unit=unit,
        ts=T0 + timedelta(minutes=minutes),
        flag=flag,
    )


def signal(
    status: str = "firing",
    fingerprint: str = "fp1",
    minutes: float = 0,
    site: str = "yc-aq-1",
    department: str = "env",
    value: float = 90.0,
) -> AlertSignal:
    return AlertSignal(
        rule_id="aq-pm25-high",
        fingerprint=fingerprint,
        status=status,
        site=site,
        device="aq1",
        metric="pm25",
        severity="warning",
        summary=f"PM2.5 at {site} is {value}",
        ts=T0 + timedelta(minutes=minutes),
        value=value,
        threshold=75.0,
        department=department,
        entity_id=ENTITY,
    )


def at(minutes: float) -> datetime:
    """The test epoch plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


def rule_engine(*rules: dict):
    """An engine with these rule documents over the test registry."""
    from rules.engine import Engine
    from rules.loader import parse_ruleset

    return Engine(parse_ruleset({"rules": list(rules)}), registry())
