"""``/api/silences`` on a real hub (uvicorn on a free port), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from alerts.store import AlertStore
from farsight.registry import Registry
from farsight.settings import Settings
from farsight.types import AlertSignal
from hub.app import create_app
from hub.auth import TokenStore
from rules.engine import fingerprint
from tests.hub.conftest import bearer, make_registry, start_server, stop_server


@dataclass
class SilenceHub:
    base_url: str
    registry: Registry
    alerts: AlertStore
    tokens: dict[str, str]

    def alert(self, site: str, metric: str = "pm25") -> int:
        s = self.registry.get(site)
        assert s is not None
        dev = s.devices[0].id
        sig = AlertSignal(
            rule_id="api-silence-test",
            fingerprint=fingerprint("api-silence-test", site, dev, metric),
            status="firing",
            site=site,
            device=dev,
            metric=metric,
            severity="major",
            summary=f"{metric} at {site}",
            ts=datetime.now(UTC),
            value=99.0,
            threshold=75.0,
            department=s.department,
            entity_id=s.entity_id,
        )
        return self.alerts.apply([sig])[0].id


@pytest.fixture
def live(backend: str, tmp_path: Path) -> Iterator[SilenceHub]:
    doc: dict = {"data_dir": str(tmp_path / "var"), "hub": {"stream_poll_ms": 50}}
    if backend.startswith("postgres"):
        doc["database_url"] = backend
    settings = Settings.model_validate(doc)
    registry = make_registry()
    alerts = AlertStore(settings.database)
    tokens = TokenStore(settings.database, registry.departments)
    app = create_app(settings, registry, alerts=alerts, tokens=tokens)
    server, thread, base_url = start_server(app)
    try:
        yield SilenceHub(
            base_url,
            registry,
            alerts,
            {
                "admin": tokens.issue("root", role="admin"),
                "env": tokens.issue("alice", "env", role="supervisor"),
                "transport": tokens.issue("bob", "transport", role="supervisor"),
            },
        )
    finally:
        stop_server(server, thread)
        alerts.close()
        tokens.close()


@pytest.fixture
def client(live: SilenceHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base_url, timeout=10.0) as c:
        yield c


def _body(**over: object) -> dict:
    now = datetime.now(UTC)
    body = {
        "matchers": {"site": "aq-1"},
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "reason": "analyser calibration",
    }
    body.update(over)
    return body


def test_tokens_are_required(client: httpx.Client, live: SilenceHub) -> None:
    assert client.get("/api/silences").status_code == 401
    assert client.post("/api/silences", json=_body()).status_code == 401
    assert client.delete("/api/silences/1").status_code == 401
    assert client.get("/api/silences", headers=bearer("not-a-token")).status_code == 401


def test_bad_matchers_are_422_naming_the_label(client: httpx.Client, live: SilenceHub) -> None:
    h = bearer(live.tokens["admin"])
    r = client.post("/api/silences", json=_body(matchers={"metric": "~pm(25"}), headers=h)
    assert (
        r.status_code == 422 and "'metric'" in r.json()["detail"] and "~pm(25" in r.json()["detail"]
    )
    r = client.post("/api/silences", json=_body(matchers={"bad-label": "x"}), headers=h)
    assert r.status_code == 422 and "'bad-label'" in r.json()["detail"]
    r = client.post("/api/silences", json=_body(matchers={}), headers=h)
    assert r.status_code == 422 and "at least one matcher" in r.json()["detail"]
    r = client.post("/api/silences", json=_body(reason=" "), headers=h)
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = client.post("/api/silences", json=_body(ends_at="2030-01-01T00:00:00"), headers=h)
    assert r.status_code == 422, "a time without UTC offset is refused"
    r = client.post("/api/silences", json=_body(matchers={"department": "water"}), headers=h)
    assert r.status_code == 422 and "unknown department" in r.json()["detail"]
    assert client.get("/api/silences", headers=h).json()["items"] == []


def test_round_trip_mutes_and_unmutes(client: httpx.Client, live: SilenceHub) -> None:
    h = bearer(live.tokens["admin"])
    muted_id, free_id = live.alert("aq-1"), live.alert("stack-1")
    r = client.post(
        "/api/silences", json=_body(matchers={"site": "aq-1", "metric": "~pm.*"}), headers=h
    )
    assert r.status_code == 201, r.text
    s = r.json()
    assert (
        s["creator"] == "root"
        and s["status"] == "active"
        and s["matchers"] == {"site": "aq-1", "metric": "~pm.*"}
    )
    assert s["changed_alerts"] == [muted_id]
    assert live.alerts.get(muted_id).suppressed == {"silence": s["id"]}
    assert live.alerts.get(free_id).suppressed == {}

    listed = client.get("/api/silences", params={"status": "active"}, headers=h).json()["items"]
    assert [x["id"] for x in listed] == [s["id"]]
    assert (
        client.get("/api/silences", params={"status": "expired"}, headers=h).json()["items"] == []
    )
    assert client.get("/api/silences", params={"status": "gone"}, headers=h).status_code == 422

    r = client.delete(f"/api/silences/{s['id']}", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "expired" and r.json()["expired_by"] == "root"
    assert r.json()["changed_alerts"] == [muted_id]
    assert live.alerts.get(muted_id).suppressed == {}
    assert [
        x["id"]
        for x in client.get("/api/silences", params={"status": "expired"}, headers=h).json()[
            "items"
        ]
    ] == [s["id"]]
    assert client.delete(f"/api/silences/{s['id']}", headers=h).status_code == 409
    assert client.delete("/api/silences/999999", headers=h).status_code == 404

    audit = [(e.actor, e.action) for e in live.alerts.audit.entries(subject=f"silence:{s['id']}")]
    assert audit == [("root", "created"), ("root", "expired")]
    assert [e.action for e in live.alerts.events(muted_id)] == ["opened", "silenced", "unsilenced"]
    assert live.alerts.audit.verify().ok


def test_department_scoping(client: httpx.Client, live: SilenceHub) -> None:
    env, tr, admin = (bearer(live.tokens[k]) for k in ("env", "transport", "admin"))
    wim_alert = live.alert("wim-1", "gross_weight")
    # Without a department matcher, a department token's silence is pinned to its department.
    r = client.post("/api/silences", json=_body(matchers={"metric": "~.+"}), headers=env)
    assert r.status_code == 201, r.text
    env_silence = r.json()
    assert env_silence["matchers"] == {"metric": "~.+", "department": "env"}
    assert live.alerts.get(wim_alert).suppressed == {}, (
        "an env silence never mutes a transport alert"
    )
    # Another department, or a regex on department, is refused.
    for m in ({"department": "transport", "site": "wim-1"}, {"department": "~.*", "site": "wim-1"}):
        r = client.post("/api/silences", json=_body(matchers=m), headers=env)
        assert r.status_code == 403 and "department" in r.json()["detail"]
    r = client.post("/api/silences", json=_body(matchers={"site": "wim-1"}), headers=tr)
    assert r.status_code == 201
    tr_silence = r.json()
    assert live.alerts.get(wim_alert).suppressed == {"silence": tr_silence["id"]}
    # Each department lists and expires only its own; a province-wide token sees all.
    assert [x["id"] for x in client.get("/api/silences", headers=env).json()["items"]] == [
        env_silence["id"]
    ]
    assert (
        client.get("/api/silences", params={"department": "transport"}, headers=env).status_code
        == 403
    )
    assert [x["id"] for x in client.get("/api/silences", headers=admin).json()["items"]] == [
        tr_silence["id"],
        env_silence["id"],
    ]
    assert client.delete(f"/api/silences/{tr_silence['id']}", headers=env).status_code == 403
    assert live.alerts.get(wim_alert).suppressed == {"silence": tr_silence["id"]}
    r = client.delete(f"/api/silences/{tr_silence['id']}", headers=tr)
    assert r.status_code == 200 and r.json()["expired_by"] == "bob"
    assert live.alerts.get(wim_alert).suppressed == {}
