"""Handling statistics and joint inspections through a real hub server over HTTP: auth,
department scoping, bad input, conflicts, and the happy paths."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from alerts.escalation import Escalator
from alerts.store import AlertStore
from farsight.clock import ManualClock
from farsight.credit import make_credit_code
from farsight.registry import Registry, parse_registry
from farsight.types import AlertSignal
from hub.app import create_app
from hub.auth import TokenStore
from tests.hub.conftest import REGISTRY_DOC, bearer, make_settings, start_server, stop_server

START = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
STATS_FROM, STATS_TO = "2026-11-24T23:00:00+00:00", "2026-11-25T02:00:00+00:00"


@dataclass
class HandlingHub:
    base_url: str
    tokens: dict[str, str]
    store: AlertStore
    registry: Registry
    clock: ManualClock
    history: dict[str, int]


def raise_alert(
    hub: HandlingHub | AlertStore,
    registry: Registry,
    entity: str,
    site_id: str,
    metric: str = "pm25",
) -> int:
    store = hub.store if isinstance(hub, HandlingHub) else hub
    site = registry.get(site_id)
    assert site is not None
    fp = f"api.joint/{entity}/{site_id}/{metric}/{uuid.uuid4().hex[:6]}"
    (a,) = store.apply(
        [
            AlertSignal(
                rule_id="api.joint",
                fingerprint=fp,
                status="firing",
                site=site_id,
                device=site.devices[0].id,
                metric=metric,
                severity="major",
                summary=f"{metric} high at {site.name}",
                ts=store.clock.now(),
                department=site.department,
                entity_id=entity,
            )
        ]
    )
    return a.id


def new_entity() -> str:
    return make_credit_code("91330100MA" + str(uuid.uuid4().int % 10**7).zfill(7))


@pytest.fixture(scope="module")
def handling_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HandlingHub]:
    """A hub with the handling router over a queue whose first hours hold a scripted history."""
    data_dir: Path = tmp_path_factory.mktemp("handling-hub")
    settings = make_settings(data_dir)
    registry = parse_registry(
        copy.deepcopy(REGISTRY_DOC),
        ("env", "transport"),
        source="tests/hub/test_handling_api registry",
    )
    clock = ManualClock(START)
    store = AlertStore(settings.database, clock=clock)
    escalator = Escalator(store, settings.alerts.escalation)
    store.listeners.append(escalator.on_event)
    tokens = TokenStore(settings.database, registry.departments)
    # History: env alert taken up after 10 min and closed after 40; transport alert closed at the
    # desk after 30.
    env_entity, transport_entity = new_entity(), new_entity()
    history = {"env": raise_alert(store, registry, env_entity, "aq-1")}
    clock.advance(timedelta(minutes=1))
    history["transport"] = raise_alert(store, registry, transport_entity, "wim-1")
    clock.advance(timedelta(minutes=9))
    store.transition(history["env"], "ack", "alice", "on it")
    clock.advance(timedelta(minutes=21))
    store.transition(history["transport"], "close", "bob", "desk closure")
    clock.advance(timedelta(minutes=9))
    store.transition(history["env"], "close", "alice", "rectified")
    clock.advance(
        timedelta(days=1) - timedelta(minutes=40)
    )  # later tests raise their alerts outside the stats period
    app = create_app(settings, registry, alerts=store, tokens=tokens)
    issued = {
        "admin": tokens.issue("admin", role="admin"),
        "env": tokens.issue("alice", "env", role="supervisor"),
        "transport": tokens.issue("bob", "transport", role="supervisor"),
    }
    server, thread, base_url = start_server(app)
    try:
        yield HandlingHub(base_url, issued, store, registry, clock, history)
    finally:
        stop_server(server, thread)
        assert store.audit.verify().ok
        store.close()
        tokens.close()


@pytest.fixture
def http(handling_hub: HandlingHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=handling_hub.base_url, timeout=30.0) as c:
        yield c


def auth(hub: HandlingHub, who: str) -> dict[str, str]:
    return bearer(hub.tokens[who])


@pytest.fixture
def joint(handling_hub: HandlingHub) -> tuple[str, dict[str, int]]:
    """A fresh entity with two env alerts (two sites) and one transport alert."""
    entity = new_entity()
    ids = {
        "aq": raise_alert(handling_hub, handling_hub.registry, entity, "aq-1"),
        "stack": raise_alert(handling_hub, handling_hub.registry, entity, "stack-1", "so2"),
        "wim": raise_alert(handling_hub, handling_hub.registry, entity, "wim-1", "gross_weight"),
    }
    return entity, ids


def body(ids: list[int], **over: object) -> dict[str, object]:
    return {
        "alert_ids": ids,
        "team": "joint-1",
        "inspector": "zhang.san",
        "due": "2026-11-30",
        "note": "进一次门、查多项事",
        **over,
    }


# -- auth ------------------------------------------------------------------------------------------


def test_every_endpoint_needs_a_token(
    http: httpx.Client, joint: tuple[str, dict[str, int]]
) -> None:
    entity, ids = joint
    for r in (
        http.get("/api/handling-stats"),
        http.get("/api/joint-inspections"),
        http.post(f"/api/joint-inspections/{entity}/dispatch", json=body(list(ids.values()))),
        http.get("/api/joint-inspections", headers=bearer("fs_not-a-real-token")),
    ):
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")


# -- handling statistics
# ------------------------------------------------------------------------------


def test_handling_stats_province_wide_and_per_department(
    handling_hub: HandlingHub, http: httpx.Client
) -> None:
    r = http.get(
        "/api/handling-stats",
        params={"from": STATS_FROM, "to": STATS_TO},
        headers=auth(handling_hub, "admin"),
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    env, transport = doc["departments"]["env"], doc["departments"]["transport"]
    assert (env["raised"], env["acknowledged"], env["closed"]) == (1, 1, 1)
    assert env["mtta"]["mean_min"] == pytest.approx(10.0) and env["mttr"][
        "mean_min"
    ] == pytest.approx(40.0)
    assert transport["mtta"]["mean_min"] == pytest.approx(30.0) and transport["mttr"][
        "p90_min"
    ] == pytest.approx(30.0)
    assert doc["all"]["mtta"] == {
        "n": 2,
        "mean_min": pytest.approx(20.0),
        "median_min": pytest.approx(20.0),
        "p90_min": pytest.approx(28.0),
    }
    # A department token reads its own department only, asked or not.
    mine = http.get(
        "/api/handling-stats",
        params={"from": STATS_FROM, "to": STATS_TO},
        headers=auth(handling_hub, "transport"),
    ).json()
    assert list(mine["departments"]) == ["transport"] and mine["department"] == "transport"


def test_handling_stats_refusals(handling_hub: HandlingHub, http: httpx.Client) -> None:
    env = auth(handling_hub, "env")
    assert (
        http.get("/api/handling-stats", params={"department": "transport"}, headers=env).status_code
        == 403
    )
    for params in (
        {"from": "yesterday"},
        {"from": "2026-11-25T00:00:00"},
        {"from": STATS_TO, "to": STATS_FROM},
        {"department": "natres"},
    ):
        r = http.get("/api/handling-stats", params=params, headers=auth(handling_hub, "admin"))
        assert r.status_code == 422, (params, r.text)


# -- joint inspections
# ------------------------------------------------------------------------------


def _proposal(
    http: httpx.Client, headers: dict[str, str], entity: str, **params: str
) -> dict | None:
    r = http.get("/api/joint-inspections", params=params, headers=headers)
    assert r.status_code == 200, r.text
    found = [p for p in r.json()["items"] if p["entity_id"] == entity]
    assert len(found) <= 1
    return found[0] if found else None


def test_joint_inspection_listing_and_scoping(
    handling_hub: HandlingHub, http: httpx.Client, joint: tuple[str, dict[str, int]]
) -> None:
    entity, ids = joint
    p = _proposal(http, auth(handling_hub, "admin"), entity)
    assert p is not None
    assert sorted(p["alert_ids"]) == sorted(ids.values()) and p["departments"] == [
        "env",
        "transport",
    ]
    assert {(g["department"], g["site"]) for g in p["groups"]} == {
        ("env", "aq-1"),
        ("env", "stack-1"),
        ("transport", "wim-1"),
    }
    assert p["total_risk"] > 0 and len(p["checks"]) == 3
    mine = _proposal(http, auth(handling_hub, "transport"), entity)
    assert mine is not None and mine["alert_ids"] == [ids["wim"]] and mine["withheld"] == {"env": 2}
    # Another department's alerts are counted only: none of their sites or ids shows.
    assert mine["sites"] == ["wim-1"] and [g["site"] for g in mine["groups"]] == ["wim-1"]
    assert "aq-1" not in str(mine) and "stack-1" not in str(mine)
    assert str(ids["aq"]) not in str(mine["alert_ids"])
    r = http.get(
        "/api/joint-inspections",
        params={"department": "transport"},
        headers=auth(handling_hub, "env"),
    )
    assert r.status_code == 403
    r = http.get(
        "/api/joint-inspections",
        params={"department": "natres"},
        headers=auth(handling_hub, "admin"),
    )
    assert r.status_code == 422


def test_dispatch_refusals_change_nothing(
    handling_hub: HandlingHub, http: httpx.Client, joint: tuple[str, dict[str, int]]
) -> None:
    entity, ids = joint
    store = handling_hub.store
    url = f"/api/joint-inspections/{entity}/dispatch"
    before = {i: store.get(i) for i in ids.values()}
    # A department token may not include another department's alert: answered as a missing one.
    r = http.post(url, json=body([ids["aq"], ids["wim"]]), headers=auth(handling_hub, "env"))
    assert r.status_code == 404 and r.json() == {"detail": f"no alert {ids['wim']}"}, r.text
    # Bad input.
    admin = auth(handling_hub, "admin")
    other = raise_alert(handling_hub, handling_hub.registry, new_entity(), "aq-1")
    for bad in (
        body([]),
        body([ids["aq"], ids["aq"]]),
        body([ids["aq"]], due="soon"),
        body([ids["aq"]], team=" "),
        {k: v for k, v in body([ids["aq"]]).items() if k != "inspector"},
        body([ids["aq"]], extra=1),
        body([ids["aq"], other]),
    ):
        r = http.post(url, json=bad, headers=admin)
        assert r.status_code == 422, (bad, r.text)
    assert http.post(url, json=body([ids["aq"], 99_999_999]), headers=admin).status_code == 404
    # One alert not dispatchable: nothing is dispatched.
    store.transition(ids["stack"], "close", "alice", "desk closure")
    closed = store.get(ids["stack"])
    r = http.post(url, json=body(list(ids.values())), headers=admin)
    assert r.status_code == 409, r.text
    assert "closed" in r.json()["detail"]
    after = {i: store.get(i) for i in ids.values()}
    assert after == {**before, ids["stack"]: closed}
    assert all(a.state == "new" for i, a in after.items() if i != ids["stack"])


def test_dispatch_one_visit(
    handling_hub: HandlingHub, http: httpx.Client, joint: tuple[str, dict[str, int]]
) -> None:
    entity, ids = joint
    r = http.post(
        f"/api/joint-inspections/{entity}/dispatch",
        json=body(list(ids.values())),
        headers=auth(handling_hub, "admin"),
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    visit = doc["visit"]
    assert visit.startswith("JV-") and doc["entity_id"] == entity and doc["due"] == "2026-11-30"
    assert sorted(a["id"] for a in doc["alerts"]) == sorted(ids.values())
    for a in doc["alerts"]:
        assert (
            a["state"] == "dispatched"
            and a["handling"]["dispatch"]["visit"] == visit
            and a["due_at"] is not None
        )
    for aid in ids.values():
        assert handling_hub.store.get(aid).handling["dispatch"]["visit"] == visit
    assert _proposal(http, auth(handling_hub, "admin"), entity) is None


def test_department_token_dispatches_its_own_alerts(
    handling_hub: HandlingHub, http: httpx.Client, joint: tuple[str, dict[str, int]]
) -> None:
    entity, ids = joint
    r = http.post(
        f"/api/joint-inspections/{entity}/dispatch",
        json=body([ids["aq"], ids["stack"]]),
        headers=auth(handling_hub, "env"),
    )
    assert r.status_code == 200, r.text
    assert {a["state"] for a in r.json()["alerts"]} == {"dispatched"}
    assert handling_hub.store.get(ids["wim"]).state == "new"
    (event,) = [e for e in handling_hub.store.events(ids["aq"]) if e.action == "joint_visit"]
    assert event.actor == "alice" and event.data["visit"] == r.json()["visit"]
