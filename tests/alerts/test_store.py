"""The risk queue on both backends: dedup per fingerprint, resolve, handling transitions, history,
filters, keyset pagination and the risk order."""

from __future__ import annotations

import pytest

from alerts.store import AlertFilter, AlertStore
from farsight.errors import NotFoundError, TransitionError
from tests.factories import signal


@pytest.fixture
def store(backend: str) -> AlertStore:
    s = AlertStore(backend)
    yield s
    s.close()


def test_one_open_alert_per_fingerprint(store: AlertStore) -> None:
    store.apply([signal(minutes=0)])
    store.apply([signal(minutes=10, value=99)])
    alerts, total = store.list()
    assert total == 1
    a = alerts[0]
    assert a.state == "new" and a.activity == "firing" and a.value == 99 and a.count == 1


def test_a_repeat_raises_the_severity_never_lowers_it(store: AlertStore) -> None:
    from dataclasses import replace

    store.apply([signal(minutes=0)])  # warning
    store.apply([replace(signal(minutes=5), severity="major", summary="confirmed on a revisit")])
    a = store.list()[0][0]
    assert a.severity == "major" and a.summary == "confirmed on a revisit"
    store.apply([replace(signal(minutes=10), severity="info")])
    assert store.list()[0][0].severity == "major"


def test_resolve_then_refire_counts_and_closure_opens_a_new_alert(store: AlertStore) -> None:
    (a,) = store.apply([signal(minutes=0)])
    (r,) = store.apply([signal("resolved", minutes=5)])
    assert r.id == a.id and r.activity == "resolved" and r.resolved_at is not None
    (again,) = store.apply([signal(minutes=7)])
    assert again.id == a.id and again.count == 2 and again.activity == "firing"
    store.transition(a.id, "ack", "li.wei", "looking")
    store.transition(a.id, "close", "li.wei", "verified on site: sensor fault")
    (new,) = store.apply([signal(minutes=30)])
    assert new.id != a.id and new.previous_id == a.id and new.state == "new"
    # A resolve for a fingerprint with nothing open changes nothing.
    assert store.apply([signal("resolved", fingerprint="other", minutes=40)]) == []


def test_transitions_record_who_when_and_refuse_invalid_moves(store: AlertStore) -> None:
    (a,) = store.apply([signal()])
    with pytest.raises(TransitionError, match="comment"):
        store.transition(a.id, "close", "li.wei", "   ")
    acked = store.transition(a.id, "ack", "li.wei", "on it")
    assert acked.state == "acknowledged"
    with pytest.raises(TransitionError, match="acknowledged"):
        store.transition(a.id, "ack", "li.wei", "again")
    closed = store.transition(a.id, "close", "wang.fang", "rectification ordered")
    assert closed.state == "closed"
    before = store.get(a.id)
    with pytest.raises(TransitionError):
        store.transition(a.id, "close", "wang.fang", "again")
    assert store.get(a.id) == before
    with pytest.raises(NotFoundError):
        store.transition(999, "ack", "x", "note")
    actions = [(e.actor, e.action, e.note) for e in store.events(a.id)]
    assert actions == [
        ("rules", "opened", a.summary),
        ("li.wei", "ack", "on it"),
        ("wang.fang", "close", "rectification ordered"),
    ]


def test_filters_and_pagination(store: AlertStore) -> None:
    store.apply(
        [
            signal(
                fingerprint=f"fp{i}",
                site="yc-aq-1" if i % 2 else "xg-wim-1",
                department="env" if i % 2 else "transport",
            )
            for i in range(7)
        ]
    )
    page, total = store.list(AlertFilter(department="env"), limit=2, offset=0)
    assert total == 3 and len(page) == 2
    page2, _ = store.list(AlertFilter(department="env"), limit=2, offset=2)
    assert len(page2) == 1 and {a.id for a in page}.isdisjoint({a.id for a in page2})
    assert store.list(AlertFilter(state=("closed",)))[1] == 0
    with pytest.raises(ValueError, match="unknown state"):
        store.list(AlertFilter(state=("bogus",)))
    assert store.counts()["severity"] == {"warning": 7}


