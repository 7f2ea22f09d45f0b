"""The spine, end to end: a simulated exceedance crosses a real broker, fires a rule and lands
as exactly one alert in the risk queue, which is taken from new through acknowledgement, dispatch
and verification to closure through the hub's API, its audit trail verified by
`farsight audit verify`.

Runs once on mosquitto (the production broker) and once on amqtt (the demo's fallback).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.roles.ingest import IngestService
from farsight.registry import load_registry
from farsight.settings import Settings
from hub.app import bound_port, create_app, make_server
from hub.auth import TokenStore
from simulators.publisher import Simulator
from simulators.scenarios import get_scenario, ground_truth
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

ROUNDS = 100  # one simulated minute each: the 90-minute exceedance starts, fires and clears


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker(request: pytest.FixtureRequest):
    return request.getfixturevalue("mosquitto" if request.param == "mosquitto" else "amqtt_broker")


@pytest.fixture
def platform(broker, data_dir: Path) -> Iterator[tuple[Settings, IngestService, httpx.Client, str]]:
    protocol = "3.1.1" if broker.kind == "amqtt" else "5"
    settings = Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "protocol": protocol,
                "embedded": "none",
            },
            "ingest": {"client_id": f"spine-{broker.kind}-{broker.port}"},
            "hub": {"stream_poll_ms": 100},
        }
    )
    registry = load_registry(None)
    ingest = IngestService(settings, registry)
    ingest.start()
    tokens = TokenStore(settings.db_path, departments=registry.departments)
    token = tokens.issue("li.wei", "env", role="officer")
    app = create_app(
        settings, registry, readings=ingest.readings, alerts=ingest.alerts, tokens=tokens
    )
    server = make_server(app, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="hub started")
    client = httpx.Client(base_url=f"http://127.0.0.1:{bound_port(server)}", timeout=10)
    # Signed in as the dashboard is: the session cookie reads; every change sends the token.
    assert (
        client.post("/api/session", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    )
    try:
        yield settings, ingest, client, token
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=15)
        ingest.stop()
        tokens.close()


def test_a_simulated_exceedance_becomes_one_alert_that_is_acknowledged_and_closed(platform) -> None:
    settings, ingest, api, token = platform
    registry = load_registry(None)
    scenario = get_scenario("exceedance")

    # The last 100 minutes, replayed as the demo does: the engine's clock (wall time) then sees
    # every device as recently heard from, so only the injected exceedance raises an alert.
    # Ending on a whole hour makes the hourly-mean rule's windows the same on every run: the
    # last hour closes with 60 readings, the one before holds 39, fewer than its minimum of 45.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    START = now - timedelta(minutes=ROUNDS - 1)
    sim = Simulator(registry, scenario, seed=11)
    stats = sim.run(
        settings.broker, start=START, rounds=ROUNDS, interval_s=60, speedup=1, catch_up_until=now
    )
    assert stats.rounds == ROUNDS and stats.acknowledged == stats.messages

    # Every message the simulator sent is stored (HJ 212 frames carry several readings each).
    wait_until(
        lambda: ingest.pipeline.stats.messages >= stats.messages,
        timeout=60,
        what="all messages ingested",
    )
    assert ingest.pipeline.stats.rejected == 0, ingest.readings.dead_letters()

    (truth,) = ground_truth(scenario, registry, start=START)
    page = api.get("/api/alerts").json()
    # Exactly one alert per rule that judges this excess, all of them about the injected series
    # and none anywhere else: the per-reading permit rule and the hourly-mean rule.
    assert all(
        (a["site"], a["device"], a["metric"]) == (truth["site"], truth["device"], truth["metric"])
        for a in page["items"]
    ), page
    by_rule = {a["rule_id"]: a for a in page["items"]}
    assert len(by_rule) == page["total"] and set(by_rule) == {
        "cems-so2-over-permit",
        "cems-so2-hourly-mean",
    }
    alert = by_rule["cems-so2-over-permit"]
    assert alert["threshold"] == truth["limit"] and alert["value"] > truth["limit"]
    # Fired after the 5-minute `for`, resolved when the injected excess ended (event time).
    starts = datetime.fromisoformat(alert["starts_at"])
    assert START + timedelta(minutes=2 + 5) <= starts <= START + timedelta(minutes=2 + 5 + 2)
    assert alert["activity"] == "resolved"

    aid = alert["id"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (
        api.post(f"/api/alerts/{aid}/ack", json={"note": "checking the CEMS data"}).status_code
        == 401
    )
    r = api.post(f"/api/alerts/{aid}/ack", json={"note": "checking the CEMS data"}, headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    r = api.post(
        f"/api/alerts/{aid}/dispatch",
        headers=auth,
        json={
            "note": "on-site check of the CEMS",
            "team": "Yichang enforcement 2",
            "inspector": "wang.fang",
            "due": "2026-12-01",
        },
    )
    assert r.status_code == 200 and r.json()["state"] == "dispatched"
    # The inspector's photo, uploaded first: a step cites only evidence that exists.
    up = api.post("/api/evidence", content=b"\xff\xd8\xff\xe0 inspector photo", headers=auth)
    assert up.status_code == 201, up.text
    photo = up.json()["sha256"]
    r = api.post(
        f"/api/alerts/{aid}/verify",
        headers=auth,
        json={
            "note": "SO2 analyser reading confirmed against the portable meter",
            "finding": "violation_confirmed",
            "evidence": [photo],
        },
    )
    assert (
        r.status_code == 200 and r.json()["state"] == "verified" and r.json()["evidence"] == [photo]
    )
    r = api.post(
        f"/api/alerts/{aid}/close",
        headers=auth,
        json={
            "note": "penalty decided; rectification ordered",
            "case_number": "YC-ENV-2026-118",
            "penalty": "CNY 200,000",
            "rectification": "repair the desulphurisation unit",
            "recheck": "2026-12-20",
        },
    )
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert r.json()["handling"]["disposal"]["case_number"] == "YC-ENV-2026-118"
    assert (
        api.post(f"/api/alerts/{aid}/close", json={"note": "again"}, headers=auth).status_code
        == 409
    )

    timeline = api.get(f"/api/alerts/{aid}/timeline").json()["timeline"]
    actions = [(e["actor"], e["action"]) for e in timeline]
    assert actions == [
        ("rules", "opened"),
        ("rules", "resolved"),
        ("li.wei", "ack"),
        ("li.wei", "dispatch"),
        ("li.wei", "verify"),
        ("li.wei", "close"),
    ]
    assert all(len(e["audit"]["hash"]) == 64 for e in timeline)

    # The audit trail verifies with the command an auditor runs (全程留痕), and names its head.
    proc = subprocess.run(
        [sys.executable, "-m", "app", "audit", "verify"],
        capture_output=True,
        text=True,
        env={**os.environ, "FARSIGHT_DATA_DIR": str(settings.data_dir)},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("audit chain ok:"), proc.stdout
    entries = int(proc.stdout.split(":")[1].split()[0])
    assert entries >= timeline[-1]["audit"]["seq"]
