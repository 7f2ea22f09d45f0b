"""The risk queue's API on both backends: reads need a token and are scoped to its department,
keyset pagination, text/entity/time filters, the per-alert timeline with audit hashes, and the
audited login and export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx

from tests.hub.conftest import ENV_ENTITY, TRANSPORT_ENTITY, LiveHub, bearer


def test_reads_need_a_token_or_a_session(anonymous: httpx.Client, tokens: dict) -> None:
    for path in (
        "/api/alerts",
        "/api/sites",
        "/api/stats",
        "/api/alerts/1",
        "/api/alerts/1/timeline",
    ):
        r = anonymous.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.get("/api/alerts", headers=bearer("fs_not-a-token")).status_code == 401
    assert anonymous.get("/api/alerts", headers=bearer(tokens["env"])).status_code == 200
    # A session cookie from a valid token reads; it never authorises a change.
    assert anonymous.post("/api/session", headers=bearer(tokens["env"])).status_code == 204
    assert anonymous.get("/api/alerts").status_code == 200
    assert anonymous.post("/api/alerts/1/ack", json={"note": "x"}).status_code == 401
    assert anonymous.delete("/api/session").status_code == 204
    assert anonymous.get("/api/alerts").status_code == 401


def test_a_department_sees_only_its_own_alerts_and_sites(
    hub: LiveHub, anonymous: httpx.Client, tokens: dict, rule_id: str
) -> None:
    env_alert = hub.alert(rule_id, "aq-1")
    wim_alert = hub.alert(rule_id, "wim-1", metric="gross_weight")
    as_env, as_admin = bearer(tokens["env"]), bearer(tokens["admin"])
    items = anonymous.get("/api/alerts", params={"rule_id": rule_id}, headers=as_env).json()[
        "items"
    ]
    assert [a["id"] for a in items] == [env_alert.id]
    both = anonymous.get("/api/alerts", params={"rule_id": rule_id}, headers=as_admin).json()[
        "items"
    ]
    assert {a["id"] for a in both} == {env_alert.id, wim_alert.id}
    r = anonymous.get("/api/alerts", params={"department": "transport"}, headers=as_env)
    assert r.status_code == 403 and "cannot read department" in r.json()["detail"]
    # Another department's alert and site answer as missing ones do, body and all.
    for path in (f"/api/alerts/{wim_alert.id}", f"/api/alerts/{wim_alert.id}/timeline"):
        r = anonymous.get(path, headers=as_env)
        assert r.status_code == 404 and r.json() == {"detail": f"no alert {wim_alert.id}"}
    assert {s["department"] for s in anonymous.get("/api/sites", headers=as_env).json()} == {"env"}
    r = anonymous.get("/api/sites/wim-1", headers=as_env)
    assert r.status_code == 404 and r.json() == {"detail": "no site 'wim-1'"}
    r = anonymous.get("/api/readings", params={"site": "wim-1", "metric": "axles"}, headers=as_env)
    assert r.status_code == 404 and r.json() == {"detail": "no site 'wim-1'"}


def test_cursor_pages_walk_the_queue_without_gaps_or_repeats(
    hub: LiveHub, client: httpx.Client, rule_id: str
) -> None:
    made = [
        hub.alert(
            rule_id, "aq-1", metric=f"m{i}", severity=("critical", "major", "warning")[i % 3]
        ).id
        for i in range(11)
    ]
    for sort in ("risk", "severity", "newest", "oldest"):
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            params = {
                "rule_id": rule_id,
                "limit": 4,
                "sort": sort,
                **({"cursor": cursor} if cursor else {}),
            }
            r = client.get("/api/alerts", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["total"] == 11
            seen += [a["id"] for a in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
            # An alert raised between pages does not shift the pages of this listing.
            if pages == 1:
                hub.alert(f"{rule_id}-other", "aq-1", metric=f"late{sort}")
        assert sorted(seen) == sorted(made) and len(seen) == 11 and pages == 3, sort
    first = client.get(
        "/api/alerts", params={"rule_id": rule_id, "limit": 4, "sort": "risk"}
    ).json()["next_cursor"]
    r = client.get("/api/alerts", params={"rule_id": rule_id, "sort": "newest", "cursor": first})
    assert r.status_code == 422 and "another listing" in r.json()["detail"]
    assert client.get("/api/alerts", params={"cursor": "%%%not-base64"}).status_code == 422


def test_text_entity_and_time_filters(hub: LiveHub, client: httpx.Client, rule_id: str) -> None:
    a = hub.alert(rule_id, "aq-1", metric="pm25")
    b = hub.alert(rule_id, "wim-1", metric="gross_weight")

    def ids(**params: object) -> set[int]:
        r = client.get("/api/alerts", params={"rule_id": rule_id, **params})
        assert r.status_code == 200, r.text
        return {x["id"] for x in r.json()["items"]}

    assert ids(q="GROSS_weight") == {b.id}  # case-insensitive, over the summary
    assert ids(q="aq-1") == {a.id}  # over the site
    assert ids(q="100%") == set()  # % is a character, not a wildcard
    assert ids(entity=ENV_ENTITY) == {a.id} and ids(entity=TRANSPORT_ENTITY) == {b.id}
    now = datetime.now(UTC)
    assert ids(**{"from": (now - timedelta(minutes=5)).isoformat()}) == {a.id, b.id}
    assert ids(to=(now - timedelta(hours=1)).isoformat()) == set()
    assert client.get("/api/alerts", params={"from": "yesterday"}).status_code == 422


def test_timeline_seals_every_step_with_its_audit_hash(
    hub: LiveHub, client: httpx.Client, tokens: dict, rule_id: str
) -> None:
    a = hub.alert(rule_id, "stack-1", metric="so2")
    h = bearer(tokens["env"])
    assert (
        client.post(f"/api/alerts/{a.id}/ack", json={"note": "on it"}, headers=h).status_code == 200
    )
    assert (
        client.post(
            f"/api/alerts/{a.id}/comment", json={"note": "operator called"}, headers=h
        ).status_code
        == 200
    )
    body = client.get(f"/api/alerts/{a.id}/timeline").json()
    steps = body["timeline"]
    assert [s["action"] for s in steps] == ["opened", "ack", "comment"]
    assert [s["actor"] for s in steps] == ["rules", "alice", "alice"]
    entries = {e.seq: e for e in hub.alerts.audit.entries(subject=f"alert:{a.id}")}
    for s in steps:
        e = entries[s["audit"]["seq"]]
        assert s["audit"]["hash"] == e.hash and e.action == s["action"]
    assert hub.alerts.audit.verify().ok


def test_login_and_export_are_audited_and_the_csv_is_safe(
    hub: LiveHub, anonymous: httpx.Client, tokens: dict, rule_id: str
) -> None:
    before = hub.alerts.audit.head()[0]
    assert anonymous.post("/api/session", headers=bearer(tokens["env"])).status_code == 204
    hub.alert(rule_id, "aq-1", metric="=HYPERLINK(1)")  # its summary starts with "="
    r = anonymous.get("/api/alerts/export.csv", params={"state": "new"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][:4] == ["id", "created", "department", "site"]
    assert {row[2] for row in rows[1:]} == {"env"}  # scoped to the token's department
    assert all(not cell.startswith(("=", "+", "@")) for row in rows[1:] for cell in row)
    assert any(row[-1].startswith("'=HYPERLINK(1)") for row in rows[1:])
    new = [e for e in hub.alerts.audit.entries(after_seq=before) if e.actor == "alice"]
    assert [e.action for e in new] == ["login", "export"]
    assert new[1].data["rows"] == len(rows) - 1 and new[1].data["department"] == "env"
    assert hub.alerts.audit.verify().ok
