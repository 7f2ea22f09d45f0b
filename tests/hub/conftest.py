"""Fixtures: a real hub on a free port (uvicorn in a thread), its own registry and temp data dir."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
from fastapi import FastAPI

from alerts.model import Alert
from alerts.store import AlertStore
from farsight.credit import make_credit_code
from farsight.registry import Registry, parse_registry
from farsight.settings import Settings
from farsight.types import AlertSignal
from hub.app import HubServer, bound_port, create_app, make_server
from hub.auth import TokenStore
from ingest.store import ReadingStore
from rules.engine import fingerprint

ENV_ENTITY = make_credit_code("91330100MA2B3C4D5")
TRANSPORT_ENTITY = make_credit_code("91330200MA2B3C4D6")

REGISTRY_DOC: dict[str, Any] = {
    "sites": [
        {
            "id": "aq-1",
            "name": "Riverside <b>air</b> station",
            "department": "env",
            "city": "Hangzhou",
            "kind": "air_quality",
            "entity_id": ENV_ENTITY,
            "entity_name": "Riverside Monitoring Co.",
            "location": {"lon": 120.16, "lat": 30.27},
            "credit_grade": "A",
            "limits": {"pm25": 75},
            "devices": [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25", "pm10"]}],
        },
        {
            "id": "stack-1",
            "name": "Power plant stack 1",
            "department": "env",
            "city": "Ningbo",
            "kind": "stack",
            "entity_id": ENV_ENTITY,
            "location": {"lon": 121.55, "lat": 29.87},
            "credit_grade": "C",
            "devices": [
                {
                    "id": "cems1",
                    "kind": "cems",
                    "protocol": "hj212",
                    "mn": "MN0001",
                    "metrics": ["so2", "nox"],
                }
            ],
        },
        {
            "id": "wim-1",
            "name": "Toll gate weigh station",
            "department": "transport",
            "city": "Hangzhou",
            "kind": "wim",
            "entity_id": TRANSPORT_ENTITY,
            "location": {"lon": 120.2, "lat": 30.3},
            "devices": [{"id": "wim1", "kind": "wim", "metrics": ["gross_weight", "axles"]}],
        },
    ]
}

SERVER_START_S = 15.0


def make_registry() -> Registry:
    """The small test registry: two env sites in two cities, one transport site."""
    return parse_registry(REGISTRY_DOC, ("env", "transport"), source="tests/hub registry")


def make_settings(data_dir: Path, **hub: Any) -> Settings:
    return Settings.model_validate(
        {"data_dir": str(data_dir), "hub": {"stream_poll_ms": 50, "page_max": 50, **hub}}
    )


def start_server(app: FastAPI) -> tuple[HubServer, threading.Thread, str]:
    """Run ``app`` in a real uvicorn server on a free port; returns the server, its thread and
    base URL."""
    server = make_server(app, "127.0.0.1", 0, log_level="warning", timeout_graceful_shutdown=5)
    thread = threading.Thread(target=server.run, name="hub-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("hub server thread exited before it started")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"hub server did not start within {SERVER_START_S} s")
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{bound_port(server)}"


def stop_server(server: HubServer, thread: threading.Thread, timeout: float = 15.0) -> None:
    server.should_exit = True
    thread.join(timeout)
    assert not thread.is_alive(), "hub server did not stop"


@dataclass
class LiveHub:
    """A running hub plus the test's own store connections (as ingest and rules would have)."""

    base_url: str
    settings: Settings
    registry: Registry
    app: FastAPI
    readings: ReadingStore
    alerts: AlertStore
    tokens: TokenStore

    def alert(
        self,
        rule_id: str,
        site: str = "aq-1",
        *,
        severity: str = "major",
        status: str = "firing",
        device: str | None = None,
        metric: str = "pm25",
        ts: datetime | None = None,
        value: float = 99.0,
    ) -> Alert:
        """Apply one signal as the rule engine would and return the resulting alert."""
        s = self.registry.get(site)
        assert s is not None
        dev = device or s.devices[0].id
        sig = AlertSignal(
            rule_id=rule_id,
            fingerprint=fingerprint(rule_id, site, dev, metric),
            status=status,
            site=site,
            device=dev,
            metric=metric,
            severity=severity,
            summary=f"{metric} above limit at {s.name}",
            ts=ts or datetime.now(UTC),
            value=value,
            threshold=75.0,
            department=s.department,
            entity_id=s.entity_id,
        )
        changed = self.alerts.apply([sig])
        assert changed, "signal changed nothing"
        return changed[0]


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveHub]:
    """One hub per backend (SQLite, then PostgreSQL); tests keep apart by unique rule ids, sites
    and metrics."""
    data_dir = tmp_path_factory.mktemp("hub-data")
    if request.param == "postgres":
        settings = make_settings(data_dir).model_copy(
            update={
                "database_url": request.getfixturevalue("postgres_server").create_database("hub")
            }
        )
    else:
        settings = make_settings(data_dir)
    registry = make_registry()
    app = create_app(settings, registry)
    # Short keepalives let stream readers notice a stop request quickly; production uses 15 s.
    app.state.stream.keepalive_s = 0.5
    server, thread, base_url = start_server(app)
    live = LiveHub(
        base_url=base_url,
        settings=settings,
        registry=registry,
        app=app,
        readings=ReadingStore(settings.database),
        alerts=AlertStore(settings.database),
        tokens=TokenStore(settings.database, registry.departments),
    )
    try:
        yield live
    finally:
        stop_server(server, thread)
        live.readings.close()
        live.alerts.close()
        live.tokens.close()


