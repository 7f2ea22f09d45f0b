"""The department sees and corrects what the provincial hub rejected, over a real hub server,
a real outbox sender and a real receiver that checks each record's quality."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from alerts.audit_trail import verify_trail
from alerts.outbox import OutboxSender, attach_outbox
from alerts.store import AlertStore
from farsight.db import is_postgres_url
from farsight.settings import UpstreamSettings
from farsight.types import AlertSignal
from hub.app import create_app
from hub.auth import Role, TokenStore
from rules.engine import fingerprint
from tests.alerts.receiver import Receiver, quality_check
from tests.hub.conftest import (
    ENV_ENTITY,
    bearer,
    make_registry,
    make_settings,
    start_server,
    stop_server,
)

PATH = "/api/upstream/rejections"


def _signal(
    site: str, device: str, metric: str, dept: str, value: float, entity: str
) -> AlertSignal:
    return AlertSignal(
        rule_id=f"rej.{site}",
        fingerprint=fingerprint(f"rej.{site}", site, device, metric),
        status="firing",
        site=site,
        device=device,
        metric=metric,
        severity="major",
        summary=f"{metric} above limit at {site}",
        ts=datetime.now(UTC),
        value=value,
        threshold=75.0,
        department=dept,
        entity_id=entity,
    )


@pytest.fixture
def setup(
    tmp_path: Path, backend: str
) -> Iterator[tuple[str, AlertStore, dict[str, str], Receiver, OutboxSender]]:
    if is_postgres_url(backend):
        settings = make_settings(tmp_path).model_copy(update={"database_url": backend})
    else:
        settings = make_settings(Path(backend).parent)
    registry = make_registry()
    app = create_app(settings, registry)
    server, thread, base_url = start_server(app)
    store = AlertStore(settings.database)
    attach_outbox(store)
    tokens = TokenStore(settings.database, registry.departments)
    receiver = Receiver(quality_check)
    sender = OutboxSender(
        settings.database,
        UpstreamSettings.model_validate({"url": receiver.url, "timeout_s": 5.0, "lease_s": 60.0}),
    )
    try:
        issued = {
            "env-viewer": tokens.issue("env-viewer", "env", role=Role.VIEWER),
            "env-sup": tokens.issue("env-sup", "env", role=Role.SUPERVISOR),
            "env-officer": tokens.issue("env-officer", "env", role=Role.OFFICER),
            "tr-sup": tokens.issue("tr-sup", "transport", role=Role.SUPERVISOR),
            "admin": tokens.issue("admin", role=Role.ADMIN),
        }
        yield base_url, store, issued, receiver, sender
    finally:
        sender.close()
        receiver.close()
        stop_server(server, thread)
        store.close()
        tokens.close()


def test_rejections_are_shown_per_department_corrected_by_a_supervisor_and_accepted(
    setup: tuple[str, AlertStore, dict[str, str], Receiver, OutboxSender],
) -> None:
    base_url, store, tok, receiver, sender = setup
    env, transport = store.apply(
        [
            _signal("aq-1", "aq1", "pm25", "env", 5000.0, ENV_ENTITY),
            _signal("wim-1", "wim1", "gross_weight", "transport", 61.0, ""),
        ]
    )
    assert sender.run_once()["rejected"] == 2 and receiver.keys() == []

    with httpx.Client(base_url=base_url, timeout=10) as c:
        mine = c.get(PATH, headers=bearer(tok["env-viewer"])).json()["items"]
        assert [(r["alert_id"], r["status"], r["delivery"]) for r in mine] == [
            (env.id, "open", "dead")
        ]
        assert mine[0]["errors"][0]["field"] == "/alert/value"
        assert mine[0]["record"]["alert"]["value"] == 5000.0
        theirs = c.get(PATH, headers=bearer(tok["tr-sup"])).json()["items"]
        assert [r["alert_id"] for r in theirs] == [transport.id]
        assert theirs[0]["errors"][0]["field"] == "/alert/entity_credit_code"
        assert c.get(PATH, headers=bearer(tok["admin"])).json()["count"] == 2
        r = c.get(PATH, params={"department": "transport"}, headers=bearer(tok["env-viewer"]))
        assert r.status_code == 403

        url = f"{PATH}/{mine[0]['id']}/correct"
        body = {"fields": {"/alert/value": 500.0}, "note": "decimal point lost by the meter"}
        assert c.post(url, json=body, headers=bearer(tok["env-viewer"])).status_code == 403
        assert c.post(url, json=body, headers=bearer(tok["tr-sup"])).status_code == 404
        bad = c.post(
            url, json={"fields": {"/alert/id": 1}, "note": "n"}, headers=bearer(tok["env-sup"])
        )
        assert bad.status_code == 422 and "/alert/id" in bad.json()["detail"]
        ok = c.post(url, json=body, headers=bearer(tok["env-sup"]))
        assert ok.status_code == 200, ok.text
        fixed = ok.json()
        assert fixed["status"] == "corrected" and fixed["corrected_by"] == "env-sup"
        assert fixed["delivery"] == "pending"
        assert fixed["record"]["alert"]["value"] == 5000.0
        assert fixed["corrected_record"]["alert"]["value"] == 500.0
        assert c.post(url, json=body, headers=bearer(tok["env-sup"])).status_code == 409

        assert sender.run_once()["sent"] == 1
        assert [p["alert"]["value"] for p in receiver.payloads()] == [500.0]
        after = c.get(PATH, params={"status": "corrected"}, headers=bearer(tok["env-viewer"]))
        assert [r["delivery"] for r in after.json()["items"]] == ["sent"]

        # A later step of the alert, taken through the API after the correction: its record is
        # built from the alert row, and carries the corrected value; the alert keeps its own.
        step = c.post(
            f"/api/alerts/{env.id}/ack", json={"note": "on it"}, headers=bearer(tok["env-officer"])
        )
        assert step.status_code == 200, step.text
        assert step.json()["value"] == 5000.0
        counts = sender.run_once()
        assert (counts["sent"], counts["rejected"]) == (1, 0)
        ack = receiver.payloads()[-1]
        assert ack["event"]["action"] == "ack" and ack["alert"]["value"] == 500.0
        shown = c.get(f"/api/alerts/{env.id}", headers=bearer(tok["env-viewer"])).json()
        assert shown["alert"]["value"] == 5000.0

    entry = store.audit.entries(subject=f"upstream:{fixed['key']}")[0]
    assert entry.actor == "env-sup" and entry.data["changes"]["/alert/value"]["to"] == 500.0
    assert verify_trail(store.db).ok