def test_the_verification_workflow_from_open_to_closed_and_reopened(store: AlertStore) -> None:
    (a,) = store.apply([signal()])
    store.transition(a.id, "ack", "li.wei", "looking at the data")
    with pytest.raises(TransitionError, match="inspector"):
        store.transition(
            a.id, "dispatch", "li.wei", "send a team", {"team": "Xiling 2", "due": "2026-11-27"}
        )
    with pytest.raises(TransitionError, match="not a date"):
        store.transition(
            a.id,
            "dispatch",
            "li.wei",
            "send a team",
            {"team": "Xiling 2", "inspector": "wang.fang", "due": "Friday"},
        )
    assert store.get(a.id).state == "acknowledged"  # refused steps change nothing
    d = store.transition(
        a.id,
        "dispatch",
        "li.wei",
        "send a team",
        {"team": "Xiling 2", "inspector": "wang.fang", "due": "2026-11-27"},
    )
    assert d.state == "dispatched" and d.handling["dispatch"] == {
        "team": "Xiling 2",
        "inspector": "wang.fang",
        "due": "2026-11-27",
    }
    with pytest.raises(TransitionError, match="finding"):
        store.transition(a.id, "verify", "wang.fang", "on site", {"finding": "looked fine"})
    with pytest.raises(TransitionError, match="sha256"):
        store.transition(
            a.id,
            "verify",
            "wang.fang",
            "on site",
            {"finding": "violation_confirmed", "evidence": ["photo.jpg"]},
        )
    photo = "ab" * 32
    v = store.transition(
        a.id,
        "verify",
        "wang.fang",
        "bypass valve open",
        {"finding": "violation_confirmed", "evidence": [photo]},
    )
    assert v.state == "verified" and v.handling["verification"] == {
        "finding": "violation_confirmed",
        "evidence": [photo],
    }
    store.transition(a.id, "comment", "li.wei", "operator informed")
    c = store.transition(
        a.id,
        "close",
        "li.wei",
        "penalty decided",
        {
            "case_number": "YC-ENV-2026-118",
            "penalty": "CNY 100000 (Air Law art. 99)",
            "rectification": "seal the bypass",
            "recheck": "2026-12-15",
        },
    )
    assert c.state == "closed" and c.handling["disposal"]["recheck"] == "2026-12-15"
    r = store.transition(a.id, "reopen", "zhao.min", "re-check found the bypass in use again")
    assert r.state == "acknowledged" and r.handling["reopened"]["reason"].startswith("re-check")
    actions = [e.action for e in store.events(a.id)]
    assert actions == ["opened", "ack", "dispatch", "verify", "comment", "close", "reopen"]


def test_reopening_is_refused_while_another_alert_of_the_series_is_open(store: AlertStore) -> None:
    (a,) = store.apply([signal()])
    store.transition(a.id, "close", "li.wei", "desk review: calibration run")
    (b,) = store.apply([signal(minutes=30)])
    assert b.id != a.id
    with pytest.raises(TransitionError, match=f"alert {b.id}"):
        store.transition(a.id, "reopen", "li.wei", "wrong call")
    assert store.get(a.id).state == "closed"


def test_every_alert_event_is_in_the_audit_chain_and_a_refused_step_leaves_no_trace(
    store: AlertStore,
) -> None:
    (a,) = store.apply([signal()])
    store.transition(a.id, "ack", "li.wei", "on it")
    with pytest.raises(TransitionError):
        store.transition(a.id, "verify", "li.wei", "skipping dispatch", {"finding": "no_violation"})
    store.apply([signal("resolved", minutes=5)])
    store.transition(a.id, "close", "li.wei", "desk review")
    trail = [(e.actor, e.action, e.subject) for e in store.audit.entries(subject=f"alert:{a.id}")]
    assert trail == [
        ("rules", "opened", f"alert:{a.id}"),
        ("li.wei", "ack", f"alert:{a.id}"),
        ("rules", "resolved", f"alert:{a.id}"),
        ("li.wei", "close", f"alert:{a.id}"),
    ]
    result = store.audit.verify()
    assert result.ok and result.entries == 4


