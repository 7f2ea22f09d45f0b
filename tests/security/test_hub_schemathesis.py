"""Property-based tests of the whole API from its own OpenAPI description (schemathesis).

schemathesis generates requests for every operation, valid and invalid, and sends them to a real
hub (uvicorn on a free port, its stores on SQLite, then on PostgreSQL). The test
fails on any 5xx answer and on any answer the description does not declare: an undeclared status
code, content type or body shape. Two callers: a province-wide admin (reaches everything) and a
department's viewer (its department only, refused every change), so the refusals are declared
too. Examples are bounded and derandomized: the same cases every run, well under a minute.

The live stream is left out: an SSE response never ends, so it cannot be called and checked as
a whole (tests/hub/test_stream.py covers it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from alerts.store import AlertStore
from farsight.types import AlertSignal
from hub.access import ROUTES
from hub.app import create_app
from hub.auth import Role
from rules.engine import fingerprint
from tests.hub.conftest import (
    ENV_ENTITY,
    bearer,
    make_registry,
    make_settings,
    start_server,
    stop_server,
)

EXAMPLES = int(os.environ.get("FARSIGHT_SCHEMATHESIS_EXAMPLES", "12"))
"""Cases per operation and caller (plus schemathesis's explicit and boundary ones)."""

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]

_STATE: dict[str, Any] = {}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hub_schema(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    # Generous failure limits: the generated requests carry our valid tokens, and a lockout
    # would only hide the answers under test behind 429s.
    settings_ = make_settings(data_dir, auth_failures=1000)
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database("schemathesis")
        settings_ = settings_.model_copy(update={"database_url": url})
    registry = make_registry()
    app = create_app(settings_, registry)
    server, thread, base_url = start_server(app)
    store = AlertStore(settings_.database)
    try:
        # A few alerts (small ids, which the generator tries first) so lookups find something.
        store.apply(
            [
                AlertSignal(
                    rule_id=f"st.{i}",
                    fingerprint=fingerprint(f"st.{i}", site, dev, metric),
                    status="firing",
                    site=site,
                    device=dev,
                    metric=metric,
                    severity="major",
                    summary="generated",
                    ts=datetime.now(UTC),
                    value=99.0,
                    threshold=75.0,
                    department=dept,
                    entity_id=ENV_ENTITY,
                )
                for i, (site, dev, metric, dept) in enumerate(
                    [
                        ("aq-1", "aq1", "pm25", "env"),
                        ("stack-1", "cems1", "so2", "env"),
                        ("wim-1", "wim1", "gross_weight", "transport"),
                    ]
                )
            ]
        )
        tokens = app.state.hub.tokens
        _STATE["admin"] = tokens.issue("st-admin", role=Role.ADMIN)
        _STATE["viewer"] = tokens.issue("st-viewer", "env", role=Role.VIEWER)
        _STATE["base_url"] = base_url
        yield schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    finally:
        stop_server(server, thread)
        store.close()


OPERATIONS = sorted(
    key
    for key, rule in ROUTES.items()
    if key[1].startswith("/api/") and key != ("GET", "/api/stream")
) + [("GET", "/healthz"), ("GET", "/metrics")]
"""Every operation of the description but the live stream (hub.access.ROUTES lists them all;
test_hub_route_table holds the list and the description equal)."""


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_error_and_no_undeclared_answer(hub_schema: Any, method: str, path: str) -> None:
    operation = hub_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        for caller in ("admin", "viewer"):
            case.call_and_validate(
                base_url=_STATE["base_url"], headers=bearer(_STATE[caller]), checks=CHECKS
            )

    run()
