"""The hub against an attacker with a network connection: failed sign-ins locked out per address
and per user, streams capped per token, tokens that expire, logout that ends the session,
security headers on every response, and HTTPS served by the hub itself.

Each test runs its own hub (real uvicorn on a free port) with the limits it needs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from farsight.clock import ManualClock
from hub.app import HubServer, bound_port, create_app
from hub.auth import TokenStore
from hub.deps import SESSION_COOKIE
from hub.ratelimit import FailureLimiter
from tests.conftest import wait_until
from tests.hub.conftest import (
    SSEReader,
    bearer,
    make_registry,
    make_settings,
    start_server,
    stop_server,
)


@dataclass
class Hub:
    base_url: str
    tokens: TokenStore
    server: HubServer


@contextmanager
def running_hub(data_dir: Path, tokens: TokenStore | None = None, **hub: Any) -> Iterator[Hub]:
    settings = make_settings(data_dir, **hub)
    registry = make_registry()
    own = tokens is None
    store = tokens or TokenStore(settings.database, registry.departments)
    app = create_app(settings, registry, tokens=store)
    app.state.stream.keepalive_s = 0.5
    server, thread, base_url = start_server(app)
    if settings.hub.tls:
        base_url = f"https://127.0.0.1:{bound_port(server)}"
    try:
        yield Hub(base_url, store, server)
    finally:
        stop_server(server, thread)
        if own:
            store.close()


def _me(c: httpx.Client, token: str | None = None, **headers: str) -> httpx.Response:
    return c.get("/api/me", headers={**(bearer(token) if token else {}), **headers})


# -- failed sign-ins ---------------------------------------------------------------------------


def test_wrong_tokens_lock_the_address_out_with_retry_after(tmp_path: Path) -> None:
    with (
        running_hub(tmp_path, auth_failures=5, auth_window_s=60, auth_lockout_s=30) as hub,
        httpx.Client(base_url=hub.base_url, timeout=10) as c,
    ):
        # The limiter's clock is the test's: the lockout lasts however long 500 requests take
        # on a busy machine, and ends when the test moves the clock, not after a sleep.
        now = [1000.0]
        app = hub.server.config.app
        ctx = app.state.hub
        app.state.hub = replace(ctx, limiter=FailureLimiter(ctx.limiter.policy, lambda: now[0]))
        good = hub.tokens.issue("alice", "env", role="viewer")
        # 500 wrong tokens as fast as one client sends them: 4 plain refusals, then 429s.
        started = time.monotonic()
        codes = [_me(c, f"fs_guess{i}").status_code for i in range(500)]
        elapsed = time.monotonic() - started
        assert codes[:4] == [401] * 4 and set(codes[4:]) == {429}, codes[:8]
        now[0] += 10
        r = _me(c, "fs_guess-more")
        assert r.status_code == 429 and int(r.headers["retry-after"]) == 20
        # Locked means locked: a valid token from this address is refused too, while it lasts.
        assert _me(c, good).status_code == 429
        # Missing credentials are no failure and tell nothing either way.
        assert _me(c).status_code == 401
        now[0] += 20
        assert _me(c, good).status_code == 200  # the lockout is over
        refused, limited = codes.count(401), codes.count(429)
        print(f"500 wrong tokens in {elapsed:.2f} s: {refused} x 401, {limited} x 429")


def test_addresses_are_told_apart_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    with (
        running_hub(
            trusted, auth_failures=3, auth_lockout_s=600, trusted_proxies=["127.0.0.1"]
        ) as hub,
        httpx.Client(base_url=hub.base_url, timeout=10) as c,
    ):
        good = hub.tokens.issue("alice", "env", role="viewer")
        for _ in range(3):
            _me(c, "fs_wrong", **{"X-Forwarded-For": "203.0.113.7"})
        assert _me(c, good, **{"X-Forwarded-For": "203.0.113.7"}).status_code == 429
        assert _me(c, good, **{"X-Forwarded-For": "198.51.100.2"}).status_code == 200
    untrusted = tmp_path / "untrusted"
    untrusted.mkdir()
    with (
        running_hub(untrusted, auth_failures=3, auth_lockout_s=600) as hub,
        httpx.Client(base_url=hub.base_url, timeout=10) as c,
    ):
        good = hub.tokens.issue("alice", "env", role="viewer")
        for i in range(3):
            _me(c, "fs_wrong", **{"X-Forwarded-For": f"203.0.113.{i}"})
        # Without a trusted proxy the header is the client's say-so: the peer is locked out.
        assert _me(c, good, **{"X-Forwarded-For": "198.51.100.2"}).status_code == 429


def test_a_user_whose_old_tokens_keep_failing_is_locked_out_from_every_address(
    tmp_path: Path,
) -> None:
    with (
        running_hub(
            tmp_path, auth_failures=3, auth_lockout_s=600, trusted_proxies=["127.0.0.1"]
        ) as hub,
        httpx.Client(base_url=hub.base_url, timeout=10) as c,
    ):
        old = hub.tokens.issue("alice", "env", role="viewer")
        current = hub.tokens.issue("alice", "env", role="viewer")
        other = hub.tokens.issue("bob", "env", role="viewer")
        hub.tokens.revoke(hub.tokens.verify(old).token_id)
        # A leaked, revoked token tried from three addresses: each address failed once only.
        codes = [_me(c, old, **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)]
        assert codes == [401, 401, 429]
        r = _me(c, current, **{"X-Forwarded-For": "198.51.100.9"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert _me(c, other, **{"X-Forwarded-For": "198.51.100.9"}).status_code == 200


# -- tokens and sessions -----------------------------------------------------------------------


def test_an_expired_token_is_refused_and_a_revoked_one_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    clock = ManualClock(datetime.now(UTC))
    tokens = TokenStore(
        settings.database, ("env", "transport"), clock=clock, ttl=timedelta(hours=8)
    )
    try:
        with (
            running_hub(tmp_path, tokens=tokens) as hub,
            httpx.Client(base_url=hub.base_url, timeout=10) as c,
        ):
            token = tokens.issue("alice", "env", role="officer")
            me = _me(c, token).json()
            assert me["role"] == "officer" and me["expires"].startswith(
                (clock.now() + timedelta(hours=8)).isoformat()[:16]
            )
            clock.advance(timedelta(hours=8))
            r = _me(c, token)
            assert r.status_code == 401 and r.json() == {"detail": "token expired"}
            fresh = tokens.issue("alice", "env", role="officer")
            assert _me(c, fresh).status_code == 200
            tokens.revoke(tokens.verify(fresh).token_id)
            r = _me(c, fresh)
            assert r.status_code == 401 and r.json() == {"detail": "token revoked"}
    finally:
        tokens.close()


def test_logout_ends_the_session_at_once_and_keeps_the_token(tmp_path: Path) -> None:
    with running_hub(tmp_path) as hub, httpx.Client(base_url=hub.base_url, timeout=10) as c:
        token = hub.tokens.issue("alice", "env", role="viewer")
        r = c.post("/api/session", headers=bearer(token))
        assert r.status_code == 204
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        session = c.cookies[SESSION_COOKIE]
        assert session != token  # the cookie holds a session of its own, not the API token
        assert _me(c).json()["user"] == "alice"  # by the cookie
        assert c.delete("/api/session").status_code == 204
        assert SESSION_COOKIE not in c.cookies
        # The old cookie, kept by someone who copied it, no longer reads anything.
        with httpx.Client(
            base_url=hub.base_url, timeout=10, cookies={SESSION_COOKIE: session}
        ) as copied:
            r = copied.get("/api/me")
            assert r.status_code == 401 and r.json() == {"detail": "session ended"}
        assert _me(c, token).status_code == 200
        # A session is no bearer token.
        assert _me(c, session).status_code == 401


def test_revoking_a_token_ends_its_sessions(tmp_path: Path) -> None:
    with running_hub(tmp_path) as hub, httpx.Client(base_url=hub.base_url, timeout=10) as c:
        token = hub.tokens.issue("alice", "env", role="viewer")
        assert c.post("/api/session", headers=bearer(token)).status_code == 204
        assert _me(c).status_code == 200
        hub.tokens.revoke(hub.tokens.verify(token).token_id)
        assert _me(c).status_code == 401


# -- live streams ------------------------------------------------------------------------------


def test_live_streams_are_capped_per_token(tmp_path: Path) -> None:
    with running_hub(tmp_path, streams_per_token=2) as hub, ExitStack() as open_streams:
        token = hub.tokens.issue("alice", "env", role="viewer")
        other = hub.tokens.issue("bob", "env", role="viewer")
        first = open_streams.enter_context(SSEReader(hub.base_url, bearer(token)))
        open_streams.enter_context(SSEReader(hub.base_url, bearer(token)))
        with httpx.Client(base_url=hub.base_url, timeout=10) as c:
            # The token's browser session counts against the token.
            assert c.post("/api/session", headers=bearer(token)).status_code == 204
            with c.stream("GET", "/api/stream") as r:
                assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            with c.stream("GET", "/api/stream", headers=bearer(other)) as r:
                assert r.status_code == 200
            first.__exit__(None, None, None)  # one closes: a new one may open

            def reopened() -> bool:
                with c.stream("GET", "/api/stream", headers=bearer(token)) as r:
                    return r.status_code == 200

            wait_until(reopened, timeout=10, what="a stream slot to free up")


# -- headers -----------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(tmp_path: Path) -> None:
    with running_hub(tmp_path) as hub, httpx.Client(base_url=hub.base_url, timeout=10) as c:
        token = hub.tokens.issue("alice", "env", role="viewer")
        responses = {
            "json": c.get("/api/alerts", headers=bearer(token)),
            "401": c.get("/api/alerts"),
            "404": c.get("/api/alerts/999999", headers=bearer(token)),
            "422": c.get("/api/alerts/0", headers=bearer(token)),
            "health": c.get("/healthz"),
            "page": c.get("/"),
            "docs": c.get("/docs"),
            "static": c.get("/static/app.js"),
            "metrics": c.get("/metrics"),
        }
        for name, r in responses.items():
            h = r.headers
            assert h["x-content-type-options"] == "nosniff", name
            assert h["x-frame-options"] == "DENY", name
            assert h["referrer-policy"] == "no-referrer", name
            assert "frame-ancestors 'none'" in h["content-security-policy"], name
            assert "strict-transport-security" not in h, name  # plain HTTP: never HSTS
        assert responses["422"].status_code == 422 and responses["404"].status_code == 404
        assert responses["page"].headers["content-security-policy"].startswith("default-src 'self'")
        assert responses["json"].headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        assert responses["json"].headers["cache-control"] == "no-store"


# -- TLS ---------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "farsight test hub")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "hub.crt", folder / "hub.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_the_hub_serves_https_itself(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with running_hub(tmp_path, tls_certfile=str(cert), tls_keyfile=str(key)) as hub:
        assert hub.base_url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=hub.base_url, timeout=10, verify=trust) as c:
            r = c.get("/healthz")
            assert r.status_code == 200 and r.json() == {"status": "ok", "db": "ok"}
            assert r.headers["strict-transport-security"] == "max-age=31536000"
            token = hub.tokens.issue("alice", "env", role="viewer")
            r = c.post("/api/session", headers=bearer(token))
            assert r.status_code == 204 and "Secure" in r.headers["set-cookie"]
        # Plain HTTP to the TLS port is not served.
        with (
            pytest.raises(httpx.HTTPError),
            httpx.Client(base_url=hub.base_url.replace("https", "http"), timeout=5) as plain,
        ):
            plain.get("/healthz").raise_for_status()


def test_https_at_a_trusted_proxy_makes_the_cookie_secure(tmp_path: Path) -> None:
    with (
        running_hub(tmp_path, trusted_proxies=["127.0.0.0/8"]) as hub,
        httpx.Client(base_url=hub.base_url, timeout=10) as c,
    ):
        token = hub.tokens.issue("alice", "env", role="viewer")
        r = c.post("/api/session", headers={**bearer(token), "X-Forwarded-Proto": "https"})
        assert "Secure" in r.headers["set-cookie"]
        assert r.headers["strict-transport-security"] == "max-age=31536000"
    other = tmp_path / "untrusted"
    other.mkdir()
    with running_hub(other) as hub, httpx.Client(base_url=hub.base_url, timeout=10) as c:
        token = hub.tokens.issue("alice", "env", role="viewer")
        r = c.post("/api/session", headers={**bearer(token), "X-Forwarded-Proto": "https"})
        assert "Secure" not in r.headers["set-cookie"]
        assert "strict-transport-security" not in r.headers


def test_settings_take_both_tls_files_or_neither() -> None:
    from farsight.settings import Settings

    with pytest.raises(ValueError, match="tls_certfile and tls_keyfile"):
        Settings.model_validate({"hub": {"tls_certfile": "hub.crt"}})
    with pytest.raises(ValueError, match="not an IP address"):
        Settings.model_validate({"hub": {"trusted_proxies": ["proxy.example"]}})


# -- NUL characters ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_nul_characters_are_refused_as_the_clients_mistake(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    extra: dict[str, Any] = {}
    if backend == "postgres":
        extra["database_url"] = request.getfixturevalue("postgres_server").create_database("nul")
    settings = make_settings(tmp_path).model_copy(update=extra)
    registry = make_registry()
    app = create_app(settings, registry)
    server, thread, base_url = start_server(app)
    try:
        admin = bearer(app.state.hub.tokens.issue("root", role="admin"))
        with httpx.Client(base_url=base_url, timeout=10, headers=admin) as c:
            answers = [
                c.get("/api/alerts", params={"q": "a\x00b"}),
                c.get("/api/alerts", params={"site": "\x00"}),
                c.get("/api/readings", params={"site": "aq-1", "metric": "p\x00"}),
                c.get("/api/dead-letters", params={"reason": "\x00"}),
                c.get("/api/sites/%00"),
                c.post("/api/alerts/1/comment", json={"note": "x\x00y"}),
                c.post(
                    "/api/silences",
                    json={"matchers": {"site": "a\x00"}, "ends_at": "2030-01-01T00:00:00Z"}
                    | {"reason": "r"},
                ),
            ]
            assert [r.status_code for r in answers] == [422] * len(answers)
            assert all("NUL" in r.json()["detail"] for r in answers)
            # A backslash and "u0000" as text is no NUL: taken as written.
            r = c.get("/api/alerts", params={"q": "\\u0000"})
            assert r.status_code == 200
    finally:
        stop_server(server, thread)


def test_the_swagger_ui_page_may_run_its_own_inline_script_and_no_other() -> None:
    import base64
    import hashlib
    import re

    from fastapi.openapi.docs import get_swagger_ui_html

    from hub.docs import inline_script_csp

    html = bytes(
        get_swagger_ui_html(
            openapi_url="/openapi.json", title="t", swagger_js_url="/docs/a.js"
        ).body
    ).decode()
    (script,) = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = inline_script_csp(html)
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert f"'sha256-{digest}'" in script_src and "unsafe-inline" not in script_src
    assert "frame-ancestors 'none'" in csp
