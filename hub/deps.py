"""What every hub router depends on: the hub's context and who the request acts for.

Feature routers (reports, silences, ...) live in modules of their own and take these as
FastAPI dependencies, so they never import :mod:`hub.app` (which imports them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from farsight.errors import AuthError
from farsight.logs import kv
from hub.auth import Principal

if TYPE_CHECKING:
    from hub.app import HubContext

log = logging.getLogger("hub.app")

WWW_AUTH = 'Bearer realm="farsight"'

_bearer = HTTPBearer(auto_error=False, description="A token from `farsight token issue`.")


def context(request: Request) -> "HubContext":
    """The hub's stores, registry and settings (``app.state.hub``)."""
    return request.app.state.hub


def require_principal(
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ctx: "HubContext" = Depends(context),
) -> Principal:
    """The principal of the request's bearer token; 401 when it is missing, unknown or revoked."""
    if creds is None or not creds.credentials:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)", headers={"WWW-Authenticate": WWW_AUTH})
    try:
        return ctx.tokens.verify(creds.credentials)
    except AuthError as exc:
        log.warning("auth refused", extra=kv(reason=str(exc)))
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": f'{WWW_AUTH}, error="invalid_token"'}) from None


def reader(principal: Principal = Depends(require_principal)) -> Principal:
    """Who reads: results are scoped to ``principal.department`` (``None``: province-wide, all)."""
    return principal


def scoped_department(principal: Principal, requested: str | None) -> str | None:
    """The department a read is limited to: the token's own, or the requested one for a
    province-wide token. Asking for another department than the token's is refused (403)."""
    if principal.department is None:
        return requested
    if requested is not None and requested != principal.department:
        raise HTTPException(403, f"token of department {principal.department!r} cannot read department {requested!r}")
    return principal.department
