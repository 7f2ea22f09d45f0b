"""Matchers and the silence store: validation, lifecycle and audit, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from alerts.matchers import MatcherError, alert_labels, matches, parse_matchers, pinned
from alerts.silences import MAX_DURATION, SilenceError, SilenceStore
from alerts.store import AlertStore
from farsight.clock import ManualClock, to_epoch_ms
from farsight.errors import NotFoundError
from tests.factories import T0, signal

H = timedelta(hours=1)


# -- matchers (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"site": "~[unclosed"}, "'site'"),
        ({"site": "~[unclosed"}, "~[unclosed"),
        ({"9site": "x"}, "'9site'"),
        ({"bad-label": "x"}, "'bad-label'"),
        ({"severity": 3}, "'severity'"),
        ({"severity": 3}, "3"),
        ({"device": None}, "'device'"),
        ({}, "at least one matcher"),
    ],
)
def test_bad_matchers_name_the_label_and_value(doc: dict, needle: str) -> None:
    with pytest.raises(MatcherError) as err:
        parse_matchers(doc)
    assert needle in str(err.value)


def test_matchers_are_not_a_list() -> None:
    with pytest.raises(MatcherError, match="object"):
        parse_matchers("site=a")  # type: ignore[arg-type]  # a string, not a mapping, on purpose


def test_equality_regex_and_absent_labels() -> None:
    labels = {"site": "yc-aq-1", "device": "", "metric": "pm25"}
    assert matches({"site": "yc-aq-1"}, labels)
    assert not matches({"site": "yc-aq-2"}, labels)
    assert matches({"site": "~yc-.*"}, labels)
    assert not matches({"site": "~aq"}, labels), "a regex must match the whole value"
    assert matches({"device": ""}, labels)
    assert matches({"owner": ""}, labels), "an absent label is the empty string"
    assert not matches({"owner": "~.+"}, labels)
    assert matches({"site": "yc-aq-1", "metric": "~pm(25|10)"}, labels)
    assert not matches({"site": "yc-aq-1", "metric": "so2"}, labels), "every matcher must match"


def test_pinned_reads_equality_only() -> None:
    ms = parse_matchers({"department": "env", "site": "~x.*"})
    assert pinned(ms, "department") == "env"
    assert pinned(ms, "site") is None
    assert pinned(ms, "device") is None


def test_alert_labels_carry_the_alert_columns(backend: str) -> None:
    store = AlertStore(backend, clock=ManualClock(T0))
    try:
        a = store.apply([signal()])[0]
        labels = alert_labels(a)
        assert (
            labels["site"] == "yc-aq-1" and labels["device"] == "aq1" and labels["metric"] == "pm25"
        )
        assert labels["rule_id"] == "aq-pm25-high" and labels["department"] == "env"
        assert (
            labels["severity"] == "warning"
            and labels["entity_id"] == a.entity_id
            and "item_code" in labels
        )
    finally:
        store.close()


# -- the silence store ----------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def silences(backend: str, clock: ManualClock) -> Iterator[SilenceStore]:
    alerts = AlertStore(backend, clock=clock)
    s = SilenceStore(alerts.db, clock=clock, audit=alerts.audit)
    yield s
    alerts.close()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ends_at": T0}, "after starts_at"),
        ({"ends_at": T0 - H}, "after starts_at"),
        ({"starts_at": T0 - 3 * H, "ends_at": T0 - H}, "in the past"),
        ({"ends_at": T0 + MAX_DURATION + H}, "at most 90 days"),
        ({"reason": "  "}, "reason"),
        ({"matchers": {}}, "at least one matcher"),
        ({"matchers": {"site": "~.*"}}, "non-empty"),
        ({"matchers": {"site": "~("}}, "'site'"),
        ({"creator": ""}, "creator"),
    ],
)
def test_invalid_silences_are_refused(silences: SilenceStore, kwargs: dict, needle: str) -> None:
    args = {
        "matchers": {"site": "yc-aq-1"},
        "starts_at": T0,
        "ends_at": T0 + H,
        "reason": "calibration",
        "creator": "alice",
    }
    args.update(kwargs)
    with pytest.raises(SilenceError) as err:
        silences.create(**args)
    assert needle in str(err.value)
    assert silences.list() == []


def test_bad_matchers_of_a_silence_are_matcher_errors(silences: SilenceStore) -> None:
    with pytest.raises(MatcherError, match="'site'"):
        silences.create({"site": "~("}, T0, T0 + H, "x", "alice")


def test_lifecycle_pending_active_expired(silences: SilenceStore, clock: ManualClock) -> None:
    s = silences.create({"site": "yc-aq-1"}, T0 + H, T0 + 2 * H, "  maintenance visit ", "alice")
    assert s.reason == "maintenance visit" and s.creator == "alice" and s.created == T0
    assert s.status(T0) == "pending"
    assert [x.id for x in silences.list("pending")] == [s.id]
    assert silences.active() == []
    clock.advance(H)
    assert [x.id for x in silences.active()] == [s.id]
    assert [x.id for x in silences.list("active")] == [s.id]
    clock.advance(H)
    assert silences.active() == [], "a silence expires by itself at its end"
    assert [x.id for x in silences.list("expired")] == [s.id]
    assert silences.get(s.id).expired_at is None, "expiring by itself writes nothing"


def test_starts_now_by_default(silences: SilenceStore) -> None:
    s = silences.create({"site": "yc-aq-1"}, None, T0 + H, "x", "alice")
    assert s.starts_at == T0 and s.is_active(T0)


def test_expire_early_and_twice(silences: SilenceStore, clock: ManualClock) -> None:
    s = silences.create({"site": "yc-aq-1"}, T0, T0 + 5 * H, "x", "alice")
    clock.advance(H)
    e = silences.expire(s.id, "bob", note="done early")
    assert e.expired_at == T0 + H and e.expired_by == "bob" and e.status(T0 + H) == "expired"
    assert silences.active() == []
    with pytest.raises(SilenceError, match="already expired"):
        silences.expire(s.id, "bob")
    with pytest.raises(NotFoundError):
        silences.expire(s.id + 1000, "bob")


def test_expiring_an_ended_silence_is_refused(silences: SilenceStore, clock: ManualClock) -> None:
    s = silences.create({"site": "yc-aq-1"}, T0, T0 + H, "x", "alice")
    clock.advance(2 * H)
    with pytest.raises(SilenceError, match="already expired"):
        silences.expire(s.id, "bob")


def test_create_and_expire_are_audited(silences: SilenceStore, clock: ManualClock) -> None:
    s = silences.create({"site": "yc-aq-1", "metric": "~pm.*"}, T0, T0 + H, "calibration", "alice")
    clock.advance(timedelta(minutes=5))
    silences.expire(s.id, "bob")
    entries = silences.audit.entries(subject=f"silence:{s.id}")
    assert [(e.actor, e.action) for e in entries] == [("alice", "created"), ("bob", "expired")]
    assert entries[0].data["matchers"] == {"site": "yc-aq-1", "metric": "~pm.*"}
    assert entries[0].data["reason"] == "calibration"
    assert silences.audit.verify().ok


def test_list_by_department(silences: SilenceStore) -> None:
    env = silences.create({"department": "env", "site": "yc-aq-1"}, T0, T0 + H, "x", "alice")
    tr = silences.create({"department": "transport"}, T0, T0 + H, "x", "bob")
    anyd = silences.create({"site": "yc-aq-1"}, T0, T0 + H, "x", "root")
    assert [s.id for s in silences.list(department="env")] == [env.id]
    assert [s.id for s in silences.list()] == [anyd.id, tr.id, env.id]
    with pytest.raises(ValueError, match="unknown silence status"):
        silences.list("gone")


def test_a_stored_pattern_re2_refuses_mutes_nothing_and_is_listed(
    silences: SilenceStore,
) -> None:
    # A silence written before matchers ran on RE2, with a lookahead Python's re accepted.
    with silences.db.transaction() as c:
        c.execute(
            "INSERT INTO silences (matchers, starts_at, ends_at, reason, creator, created)"
            " VALUES (?, ?, ?, 'old', 'alice', ?)",
            (
                '{"department": "env", "site": "~(?!yc).*"}',
                to_epoch_ms(T0),
                to_epoch_ms(T0 + H),
                to_epoch_ms(T0),
            ),
        )
    good = silences.create({"site": "yc-aq-1"}, T0, T0 + H, "x", "alice")
    assert [s.id for s in silences.active()] == [good.id], "the refused one mutes nothing"
    old = next(s for s in silences.list() if s.id != good.id)
    assert old.refused and "lookahead" in old.refused and old.matchers == ()
    assert not old.is_active(T0) and old.department == "env"
    d = old.to_dict(T0)
    assert d["matchers"] == {"department": "env", "site": "~(?!yc).*"} and d["refused"]
