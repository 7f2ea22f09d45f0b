"""Joint inspection on both backends: one entity's waiting alerts across sites and departments
become one proposal; a visit dispatches them all in one transaction, or none."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from alerts.escalation import Escalator
from alerts.joint import VISIT_ACTION, ScopeError, build_proposal, dispatch_visit, proposals
from alerts.store import AlertStore
from farsight.clock import ManualClock
from farsight.credit import make_credit_code
from farsight.errors import NotFoundError, TransitionError
from farsight.registry import Registry, parse_registry
from farsight.settings import EscalationSettings
from tests.factories import ENTITY, T0, signal

OTHER = make_credit_code("91420500MA4900002")
ENTITY_NAME = "宜昌猇亭热电有限公司"


def make_registry() -> Registry:
    def site(sid: str, dept: str, entity: str, name: str, **extra: object) -> dict:
        return {
            "id": sid,
            "name": name,
            "department": dept,
            "entity_id": entity,
            "location": {"lon": 111.3, "lat": 30.7},
            "city": "Yichang",
            "kind": "stack",
            "devices": [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25", "so2"]}],
            **extra,
        }

    return parse_registry(
        {
            "sites": [
                site("yc-stack-1", "env", ENTITY, "Stack 1", entity_name=ENTITY_NAME),
                site("yc-stack-2", "env", ENTITY, "Stack 2", entity_name=ENTITY_NAME),
                site("yc-yard-1", "transport", ENTITY, "Coal yard gate", entity_name=ENTITY_NAME),
                site("yc-aq-1", "env", OTHER, "Air station"),
            ]
        },
        ("env", "transport", "natres"),
    )


DISPATCH = {"team": "t1", "inspector": "zhang", "due": "2026-11-28"}


@pytest.fixture
def store(backend: str) -> Iterator[AlertStore]:
    s = AlertStore(backend, clock=ManualClock(T0))
    esc = Escalator(s, EscalationSettings())
    s.listeners.append(esc.on_event)
    yield s
    assert s.audit.verify().ok
    s.close()


def raise_alert(
    store: AlertStore,
    fp: str,
    site: str,
    department: str,
    entity: str = ENTITY,
    metric: str = "pm25",
) -> int:
    (a,) = store.apply(
        [
            replace(
                signal(fingerprint=fp, site=site, department=department),
                entity_id=entity,
                metric=metric,
            )
        ]
    )
    return a.id


@pytest.fixture
def alerts(store: AlertStore) -> dict[str, int]:
    ids = {
        "s1a": raise_alert(store, "s1a", "yc-stack-1", "env"),
        "s1b": raise_alert(store, "s1b", "yc-stack-1", "env", metric="so2"),
        "s2": raise_alert(store, "s2", "yc-stack-2", "env"),
        "yard": raise_alert(store, "yard", "yc-yard-1", "transport"),
        "yard_closed": raise_alert(store, "yard-c", "yc-yard-1", "transport"),
        "s2_muted": raise_alert(store, "s2-m", "yc-stack-2", "env"),
        "s1_dispatched": raise_alert(store, "s1-d", "yc-stack-1", "env"),
        "other": raise_alert(store, "o1", "yc-aq-1", "env", entity=OTHER),
        "other_closed": raise_alert(store, "o2", "yc-aq-1", "env", entity=OTHER),
    }
    store.transition(ids["yard"], "ack", "bob", "seen")  # acknowledged still waits for a visit
    store.transition(ids["yard_closed"], "close", "bob", "desk closure")
    store.record(
        ids["s2_muted"],
        "silences",
        "silenced",
        "maintenance",
        {"silence": 1},
        changes={"suppressed": '{"silence": 1}'},
    )
    store.transition(ids["s1_dispatched"], "dispatch", "li", "go", DISPATCH)
    store.transition(ids["other_closed"], "close", "li", "false alarm")
    return ids


def test_proposal_groups_one_entity_across_sites_and_departments(
    store: AlertStore, alerts: dict[str, int]
) -> None:
    (p,) = proposals(store, registry=make_registry())  # OTHER has one waiting alert: no proposal
    assert p.entity_id == ENTITY and p.entity_name == ENTITY_NAME
    groups = {(g.department, g.site): sorted(a.id for a in g.alerts) for g in p.groups}
    assert groups == {
        ("env", "yc-stack-1"): sorted([alerts["s1a"], alerts["s1b"]]),
        ("env", "yc-stack-2"): [alerts["s2"]],
        ("transport", "yc-yard-1"): [alerts["yard"]],
    }
    assert {g.site_name for g in p.groups} == {"Stack 1", "Stack 2", "Coal yard gate"}
    assert p.alert_count == 4 and p.departments == ("env", "transport") and p.withheld == ()
    assert p.total_risk == pytest.approx(
        sum(
            store.get(i).risk["score"]
            for i in (alerts["s1a"], alerts["s1b"], alerts["s2"], alerts["yard"])
        )
    )
    assert p.total_risk > 0
    assert len(p.checks) == 4 and any("so2" in c and "Stack 1" in c for c in p.checks)
    d = p.to_dict()
    assert sorted(d["alert_ids"]) == sorted(p.alert_ids) and d["entity_name"] == ENTITY_NAME
    # Without a registry the names are the codes and ids.
    (bare,) = proposals(store)
    assert bare.entity_name == "" and {g.site_name for g in bare.groups} == {
        "yc-stack-1",
        "yc-stack-2",
        "yc-yard-1",
    }


def test_department_listing_shows_its_own_alerts_and_counts_the_others(
    store: AlertStore, alerts: dict[str, int]
) -> None:
    (p,) = proposals(store, department="transport", registry=make_registry())
    assert p.alert_ids == (alerts["yard"],) and p.withheld == (("env", 3),) and p.alert_count == 4
    assert proposals(store, department="natres") == []


def test_build_proposal_needs_two_alerts(store: AlertStore, alerts: dict[str, int]) -> None:
    one = [store.get(alerts["s1a"])]
    assert build_proposal(ENTITY, one) is None


def _history_sizes(store: AlertStore, ids: dict[str, int]) -> dict[int, int]:
    return {i: len(store.events(i)) for i in ids.values()}


def test_dispatch_visit_is_all_or_none(store: AlertStore, alerts: dict[str, int]) -> None:
    before = {i: store.get(i) for i in alerts.values()}
    sizes = _history_sizes(store, alerts)
    audit_head = store.audit.head()
    # One alert already dispatched: nothing is dispatched, although the others could be.
    with pytest.raises(TransitionError, match="dispatched"):
        dispatch_visit(
            store,
            ENTITY,
            [alerts["s1a"], alerts["yard"], alerts["s1_dispatched"]],
            "admin",
            "joint visit",
            **_who(),
        )
    with pytest.raises(TransitionError, match="closed"):
        dispatch_visit(
            store, ENTITY, [alerts["s1a"], alerts["yard_closed"]], "admin", "joint visit", **_who()
        )
    with pytest.raises(ValueError, match="entity"):
        dispatch_visit(
            store, ENTITY, [alerts["s1a"], alerts["other"]], "admin", "joint visit", **_who()
        )
    with pytest.raises(ScopeError, match="transport"):
        dispatch_visit(
            store,
            ENTITY,
            [alerts["s1a"], alerts["yard"]],
            "alice",
            "joint visit",
            department_scope="env",
            **_who(),
        )
    with pytest.raises(NotFoundError):
        dispatch_visit(store, ENTITY, [alerts["s1a"], 99_999], "admin", "joint visit", **_who())
    for bad in (
        {"alert_ids": []},
        {"alert_ids": [alerts["s1a"], alerts["s1a"]]},
        {"due": "next week"},
        {"team": " "},
    ):
        args = {"alert_ids": [alerts["s1a"], alerts["yard"]], **_who(), **bad}
        with pytest.raises(ValueError):
            dispatch_visit(store, ENTITY, actor="admin", note="joint visit", **args)
    assert {i: store.get(i) for i in alerts.values()} == before
    assert _history_sizes(store, alerts) == sizes
    assert store.audit.head() == audit_head


def test_dispatch_visit_records_one_visit_id_on_every_alert(
    store: AlertStore, alerts: dict[str, int]
) -> None:
    chosen = [alerts["s1a"], alerts["s2"], alerts["yard"]]
    visit = dispatch_visit(store, ENTITY, chosen, "admin", "进一次门、查多项事", **_who())
    assert visit.startswith("JV-")
    for aid in chosen:
        a = store.get(aid)
        assert a.state == "dispatched"
        assert a.handling["dispatch"] == {
            "team": "joint-1",
            "inspector": "zhang.san",
            "due": "2026-11-30",
            "visit": visit,
        }
        assert a.due_at is not None  # the verification deadline runs
        actions = [(e.action, e.data.get("visit")) for e in store.events(aid)]
        assert actions[-2:] == [("dispatch", None), (VISIT_ACTION, visit)]
        assert store.events(aid)[-1].data["alerts"] == chosen
    assert store.get(alerts["s1b"]).state == "new"
    # s1b is left alone and waits; one alert is no joint visit any more.
    assert proposals(store) == []
    # A department-scoped actor may dispatch its own department's alerts.
    second = dispatch_visit(
        store, ENTITY, [alerts["s1b"]], "alice", "follow-up", department_scope="env", **_who()
    )
    assert second != visit and store.get(alerts["s1b"]).handling["dispatch"]["visit"] == second


def _who() -> dict[str, str]:
    return {"team": "joint-1", "inspector": "zhang.san", "due": "2026-11-30"}
