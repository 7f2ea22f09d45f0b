"""The provincial hub rejects records for their quality: a real receiver answers 422 with its
errors, the real outbox keeps each refused record with its reason (not retried, not redriven),
a supervisor's correction is audited in the chain with the original kept, and the corrected
record is accepted on re-push. Both backends."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import jsonschema
import pytest

from alerts import outbox
from alerts.audit_trail import verify_trail
from alerts.outbox import OutboxSender, attach_outbox, load_schema
from alerts.store import AlertStore
from alerts.upstream_rejections import (
    CorrectionError,
    FieldError,
    RejectionStateError,
    StandingCorrection,
    apply_correction,
    correct,
    get_rejection,
    list_rejections,
    overlay,
    parse_rejection,
)
from farsight.clock import ManualClock
from farsight.settings import UpstreamSettings
from tests.alerts.receiver import Receiver, quality_check
from tests.factories import ENTITY, T0, signal

VALIDATOR = jsonschema.Draft202012Validator(
    load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
REJECTION_SCHEMA = json.loads(
    (outbox.SCHEMA_FILE.parent / "upstream-rejection.schema.json").read_text(encoding="utf-8")
)


@pytest.fixture
def store(backend: str) -> Iterator[AlertStore]:
    s = AlertStore(backend, clock=ManualClock(T0))
    attach_outbox(s)
    yield s
    s.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(quality_check) as r:
        yield r


def sender(backend: str, url: str) -> OutboxSender:
    settings = UpstreamSettings.model_validate(
        {"url": url, "timeout_s": 5.0, "batch": 10, "lease_s": 60.0, "poll_s": 0.02}
    )
    return OutboxSender(backend, settings, clock=ManualClock(T0))


def drain(s: OutboxSender) -> Counter[str]:
    """Send until nothing is claimable (a claim takes one row per alert); the summed counts."""
    total: Counter[str] = Counter()
    while (counts := s.run_once())["claimed"]:
        total.update(counts)
    return total


def test_parse_rejection_takes_only_the_documented_answer() -> None:
    body = {"errors": [{"field": "/alert/value", "message": "too high", "code": "v"}, 5]}
    jsonschema.validate({"errors": [body["errors"][0]]}, REJECTION_SCHEMA)
    assert parse_rejection(422, json.dumps(body).encode()) == (
        FieldError("/alert/value", "too high", "v"),
    )
    assert parse_rejection(400, json.dumps(body).encode()) is None
    assert parse_rejection(422, b'{"error": "scripted 422"}') is None
    assert parse_rejection(422, b'{"errors": []}') is None
    assert parse_rejection(422, b"<html>") is None


def test_apply_correction_replaces_values_and_refuses_identity_and_type_changes() -> None:
    record = {"source": "s", "alert": {"id": 1, "value": 5000.0, "item_code": "", "tags": [1]}}
    fixed, changes = apply_correction(record, {"/alert/value": 500.0, "/alert/item_code": "X1"})
    assert fixed["alert"]["value"] == 500.0 and record["alert"]["value"] == 5000.0
    assert changes == {
        "/alert/value": {"from": 5000.0, "to": 500.0},
        "/alert/item_code": {"from": "", "to": "X1"},
    }
    for fields, words in [
        ({"/alert/id": 2}, "identifies the record"),
        ({"/source": "t"}, "identifies the record"),
        ({"/alert/nope": 1}, "has no /alert/nope"),
        ({"alert/value": 1.0}, "starts with '/'"),
        ({"/alert/value": "high"}, "was a number, got a string"),
        ({"/alert/tags/3": 1}, "no item"),
        ({"/alert/value": 5000.0}, "already"),
        ({"/alert/value": float("nan")}, "not JSON"),
        ({"/alert/tags": [float("inf")]}, "not JSON"),
        ({}, "at least one"),
    ]:
        with pytest.raises(CorrectionError, match=words):
            apply_correction(record, fields)


def test_a_rejected_record_is_kept_corrected_audited_and_accepted_on_repush(
    store: AlertStore, backend: str, receiver: Receiver
) -> None:
    good, implausible, anonymous = store.apply(
        [
            signal(fingerprint="fp-good", site="yc-aq-1"),
            signal(fingerprint="fp-meter", site="yc-aq-2", value=5000.0),
            replace(signal(fingerprint="fp-anon", site="yc-aq-3"), entity_id=""),
        ]
    )
    # The officer acknowledges the implausible alert: its second record waits behind the first.
    store.transition(implausible.id, "ack", "officer-wang", "looking into it")
    s = sender(backend, receiver.url)
    try:
        counts = s.run_once()
        assert (counts["sent"], counts["rejected"], counts["dead"]) == (1, 2, 0)
        rows = {r["alert_id"]: r for r in reversed(outbox.Outbox(store.db).rows())}
        assert receiver.keys() == [rows[good.id]["key"]]
        assert rows[implausible.id]["status"] == "dead"
        assert (
            "rejected by upstream: /alert/value: PM2.5 5000" in rows[implausible.id]["last_error"]
        )

        rejections = {r.alert_id: r for r in list_rejections(store.db, "env")}
        assert set(rejections) == {implausible.id, anonymous.id}
        meter = rejections[implausible.id]
        assert [(e.field, e.code) for e in meter.errors] == [("/alert/value", "value.implausible")]
        assert meter.status == "open" and meter.outbox_status == "dead"
        assert json.loads(meter.payload)["alert"]["value"] == 5000.0
        assert [e.field for e in rejections[anonymous.id].errors] == ["/alert/entity_credit_code"]
        assert list_rejections(store.db, "transport") == []

        # Not retried blindly: another round sends nothing, and a redrive skips them.
        assert s.run_once()["claimed"] == 0
        assert outbox.redrive(store.db) == 0
        assert len(receiver.raw_keys()) == 3

        with pytest.raises(CorrectionError, match="identifies the record"):
            correct(store.db, store.audit, meter.id, {"/event/key": "x"}, "n", "sup", T0)
        fixed = correct(
            store.db,
            store.audit,
            meter.id,
            {"/alert/value": 500.0},
            "meter misread: decimal point lost",
            "sup-env",
            T0,
        )
        assert fixed.status == "corrected" and fixed.corrected_by == "sup-env"
        assert fixed.outbox_status == "pending"
        assert json.loads(fixed.payload)["alert"]["value"] == 5000.0  # the original is kept
        with pytest.raises(RejectionStateError, match="corrected by sup-env"):
            correct(store.db, store.audit, meter.id, {"/alert/value": 400.0}, "", "sup", T0)

        # The corrected record, then the acknowledgement behind it, which carries the correction.
        # (strict order per alert: one claim each)
        counts = s.run_once()
        assert (counts["sent"], counts["rejected"]) == (1, 0)
        assert s.run_once()["sent"] == 1
        key = rows[implausible.id]["key"]
        assert receiver.keys()[:2] == [rows[good.id]["key"], key]
        accepted, ack = receiver.payloads()[1:3]
        assert accepted["alert"]["value"] == 500.0 and accepted["event"]["key"] == key
        assert ack["event"]["action"] == "ack" and ack["alert"]["value"] == 500.0
        VALIDATOR.validate(accepted)
        VALIDATOR.validate(ack)
        assert get_rejection(store.db, meter.id).outbox_status == "sent"

        # The second one is corrected too; the anonymous operator's code is filled in.
        correct(
            store.db,
            store.audit,
            rejections[anonymous.id].id,
            {"/alert/entity_credit_code": ENTITY},
            "operator identified",
            "sup-env",
            T0,
        )
        assert s.run_once()["sent"] == 1 and len(receiver.keys()) == 4
    finally:
        s.close()

    entries = store.audit.entries(subject=f"upstream:{key}")
    assert [(e.actor, e.action) for e in entries] == [("sup-env", "upstream.correct")]
    data = entries[0].data
    assert data["changes"] == {"/alert/value": {"from": 5000.0, "to": 500.0}}
    assert data["note"] == "meter misread: decimal point lost"
    assert data["original_sha256"] != data["corrected_sha256"]
    assert len(data["carried_to_outbox_rows"]) == 1
    assert verify_trail(store.db).ok


def test_a_correction_stands_for_the_alerts_later_records_and_the_alert_keeps_its_value(
    store: AlertStore, backend: str, receiver: Receiver
) -> None:
    meter, anonymous = store.apply(
        [
            signal(fingerprint="fp-meter", site="yc-aq-2", value=5000.0),
            replace(signal(fingerprint="fp-anon", site="yc-aq-3"), entity_id=""),
        ]
    )
    s = sender(backend, receiver.url)
    try:
        assert s.run_once()["rejected"] == 2
        rejections = {r.alert_id: r for r in list_rejections(store.db, "env")}
        correct(
            store.db,
            store.audit,
            rejections[meter.id].id,
            {"/alert/value": 500.0},
            "decimal point lost by the meter",
            "sup-env",
            T0,
        )
        correct(
            store.db,
            store.audit,
            rejections[anonymous.id].id,
            {"/alert/entity_credit_code": ENTITY},
            "operator identified",
            "sup-env",
            T0,
        )
        assert s.run_once()["sent"] == 2

        # Events after the correction: built from the alert rows, which keep what the rules saw.
        store.transition(meter.id, "ack", "officer-wang", "on it")
        store.transition(anonymous.id, "ack", "officer-wang", "on it")
        store.apply([signal(status="resolved", fingerprint="fp-meter", site="yc-aq-2", minutes=5)])
        counts = drain(s)
        assert (counts["sent"], counts["rejected"], counts["dead"]) == (3, 0, 0)
        later = receiver.payloads()[2:]
        assert sorted((p["alert"]["id"], p["event"]["action"]) for p in later) == sorted(
            [(meter.id, "ack"), (anonymous.id, "ack"), (meter.id, "resolved")]
        )
        assert [p["alert"]["value"] for p in later if p["alert"]["id"] == meter.id] == [500.0] * 2
        assert [p["alert"]["entity_credit_code"] for p in later] == [ENTITY] * 3
        for p in later:
            VALIDATOR.validate(p)
        # The local alerts keep their original values.
        assert store.get(meter.id).value == 5000.0
        assert store.get(anonymous.id).entity_id == ""

        # An alert whose own value moves on reports the new value: the correction replaced the
        # refused value, not every value to come.
        store.apply([signal(fingerprint="fp-meter", site="yc-aq-2", value=80.0, minutes=10)])
        assert s.run_once()["sent"] == 1
        refired = receiver.payloads()[-1]
        assert refired["event"]["action"] == "refired" and refired["alert"]["value"] == 80.0
        # A second correction of the same field chains on the first (5000 -> 500 -> 50).
        store.apply([signal(status="resolved", fingerprint="fp-meter", site="yc-aq-2", minutes=15)])
        store.apply([signal(fingerprint="fp-meter", site="yc-aq-2", value=5000.0, minutes=20)])
        assert drain(s)["sent"] == 2
        assert receiver.payloads()[-1]["alert"]["value"] == 500.0
    finally:
        s.close()

    entry = store.audit.entries(subject=f"upstream:{rejections[meter.id].key}")[0]
    assert entry.data["standing"] == ["/alert/value"]
    rows = store.db.query(
        "SELECT alert_id, pointer, from_value, to_value, corrected_by FROM upstream_corrections"
        " ORDER BY id"
    )
    assert [(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4]) for r in rows] == [
        (meter.id, "/alert/value", 5000.0, 500.0, "sup-env"),
        (anonymous.id, "/alert/entity_credit_code", "", ENTITY, "sup-env"),
    ]
    assert verify_trail(store.db).ok


def test_overlay_applies_standing_corrections_in_order_where_the_refused_value_remains() -> None:
    record = {"alert": {"id": 1, "value": 5000.0, "ok": True, "code": ""}}
    fixes = [
        StandingCorrection("/alert/value", 5000.0, 500.0),
        StandingCorrection("/alert/value", 500.0, 50.0),
        StandingCorrection("/alert/code", "", "X"),
        StandingCorrection("/alert/gone", 1, 2),
        StandingCorrection("/alert/ok", 1, 0),  # JSON true is not the number 1
    ]
    assert overlay(record, fixes) == {"alert": {"id": 1, "value": 50.0, "ok": True, "code": "X"}}
    assert record["alert"]["value"] == 5000.0
    assert overlay({"alert": {"value": 80.0, "code": "Y"}}, fixes) is None
