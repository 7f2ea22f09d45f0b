"""Security headers on every response, and no NUL character into a query.

:class:`SecurityHeaders` is plain ASGI middleware (it never buffers a body, so the live stream
flows as before). Every response gets ``X-Content-Type-Options: nosniff``, ``X-Frame-Options:
DENY`` and ``Referrer-Policy: no-referrer``; a Content-Security-Policy with
``frame-ancestors 'none'`` (a route's own policy, the dashboard's or a report's, is kept and given
``frame-ancestors`` when it lacks one; anything else, JSON included, gets ``default-src 'none'``);
API responses ``Cache-Control: no-store`` unless they set their own (evidence files are
immutable and say so); and over HTTPS ``Strict-Transport-Security``. Plain HTTP never gets HSTS:
a browser would then refuse the hub until someone set up TLS.

Behind a reverse proxy, :func:`hub.app.create_app` believes ``X-Forwarded-For`` and
``X-Forwarded-Proto`` only from the configured ``hub.trusted_proxies`` (uvicorn's proxy-headers
middleware, applied in the app so that every server and test transport sees the same client):
anyone else could otherwise pick the address their failed sign-ins are counted under, or claim
HTTPS.
"""

from __future__ import annotations

import re

from fastapi import HTTPException, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"
"""For responses that are not pages (JSON, CSV, files): load nothing, be framed nowhere."""

HSTS = "max-age=31536000"
"""One year; without includeSubDomains, which is the site's owner's call, not the hub's."""

STATIC_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)


def with_frame_ancestors(csp: str) -> str:
    """``csp`` with ``frame-ancestors 'none'`` added unless it has a frame-ancestors directive."""
    directives = [d.strip() for d in csp.split(";") if d.strip()]
    if any(d.split()[0].lower() == "frame-ancestors" for d in directives):
        return csp
    return "; ".join([*directives, "frame-ancestors 'none'"])


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in STATIC_HEADERS:
                    headers.setdefault(name, value)
                csp = headers.get("content-security-policy")
                headers["content-security-policy"] = (
                    with_frame_ancestors(csp) if csp else DEFAULT_CSP
                )
                if api:
                    headers.setdefault("cache-control", "no-store")
                if https:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""``\\u0000`` in JSON text, unless its backslash is itself escaped (then it is plain text)."""

NUL_MESSAGE = "NUL characters (U+0000) are not accepted in a path, a query or a JSON body"


async def refuse_nul(request: Request) -> None:
    """An app-wide dependency: 422 for a NUL character in the path, the query or a JSON body.

    PostgreSQL text cannot hold one, so such a value would fail in the database (a 503 that
    blames the server) instead of being refused as the client's mistake; no field of the API
    has a use for it on SQLite either.
    """
    query = request.query_params.multi_items()
    if "\x00" in request.url.path or any("\x00" in k or "\x00" in v for k, v in query):
        raise HTTPException(422, NUL_MESSAGE)
    route = request.scope.get("route")
    takes_json = getattr(route, "body_field", None) is not None  # not the evidence upload's file
    if takes_json and request.headers.get("content-type", "").startswith("application/json"):
        body = await request.body()  # cached: the route reads the same bytes
        if b"\x00" in body or _NUL_ESCAPE.search(body):
            raise HTTPException(422, NUL_MESSAGE)
