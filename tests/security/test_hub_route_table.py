"""Every route of the hub answers as its rule in ``hub.access.ROUTES`` says.

The test walks the app's OpenAPI description (plus the pages outside it), so a route added
without a rule fails here; then, over a real server, calls each route with no token, with a
token of another department, and with a token of each role, and checks the answer: 401 without
a token, 403 below the route's role, 404 (or 403, or a filtered answer) for the other
department, and anything but 401 or 403 for a role the rule allows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends

from alerts.outbox import Outbox, attach_outbox
from alerts.store import AlertStore
from alerts.upstream_rejections import FieldError, list_rejections, record_rejection
from farsight.types import AlertSignal
from hub.access import PUBLIC, ROUTES, Foreign, Rule, check_routes, needs
from hub.app import create_app
from hub.auth import Principal, Role, TokenStore
from rules.engine import fingerprint
from tests.hub.conftest import (
    ENV_ENTITY,
    bearer,
    make_registry,
    make_settings,
    start_server,
    stop_server,
)

OUTSIDE_SCHEMA = [("GET", "/"), ("GET", "/docs"), ("GET", "/openapi.json")]
"""Routes the OpenAPI description leaves out, which serve pages and the description itself."""

STATIC = "/static/app.js"
"""A file of the public /static mount."""

PNG = b"\x89PNG\r\n\x1a\n" + b"route table"


@dataclass
class Table:
    base_url: str
    schema: dict[str, Any]
    tokens: dict[str, str]
    """``env-<role>`` (department env), ``all-<role>`` (province-wide), ``foreign`` (transport,
    admin)."""
    samples: dict[str, str]
    """Values for the path parameters: records of department env."""


def _signal(rule_id: str, site: str, device: str, metric: str) -> AlertSignal:
    return AlertSignal(
        rule_id=rule_id,
        fingerprint=fingerprint(rule_id, site, device, metric),
        status="firing",
        site=site,
        device=device,
        metric=metric,
        severity="major",
        summary="route table",
        ts=datetime.now(UTC),
        value=99.0,
        threshold=75.0,
        department="env",
        entity_id=ENV_ENTITY,
    )


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Table]:
    data_dir: Path = tmp_path_factory.mktemp("route-table")
    settings = make_settings(data_dir)
    registry = make_registry()
    app = create_app(settings, registry)
    app.state.stream.keepalive_s = 0.5
    server, thread, base_url = start_server(app)
    store = AlertStore(settings.database)
    attach_outbox(store)
    tokens = TokenStore(settings.database, registry.departments)
    try:
        issued = {"foreign": tokens.issue("mallory", "transport", role=Role.ADMIN)}
        for role in Role:
            issued[f"env-{role.value}"] = tokens.issue(f"env-{role.value}", "env", role=role)
            issued[f"all-{role.value}"] = tokens.issue(f"all-{role.value}", role=role)
        # Two env alerts of one entity (a joint visit), and an env upload.
        first, second = store.apply(
            [
                _signal("table.a", "aq-1", "aq1", "pm25"),
                _signal("table.b", "stack-1", "cems1", "so2"),
            ]
        )
        # The provincial hub rejected the first alert's record (the sender's part of this is
        # tests/alerts/test_upstream_rejections.py).
        row = Outbox(store.db).rows(alert_id=first.id)[0]
        with store.db.transaction() as c:
            c.execute("UPDATE outbox SET status = 'dead' WHERE id = ?", (row["id"],))
            errors = (FieldError("/alert/summary", "too vague"),)
            record_rejection(c, row["id"], row["key"], first.id, row["payload"], errors, 0)
        rejection = list_rejections(store.db, "env")[0]
        with httpx.Client(base_url=base_url, timeout=10) as c:
            up = c.post("/api/evidence", content=PNG, headers=bearer(issued["env-officer"]))
            assert up.status_code == 201, up.text
            silence = c.post(
                "/api/silences",
                json={
                    "matchers": {"site": "aq-1", "rule_id": "table.none"},
                    "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                    "reason": "route table",
                },
                headers=bearer(issued["env-supervisor"]),
            )
            assert silence.status_code == 201, silence.text
            schema = c.get("/openapi.json").json()
        yield Table(
            base_url=base_url,
            schema=schema,
            tokens=issued,
            samples={
                "alert_id": str(first.id),
                "silence_id": str(silence.json()["id"]),
                "site_id": "aq-1",
                "sha": hashlib.sha256(PNG).hexdigest(),
                "entity_id": ENV_ENTITY,
                "rejection_id": str(rejection.id),
                "_second_alert": str(second.id),
            },
        )
    finally:
        stop_server(server, thread)
        store.close()
        tokens.close()


def _routes(schema: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]
    return sorted(found + OUTSIDE_SCHEMA)


def _request(t: Table, method: str, path: str) -> dict[str, Any]:
    """The request that exercises ``method path`` on department env's records."""
    names = re.findall(r"{(\w+)}", path)
    missing = [n for n in names if n not in t.samples]
    assert not missing, f"{method} {path}: add a sample value for {missing} to this test"
    url = path
    for n in names:
        url = url.replace("{" + n + "}", t.samples[n])
    kw: dict[str, Any] = {}
    if (method, path) == ("GET", "/api/readings"):
        kw["params"] = {"site": "aq-1", "metric": "pm25"}
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/api/alerts/{alert_id}/ack"): {"note": "n"},
        ("POST", "/api/alerts/{alert_id}/comment"): {"note": "n"},
        ("POST", "/api/alerts/{alert_id}/close"): {"note": "n"},
        ("POST", "/api/alerts/{alert_id}/reopen"): {"note": "n"},
        ("POST", "/api/alerts/{alert_id}/dispatch"): {
            "note": "n",
            "team": "t",
            "inspector": "i",
            "due": "2026-12-01",
        },
        ("POST", "/api/alerts/{alert_id}/verify"): {
            "note": "n",
            "finding": "no_violation",
            "evidence": [t.samples["sha"]],
        },
        ("POST", "/api/silences"): {
            "matchers": {"site": "aq-1", "department": "env"},
            "ends_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
            "reason": "route table",
        },
        ("POST", "/api/upstream/rejections/{rejection_id}/correct"): {
            "fields": {"/alert/summary": "PM2.5 above 75 for 2 minutes at aq-1"},
            "note": "n",
        },
        ("POST", "/api/joint-inspections/{entity_id}/dispatch"): {
            "alert_ids": [int(t.samples["alert_id"]), int(t.samples["_second_alert"])],
            "team": "t",
            "inspector": "i",
            "due": "2026-12-01",
            "note": "n",
        },
    }
    op = t.schema["paths"].get(path, {}).get(method.lower(), {})
    if (method, path) == ("POST", "/api/evidence"):
        kw["content"] = PNG  # the raw file: not a JSON body the schema describes
    elif "requestBody" in op:
        assert (method, path) in bodies, f"{method} {path}: add a sample body to this test"
        kw["json"] = bodies[(method, path)]
    return {"method": method, "url": url, **kw}


