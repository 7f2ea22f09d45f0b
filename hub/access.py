"""Who may call what: the role each route needs, in one table, and the dependency that checks it.

Every route of the hub takes a :class:`Need` (``Depends(needs(Role.OFFICER))``) naming the role
it needs, or is listed here as public. :data:`ROUTES` says the same for every method and path,
and :func:`check_routes` holds the two equal when the app is built: a route added without a
rule, or with a dependency that says otherwise than the table, stops the hub from starting (and
the route table test from passing).

What a rule says:

- ``role``: the least role that may call the route (roles include the ones below them); ``None``
  for a public route.
- ``cookie``: the browser's session cookie authenticates it (reads only: a forged cross-site
  request can never change state with a cookie); otherwise only ``Authorization: Bearer``.
- ``province_wide``: only a token without a department (the operations views).
- ``foreign``: what a token of another department gets for a record of this department:
  ``filtered`` (lists show only its own), ``not_found`` (the same 404 as a record that does not
  exist, so nothing tells that it exists or whose it is), ``forbidden`` (403: the route is not
  for department tokens at all).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from farsight.logs import kv
from hub.auth import Principal, Role, TokenRefused
from hub.deps import SESSION_COOKIE, WWW_AUTH, bearer_scheme, context

log = logging.getLogger("hub.app")


class Foreign(StrEnum):
    """What a token of another department gets (see the module docstring)."""

    FILTERED = "filtered"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may call one route (see the module docstring)."""

    role: Role | None
    cookie: bool = False
    province_wide: bool = False
    foreign: Foreign = Foreign.FILTERED

    @property
    def public(self) -> bool:
        return self.role is None

    def describe(self) -> str:
        if self.role is None:
            return "public"
        how = "bearer or session cookie" if self.cookie else "bearer"
        where = ", province-wide token" if self.province_wide else ""
        return f"{self.role.value} ({how}{where})"


PUBLIC = Rule(None, foreign=Foreign.PUBLIC)


def _read(role: Role = Role.VIEWER, foreign: Foreign = Foreign.FILTERED) -> Rule:
    return Rule(role, cookie=True, foreign=foreign)


def _change(role: Role, foreign: Foreign = Foreign.NOT_FOUND) -> Rule:
    return Rule(role, cookie=False, foreign=foreign)


