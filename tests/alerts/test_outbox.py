"""The upstream outbox on both backends: enqueue in the change's transaction, per-alert order
under retries, backoff with full jitter, timeouts, duplicate answers, dead letters and redrive,
concurrent senders; every payload sent is validated against the published JSON Schema."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import jsonschema
import pytest
from prometheus_client import CollectorRegistry

from alerts import outbox
from alerts.outbox import (
    Outbox,
    OutboxSender,
    attach_outbox,
    backoff_bound,
    backoff_delay,
    build_payload,
    idempotency_key,
    load_schema,
    parse_retry_after,
)
from alerts.outbox_cli import main as outbox_cli
from alerts.store import AlertStore
from farsight.clock import Clock, ManualClock
from farsight.db import Database
from farsight.errors import TransitionError
from farsight.settings import UpstreamSettings
from tests.alerts.receiver import ACCEPT_THEN_500, OK, Receiver, fail, hang
from tests.conftest import wait_until
from tests.factories import T0, signal

SHA = "ab" * 32
VALIDATOR = jsonschema.Draft202012Validator(
    load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def upstream(url: str = "http://127.0.0.1:9/events", **kw: object) -> UpstreamSettings:
    base = {
        "url": url,
        "timeout_s": 2.0,
        "backoff_base_s": 1.0,
        "backoff_cap_s": 30.0,
        "max_attempts": 5,
        "batch": 10,
        "lease_s": 60.0,
        "poll_s": 0.02,
    }
    return UpstreamSettings.model_validate({**base, **kw})


@pytest.fixture
def store(backend: str) -> Iterator[AlertStore]:
    s = AlertStore(backend, clock=ManualClock(T0))
    attach_outbox(s)
    yield s
    s.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def senders(backend: str) -> Iterator[list[OutboxSender]]:
    """Senders made by the test, closed afterwards."""
    made: list[OutboxSender] = []
    yield made
    for s in made:
        s.close()


def sender(
    senders: list[OutboxSender],
    backend: str,
    settings: UpstreamSettings,
    *,
    transport: httpx.BaseTransport | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> OutboxSender:
    s = OutboxSender(backend, settings, transport=transport, clock=clock, rng=rng)
    senders.append(s)
    return s


def rows(store: AlertStore) -> list[dict]:
    return Outbox(store.db).rows()


def drain(s: OutboxSender, clock: ManualClock, rounds: int = 50) -> None:
    """Run the sender until nothing is pending, moving the manual clock past every backoff."""
    for _ in range(rounds):
        s.run_once()
        if outbox.status(s.db)["pending"] == 0:
            return
        clock.advance(timedelta(seconds=s.settings.backoff_cap_s + 1))
    raise AssertionError(f"outbox not drained: {outbox.status(s.db)}")


def assert_valid(payloads: list) -> None:
    for p in payloads:
        VALIDATOR.validate(p)


def per_alert_order(keys: list[str]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for k in keys:
        _, alert, event = k.split(":")
        out.setdefault(int(alert), []).append(int(event))
    return out


# -- payload ------------------------------------------------------------------------------------


def test_payload_matches_the_schema_through_the_whole_workflow(store: AlertStore) -> None:
    (a,) = store.apply([signal()])
    store.transition(a.id, "ack", "李伟", "正在查看数据")
    store.transition(
        a.id,
        "dispatch",
        "李伟",
        "派发现场核查",
        {"team": "执法一队", "inspector": "王芳", "due": "2026-11-27"},
    )
    store.transition(
        a.id,
        "verify",
        "王芳",
        "现场核查属实",
        {"finding": "violation_confirmed", "evidence": [SHA]},
    )
    store.transition(
        a.id,
        "close",
        "王芳",
        "立案处罚",
        {"case_number": "宜环罚〔2026〕12号", "penalty": "罚款5万元", "recheck": "2026-12-20"},
    )
    got = rows(store)
    assert [r["key"] for r in got] == [
        idempotency_key("farsight", a.id, e.id) for e in store.events(a.id)
    ]
    import json

    docs = [json.loads(r["payload"]) for r in got]
    assert_valid(docs)
    last = docs[-1]
    assert last["event"]["action"] == "close" and last["alert"]["state"] == "closed"
    assert last["alert"]["entity_credit_code"] == a.entity_id and last["alert"]["risk"]["score"] > 0
    assert last["alert"]["handling"]["verification"] == {
        "finding": "violation_confirmed",
        "evidence": [SHA],
    }
    assert last["alert"]["handling"]["disposal"]["case_number"] == "宜环罚〔2026〕12号"
    assert last["alert"]["evidence"] == [{"sha256": SHA, "href": f"/api/evidence/{SHA}"}]
    assert "李伟" in got[1]["payload"]  # UTF-8 kept, not \\u escapes


def test_build_payload_is_pure_and_drops_non_finite_values(store: AlertStore) -> None:
    from dataclasses import replace

    (a,) = store.apply([signal()])
    ev = store.events(a.id)[0]
    odd = replace(a, value=float("nan"), threshold=float("inf"), risk=None)
    doc = build_payload(odd, replace(ev, data={"value": float("nan"), "when": T0}), "prov-test")
    assert doc == build_payload(
        odd, replace(ev, data={"value": float("nan"), "when": T0}), "prov-test"
    )
    assert (
        doc["alert"]["value"] is None
        and doc["alert"]["threshold"] is None
        and doc["alert"]["risk"] is None
    )
    assert doc["event"]["data"] == {"value": None, "when": T0.isoformat()}
    assert doc["event"]["key"] == f"prov-test:{a.id}:{ev.id}"
    VALIDATOR.validate(doc)
    outbox.canonical_json(doc)  # no NaN reaches the wire


# -- enqueue in the same transaction ------------------------------------------------------------


def test_enqueue_commits_and_rolls_back_with_the_change(store: AlertStore) -> None:
    (a,) = store.apply([signal()])
    assert len(rows(store)) == 1
    # A transaction that fails after the transition leaves neither the change nor its row.
    with pytest.raises(RuntimeError), store.db.transaction() as c:
        store.transition_in(c, a.id, "ack", "li.wei", "on it", None, 0)
        assert c.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2
        raise RuntimeError("crash before commit")
    assert store.get(a.id).state == "new" and len(rows(store)) == 1
    # A refused transition writes nothing.
    with pytest.raises(TransitionError):
        store.transition(a.id, "verify", "li.wei", "too early", {"finding": "no_violation"})
    assert len(rows(store)) == 1
    # A committed transition: exactly one more row, for its event.
    store.transition(a.id, "ack", "li.wei", "on it")
    got = rows(store)
    assert (
        len(got) == 2
        and got[1]["event_id"] == store.events(a.id)[-1].id
        and got[1]["status"] == "pending"
    )


def test_a_failing_listener_rolls_the_change_back(store: AlertStore) -> None:
    (a,) = store.apply([signal()])

    def broken(conn, alert, event):
        raise RuntimeError("listener down")

    store.listeners.append(broken)
    with pytest.raises(RuntimeError):
        store.transition(a.id, "ack", "li.wei", "on it")
    store.listeners.remove(broken)
    assert store.get(a.id).state == "new" and len(rows(store)) == 1


def test_attach_is_idempotent(store: AlertStore) -> None:
    first = list(store.listeners)
    attach_outbox(store)
    assert store.listeners == first


# -- backoff --------------------------------------------------------------------------------------


def test_full_jitter_stays_within_bounds_and_varies() -> None:
    rng = random.Random(42)
    base, cap = 0.5, 20.0
    for n in range(1, 12):
        bound = backoff_bound(n, base, cap)
        assert bound == min(cap, base * 2 ** (n - 1))
        samples = [backoff_delay(n, base, cap, rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in samples)
        # Full jitter spreads over the whole range, not around a point.
        assert (
            min(samples) < 0.1 * bound and max(samples) > 0.9 * bound and len(set(samples)) == 200
        )
    assert backoff_bound(5000, base, cap) == cap
    with pytest.raises(ValueError):
        backoff_bound(0, base, cap)


def test_retry_after_is_seconds_or_a_date() -> None:
    assert parse_retry_after("7", T0) == 7.0
    assert parse_retry_after("Wed, 25 Nov 2026 00:00:30 GMT", T0) == 30.0
    assert parse_retry_after("soon", T0) is None and parse_retry_after(None, T0) is None


def test_sender_backs_off_with_seeded_jitter_then_dead_letters(
    store: AlertStore, backend: str, clock: ManualClock, senders: list
) -> None:
    store.apply([signal()])
    seen: list[httpx.Request] = []

    def always_503(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503, text="busy")

    settings = upstream(backoff_base_s=2.0, backoff_cap_s=10.0, max_attempts=6)
    s = sender(
        senders,
        backend,
        settings,
        transport=httpx.MockTransport(always_503),
        clock=clock,
        rng=random.Random(7),
    )
    expect = random.Random(7)
    for n in range(1, 6):
        assert s.run_once()["retry"] == 1
        (row,) = rows(store)
        delay_ms = row["next_at"] - int(clock.now().timestamp() * 1000)
        assert delay_ms == round(expect.uniform(0, min(10.0, 2.0 * 2 ** (n - 1))) * 1000)
        assert 0 <= delay_ms <= min(10.0, 2.0 * 2 ** (n - 1)) * 1000
        assert s.run_once()["claimed"] == 0  # not due yet
        clock.advance(timedelta(milliseconds=delay_ms))
    assert s.run_once()["dead"] == 1
    (row,) = rows(store)
    assert (
        row["status"] == "dead"
        and row["attempts"] == 6
        and "HTTP 503" in row["last_error"]
        and "6 attempts" in row["last_error"]
    )
    assert len(seen) == 6 and {r.headers["Idempotency-Key"] for r in seen} == {row["key"]}


def test_retry_after_is_honoured_and_capped(
    store: AlertStore, backend: str, clock: ManualClock, senders: list
) -> None:
    store.apply([signal()])
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(503, headers={"Retry-After": "99999"}),
            httpx.Response(201),
        ]
    )
    s = sender(
        senders,
        backend,
        upstream(backoff_cap_s=60.0),
        transport=httpx.MockTransport(lambda r: next(answers)),
        clock=clock,
    )
    now_ms = lambda: int(clock.now().timestamp() * 1000)  # noqa: E731
    s.run_once()
    assert rows(store)[0]["next_at"] - now_ms() == 3000
    clock.advance(timedelta(seconds=3))
    s.run_once()
    assert rows(store)[0]["next_at"] - now_ms() == 60_000
    clock.advance(timedelta(seconds=60))
    assert s.run_once()["sent"] == 1 and rows(store)[0]["status"] == "sent"


def test_headers_carry_key_type_and_bearer_token(
    store: AlertStore, backend: str, senders: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply([signal()])
    monkeypatch.setenv("FS_TEST_UPSTREAM_TOKEN", "s3cret")
    got: list[httpx.Request] = []
    s = sender(
        senders,
        backend,
        upstream(token_env="FS_TEST_UPSTREAM_TOKEN"),
        transport=httpx.MockTransport(lambda r: got.append(r) or httpx.Response(409)),
    )
    assert s.run_once()["sent"] == 1  # 409: the receiver has it already
    (req,) = got
    assert req.headers["Authorization"] == "Bearer s3cret" and req.headers[
        "Content-Type"
    ].startswith("application/json")
    assert (
        req.headers["Idempotency-Key"] == rows(store)[0]["key"]
        and req.content.decode() == rows(store)[0]["payload"]
    )


# -- against the real receiver ---------------------------------------------------------------------


def test_order_per_alert_is_kept_under_retries_and_other_alerts_flow(
    store: AlertStore, backend: str, receiver: Receiver, clock: ManualClock, senders: list
) -> None:
    (a,) = store.apply([signal(fingerprint="A")])
    store.transition(a.id, "ack", "li.wei", "on it")
    store.transition(a.id, "comment", "li.wei", "called the operator")
    (b,) = store.apply([signal(fingerprint="B")])
    store.transition(b.id, "ack", "li.wei", "on it")
    a_first = rows(store)[0]["key"]
    failures = {"left": 3}

    def script(req):
        if req.key == a_first and failures["left"] > 0:
            failures["left"] -= 1
            return fail(500)
        return OK

    receiver.script = script
    s = sender(senders, backend, upstream(receiver.url), clock=clock)
    s.run_once()  # A's first fails; B's first goes
    s.run_once()  # A's first not due; B's second goes, A's second held
    assert receiver.keys() == [
        k for k in (r["key"] for r in rows(store)) if k.split(":")[1] == str(b.id)
    ]
    drain(s, clock)
    raw = receiver.raw_keys()
    assert raw.count(a_first) == 4
    a_keys = [r["key"] for r in rows(store) if r["alert_id"] == a.id]
    # No later event of A was even attempted before A's first was accepted.
    assert all(k not in raw[: len(raw) - raw[::-1].index(a_first)] for k in a_keys[1:])
    assert sorted(receiver.keys()) == sorted(r["key"] for r in rows(store))
    order = per_alert_order(receiver.keys())
    assert order[a.id] == sorted(order[a.id]) and order[b.id] == sorted(order[b.id])
    assert_valid(receiver.payloads())


def test_timeout_is_retried(
    store: AlertStore, backend: str, receiver: Receiver, clock: ManualClock, senders: list
) -> None:
    store.apply([signal()])
    receiver.script = lambda req: hang(5.0) if req.n == 0 else OK
    s = sender(senders, backend, upstream(receiver.url, timeout_s=0.3), clock=clock)
    assert s.run_once()["retry"] == 1
    assert "timeout" in rows(store)[0]["last_error"]
    drain(s, clock)
    assert receiver.raw_keys() == [rows(store)[0]["key"]] * 2 and receiver.keys() == [
        rows(store)[0]["key"]
    ]


def test_answered_twice_is_kept_once(
    store: AlertStore, backend: str, receiver: Receiver, clock: ManualClock, senders: list
) -> None:
    (a,) = store.apply([signal()])
    store.transition(a.id, "ack", "li.wei", "on it")
    receiver.script = lambda req: ACCEPT_THEN_500
    s = sender(senders, backend, upstream(receiver.url), clock=clock)
    drain(s, clock)
    keys = [r["key"] for r in rows(store)]
    assert receiver.raw_keys() == [keys[0], keys[0], keys[1], keys[1]]
    assert receiver.keys() == keys and all(r["status"] == "sent" for r in rows(store))
    assert_valid(receiver.payloads())


def test_refused_is_dead_at_once_holds_its_alert_and_redrive_delivers(
    store: AlertStore,
    backend: str,
    receiver: Receiver,
    clock: ManualClock,
    senders: list,
    capsys: pytest.CaptureFixture,
) -> None:
    (a,) = store.apply([signal(fingerprint="A")])
    store.transition(a.id, "ack", "li.wei", "on it")
    (b,) = store.apply([signal(fingerprint="B")])
    receiver.script = lambda req: fail(422) if req.key.split(":")[1] == str(a.id) else OK
    s = sender(senders, backend, upstream(receiver.url), clock=clock)
    s.run_once()
    s.run_once()
    by_key = {r["key"]: r for r in rows(store)}
    a_rows = [r for r in rows(store) if r["alert_id"] == a.id]
    assert (
        a_rows[0]["status"] == "dead"
        and a_rows[0]["attempts"] == 1
        and "422" in a_rows[0]["last_error"]
    )
    assert (
        a_rows[1]["status"] == "pending" and a_rows[1]["attempts"] == 0
    )  # held behind the dead one
    assert [k for k in by_key if by_key[k]["status"] == "sent"] == [
        r["key"] for r in rows(store) if r["alert_id"] == b.id
    ]
    st = outbox.status(store.db)
    assert st["dead"] == 1 and st["pending"] == 1 and st["sent"] == 1

    # The CLI shows the dead letter and pushes it again.
    assert outbox_cli(["status", "--db", backend]) == 0
    assert a_rows[0]["key"] in capsys.readouterr().out
    receiver.recover()
    assert outbox_cli(["redrive", "--db", backend, "--alert", str(a.id)]) == 0
    assert "1 dead letter" in capsys.readouterr().out
    drain(s, clock)
    assert per_alert_order(receiver.keys())[a.id] == [r["event_id"] for r in a_rows]
    assert outbox.status(store.db)["dead"] == 0
    assert outbox_cli(["redrive", "--db", backend, "--all"]) == 0


def test_dead_after_max_attempts_then_redrive_by_key(
    store: AlertStore, backend: str, receiver: Receiver, clock: ManualClock, senders: list
) -> None:
    store.apply([signal()])
    receiver.fail_all(503)
    s = sender(senders, backend, upstream(receiver.url, max_attempts=3), clock=clock)
    for _ in range(3):
        s.run_once()
        clock.advance(timedelta(seconds=31))
    (row,) = rows(store)
    assert row["status"] == "dead" and row["attempts"] == 3 and len(receiver.raw_keys()) == 3
    assert s.run_once()["claimed"] == 0
    receiver.recover()
    assert outbox.redrive(store.db, key="nope") == 0
    assert outbox.redrive(store.db, key=row["key"]) == 1
    assert s.run_once()["sent"] == 1 and receiver.keys() == [row["key"]]
    metrics = CollectorRegistry()
    metrics.register(outbox.OutboxCollector(store.db))
    assert metrics.get_sample_value("farsight_outbox_events", {"status": "sent"}) == 1
    assert metrics.get_sample_value("farsight_outbox_events", {"status": "dead"}) == 0


def test_concurrent_senders_never_send_twice_and_keep_order(
    store: AlertStore, backend: str, receiver: Receiver
) -> None:
    """Four workers on their own connections drain 400 events while more are being written."""
    settings = upstream(receiver.url, batch=5, poll_s=0.01)
    workers = [OutboxSender(backend, settings) for _ in range(4)]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run_forever, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        for i in range(100):
            (a,) = store.apply([signal(fingerprint=f"fp{i}")])
            store.transition(a.id, "ack", "li.wei", "on it")
            store.transition(a.id, "comment", "li.wei", "operator called")
            store.transition(a.id, "close", "li.wei", "desk closure")
        wait_until(
            lambda: outbox.status(store.db)["sent"] == 400, timeout=60, what="400 events sent"
        )
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for w in workers:
            w.close()
    raw = receiver.raw_keys()
    assert len(raw) == 400 and len(set(raw)) == 400  # no double sends at all
    keys = [r["key"] for r in rows(store)]
    assert set(receiver.keys()) == set(keys)
    expected = per_alert_order(keys)
    assert per_alert_order(receiver.keys()) == expected
    assert sum(w.totals["sent"] for w in workers) == 400
    assert sum(1 for w in workers if w.totals["sent"]) >= 2  # the work was really shared
    assert_valid(receiver.payloads()[:20])


def test_sender_survives_a_dead_endpoint(
    store: AlertStore, backend: str, clock: ManualClock, senders: list
) -> None:
    """Connection refused is a retry, not a crash."""
    store.apply([signal()])
    s = sender(senders, backend, upstream("http://127.0.0.1:9/nothing-listens"), clock=clock)
    stop = threading.Event()
    t = threading.Thread(target=s.run_forever, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: rows(store)[0]["attempts"] >= 1, what="a failed attempt")
    finally:
        stop.set()
        t.join(10)
    assert (
        not t.is_alive() and rows(store)[0]["status"] == "pending" and rows(store)[0]["last_error"]
    )


def test_sender_needs_a_url(backend: str) -> None:
    with pytest.raises(ValueError, match="url"):
        OutboxSender(backend, UpstreamSettings())
    db = Database.open(backend)
    try:
        assert outbox.status(db) == {
            "pending": 0,
            "sent": 0,
            "dead": 0,
            "oldest_pending_age_s": None,
        }
    finally:
        db.close()