def test_the_queue_sorts_by_risk_and_every_alert_explains_its_score(backend: str) -> None:
    from dataclasses import replace as _replace
    from datetime import timedelta

    from farsight.clock import ManualClock
    from tests.factories import T0

    clock = ManualClock(T0)
    store = AlertStore(backend, clock=clock)
    low = _replace(signal(fingerprint="a"), severity="major", credit_grade="A", entity_id="E1")
    high = _replace(signal(fingerprint="b"), severity="major", credit_grade="D", entity_id="E2")
    store.apply([low, high])
    clock.advance(timedelta(hours=10))
    repeat = _replace(
        signal(fingerprint="c"),
        severity="warning",
        credit_grade="A",
        entity_id="E1",
        evidence=("ab" * 32,),
    )
    store.apply([repeat])
    items, _ = store.list(sort="risk")
    # major x D (1.6) beats major x A (0.8); both waited 10 h (x1.5). The new warning of the
    # same operator as the first: 2 x 0.8 x (1 + 0.25 x 1 repeat) x (1 + 0.1 x 1 evidence).
    assert [a.fingerprint for a in items] == ["b", "a", "c"]
    scores = {a.fingerprint: a.risk["score"] for a in items}
    assert scores == {
        "b": round(4 * 1.6 * 1.5, 3),
        "a": round(4 * 0.8 * 1.5, 3),
        "c": round(2 * 0.8 * 1.25 * 1.1, 3),
    }
    factors = {f["name"]: f for f in items[2].risk["factors"]}
    assert (
        factors["repeat"]["detail"].startswith("1 earlier alert")
        and factors["evidence"]["multiplier"] == 1.1
    )
    store.close()


def test_text_search_finds_substrings_in_any_text_column(store: AlertStore) -> None:
    from dataclasses import replace as _replace

    (a,) = store.apply(
        [
            _replace(
                signal(fingerprint="s1"), summary="SO2 hourly mean 52 above 35 at 宜昌电厂 stack"
            )
        ]
    )
    (b,) = store.apply(
        [
            _replace(
                signal(fingerprint="s2", site="xg-wim-1"),
                summary="Overloaded truck 鄂K12345, 6 axles",
            )
        ]
    )

    def found(text: str) -> set[int]:
        return {x.id for x in store.list(AlertFilter(text=text))[0]}

    store.index_text()  # SQLite: in the trigram index from here on
    assert found("HOURLY mean") == {a.id}  # case-insensitive substring of the summary
    assert found("宜昌电厂") == {a.id}  # Chinese, through the index
    assert found("电厂") == {a.id}  # two characters: below trigrams, still found
    assert found("xg-wim") == {b.id}  # the site column
    assert found("aq-pm25") == {a.id, b.id}  # the rule column
    assert found("50%") == set() and found("no such words") == set()
    # A repeat rewrites the summary with its latest value; the alert is still found by the
    # words it was raised with.
    store.apply(
        [
            _replace(
                signal(fingerprint="s2", site="xg-wim-1"),
                summary="Overloaded truck 鄂K12345, 7 axles",
            )
        ]
    )
    assert store.get(b.id).summary.endswith("7 axles") and found("鄂K12345") == {b.id}
    # Combined with other filters, and counted.
    items, total = store.list(AlertFilter(text="axles", site="xg-wim-1"))
    assert total == 1 and items[0].id == b.id


def test_text_search_pages_in_raise_order_across_the_index_and_its_tail(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace as _replace

    import alerts.store as store_module

    def raise_(i: int, department: str = "env") -> int:
        (a,) = store.apply(
            [
                _replace(
                    signal(fingerprint=f"t{department}{i}", department=department),
                    summary=f"COD over permit at outfall {i}",
                )
            ]
        )
        return a.id

    env = [raise_(i) for i in range(7)]
    store.index_text()  # the first seven in the index, the rest in its tail
    env += [raise_(i) for i in range(7, 10)]
    other = [raise_(i, "transport") for i in range(3)]
    f = AlertFilter(text="over permit", department="env")
    seen, cursor = [], None
    while True:
        page = store.page(f, limit=4, sort="newest", cursor=cursor)
        assert page.total == 10 and page.total_exact
        seen += [a.id for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(
        env, reverse=True
    )  # newest first, no gaps or repeats, other department left out
    assert [a.id for a in store.page(f, limit=3, sort="oldest").items] == env[:3]
    assert {
        a.id for a in store.page(AlertFilter(text="outfall"), limit=50, sort="newest").items
    } == set(env + other)
    assert (
        store.page(AlertFilter(text="outfall 1"), limit=50, sort="newest").total == 2
    )  # env 1 and transport 1
    # Counting stops at the cap, and says so.
    monkeypatch.setattr(store_module, "TEXT_COUNT_MAX", 5)
    capped = store.page(AlertFilter(text="outfall"), limit=2, sort="newest")
    assert (capped.total, capped.total_exact) == (5, False)