@pytest.fixture(scope="session")
def tokens(hub: LiveHub) -> dict[str, str]:
    """Tokens: ``admin`` (all departments), ``env`` (alice), ``transport`` (bob)."""
    return {
        "admin": hub.tokens.issue("admin", role="admin"),
        "env": hub.tokens.issue("alice", "env", role="supervisor"),
        "transport": hub.tokens.issue("bob", "transport", role="supervisor"),
    }


@pytest.fixture
def client(hub: LiveHub, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    """A browser-like client with a province-wide session cookie: it reads everything, and
    still needs a bearer token for every change."""
    with httpx.Client(base_url=hub.base_url, timeout=10.0) as c:
        r = c.post("/api/session", headers=bearer(tokens["admin"]))
        assert r.status_code == 204, r.text
        yield c


@pytest.fixture
def anonymous(hub: LiveHub) -> Iterator[httpx.Client]:
    """A client with no token and no session."""
    with httpx.Client(base_url=hub.base_url, timeout=10.0) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def rule_id() -> str:
    """A rule id no other test uses, so list filters see only this test's alerts."""
    return f"test.{uuid.uuid4().hex[:10]}"


class SSEReader:
    """Reads ``/api/stream`` in a thread and queues parsed events and comments."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.headers = headers or {}
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.history: list[dict[str, str]] = []
        """Every event and comment received, in order (``events`` only wakes wait_for)."""
        self._returned: set[int] = set()
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.status: int | None = None
        self.content_type = ""
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        if not self.opened.wait(10.0):
            raise AssertionError(
                f"stream did not open (status={self.status}, error={self.error!r})"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        try:
            timeout = httpx.Timeout(10.0, read=20.0)
            with (
                httpx.Client(base_url=self.base_url, timeout=timeout) as c,
                c.stream("GET", "/api/stream", headers=self.headers) as r,
            ):
                self.status = r.status_code
                self.content_type = r.headers.get("content-type", "")
                ev: dict[str, str] = {}
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        if ev:
                            self.events.put(ev)
                            self.history.append(ev)
                            ev = {}
                        continue
                    if line.startswith(":"):
                        comment = line[1:].strip()
                        if comment == "connected":
                            self.opened.set()
                        note = {"comment": comment}
                        self.events.put(note)
                        self.history.append(note)
                        continue
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    ev[name] = ev[name] + "\n" + value if name == "data" and name in ev else value
        except BaseException as exc:  # noqa: BLE001  # reported through .error, not lost
            self.error = exc
        finally:
            self.ended.set()

    def wait_for(
        self, match: Callable[[dict[str, str]], bool], timeout: float = 10.0
    ) -> dict[str, str]:
        """The first event so far satisfying ``match`` and not returned before (events may come in
        another order than a test waits for them: a poll can pick up an alert before a reading
        written earlier); fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in list(self.history):
                if id(ev) not in self._returned and match(ev):
                    self._returned.add(id(ev))
                    return ev
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching event within {timeout} s; saw"
                    f" {[e for e in self.history if 'comment' not in e][-10:]}"
                )
            try:
                self.events.get(timeout=min(remaining, 0.5))  # wakes when something arrives
            except queue.Empty:
                continue