ROUTES: Mapping[tuple[str, str], Rule] = {
    # Liveness for load balancers, and Prometheus: aggregate counts, no department's records.
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    # The dashboard's files and the API description: no data.
    ("GET", "/"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    # Reading: any role, each within its department.
    ("GET", "/api/me"): _read(),
    ("GET", "/api/sites"): _read(),
    ("GET", "/api/sites/{site_id}"): _read(foreign=Foreign.NOT_FOUND),
    ("GET", "/api/readings"): _read(foreign=Foreign.NOT_FOUND),
    ("GET", "/api/map/layers"): _read(),
    ("GET", "/api/alerts"): _read(),
    ("GET", "/api/alerts/{alert_id}"): _read(foreign=Foreign.NOT_FOUND),
    ("GET", "/api/alerts/{alert_id}/timeline"): _read(foreign=Foreign.NOT_FOUND),
    ("GET", "/api/evidence/{sha}"): _read(foreign=Foreign.NOT_FOUND),
    ("GET", "/api/stats"): _read(),
    ("GET", "/api/stream"): _read(),
    ("GET", "/api/silences"): _read(),
    ("GET", "/api/handling-stats"): _read(),
    ("GET", "/api/joint-inspections"): _read(),
    ("GET", "/api/upstream/rejections"): _read(),
    # Data quality: figures, the dashboard's summary and the monthly report, each department
    # its own sites.
    ("GET", "/api/quality"): _read(),
    ("GET", "/api/quality/summary"): _read(),
    ("GET", "/api/reports/quality"): _read(),
    # Sessions: started from a bearer token, ended with the cookie or a token.
    ("POST", "/api/session"): _change(Role.VIEWER, Foreign.PUBLIC),
    ("DELETE", "/api/session"): _read(foreign=Foreign.PUBLIC),
    # Handling alerts: officers.
    ("POST", "/api/alerts/{alert_id}/ack"): _change(Role.OFFICER),
    ("POST", "/api/alerts/{alert_id}/dispatch"): _change(Role.OFFICER),
    ("POST", "/api/alerts/{alert_id}/verify"): _change(Role.OFFICER),
    ("POST", "/api/alerts/{alert_id}/comment"): _change(Role.OFFICER),
    ("POST", "/api/alerts/{alert_id}/close"): _change(Role.OFFICER),
    ("POST", "/api/evidence"): _change(Role.OFFICER, Foreign.PUBLIC),
    # Supervision: silences, reopening, exports, joint visits.
    ("POST", "/api/alerts/{alert_id}/reopen"): _change(Role.SUPERVISOR),
    ("POST", "/api/silences"): _change(Role.SUPERVISOR, Foreign.FORBIDDEN),
    # A silence is listed by department; another department's is refused, not hidden.
    ("DELETE", "/api/silences/{silence_id}"): _change(Role.SUPERVISOR, Foreign.FORBIDDEN),
    ("POST", "/api/joint-inspections/{entity_id}/dispatch"): _change(Role.SUPERVISOR),
    ("GET", "/api/alerts/export.csv"): _read(Role.SUPERVISOR),
    ("GET", "/api/reports/risk"): _read(Role.SUPERVISOR),
    # Correcting a record the provincial hub rejected: the correction is audited.
    ("POST", "/api/upstream/rejections/{rejection_id}/correct"): _change(Role.SUPERVISOR),
    # Operations: dead letters hold any department's payloads.
    ("GET", "/api/dead-letters"): Rule(
        Role.ADMIN, cookie=True, province_wide=True, foreign=Foreign.FORBIDDEN
    ),
}
"""Every route of the hub: (method, path template) -> who may call it."""

PUBLIC_MOUNTS = ("/static", "/docs/assets")
"""Mounted file trees (the dashboard's scripts and styles, Swagger UI's): public, no data."""


def client_address(request: Request) -> str:
    """The caller's address: the peer, or what a trusted proxy says (``hub.trusted_proxies``:
    the proxy-headers middleware has already put it in the request)."""
    return request.client.host if request.client else "unknown"


def _too_many(seconds: int) -> HTTPException:
    return HTTPException(
        429,
        f"too many failed sign-ins; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


class Need:
    """The FastAPI dependency of a route that needs ``role``: the request's principal, or
    401 (no or a refused credential), 429 (locked out after failures), 403 (role too low, or a
    department token on a province-wide route)."""

    def __init__(self, role: Role, *, cookie: bool = False, province_wide: bool = False) -> None:
        self.rule = Rule(role, cookie=cookie, province_wide=province_wide)

    def __repr__(self) -> str:
        return f"Need({self.rule.describe()})"

    def __call__(
        self,
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        session: Annotated[
            str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)
        ] = None,
    ) -> Principal:
        rule = self.rule
        assert rule.role is not None
        if creds is not None and creds.credentials:
            token, is_session = creds.credentials, False
        elif rule.cookie and session:
            token, is_session = session, True
        else:
            raise HTTPException(
                401,
                "reading needs a token: Authorization: Bearer <token>, or a session from POST"
                " /api/session"
                if rule.cookie
                else "missing bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": WWW_AUTH},
            )
        ctx = context(request)
        address = client_address(request)
        locked = ctx.limiter.retry_after(("addr", address))
        if locked is not None:
            raise _too_many(locked)
        try:
            principal = ctx.tokens.verify(token, session=is_session)
        except TokenRefused as exc:
            locked = ctx.limiter.fail(("addr", address))
            if exc.user is not None:
                locked = ctx.limiter.fail(("user", exc.user)) or locked
            log.warning(
                "auth refused",
                extra=kv(
                    reason=str(exc), address=address, user=exc.user or "-", locked=locked or 0
                ),
            )
            if locked is not None:
                raise _too_many(locked) from None
            raise HTTPException(
                401, str(exc), headers={"WWW-Authenticate": f'{WWW_AUTH}, error="invalid_token"'}
            ) from None
        locked = ctx.limiter.retry_after(("user", principal.user))
        if locked is not None:
            raise _too_many(locked)
        if not principal.has(rule.role):
            raise HTTPException(
                403,
                f"this needs the role {rule.role.value} or higher; the token of"
                f" {principal.user!r} is a {principal.role.value}",
            )
        if rule.province_wide and principal.department is not None:
            raise HTTPException(
                403, "this view needs a province-wide token (issued without a department)"
            )
        return principal


