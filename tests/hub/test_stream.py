"""The live stream: SSE over a real server, replay, keepalives, slow clients, shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sse_starlette import ServerSentEvent

from farsight.types import Reading
from hub.app import create_app
from hub.stream import Message, StreamHub, parse_last_event_id
from tests.hub.conftest import (
    LiveHub,
    SSEReader,
    bearer,
    make_registry,
    make_settings,
    start_server,
    stop_server,
)


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``cond`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _is(event: str, **fields: object):
    def match(ev: dict[str, str]) -> bool:
        if ev.get("event") != event:
            return False
        data = json.loads(ev["data"])
        return all(data.get(k) == v for k, v in fields.items())

    return match


def test_reading_and_alert_events_arrive(hub: LiveHub, tokens: dict, rule_id: str) -> None:
    with SSEReader(hub.base_url, headers=bearer(tokens["admin"])) as sse:
        assert sse.status == 200 and sse.content_type.startswith("text/event-stream")
        ts = datetime.now(UTC).replace(microsecond=0)
        hub.readings.write([Reading("wim-1", "wim1", "gross_weight", 61.5, "t", ts)])
        alert = hub.alert(rule_id, "wim-1", severity="critical", metric="gross_weight", value=61.5)

        ev = sse.wait_for(_is("reading", site="wim-1", metric="gross_weight", value=61.5))
        reading = json.loads(ev["data"])
        assert reading["device"] == "wim1" and reading["unit"] == "t"
        assert datetime.fromisoformat(reading["ts"]) == ts

        ev = sse.wait_for(_is("alert", id=alert.id))
        data = json.loads(ev["data"])
        assert (
            data["action"] == "opened" and data["state"] == "new" and data["severity"] == "critical"
        )
        assert data["rule_id"] == rule_id and data["event"]["actor"] == "rules"
        assert ev.get("id", "").endswith(f"-{data['event']['id']}")


def test_people_actions_are_streamed(hub: LiveHub, tokens: dict, rule_id: str) -> None:
    alert = hub.alert(rule_id, "aq-1")
    with (
        SSEReader(hub.base_url, headers=bearer(tokens["admin"])) as sse,
        httpx.Client(base_url=hub.base_url, timeout=10) as c,
    ):
        r = c.post(
            f"/api/alerts/{alert.id}/ack",
            json={"note": "on it"},
            headers={"Authorization": f"Bearer {tokens['env']}"},
        )
        assert r.status_code == 200
        data = json.loads(sse.wait_for(_is("alert", id=alert.id, action="ack"))["data"])
        assert data["state"] == "acknowledged" and data["event"]["actor"] == "alice"


def test_subscribers_are_counted(hub: LiveHub, tokens: dict) -> None:
    with (
        SSEReader(hub.base_url, headers=bearer(tokens["admin"])),
        httpx.Client(base_url=hub.base_url, timeout=10) as c,
    ):
        assert (
            c.get("/api/stats", headers=bearer(tokens["admin"])).json()["stream_subscribers"] >= 1
        )


def test_keepalive_comments_on_an_idle_stream(hub: LiveHub, tokens: dict) -> None:
    # The session hub sends keepalives every 0.5 s (15 s in production).
    with SSEReader(hub.base_url, headers=bearer(tokens["admin"])) as sse:
        assert sse.wait_for(lambda ev: ev.get("comment") == "keepalive", timeout=5.0)


def test_last_event_id_replays_what_was_missed(hub: LiveHub, tokens: dict, rule_id: str) -> None:
    mark = f"{hub.readings.max_id()}-{hub.alerts.max_event_id()}"
    ts = datetime.now(UTC).replace(microsecond=0)
    hub.readings.write([Reading("wim-1", "wim1", "axles", 6.0, "1", ts)])
    alert = hub.alert(rule_id, "wim-1", metric="axles")
    # Wait until the poller has passed both rows, so they can only reach the client by replay.
    stream = hub.app.state.stream
    assert _wait(
        lambda: (
            stream.reading_id >= hub.readings.max_id()
            and stream.event_id >= hub.alerts.max_event_id()
        )
    )

    with SSEReader(hub.base_url, headers={"Last-Event-ID": mark, **bearer(tokens["admin"])}) as sse:
        sse.wait_for(_is("reading", site="wim-1", metric="axles", value=6.0))
        sse.wait_for(_is("alert", id=alert.id, action="opened"))


def test_parse_last_event_id() -> None:
    assert parse_last_event_id("12-34") == (12, 34)
    assert parse_last_event_id(" 0-0 ") == (0, 0)
    for bad in (None, "", "12", "a-b", "1-2-3", "-1-2", "9" * 40 + "-1"):
        assert parse_last_event_id(bad) is None


class _NoStore:
    """Stands in for both stores where a test drives the hub by hand."""

    def since(self, after_id: int, limit: int = 1000) -> tuple[list[dict], int]:
        return [], after_id

    def max_id(self) -> int:
        return 0

    def events_since(self, after_id: int, limit: int = 500) -> list:
        return []

    def max_event_id(self) -> int:
        return 0

    def get(self, alert_id: int) -> None:
        raise AssertionError("not used")


def test_slow_client_is_dropped_without_blocking_others() -> None:
    async def scenario() -> None:
        hub = StreamHub(_NoStore(), _NoStore(), poll_ms=50, queue_max=2)
        fast, slow = hub.subscribe(), hub.subscribe()
        got = []
        for i in range(5):
            hub.broadcast(Message("reading", {"i": i}))
            got.append(fast.queue.get_nowait().data["i"])  # the fast client keeps up
        assert got == [0, 1, 2, 3, 4]
        assert slow.dropped and hub.subscriber_count == 1 and hub.dropped_total == 1
        assert slow.queue.get_nowait() is None  # its stream ends; the browser reconnects
        assert not fast.dropped

    asyncio.run(scenario())


def test_stream_ends_for_a_dropped_client() -> None:
    async def scenario() -> list[ServerSentEvent]:
        hub = StreamHub(_NoStore(), _NoStore(), poll_ms=50, queue_max=1)
        out: list[ServerSentEvent] = []
        gen = hub.events()
        out.append(await gen.__anext__())  # greeting; now subscribed
        hub.broadcast(Message("reading", {"i": 1}))
        hub.broadcast(Message("reading", {"i": 2}))  # queue full: dropped
        async for chunk in gen:
            out.append(chunk)
        assert hub.subscriber_count == 0
        return out

    chunks = asyncio.run(scenario())
    assert chunks[0].retry == 3000 and chunks[0].comment == "connected"  # the greeting
    assert len(chunks) == 1  # dropping empties the queue: the client replays from its last id


def test_shutdown_ends_open_streams_promptly(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), make_registry())
    token = app.state.hub.tokens.issue("admin", role="admin")
    server, thread, base_url = start_server(app)
    try:
        with SSEReader(base_url, headers=bearer(token)) as sse:
            stop_server(
                server, thread, timeout=8.0
            )  # HubServer ends streams instead of waiting on them
            assert sse.ended.wait(5.0), "stream still open after shutdown"
            assert not app.state.stream.running
    finally:
        server.should_exit = True
        thread.join(5.0)


def test_a_client_that_goes_away_is_unsubscribed_at_once(tmp_path: Path) -> None:
    """Noticed from the connection, not at the next keepalive (an hour away here)."""
    app = create_app(make_settings(tmp_path), make_registry())
    app.state.stream.keepalive_s = 3600
    token = app.state.hub.tokens.issue("admin", role="admin")
    server, thread, base_url = start_server(app)
    try:
        with (
            httpx.Client(base_url=base_url, timeout=10) as c,
            c.stream("GET", "/api/stream", headers=bearer(token)) as r,
        ):
            # Keep the line iterator: dropping it closes the connection (httpx), too early here.
            lines = r.iter_lines()
            assert next(lines) == ": connected"
            assert app.state.stream.subscriber_count == 1
        assert _wait(lambda: app.state.stream.subscriber_count == 0, timeout=5.0)
    finally:
        stop_server(server, thread)


def _seen_alerts(sse: SSEReader) -> list[dict]:
    return [json.loads(e["data"]) for e in list(sse.history) if e.get("event") == "alert"]


def test_the_stream_needs_a_token_and_a_department_sees_only_its_own(
    hub: LiveHub, tokens: dict, rule_id: str
) -> None:
    with httpx.Client(base_url=hub.base_url, timeout=10) as c:
        assert c.get("/api/stream").status_code == 401
    with (
        SSEReader(hub.base_url, headers=bearer(tokens["transport"])) as transport,
        SSEReader(hub.base_url, headers=bearer(tokens["env"])) as env,
    ):
        # Events arrive in order: an alert of the other department, had it been sent, would
        # come before the next alert of one's own.
        wim = hub.alert(rule_id, "wim-1", metric="gross_weight")
        aq = hub.alert(rule_id, "aq-1")
        wim2 = hub.alert(rule_id, "wim-1", metric="axles")
        env.wait_for(_is("alert", id=aq.id))
        transport.wait_for(_is("alert", id=wim2.id))
        env_seen, transport_seen = _seen_alerts(env), _seen_alerts(transport)
        assert aq.id in {d["id"] for d in env_seen} and {wim.id, wim2.id} <= {
            d["id"] for d in transport_seen
        }
        assert all(d["department"] == "env" for d in env_seen)
        assert all(d["department"] == "transport" for d in transport_seen)


def test_the_dashboard_session_cookie_opens_the_stream(
    hub: LiveHub, tokens: dict, rule_id: str
) -> None:
    # EventSource cannot send an Authorization header: the browser's session cookie must do.
    with httpx.Client(base_url=hub.base_url, timeout=10) as c:
        r = c.post("/api/session", headers=bearer(tokens["env"]))
        assert r.status_code == 204
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        cookie = c.cookies.get("farsight_session")
    assert cookie
    with SSEReader(hub.base_url, headers={"Cookie": f"farsight_session={cookie}"}) as sse:
        a = hub.alert(rule_id, "aq-1")
        assert json.loads(sse.wait_for(_is("alert", id=a.id))["data"])["department"] == "env"
