"""A real HTTP receiver standing in for the provincial hub, with scripted misbehaviour.

``ThreadingHTTPServer`` on a free loopback port. It records every raw request and keeps one
copy per ``Idempotency-Key`` (dedup), as a well-behaved receiver would. Behaviour is chosen
per request by ``script`` (a callable) or by the helpers: fail with 500/503 for the first N
requests, hang past the client's timeout (bounded: released at close), accept then answer 500
(the sender retries and the same key arrives twice), refuse with a 4xx, or check each record's
quality as the provincial hub does (:func:`quality_check`) and reject the ones that fail with 422
and their errors (``alerts/schemas/upstream-rejection.schema.json``), keeping nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

OK = ("ok",)


def fail(status: int = 503, retry_after: str | None = None) -> tuple:
    """Answer ``status`` without keeping the event."""
    return ("fail", status, retry_after)


def hang(seconds: float = 5.0) -> tuple:
    """Say nothing for ``seconds`` (or until the receiver closes), then answer 503; keeps
    nothing."""
    return ("hang", seconds)


def reject(errors: list[dict[str, str]]) -> tuple:
    """Refuse the record for its content: 422 with ``{"errors": errors}``; keeps nothing."""
    return ("reject", errors)


PM25_MAX = 1000.0
"""The hub's plausibility rule: a PM2.5 value above this (ug/m3) is a broken meter, not air."""


def quality_errors(payload: Any) -> list[dict[str, str]]:
    """The provincial hub's quality checks of one record, as its receiver would run them: the
    operator's credit code is required (a missing field), and a PM2.5 value must be plausible
    (a rule)."""
    alert = payload.get("alert") if isinstance(payload, dict) else None
    if not isinstance(alert, dict):
        return []  # not an alert event (an anchor): no quality rule applies
    errors = []
    if not alert.get("entity_credit_code"):
        errors.append(
            {
                "field": "/alert/entity_credit_code",
                "message": "统一社会信用代码 is required",
                "code": "entity_credit_code.required",
            }
        )
    value = alert.get("value")
    if alert.get("metric") == "pm25" and isinstance(value, (int, float)) and value > PM25_MAX:
        errors.append(
            {
                "field": "/alert/value",
                "message": f"PM2.5 {value} exceeds the plausible {PM25_MAX:g} ug/m3",
                "code": "value.implausible",
            }
        )
    return errors


def quality_check(req: RawRequest) -> tuple:
    """A script: reject records that fail :func:`quality_errors`, accept the others."""
    errors = quality_errors(req.payload)
    return reject(errors) if errors else OK


ACCEPT_THEN_500 = ("accept_then_500",)
"""Keep the event, then answer 500 as if the answer were lost: the sender will send it again."""


@dataclass
class RawRequest:
    """One request as received."""

    n: int
    key: str | None
    headers: dict[str, str]
    body: bytes
    payload: Any
    behaviour: str
    at: float = field(default_factory=time.monotonic)


Script = Callable[[RawRequest], tuple]


class Receiver:
    """Use as a context manager; ``url`` is where to POST."""

    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or (lambda req: OK)
        self.lock = threading.Lock()
        self.raw: list[RawRequest] = []
        self.accepted: dict[str, Any] = {}
        """Payload per key, in the order keys were first kept (the dedup store)."""
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the
            # client's delayed ACK, 40 ms per answer on Linux.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="test-receiver",
            daemon=True,
        )
        self._thread.start()

    # -- scripting helpers ---------------------------------------------------------------------

    def fail_first(self, n: int, status: int = 503) -> None:
        """The first ``n`` requests (from now, counting all keys) fail with ``status``."""
        start = len(self.raw)
        self.script = lambda req: fail(status) if req.n < start + n else OK

    def fail_all(self, status: int = 503) -> None:
        self.script = lambda req: fail(status)

    def recover(self) -> None:
        self.script = lambda req: OK

    # -- views -----------------------------------------------------------------------------------

    def raw_keys(self) -> list[str | None]:
        with self.lock:
            return [r.key for r in self.raw]

    def keys(self) -> list[str]:
        """Kept keys, in first-kept order (after dedup)."""
        with self.lock:
            return list(self.accepted)

    def payloads(self) -> list[Any]:
        with self.lock:
            return list(self.accepted.values())

    # -- serving -----------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        key = h.headers.get("Idempotency-Key")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
        with self.lock:
            req = RawRequest(
                n=len(self.raw),
                key=key,
                headers={k: v for k, v in h.headers.items()},
                body=body,
                payload=payload,
                behaviour="",
            )
            self.raw.append(req)
            duplicate = key in self.accepted
        # A key already kept is answered "have it" whatever the script says: the dedup a
        # receiver does before any other work.
        action = ("dup",) if duplicate else self.script(req)
        req.behaviour = action[0]
        if action[0] == "hang":
            self._release.wait(action[1])
            self._reply(h, 503, {"error": "late"})
            return
        if action[0] == "fail":
            headers = {"Retry-After": action[2]} if action[2] is not None else {}
            self._reply(h, action[1], {"error": f"scripted {action[1]}"}, headers)
            return
        if key is None or payload is None:
            self._reply(h, 400, {"error": "Idempotency-Key and a JSON body are required"})
            return
        if action[0] == "dup":
            self._reply(h, 200, {"status": "duplicate"})
            return
        if action[0] == "reject":
            self._reply(h, 422, {"errors": action[1]})
            return
        with self.lock:
            self.accepted.setdefault(key, payload)
        if action[0] == "accept_then_500":
            self._reply(h, 500, {"error": "stored, but the answer failed"})
            return
        self._reply(h, 200, {"status": "stored"})

    @staticmethod
    def _reply(
        h: BaseHTTPRequestHandler, status: int, doc: dict, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(doc).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout): nothing to answer to

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
