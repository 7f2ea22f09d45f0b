"""What every hub router depends on: the hub's context, the credentials' names and the
department scope of reads.

Who the request acts for, and whether its role may call the route, is :mod:`hub.access`.
Feature routers (reports, silences, ...) live in modules of their own and take these as
FastAPI dependencies, so they never import :mod:`hub.app` (which imports them).
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.security import HTTPBearer

from hub.auth import Principal
from hub.context import HubContext

WWW_AUTH = 'Bearer realm="farsight"'

bearer_scheme = HTTPBearer(auto_error=False, description="A token from `farsight token issue`.")

SESSION_COOKIE = "farsight_session"
"""Set by ``POST /api/session``: lets the dashboard's EventSource, which cannot send headers,
read the live stream. It holds a session token of its own (not the API token it was started
from), HttpOnly, SameSite=Strict, and Secure over HTTPS; it authenticates reads only, so a forged
cross-site request can never change state with it."""


def context(request: Request) -> HubContext:
    """The hub's stores, registry and settings (``app.state.hub``)."""
    return request.app.state.hub


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
