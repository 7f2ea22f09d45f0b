"""The hub's REST API, through a real server over HTTP."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from farsight.types import Reading
from ingest.store import DeadLetter
from tests.hub.conftest import LiveHub, bearer

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # on a minute boundary, so 60 s buckets align with it


# -- health, sites -----------------------------------------------------------------------------


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "db": "ok"}


def test_sites_list_with_latest_readings_and_open_alerts(
    hub: LiveHub, client: httpx.Client, rule_id: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    hub.readings.write(
        [
            Reading("aq-1", "aq1", "pm10", 40.0, "ug/m3", now - timedelta(minutes=2)),
            Reading("aq-1", "aq1", "pm10", 42.5, "ug/m3", now - timedelta(seconds=30)),
        ]
    )
    before = {s["id"]: s["open_alerts"] for s in client.get("/api/sites").json()}
    hub.alert(rule_id, "aq-1", metric="pm10")

    r = client.get("/api/sites")
    assert r.status_code == 200
    sites = {s["id"]: s for s in r.json()}
    assert set(sites) == {"aq-1", "stack-1", "wim-1"}
    aq = sites["aq-1"]
    assert aq["name"] == "Riverside <b>air</b> station"
    assert aq["department"] == "env" and aq["city"] == "Hangzhou" and aq["credit_grade"] == "A"
    assert aq["entity_id"] == hub.registry.get("aq-1").entity_id
    assert aq["location"] == {"lon": 120.16, "lat": 30.27}
    assert aq["limits"] == {"pm25": 75.0}
    assert aq["devices"][0]["id"] == "aq1" and aq["devices"][0]["metrics"] == ["pm25", "pm10"]
    pm10 = [x for x in aq["latest"] if x["metric"] == "pm10"]
    assert len(pm10) == 1 and pm10[0]["value"] == 42.5 and pm10[0]["unit"] == "ug/m3"
    assert 25 <= pm10[0]["age_s"] < 120
    assert aq["open_alerts"] == before["aq-1"] + 1
    assert sites["stack-1"]["open_alerts"] == before["stack-1"]


def test_sites_filtered_by_department(client: httpx.Client) -> None:
    assert [
        s["id"] for s in client.get("/api/sites", params={"department": "transport"}).json()
    ] == ["wim-1"]
    assert {s["id"] for s in client.get("/api/sites", params={"department": "env"}).json()} == {
        "aq-1",
        "stack-1",
    }
    r = client.get("/api/sites", params={"department": "health"})
    assert r.status_code == 422 and "env" in r.json()["detail"]


def test_site_detail_and_404(client: httpx.Client) -> None:
    r = client.get("/api/sites/stack-1")
    assert r.status_code == 200 and r.json()["id"] == "stack-1" and r.json()["credit_grade"] == "C"
    r = client.get("/api/sites/nope")
    assert r.status_code == 404 and "nope" in r.json()["detail"]


# -- readings ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def so2_series(hub: LiveHub) -> list[float]:
    """Twelve so2 readings 10 s apart from T0: values 0..11, so 60 s buckets average 2.5 and 8.5."""
    values = [float(i) for i in range(12)]
    hub.readings.write(
        [
            Reading("stack-1", "cems1", "so2", v, "mg/m3", T0 + timedelta(seconds=10 * i))
            for i, v in enumerate(values)
        ]
    )
    return values


def test_readings_raw(client: httpx.Client, so2_series: list[float]) -> None:
    r = client.get(
        "/api/readings",
        params={
            "site": "stack-1",
            "metric": "so2",
            "from": T0.isoformat(),
            "to": (T0 + timedelta(minutes=5)).isoformat(),
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["site"] == "stack-1" and body["metric"] == "so2" and body["interval"] is None
    assert body["truncated"] is False
    assert [p["value"] for p in body["points"]] == so2_series
    first = body["points"][0]
    assert first["device"] == "cems1" and first["unit"] == "mg/m3" and first["flag"] == "N"
    assert datetime.fromisoformat(first["ts"]) == T0


def test_readings_downsampled_bucket_averages(
    client: httpx.Client, so2_series: list[float]
) -> None:
    # Beijing time with an offset: the API takes any offset and answers in UTC.
    start = T0.astimezone(timezone(timedelta(hours=8)))
    r = client.get(
        "/api/readings",
        params={
            "site": "stack-1",
            "metric": "so2",
            "from": start.isoformat(),
            "to": (start + timedelta(minutes=5)).isoformat(),
            "interval": 60,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["interval"] == 60
    pts = body["points"]
    assert [p["value"] for p in pts] == [pytest.approx(2.5), pytest.approx(8.5)]
    assert [(p["min"], p["max"], p["count"]) for p in pts] == [(0.0, 5.0, 6), (6.0, 11.0, 6)]
    assert [datetime.fromisoformat(p["ts"]) for p in pts] == [T0, T0 + timedelta(minutes=1)]


def test_readings_default_range_is_last_hour(hub: LiveHub, client: httpx.Client) -> None:
    now = datetime.now(UTC)
    hub.readings.write(
        [
            Reading("stack-1", "cems1", "nox", 1.0, "mg/m3", now - timedelta(hours=2)),
            Reading("stack-1", "cems1", "nox", 2.0, "mg/m3", now - timedelta(minutes=10)),
        ]
    )
    body = client.get("/api/readings", params={"site": "stack-1", "metric": "nox"}).json()
    assert [p["value"] for p in body["points"]] == [2.0]
    span = datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"])
    assert span == timedelta(hours=1)


def test_readings_unescaped_plus_in_offset_is_accepted(
    client: httpx.Client, so2_series: list[float]
) -> None:
    # A '+' typed into a URL arrives as a space; "...T16:00:00 08:00" still means +08:00.
    r = client.get(
        "/api/readings?site=stack-1&metric=so2&from=2026-01-05T16:00:00+08:00&to=2026-01-05T16:05:00+08:00"
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["points"]) == 12


@pytest.mark.parametrize(
    "params, status, fragment",
    [
        ({"site": "nope", "metric": "so2"}, 404, "nope"),
        (
            {
                "site": "stack-1",
                "metric": "so2",
                "from": "2026-01-05T09:00:00+00:00",
                "to": "2026-01-05T08:00:00+00:00",
            },
            422,
            "before",
        ),
        (
            {
                "site": "stack-1",
                "metric": "so2",
                "from": "2026-01-05T09:00:00+00:00",
                "to": "2026-01-05T09:00:00+00:00",
            },
            422,
            "before",
        ),
        (
            {
                "site": "stack-1",
                "metric": "so2",
                "from": "2025-11-01T00:00:00+00:00",
                "to": "2026-01-05T00:00:00+00:00",
            },
            422,
            "31 days",
        ),
        (
            {
                "site": "stack-1",
                "metric": "so2",
                "from": "2026-01-05T08:00:00",
                "to": "2026-01-05T09:00:00+00:00",
            },
            422,
            "offset",
        ),
        ({"site": "stack-1", "metric": "so2", "from": "yesterday"}, 422, "ISO 8601"),
    ],
)
def test_readings_validation(
    client: httpx.Client, params: dict, status: int, fragment: str
) -> None:
    r = client.get("/api/readings", params=params)
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]


def test_readings_bad_interval_and_missing_metric(client: httpx.Client) -> None:
    assert (
        client.get(
            "/api/readings", params={"site": "stack-1", "metric": "so2", "interval": 0}
        ).status_code
        == 422
    )
    assert client.get("/api/readings", params={"site": "stack-1"}).status_code == 422


# -- alerts: listing ---------------------------------------------------------------------------


def test_alerts_list_filter_and_paginate(hub: LiveHub, client: httpx.Client, rule_id: str) -> None:
    crit = hub.alert(rule_id, "aq-1", severity="critical")
    warn = hub.alert(rule_id, "stack-1", severity="warning", metric="so2")
    major = hub.alert(rule_id, "wim-1", severity="major", metric="gross_weight")
    hub.alert(rule_id, "stack-1", severity="warning", metric="so2", status="resolved")

    body = client.get("/api/alerts", params={"rule_id": rule_id, "sort": "severity"}).json()
    assert body["total"] == 3 and body["offset"] == 0
    assert body["limit"] == min(100, hub.settings.hub.page_max)  # the default page, capped
    # Most severe first. (The default order is the risk score, which also weighs the operator's
    # earlier alerts: other tests on this session's hub raise those.)
    assert [a["id"] for a in body["items"]] == [crit.id, major.id, warn.id]
    assert body["items"][0]["department"] == "env" and body["items"][0]["state"] == "new"

    def ids(**params: object) -> list[int]:
        r = client.get("/api/alerts", params={"rule_id": rule_id, **params})
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    assert ids(department="env") == [crit.id, warn.id]
    assert ids(department="transport") == [major.id]
    assert ids(severity="warning") == [warn.id]
    assert ids(site="wim-1") == [major.id]
    assert ids(activity="resolved") == [warn.id]
    assert sorted(ids(activity="firing")) == sorted([crit.id, major.id])
    assert ids(state="closed") == []
    assert len(ids(state=["new", "acknowledged"])) == 3  # repeated parameter
    assert len(ids(state="new,acknowledged")) == 3  # comma list
    assert ids(sort="oldest") == [crit.id, warn.id, major.id]
    assert ids(sort="newest") == [major.id, warn.id, crit.id]

    page1 = client.get(
        "/api/alerts", params={"rule_id": rule_id, "limit": 2, "offset": 0, "sort": "severity"}
    ).json()
    page2 = client.get(
        "/api/alerts", params={"rule_id": rule_id, "limit": 2, "offset": 2, "sort": "severity"}
    ).json()
    assert page1["total"] == page2["total"] == 3
    assert (page1["limit"], page1["offset"], page2["offset"]) == (2, 0, 2)
    assert [a["id"] for a in page1["items"] + page2["items"]] == [crit.id, major.id, warn.id]


def test_alerts_limit_is_capped_at_page_max(hub: LiveHub, client: httpx.Client) -> None:
    body = client.get("/api/alerts", params={"limit": 10_000}).json()
    assert body["limit"] == hub.settings.hub.page_max
    assert len(body["items"]) <= hub.settings.hub.page_max


@pytest.mark.parametrize(
    "params",
    [
        {"state": "shut"},
        {"severity": "huge"},
        {"activity": "asleep"},
        {"sort": "random"},
        {"department": "health"},
        {"limit": -1},
        {"offset": -5},
    ],
)
def test_alerts_list_rejects_bad_filters(client: httpx.Client, params: dict) -> None:
    r = client.get("/api/alerts", params=params)
    assert r.status_code == 422
    assert "detail" in r.json()


def test_alert_detail_with_events_and_404(hub: LiveHub, client: httpx.Client, rule_id: str) -> None:
    a = hub.alert(rule_id)
    body = client.get(f"/api/alerts/{a.id}").json()
    assert body["alert"]["id"] == a.id and body["alert"]["rule_id"] == rule_id
    assert [e["action"] for e in body["events"]] == ["opened"]
    assert body["events"][0]["actor"] == "rules"
    r = client.get("/api/alerts/999999")
    assert r.status_code == 404 and r.json() == {"detail": "no alert 999999"}


# -- alerts: people's actions ------------------------------------------------------------------


def _events(client: httpx.Client, alert_id: int) -> list[dict]:
    return client.get(f"/api/alerts/{alert_id}").json()["events"]


def test_ack_then_close_records_the_token_user(
    hub: LiveHub, client: httpx.Client, tokens: dict, rule_id: str
) -> None:
    a = hub.alert(rule_id, "aq-1")
    r = client.post(
        f"/api/alerts/{a.id}/ack", json={"note": "crew on the way"}, headers=bearer(tokens["env"])
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged" and r.json()["id"] == a.id

    r = client.post(
        f"/api/alerts/{a.id}/close", json={"note": "filter replaced"}, headers=bearer(tokens["env"])
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "closed"

    evs = _events(client, a.id)
    assert [(e["action"], e["actor"], e["note"]) for e in evs] == [
        ("opened", "rules", a.summary),
        ("ack", "alice", "crew on the way"),
        ("close", "alice", "filter replaced"),
    ]
    assert evs[1]["data"] == {"from": "new", "to": "acknowledged"}


def test_every_step_needs_a_comment_and_an_all_department_token_may_act(
    hub: LiveHub, client: httpx.Client, tokens: dict, rule_id: str
) -> None:
    a = hub.alert(rule_id, "wim-1", metric="gross_weight")
    assert (
        client.post(f"/api/alerts/{a.id}/ack", headers=bearer(tokens["admin"])).status_code == 422
    )
    r = client.post(
        f"/api/alerts/{a.id}/ack", json={"note": "on it"}, headers=bearer(tokens["admin"])
    )
    assert r.status_code == 200, r.text
    assert _events(client, a.id)[-1]["actor"] == "admin"


def test_close_straight_from_open(
    hub: LiveHub, client: httpx.Client, tokens: dict, rule_id: str
) -> None:
    a = hub.alert(rule_id, "wim-1", metric="axles")
    r = client.post(
        f"/api/alerts/{a.id}/close",
        json={"note": "false alarm: scale recalibrated"},
        headers=bearer(tokens["transport"]),
    )
    assert r.status_code == 200 and r.json()["state"] == "closed"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer fs_not-a-real-token"},
        {"Authorization": "Basic YWxpY2U6cHc="},
        {"Authorization": "Bearer"},
    ],
)
def test_actions_need_a_valid_token(
    hub: LiveHub, client: httpx.Client, rule_id: str, headers: dict
) -> None:
    a = hub.alert(rule_id)
    for action, body in (("ack", {}), ("close", {"note": "x"})):
        r = client.post(f"/api/alerts/{a.id}/{action}", json=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert isinstance(r.json()["detail"], str)
    assert client.get(f"/api/alerts/{a.id}").json()["alert"]["state"] == "new"


def test_revoked_token_is_refused(hub: LiveHub, client: httpx.Client, rule_id: str) -> None:
    token = hub.tokens.issue("carol", "env", role="officer")
    token_id = max(t.id for t in hub.tokens.list() if t.user == "carol")
    hub.tokens.revoke(token_id)
    a = hub.alert(rule_id)
    r = client.post(f"/api/alerts/{a.id}/ack", json={}, headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_other_department_gets_the_answer_of_a_missing_alert(
    hub: LiveHub, client: httpx.Client, tokens: dict, rule_id: str
) -> None:
    a = hub.alert(rule_id, "aq-1")
    missing = a.id + 10**9
    for action, body in (("ack", {"note": "mine"}), ("close", {"note": "mine"})):
        r = client.post(
            f"/api/alerts/{a.id}/{action}", json=body, headers=bearer(tokens["transport"])
        )
        gone = client.post(
            f"/api/alerts/{missing}/{action}", json=body, headers=bearer(tokens["transport"])
        )
        # Nothing tells that the alert exists or whose it is: the body of a missing one.
        assert r.status_code == gone.status_code == 404, r.text
        assert r.json() == {"detail": f"no alert {a.id}"}
        assert gone.json() == {"detail": f"no alert {missing}"}
    detail = client.get(f"/api/alerts/{a.id}").json()
    assert detail["alert"]["state"] == "new" and len(detail["events"]) == 1


def test_invalid_transitions_conflict_and_change_nothing(
    hub: LiveHub, client: httpx.Client, tokens: dict, rule_id: str
) -> None:
    a = hub.alert(rule_id, "stack-1", metric="so2")
    h = bearer(tokens["env"])
    assert (
        client.post(f"/api/alerts/{a.id}/ack", json={"note": "on it"}, headers=h).status_code == 200
    )
    r = client.post(f"/api/alerts/{a.id}/ack", json={"note": "again"}, headers=h)  # ack twice
    assert r.status_code == 409 and "acknowledged" in r.json()["detail"]
    assert (
        client.post(f"/api/alerts/{a.id}/close", json={"note": "done"}, headers=h).status_code
        == 200
    )
    before = client.get(f"/api/alerts/{a.id}").json()

    r = client.post(f"/api/alerts/{a.id}/close", json={"note": "again"}, headers=h)
    assert r.status_code == 409
    assert r.json()["detail"].startswith("cannot close an alert that is closed")
    r = client.post(f"/api/alerts/{a.id}/ack", json={"note": "late"}, headers=h)
    assert r.status_code == 409 and "closed" in r.json()["detail"]

    assert client.get(f"/api/alerts/{a.id}").json() == before


@pytest.mark.parametrize(
    "body",
    [None, {}, {"note": ""}, {"note": "   "}, {"note": "x" * 2001}, {"note": "ok", "extra": 1}],
)
def test_close_needs_a_proper_note(
    hub: LiveHub, client: httpx.Client, tokens: dict, rule_id: str, body: dict | None
) -> None:
    a = hub.alert(rule_id)
    r = client.post(f"/api/alerts/{a.id}/close", json=body, headers=bearer(tokens["env"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
    if body == {"note": "   "}:
        assert "needs a comment" in r.text
    assert client.get(f"/api/alerts/{a.id}").json()["alert"]["state"] == "new"


def test_action_on_missing_alert_is_404(client: httpx.Client, tokens: dict) -> None:
    r = client.post("/api/alerts/987654/ack", json={"note": "x"}, headers=bearer(tokens["admin"]))
    assert r.status_code == 404 and r.json() == {"detail": "no alert 987654"}


# -- dead letters, stats, metrics ----------------------------------------------------------------


def test_dead_letters_need_a_province_wide_token_and_return_payloads(
    hub: LiveHub, anonymous: httpx.Client, tokens: dict
) -> None:
    payload = b'{"ts": 1, "metrics": \xff\x00 broken\n'
    hub.readings.add_dead_letter(
        DeadLetter(
            topic="fs/v1/env/aq-1/aq1/reading",
            payload=payload,
            reason="decode",
            detail="invalid utf-8",
            received=datetime.now(UTC),
            codec="json",
        )
    )
    client = anonymous
    r = client.get("/api/dead-letters")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/dead-letters", headers=bearer(tokens["env"])).status_code == 403

    r = client.get(
        "/api/dead-letters", params={"reason": "decode"}, headers=bearer(tokens["admin"])
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] >= 1
    d = body["items"][0]
    assert (
        d["topic"] == "fs/v1/env/aq-1/aq1/reading"
        and d["reason"] == "decode"
        and d["codec"] == "json"
    )
    assert base64.b64decode(d["payload_b64"]) == payload and d["size"] == len(payload)
    assert d["preview"].startswith('{"ts": 1, "metrics": ')
    assert d["preview"].isprintable()


def test_stats(hub: LiveHub, client: httpx.Client, rule_id: str) -> None:
    hub.alert(rule_id, "aq-1", severity="critical")
    body = client.get("/api/stats").json()
    assert body["sites"] == 3
    assert body["readings"] == hub.readings.count()
    assert body["dead_letters"] == hub.readings.dead_letter_count()
    assert body["alerts"]["severity"]["critical"] >= 1
    assert body["alerts"]["state"]["new"] >= 1
    assert body["stream_subscribers"] >= 0


def test_stats_of_a_department_token_count_its_department_only(
    hub: LiveHub, anonymous: httpx.Client, tokens: dict, rule_id: str
) -> None:
    hub.alert(rule_id, "wim-1", metric="gross_weight", severity="critical")
    mine = anonymous.get("/api/stats", headers=bearer(tokens["transport"])).json()
    env_sites = [s.id for s in hub.registry.for_department("env")]
    assert mine["sites"] == 1
    assert mine["readings"] == hub.readings.count(site="wim-1")
    assert mine["dead_letters"] is None  # rejected messages belong to no department
    assert mine["alerts"]["severity"] == hub.alerts.counts("transport")["severity"]
    assert mine["alerts"]["state"] == hub.alerts.counts("transport")["state"]
    everything = anonymous.get("/api/stats", headers=bearer(tokens["admin"])).json()
    assert everything["sites"] == 3 and env_sites
    assert everything["alerts"]["severity"] == hub.alerts.counts()["severity"]


def _samples(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text page by its name and labels, as the page spells them."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def test_metrics_prometheus_text(
    hub: LiveHub, client: httpx.Client, tokens: dict[str, str], rule_id: str
) -> None:
    a = hub.alert(rule_id, "stack-1", severity="info", metric="nox")
    # An officer's step through the API is queued for the provincial hub (the hub's store has
    # the outbox listener), so the outbox has a pending event whatever other tests ran first.
    r = client.post(
        f"/api/alerts/{a.id}/ack", json={"note": "on it"}, headers=bearer(tokens["admin"])
    )
    assert r.status_code == 200, r.text
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    values = _samples(text)
    assert int(values["farsight_readings_total"]) == hub.readings.count()
    assert int(values["farsight_dead_letters_total"]) == hub.readings.dead_letter_count()
    assert int(values['farsight_open_alerts{severity="info"}']) >= 1
    assert {'farsight_open_alerts{severity="critical"}', "farsight_stream_subscribers"} <= set(
        values
    )
    assert "# TYPE farsight_readings_total counter" in text
    assert "# TYPE farsight_open_alerts gauge" in text
    # Every alert event is queued for the provincial hub: the outbox counts what waits.
    pending = int(values['farsight_outbox_events{status="pending"}'])
    assert pending >= 1 and "farsight_outbox_oldest_pending_seconds" in text


def test_metrics_export_what_ingest_workers_counted(hub: LiveHub, client: httpx.Client) -> None:
    before = hub.readings.counters()
    hub.readings.add_counters(
        {("rule_late_readings", "pm25-rule"): 2, ("rule_flagged_readings", "C"): 3}
    )
    hub.readings.add_counters(
        {("rule_late_readings", "pm25-rule"): 1}
    )  # a second worker adds to the sum
    values = _samples(client.get("/metrics").text)
    late = before.get(("rule_late_readings", "pm25-rule"), 0) + 3
    assert int(values['farsight_rule_late_readings_total{rule="pm25-rule"}']) == late
    assert (
        int(values['farsight_rule_flagged_readings_total{flag="C"}'])
        == before.get(("rule_flagged_readings", "C"), 0) + 3
    )


# -- dashboard and docs --------------------------------------------------------------------------

_REF = re.compile(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)


def test_dashboard_uses_only_local_assets(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    assert "<title>Farsight</title>" in html
    refs = _REF.findall(html)
    assert "/static/app.js" in refs and "/static/style.css" in refs
    for ref in refs:
        assert ref.startswith(("/static/", "data:")), ref
        assert "//" not in ref, ref
    assert "http://" not in html and "https://" not in html
    for ref in refs:
        if ref.startswith("/static/"):
            asset = client.get(ref)
            assert asset.status_code == 200, ref
            # No remote fonts, scripts or images pulled in from the assets either.
            assert "http://" not in asset.text and "https://" not in asset.text, ref
            assert "@import" not in asset.text and "url(" not in asset.text, ref


def test_dashboard_script_never_uses_inner_html(client: httpx.Client) -> None:
    html = client.get("/").text
    scripts = [ref for ref in _REF.findall(html) if ref.endswith(".js")]
    assert {"/static/app.js", "/static/quality.js", "/static/rejections.js"} <= set(scripts)
    for ref in scripts:
        js = client.get(ref).text
        assert not re.search(
            r"\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML\(|document\.write", js
        ), ref
    js = client.get("/static/app.js").text
    assert "/api/stream" in js and "EventSource" in js


def test_docs_work_offline(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/alerts/{alert_id}/close" in schema["paths"]
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text
    assert "/api/alerts" in r.text and "/openapi.json" in r.text


def test_the_verification_workflow_through_the_api(
    hub: LiveHub, client: httpx.Client, tokens: dict, rule_id: str
) -> None:
    a = hub.alert(rule_id, "stack-1", metric="nox")
    h = bearer(tokens["env"])

    def post(action: str, body: dict) -> httpx.Response:
        return client.post(f"/api/alerts/{a.id}/{action}", json=body, headers=h)

    r = post("dispatch", {"note": "send a team", "team": "Ningbo 1", "inspector": "wang.fang"})
    assert r.status_code == 422 and "due" in r.text  # schema names the missing field
    assert (
        post(
            "dispatch",
            {
                "note": "send a team",
                "team": "Ningbo 1",
                "inspector": "wang.fang",
                "due": "2026-11-27",
            },
        ).status_code
        == 200
    )
    assert post("verify", {"note": "on site", "finding": "guess"}).status_code == 422
    # Evidence is cited by the hash the upload returned; a hash of no stored file is refused.
    photo = b"\x89PNG\r\n\x1a\n" + rule_id.encode()
    up = client.post("/api/evidence", content=photo, headers=h)
    assert up.status_code == 201, up.text
    r = post(
        "verify",
        {"note": "analyser drifted", "finding": "equipment_fault", "evidence": ["cd" * 32]},
    )
    assert r.status_code == 422 and "cd" * 32 in r.json()["detail"]
    r = post(
        "verify",
        {
            "note": "analyser drifted",
            "finding": "equipment_fault",
            "evidence": [up.json()["sha256"]],
        },
    )
    assert (
        r.status_code == 200
        and r.json()["handling"]["verification"]["finding"] == "equipment_fault"
        and r.json()["evidence"] == [up.json()["sha256"]]
    )
    assert post("comment", {"note": "operator notified"}).json()["state"] == "verified"
    r = post(
        "close",
        {
            "note": "repair ordered",
            "rectification": "recalibrate the NOx analyser",
            "recheck": "2026-12-10",
        },
    )
    assert r.status_code == 200 and r.json()["handling"]["disposal"] == {
        "rectification": "recalibrate the NOx analyser",
        "recheck": "2026-12-10",
    }
    assert post("reopen", {"note": "recheck failed"}).json()["state"] == "acknowledged"
    actions = [(e["actor"], e["action"]) for e in _events(client, a.id)][1:]
    assert actions == [
        ("alice", "dispatch"),
        ("alice", "verify"),
        ("alice", "comment"),
        ("alice", "close"),
        ("alice", "reopen"),
    ]


def test_metrics_speak_openmetrics_to_a_scraper_that_asks(client: httpx.Client) -> None:
    r = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert "# TYPE farsight_readings counter" in r.text and r.text.endswith("# EOF\n")


def test_ids_out_of_range_are_refused_never_overflowed(client: httpx.Client, tokens: dict) -> None:
    h = bearer(tokens["admin"])
    visit = {"team": "t", "inspector": "i", "due": "2026-12-01", "note": "n"}
    for big in (2**63, 2**64, 10**30, 0, -1):
        answers = [
            client.get(f"/api/alerts/{big}"),
            client.get(f"/api/alerts/{big}/timeline"),
            client.post(f"/api/alerts/{big}/ack", json={"note": "n"}, headers=h),
            client.post(f"/api/alerts/{big}/reopen", json={"note": "n"}, headers=h),
            client.delete(f"/api/silences/{big}", headers=h),
            client.post(
                "/api/joint-inspections/91330100MA2B3C4D5X/dispatch",
                json={"alert_ids": [big], **visit},
                headers=h,
            ),
        ]
        assert [r.status_code for r in answers] == [422] * len(answers), [
            (r.request.url.path, r.status_code) for r in answers
        ]
    assert client.get(f"/api/alerts/{2**63 - 1}").status_code == 404  # the largest id: looked up
