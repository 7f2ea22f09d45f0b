"""Handling statistics on both backends: MTTA and MTTR from a scripted history equal the values
worked out by hand, per department and overall."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from alerts.escalation import Escalator
from alerts.handling_stats import handling_stats, percentile, summarise
from alerts.store import AlertStore
from farsight.clock import ManualClock
from farsight.settings import EscalationSettings
from tests.factories import T0, signal

DISPATCH = {"team": "t1", "inspector": "zhang", "due": "2026-11-28"}


def test_percentile_and_summary() -> None:
    assert percentile([], 0.9) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([30, 10, 10], 0.9) == pytest.approx(26.0)  # rank 1.8: 10 + 0.8 x (30 - 10)
    assert percentile([1, 2, 3, 4], 0.5) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)
    assert summarise([]) == {"n": 0, "mean_min": None, "median_min": None, "p90_min": None}
    assert summarise([70, 120]) == {
        "n": 2,
        "mean_min": 95.0,
        "median_min": 95.0,
        "p90_min": pytest.approx(115.0),
    }


class Script:
    """Moves the store's clock to absolute minutes after T0 between the steps of a history."""

    def __init__(self, store: AlertStore, clock: ManualClock) -> None:
        self.store, self.clock = store, clock

    def at(self, minutes: float) -> Script:
        target = T0 + timedelta(minutes=minutes)
        assert target >= self.clock.now(), "the script goes forward in time"
        self.clock.advance(target - self.clock.now())
        return self

    def open(self, fp: str, department: str = "env", severity: str = "warning") -> int:
        sig = replace(
            signal(
                fingerprint=fp,
                department=department,
                minutes=(self.clock.now() - T0).total_seconds() / 60,
            ),
            severity=severity,
        )
        (a,) = self.store.apply([sig])
        return a.id


@pytest.fixture
def history(backend: str) -> Iterator[tuple[AlertStore, dict[str, int]]]:
    clock = ManualClock(T0)
    store = AlertStore(backend, clock=clock)
    esc = Escalator(store, EscalationSettings(repeat_min=60))
    store.listeners.append(esc.on_event)
    s = Script(store, clock)
    ids: dict[str, int] = {}
    ids["A"] = s.at(0).open("a")
    ids["B"] = s.at(5).open("b")
    ids["D"] = s.at(6).open("d", department="transport")
    s.at(10)
    store.transition(ids["A"], "ack", "li", "on it")  # A: taken up after 10
    ids["C"] = s.at(12).open("c", severity="critical")  # C: ack due at 27
    s.at(26)
    store.transition(ids["D"], "close", "bob", "desk closure: calibration")  # D: 20 and 20
    s.at(30)
    assert [x.id for x in esc.tick(clock.now())] == [ids["C"]]  # C escalated, again due at 90
    s.at(35)
    store.transition(ids["B"], "dispatch", "li", "go", DISPATCH)  # B: taken up after 30
    ids["E"] = s.at(40).open("e")
    s.at(50)
    store.transition(ids["E"], "ack", "li", "on it")  # E: taken up after 10
    s.at(60)
    store.transition(ids["E"], "close", "li", "false alarm")
    s.at(65)
    store.transition(ids["E"], "reopen", "li", "it came back")  # E: not resolved; due at 305
    s.at(70)
    store.transition(ids["A"], "close", "li", "rectified")  # A: resolved after 70
    s.at(80)
    store.transition(ids["B"], "verify", "zhang", "seen", {"finding": "violation_confirmed"})
    s.at(125)
    store.transition(ids["B"], "close", "li", "fined")  # B: resolved after 120
    ids["F"] = s.at(200).open("f")  # after the period
    yield store, ids
    assert store.audit.verify().ok
    store.close()


def test_mtta_mttr_per_department_equal_hand_computed_values(
    history: tuple[AlertStore, dict[str, int]],
) -> None:
    store, _ = history
    stats = handling_stats(store, T0, T0 + timedelta(minutes=180))
    env, transport, total = (
        stats["departments"]["env"],
        stats["departments"]["transport"],
        stats["all"],
    )
    assert set(stats["departments"]) == {"env", "transport"}
    # env: A, B, C, E raised; A (10), B (30), E (10) taken up; A (70) and B (120) closed; C
    # escalated and overdue.
    assert (
        env["raised"],
        env["acknowledged"],
        env["closed"],
        env["escalated"],
        env["overdue_now"],
    ) == (4, 3, 2, 1, 1)
    assert env["mtta"] == {
        "n": 3,
        "mean_min": pytest.approx(50 / 3),
        "median_min": 10.0,
        "p90_min": pytest.approx(26.0),
    }
    assert env["mttr"] == {
        "n": 2,
        "mean_min": pytest.approx(95.0),
        "median_min": pytest.approx(95.0),
        "p90_min": pytest.approx(115.0),
    }
    # transport: D closed at the desk after 20 minutes.
    assert (
        transport["raised"],
        transport["acknowledged"],
        transport["closed"],
        transport["escalated"],
        transport["overdue_now"],
    ) == (1, 1, 1, 0, 0)
    assert transport["mtta"] == {"n": 1, "mean_min": 20.0, "median_min": 20.0, "p90_min": 20.0}
    assert transport["mttr"] == {"n": 1, "mean_min": 20.0, "median_min": 20.0, "p90_min": 20.0}
    # Overall: taken up after 10, 30, 10, 20; resolved after 70, 120, 20.
    assert (total["raised"], total["acknowledged"], total["closed"]) == (5, 4, 3)
    assert total["mtta"] == {
        "n": 4,
        "mean_min": pytest.approx(17.5),
        "median_min": pytest.approx(15.0),
        "p90_min": pytest.approx(27.0),
    }
    assert total["mttr"] == {
        "n": 3,
        "mean_min": pytest.approx(70.0),
        "median_min": pytest.approx(70.0),
        "p90_min": pytest.approx(110.0),
    }


def test_one_department_and_the_period(history: tuple[AlertStore, dict[str, int]]) -> None:
    store, _ = history
    only = handling_stats(store, T0, T0 + timedelta(minutes=180), department="transport")
    assert list(only["departments"]) == ["transport"] and only["department"] == "transport"
    assert only["all"]["raised"] == 1 and only["all"]["mttr"]["mean_min"] == 20.0
    # A department with nothing is listed with zeros.
    empty = handling_stats(store, T0, T0 + timedelta(minutes=180), department="natres")
    assert (
        empty["departments"]["natres"]["raised"] == 0
        and empty["departments"]["natres"]["mtta"]["n"] == 0
    )
    # The period picks alerts by when they were raised: from minute 11, C, E (env) and nothing of
    # transport.
    later = handling_stats(store, T0 + timedelta(minutes=11), T0 + timedelta(minutes=300))
    assert later["departments"]["env"]["raised"] == 3  # C, E and F
    assert (
        later["departments"]["env"]["mtta"]["n"] == 1
        and later["departments"]["env"]["mttr"]["n"] == 0
    )
    assert "transport" not in later["departments"]  # nothing raised in the period, nothing overdue
    # Overdue is judged at "now": far later, C, E and F are all overdue.
    assert (
        handling_stats(store, T0, T0 + timedelta(minutes=300), now=T0 + timedelta(days=2))[
            "departments"
        ]["env"]["overdue_now"]
        == 3
    )
    with pytest.raises(ValueError):
        handling_stats(store, T0, T0)