@functools.cache
def needs(role: Role, *, cookie: bool = False, province_wide: bool = False) -> Need:
    """The dependency for ``role`` (one instance per combination, so FastAPI resolves it once
    per request)."""
    return Need(role, cookie=cookie, province_wide=province_wide)


# -- the table and the routes agree --------------------------------------------------------------


def _needs_of(dependant: Dependant) -> list[Need]:
    found = []
    for dep in dependant.dependencies:
        if isinstance(dep.call, Need):
            found.append(dep.call)
        found += _needs_of(dep)
    return found


def route_rules(routers: Iterable[APIRouter]) -> dict[tuple[str, str], Rule | None]:
    """(method, path) -> the rule its :class:`Need` says, ``None`` for a route without one;
    a route with two different needs is an error."""
    out: dict[tuple[str, str], Rule | None] = {}
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            found = {n.rule for n in _needs_of(route.dependant)}
            if len(found) > 1:
                raise RuntimeError(f"{route.path} has several role dependencies: {found}")
            rule = next(iter(found), None)
            for method in route.methods or ():
                if method != "HEAD":
                    out[(method, route.path)] = rule
    return out


UNPROCESSABLE: dict[str, Any] = {
    "description": "A parameter or the body is invalid: `detail` names what and why.",
    "content": {
        "application/json": {
            "schema": {
                "title": "Unprocessable",
                "type": "object",
                "required": ["detail"],
                "properties": {
                    "detail": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "object"}},
                        ]
                    }
                },
            }
        }
    },
}


def declare_responses(routers: Iterable[APIRouter]) -> None:
    """Add to every route's OpenAPI description the answers its rule and its parameters can
    give (401 and 429 for a credential, 403 for a role or department, 404 for another
    department's record, 400 for a body that is not JSON), keeping any description a route
    gives itself. Call it before the description is first built."""
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            needs_ = _needs_of(route.dependant)
            rule = needs_[0].rule if needs_ else None
            table = ROUTES.get((next(iter(route.methods or {"GET"})), route.path))
            declared: dict[int | str, dict[str, Any]] = {}
            if route.body_field is not None:
                declared[400] = {"description": "The body is not well-formed JSON."}
            if (
                route.body_field is not None
                or route.dependant.query_params
                or (route.dependant.path_params)
            ):
                # FastAPI's own 422 says `detail` is a list of errors; the hub's checks of a
                # value (a time, a department, a cursor) answer with one message instead.
                declared[422] = UNPROCESSABLE
            if rule is not None and rule.role is not None:
                declared[401] = {
                    "description": "Missing, unknown, expired or revoked token"
                    + (" or session." if rule.cookie else ".")
                }
                queries = {p.name for p in route.dependant.query_params}
                if rule.role is not Role.VIEWER or rule.province_wide or "department" in queries:
                    declared[403] = {
                        "description": f"Needs {rule.describe()}; or another department than"
                        " the token's."
                    }
                declared[429] = {
                    "description": "Too many failed sign-ins from this address or for this user"
                    " (see Retry-After)."
                }
            if table is not None and table.foreign is Foreign.NOT_FOUND:
                declared[404] = {
                    "description": "No such record, or one of another department (the same answer)."
                }
            for status, response in declared.items():
                if status not in route.responses and str(status) not in route.responses:
                    route.responses[status] = response


def check_routes(
    routers: Iterable[APIRouter], table: Mapping[tuple[str, str], Any] = ROUTES
) -> None:
    """Raise RuntimeError naming every route whose dependency and :data:`ROUTES` disagree, or
    that has no rule."""
    problems = []
    for key, rule in sorted(route_rules(routers).items()):
        want = table.get(key)
        if want is None:
            problems.append(f"{key[0]} {key[1]}: no rule in hub.access.ROUTES")
            continue
        if rule is None and not want.public:
            problems.append(
                f"{key[0]} {key[1]}: the table says {want.describe()}, the route has no role"
                " dependency"
            )
        elif rule is not None and (
            rule.role,
            rule.cookie,
            rule.province_wide,
        ) != (want.role, want.cookie, want.province_wide):
            problems.append(
                f"{key[0]} {key[1]}: the table says {want.describe()}, the route needs"
                f" {rule.describe()}"
            )
    if problems:
        raise RuntimeError("routes and hub.access.ROUTES disagree:\n  " + "\n  ".join(problems))