def _call(client: httpx.Client, req: dict[str, Any], token: str | None) -> int:
    headers = bearer(token) if token else {}
    # Streams never end by themselves: the status is all this needs.
    with client.stream(**req, headers=headers) as r:
        return r.status_code


def _expected(rule: Rule, caller: str) -> str:
    """``"401"``, ``"403"``, ``"404"`` or ``"allowed"`` (anything but 401 and 403)."""
    if rule.public:
        return "allowed"
    assert rule.role is not None
    if caller == "anonymous":
        return "401"
    if caller == "foreign":
        return {
            Foreign.NOT_FOUND: "404",
            Foreign.FORBIDDEN: "403",
            Foreign.FILTERED: "allowed",
            Foreign.PUBLIC: "allowed",
        }[rule.foreign]
    scope, role = caller.split("-")
    if rule.province_wide and scope == "env":
        return "403"
    return "allowed" if Role(role).includes(rule.role) else "403"


def _matches(status: int, expected: str) -> bool:
    if expected == "allowed":
        return status not in (401, 403) and status < 500
    return status == int(expected)


def test_every_route_of_the_schema_has_a_rule(table: Table) -> None:
    routes = _routes(table.schema)
    assert len(routes) >= 30
    missing = [r for r in routes if r not in ROUTES]
    assert not missing, f"routes without a rule in hub.access.ROUTES: {missing}"
    stale = sorted(set(ROUTES) - set(routes))
    assert not stale, f"rules for routes that do not exist: {stale}"


def test_every_route_answers_each_caller_as_its_rule_says(table: Table) -> None:
    callers = ["anonymous", "foreign"] + [
        f"{scope}-{role.value}" for scope in ("env", "all") for role in Role
    ]
    wrong = []
    checked = 0
    # One client for the ~340 calls: making one costs more than a call (its TLS context).
    with httpx.Client(base_url=table.base_url, timeout=10) as client:
        for method, path in _routes(table.schema):
            rule = ROUTES[(method, path)]
            for caller in callers:
                expected = _expected(rule, caller)
                status = _call(client, _request(table, method, path), table.tokens.get(caller))
                checked += 1
                if not _matches(status, expected):
                    wrong.append(f"{method} {path} as {caller}: {status}, the rule says {expected}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 30 * len(callers)


def test_static_files_are_public(table: Table) -> None:
    with httpx.Client(base_url=table.base_url, timeout=10) as c:
        r = c.get(STATIC)
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]


def test_a_route_without_a_rule_or_with_another_role_stops_the_app() -> None:
    router = APIRouter()

    @router.get("/api/new-thing")
    def new_thing(p: Principal = Depends(needs(Role.VIEWER, cookie=True))) -> dict[str, str]:
        return {"user": p.user}

    @router.post("/api/alerts/{alert_id}/ack")
    def ack(alert_id: int, p: Principal = Depends(needs(Role.VIEWER))) -> dict[str, str]:
        return {"user": p.user}

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    with pytest.raises(RuntimeError) as exc:
        check_routes([router])
    text = str(exc.value)
    assert "GET /api/new-thing: no rule" in text
    assert "POST /api/alerts/{alert_id}/ack: the table says officer" in text
    assert "healthz" not in text  # public in the table, and no dependency: agreed
    assert ROUTES[("GET", "/healthz")] == PUBLIC
