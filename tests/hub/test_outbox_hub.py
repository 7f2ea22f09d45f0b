"""The hub's outbox senders against a real receiver: across a hub restart nothing is lost, and
the receiver keeps each event once (by Idempotency-Key), in order per alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from alerts import outbox
from alerts.outbox import Outbox, attach_outbox, load_schema
from alerts.store import AlertStore
from farsight.db import Database, is_postgres_url
from farsight.settings import Settings
from farsight.types import AlertSignal
from hub.app import create_app
from rules.engine import fingerprint
from tests.alerts.receiver import ACCEPT_THEN_500, OK, Receiver
from tests.conftest import wait_until
from tests.hub.conftest import bearer, make_registry, start_server, stop_server

SOURCE = "hubtest"


def _settings(tmp_path: Path, backend: str, receiver_url: str) -> Settings:
    doc: dict[str, Any] = {
        "data_dir": str(tmp_path / "var"),
        "hub": {"stream_poll_ms": 50},
        "alerts": {
            "upstream": {
                "url": receiver_url,
                "source": SOURCE,
                "timeout_s": 2.0,
                "backoff_base_s": 0.05,
                "backoff_cap_s": 0.2,
                "poll_s": 0.05,
                "workers": 2,
                "max_attempts": 1000,
                "batch": 4,
            }
        },
    }
    if is_postgres_url(backend):
        doc["database_url"] = backend
    else:
        doc["data_dir"] = str(Path(backend).parent)
    return Settings.model_validate(doc)


def _signal(rule_id: str, site: str, metric: str, status: str = "firing") -> AlertSignal:
    reg = make_registry()
    s = reg.get(site)
    assert s is not None
    dev = s.devices[0].id
    return AlertSignal(
        rule_id=rule_id,
        fingerprint=fingerprint(rule_id, site, dev, metric),
        status=status,
        site=site,
        device=dev,
        metric=metric,
        severity="major",
        summary=f"{metric} above limit at {s.name}",
        ts=datetime.now(UTC),
        value=99.0,
        threshold=75.0,
        department=s.department,
        entity_id=s.entity_id,
    )


def test_nothing_is_lost_across_a_hub_restart(tmp_path: Path, backend: str) -> None:
    with Receiver() as rx:
        rx.fail_all(503)
        settings = _settings(tmp_path, backend, rx.url)
        registry = make_registry()
        # The rules' side, as the ingest process has it: its own store with the outbox listener.
        ingest = AlertStore(settings.database, risk=settings.alerts.risk)
        attach_outbox(ingest, SOURCE)
        try:
            app = create_app(settings, registry)
            server, thread, base = start_server(app)
            try:
                token = app.state.hub.tokens.issue("admin", role="admin")
                (a,) = ingest.apply([_signal("outbox.a", "aq-1", "pm25")])
                (b,) = ingest.apply([_signal("outbox.b", "stack-1", "so2")])
                with httpx.Client(base_url=base, headers=bearer(token), timeout=10) as c:
                    assert (
                        c.post(f"/api/alerts/{a.id}/ack", json={"note": "正在核实"}).status_code
                        == 200
                    )
                    assert (
                        c.post(
                            f"/api/alerts/{a.id}/dispatch",
                            json={
                                "note": "派发核查",
                                "team": "一队",
                                "inspector": "王芳",
                                "due": "2026-12-01",
                            },
                        ).status_code
                        == 200
                    )
                    assert (
                        c.post(f"/api/alerts/{b.id}/comment", json={"note": "联系企业"}).status_code
                        == 200
                    )
                # The hub's senders keep trying while the receiver fails.
                wait_until(
                    lambda: len(rx.raw_keys()) >= 6, what="attempts against the failing receiver"
                )
                assert rx.keys() == []
            finally:
                stop_server(server, thread)

            after_stop = Outbox(ingest.db).rows()
            assert all(r["status"] == "pending" and r["claimed_by"] is None for r in after_stop), (
                after_stop
            )
            # The rules go on while the hub is down.
            ingest.apply([_signal("outbox.a", "aq-1", "pm25", status="resolved")])
            ingest.transition(b.id, "ack", "li.wei", "on it")
            total = len(Outbox(ingest.db).rows())
            assert total == len(after_stop) + 2

            # A new hub on the same database; the receiver recovers, but loses its first two
            # answers.
            answers = {"lost": 2}

            def flaky(req):
                if answers["lost"] > 0:
                    answers["lost"] -= 1
                    return ACCEPT_THEN_500
                return OK

            rx.script = flaky
            app2 = create_app(settings, registry)
            server2, thread2, base2 = start_server(app2)
            try:
                wait_until(
                    lambda: outbox.status(ingest.db)["sent"] == total,
                    timeout=30,
                    what="every event delivered",
                )
                token2 = app2.state.hub.tokens.issue("admin", role="admin")
                with httpx.Client(base_url=base2, headers=bearer(token2), timeout=10) as c:
                    assert (
                        c.post(
                            f"/api/alerts/{b.id}/close", json={"note": "办结", "case_number": "C-1"}
                        ).status_code
                        == 200
                    )
                wait_until(
                    lambda: outbox.status(ingest.db)["sent"] == total + 1,
                    what="the new hub's own event delivered",
                )
            finally:
                stop_server(server2, thread2)
        finally:
            ingest.close()

        db = Database.open(settings.database)
        try:
            rows = Outbox(db).rows()
        finally:
            db.close()
        keys = [r["key"] for r in rows]
        assert len(keys) == total + 1 and all(r["status"] == "sent" for r in rows)
        # After dedup, the receiver has every key exactly once, and per alert in event order.
        assert sorted(rx.keys()) == sorted(keys) and len(rx.keys()) == len(set(rx.keys()))
        raw = rx.raw_keys()
        assert len(raw) > len(keys) and all(raw.count(k) >= 1 for k in keys)
        for alert_id in {r["alert_id"] for r in rows}:
            expect = [r["key"] for r in rows if r["alert_id"] == alert_id]
            received = rx.keys()
            assert [k for k in received if k.split(":")[1] == str(alert_id)] == expect
        validator = jsonschema.Draft202012Validator(
            load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        for p in rx.payloads():
            validator.validate(p)
        actions = [p["event"]["action"] for p in rx.payloads() if p["alert"]["id"] == b.id]
        assert actions == ["opened", "comment", "ack", "close"]
        # What the receiver kept is byte for byte what was enqueued.
        by_key = {r["key"]: json.loads(r["payload"]) for r in rows}
        assert all(by_key[k] == p for k, p in zip(rx.keys(), rx.payloads()))
