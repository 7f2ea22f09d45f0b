"""What every hub router depends on: the hub's context and who the request acts for.

Feature routers (reports, silences, ...) live in modules of their own and take these as
FastAPI dependencies, so they never import :mod:`hub.app` (which imports them).
"""

from __future__ import annotations

import logging

from fastapi import Cookie, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from farsight.errors import AuthError
from farsight.logs import kv
from hub.auth import Principal
from hub.context import HubContext

log = logging.getLogger("hub.app")

WWW_AUTH = 'Bearer realm="farsight"'

_bearer = HTTPBearer(auto_error=False, description="A token from `farsight token issue`.")
bearer_scheme = _bearer


def context(request: Request) -> HubContext:
    """The hub's stores, registry and settings (``app.state.hub``)."""
    return request.app.state.hub


def require_principal(
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ctx: HubContext = Depends(context),
) -> Principal:
    """The principal of the request's bearer token; 401 when it is missing, unknown or revoked."""
    if creds is None or not creds.credentials:
        raise HTTPException(
            401,
            "missing bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": WWW_AUTH},
        )
    try:
        return ctx.tokens.verify(creds.credentials)
    except AuthError as exc:
        log.warning("auth refused", extra=kv(reason=str(exc)))
        raise HTTPException(
            401, str(exc), headers={"WWW-Authenticate": f'{WWW_AUTH}, error="invalid_token"'}
        ) from None


SESSION_COOKIE = "farsight_session"
"""Set by ``POST /api/session``: lets the dashboard's EventSource, which cannot send headers,
read the live stream. HttpOnly and SameSite=Strict; it authenticates reads only, so a forged
cross-site request can never change state with it."""


def reader(
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
    session: str | None = Cookie(None, alias=SESSION_COOKIE, include_in_schema=False),
    ctx: HubContext = Depends(context),
) -> Principal:
    """Who reads (bearer token or session cookie): results are scoped to
    ``principal.department`` (``None``: province-wide, all departments)."""
    token = creds.credentials if creds is not None and creds.credentials else session
    if not token:
        raise HTTPException(
            401,
            "reading needs a token: Authorization: Bearer <token>, or a session from POST"
            " /api/session",
            headers={"WWW-Authenticate": WWW_AUTH},
        )
    try:
        return ctx.tokens.verify(token)
    except AuthError as exc:
        log.warning("read refused", extra=kv(reason=str(exc)))
        raise HTTPException(
            401, str(exc), headers={"WWW-Authenticate": f'{WWW_AUTH}, error="invalid_token"'}
        ) from None


def province_wide(principal: Principal = Depends(reader)) -> Principal:
    """Operations views (dead letters): only a province-wide token, not a department's."""
    if principal.department is not None:
        raise HTTPException(
            403, "this view needs a province-wide token (issued without a department)"
        )
    return principal


def scoped_department(principal: Principal, requested: str | None) -> str | None:
    """The department a read is limited to: the token's own, or the requested one for a
    province-wide token. Asking for another department than the token's is refused (403)."""
    if principal.department is None:
        return requested
    if requested is not None and requested != principal.department:
        raise HTTPException(
            403,
            f"token of department {principal.department!r} cannot read department {requested!r}",
        )
    return principal.department
