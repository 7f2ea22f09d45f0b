"""The live stream: one background poller fans new readings and alert changes out to SSE clients.

One poller for all clients keeps the database load independent of how many dashboards are open.
Each client has a bounded queue; a client too slow to keep up is dropped (its stream ends and
the browser's EventSource reconnects, resuming from ``Last-Event-ID``) rather than slowing the
others or growing memory without bound.

Event ids are ``"{reading_id}-{event_id}"``: the poller's position in the readings table and in
the alert history after that message, so a reconnecting client can be replayed what it missed.

The wire format, keepalive comments and noticing a client that went away are sse-starlette's
(:class:`~sse_starlette.EventSourceResponse`); the poller, the fan-out and the replay are ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from alerts.model import Alert, AlertEvent
from farsight.logs import kv

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
"""Seconds between keepalive comments, so proxies and browsers do not time the connection out."""

RETRY_MS = 3000
"""How soon EventSource reconnects after the stream ends (sent in the greeting)."""

REPLAY_MAX = 5000
"""Most readings (or alert events) replayed to a reconnecting client; past that it is told
to reload."""

HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
"""no-transform and X-Accel-Buffering stop proxies from buffering the stream into batches."""

_LAST_ID = re.compile(r"^(\d{1,18})-(\d{1,18})$")


class ReadingSource(Protocol):
    def since(self, after_id: int, limit: int = 1000) -> tuple[list[dict], int]: ...
    def max_id(self) -> int: ...


class AlertSource(Protocol):
    def events_since(self, after_id: int, limit: int = 500) -> list[Any]: ...
    def max_event_id(self) -> int: ...
    def get(self, alert_id: int) -> Any: ...


@dataclass(frozen=True, slots=True)
class Message:
    """One server-sent event."""

    event: str
    data: dict[str, Any]
    id: str | None = None

    def sse(self) -> ServerSentEvent:
        """The server-sent event; the data as compact JSON (no raw newlines: one ``data:`` line)."""
        data = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return ServerSentEvent(data, event=self.event, id=self.id, sep="\n")


@dataclass(eq=False)
class Subscriber:
    """One connected client: its queue, and the poller position when it joined."""

    queue: asyncio.Queue[Message | None]
    reading_id: int
    event_id: int
    dropped: bool = field(default=False)
    key: object = None
    """Whose stream it is (the hub: the token's id), for :meth:`StreamHub.count_for`."""


def parse_last_event_id(value: str | None) -> tuple[int, int] | None:
    """``"12-34"`` to ``(12, 34)``; anything else (absent, malformed) to ``None``."""
    if not value:
        return None
    m = _LAST_ID.match(value.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def alert_message(alert: Alert, event: AlertEvent, message_id: str | None) -> Message:
    """An ``alert`` message: the alert as it is now, plus the history entry that announced it."""
    data = alert.to_dict()
    data["action"] = event.action
    data["event"] = event.to_dict()
    return Message("alert", data, message_id)


class StreamHub:
    """Polls the stores every ``poll_ms`` and fans new rows out to subscribers."""

    def __init__(
        self,
        readings: ReadingSource,
        alerts: AlertSource,
        poll_ms: int = 500,
        queue_max: int = 2000,
        batch: int = 1000,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        if poll_ms <= 0 or queue_max <= 0 or batch <= 0:
            raise ValueError("poll_ms, queue_max and batch must be positive")
        self.readings = readings
        self.alerts = alerts
        self.poll_s = poll_ms / 1000.0
        self.queue_max = queue_max
        self.batch = batch
        self.keepalive_s = keepalive_s
        self.reading_id = 0
        self.event_id = 0
        self._subs: set[Subscriber] = set()
        self._per_key: Counter[object] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._closing = False
        self.dropped_total = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling from the current ends of the tables (only new rows are streamed)."""
        if self._task is not None:
            return
        self.reading_id = await asyncio.to_thread(self.readings.max_id)
        self.event_id = await asyncio.to_thread(self.alerts.max_event_id)
        self._closing = False
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="farsight-stream-poller")
        log.info(
            "stream poller started",
            extra=kv(
                reading_id=self.reading_id, event_id=self.event_id, poll_ms=int(self.poll_s * 1000)
            ),
        )

    async def stop(self) -> None:
        """End every stream and stop the poller; waits for the poller to finish its tick."""
        self.close_all()
        if self._task is None:
            return
        assert self._stop is not None
        self._stop.set()
        try:
            await asyncio.wait_for(self._task, timeout=max(5.0, self.poll_s * 4))
        except TimeoutError:
            self._task.cancel()
        self._task = None
        log.info(
            "stream poller stopped", extra=kv(reading_id=self.reading_id, event_id=self.event_id)
        )

    def close_all(self) -> None:
        """End every open stream now and refuse new ones (server shutdown)."""
        self._closing = True
        for sub in list(self._subs):
            self._drop(sub, reason="shutdown")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- subscribers --------------------------------------------------------------------------

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def count_for(self, key: object) -> int:
        """Open streams subscribed with ``key``."""
        return self._per_key[key]

    def count_where(self, match: Callable[[object], bool]) -> int:
        """Open streams whose key ``match`` accepts."""
        # A copy first: a plain-def endpoint asks from a worker thread while the event loop
        # subscribes and unsubscribes.
        return sum(n for key, n in list(self._per_key.items()) if match(key))

    def subscribe(self, key: object = None) -> Subscriber:
        """Join the fan-out; the subscriber records the position it joined at (for replay)."""
        sub = Subscriber(asyncio.Queue(self.queue_max), self.reading_id, self.event_id, key=key)
        if self._closing:
            sub.dropped = True
            sub.queue.put_nowait(None)
            return sub
        self._subs.add(sub)
        self._per_key[key] += 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subs:
            self._subs.discard(sub)
            self._per_key[sub.key] -= 1
            if self._per_key[sub.key] <= 0:
                del self._per_key[sub.key]

    def broadcast(self, msg: Message) -> None:
        """Queue ``msg`` for every subscriber; one whose queue is full is dropped, not awaited."""
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(msg)
            except asyncio.QueueFull:
                self._drop(sub, reason="slow")

    def _drop(self, sub: Subscriber, reason: str) -> None:
        self.unsubscribe(sub)
        if sub.dropped:
            return
        sub.dropped = True
        if reason == "slow":
            self.dropped_total += 1
            log.warning("stream client dropped", extra=kv(reason=reason, queue_max=self.queue_max))
        # Empty the queue so the end marker fits; the client replays from its Last-Event-ID.
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    # -- polling ------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            busy = False
            try:
                busy = await self.poll_once()
            except Exception:
                # A locked or briefly unavailable database must not kill the stream: next tick.
                log.exception(
                    "stream poll failed",
                    extra=kv(reading_id=self.reading_id, event_id=self.event_id),
                )
            if busy:
                await asyncio.sleep(0)  # a full batch: more rows are waiting, catch up at once
                continue
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_s)
            except TimeoutError:
                pass

    async def poll_once(self) -> bool:
        """Read and broadcast what is new; True when a batch was full (more may be waiting)."""
        rows, new_rid = await asyncio.to_thread(self.readings.since, self.reading_id, self.batch)
        pairs = await asyncio.to_thread(self._events_with_alerts, self.event_id)
        # No await from here on: positions move and messages go out in one step, so a client
        # subscribing in between gets every later message exactly once (see ``subscribe``).
        self.reading_id = new_rid
        for i, row in enumerate(rows):
            # Rows carry no id, so only the last of a batch is marked; a client resuming from
            # the previous mark may see a few readings twice, never miss one.
            mid = f"{new_rid}-{self.event_id}" if i == len(rows) - 1 else None
            self.broadcast(Message("reading", row, mid))
        for alert, event in pairs:
            self.event_id = event.id
            self.broadcast(alert_message(alert, event, f"{self.reading_id}-{event.id}"))
        return len(rows) >= self.batch or len(pairs) >= self.batch

    def _events_with_alerts(self, after_id: int, limit: int | None = None) -> list[tuple[Any, Any]]:
        """History entries after ``after_id``, each with its alert's current state (one read
        per alert)."""
        events = self.alerts.events_since(after_id, limit or self.batch)
        cache: dict[int, Any] = {}
        out = []
        for ev in events:
            if ev.alert_id not in cache:
                cache[ev.alert_id] = self.alerts.get(ev.alert_id)
            out.append((cache[ev.alert_id], ev))
        return out

    # -- replay -------------------------------------------------------------------------------

    def _replay(self, since: tuple[int, int], sub: Subscriber) -> list[Message] | None:
        """What a client resuming at ``since`` missed before it joined; None when too much."""
        rid, eid = since
        msgs: list[Message] = []
        if rid < sub.reading_id:
            gap = sub.reading_id - rid
            if gap > REPLAY_MAX:
                return None
            # Row ids are unique integers, so at most ``gap`` rows lie in (rid, join]: this limit
            # returns all of them, plus at worst a few later rows the client also gets live.
            rows, _ = self.readings.since(rid, gap)
            for i, row in enumerate(rows):
                mid = f"{sub.reading_id}-{eid}" if i == len(rows) - 1 else None
                msgs.append(Message("reading", row, mid))
        if eid < sub.event_id:
            gap = sub.event_id - eid
            if gap > REPLAY_MAX:
                return None
            for alert, ev in self._events_with_alerts(eid, gap):
                if ev.id > sub.event_id:
                    break
                msgs.append(alert_message(alert, ev, f"{sub.reading_id}-{ev.id}"))
        return msgs

    def response(
        self,
        last_event_id: str | None = None,
        accept: Callable[[Message], bool] | None = None,
        key: object = None,
    ) -> EventSourceResponse:
        """One client's stream as an HTTP response: :meth:`events`, with keepalive comments every
        :attr:`keepalive_s` seconds.

        The subscription ends when the response does, even one whose body was never iterated
        (a client gone before it started): the per-key counts must not leak.
        """
        sub = self.subscribe(key)
        return _StreamResponse(
            self._events(sub, last_event_id, accept),
            on_close=lambda: self.unsubscribe(sub),
            headers=HEADERS,
            ping=self.keepalive_s,
            ping_message_factory=_keepalive,
            sep="\n",
        )

    def events(
        self,
        last_event_id: str | None = None,
        accept: Callable[[Message], bool] | None = None,
        key: object = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """One client's SSE stream: a greeting, any replay, then live messages.

        ``accept`` keeps a message from this client when it returns False (department scoping).
        The client joins the fan-out here, when the call is made, not when the stream is first
        iterated: the response's headers go out before its body is iterated, and a client that
        has seen them may already expect every later event.
        """
        return self._events(self.subscribe(key), last_event_id, accept)

    async def _events(
        self, sub: Subscriber, last_event_id: str | None, accept: Callable[[Message], bool] | None
    ) -> AsyncIterator[ServerSentEvent]:
        try:
            # ``retry`` tells EventSource how soon to reconnect after the stream ends.
            yield ServerSentEvent(comment="connected", retry=RETRY_MS, sep="\n")
            since = parse_last_event_id(last_event_id)
            if since is not None and not sub.dropped:
                replay = await asyncio.to_thread(self._replay, since, sub)
                if replay is None:
                    yield Message("reset", {"reason": "too much missed; reload"}).sse()
                else:
                    for msg in replay:
                        if accept is None or accept(msg):
                            yield msg.sse()
            while True:
                live = await sub.queue.get()
                if live is None:  # dropped (slow client) or server shutting down
                    return
                if accept is None or accept(live):
                    yield live.sse()
        finally:
            self.unsubscribe(sub)


class _StreamResponse(EventSourceResponse):
    """An SSE response that calls ``on_close`` when it ends, however it ends."""

    def __init__(self, content: Any, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _keepalive() -> ServerSentEvent:
    return ServerSentEvent(comment="keepalive", sep="\n")
