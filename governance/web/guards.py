"""The permission each handler names in its `opt`, and the check of it, for both faces.

A handler that names no permission is refused: forgetting one fails closed. The API's
guard (`authorize`) runs after the bearer middleware has found the principal; the console's
guard (console/base.py) finds it in the session cookie first, then asks `check_permission`."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from governance.domain.errors import ForbiddenError
from governance.services.people import Principal
from governance.web.dependencies import governance_of

SIGNED_IN = {"permission": "signed-in"}
PERSON = {"permission": "person"}  # signed in as a person, not with an API token
# No credentials: the bearer middleware skips it too, and the OpenAPI lists no security.
PUBLIC = {"exclude_from_auth": True, "permission": "public"}


def permission(resource: str, action: str) -> dict[str, Any]:
    """A handler's `opt`: the casbin (resource, action) the caller's roles must allow."""
    return {"permission": (resource, action)}


def check_permission(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler, principal: Principal
) -> None:
    """Refuse (403) unless the principal may do what the handler's `opt` names."""
    wanted = handler.opt.get("permission")
    if wanted in ("public", "signed-in"):
        return
    if wanted == "person":  # a person's own credentials: a token has none
        if principal.kind != "user":
            raise ForbiddenError(f"{principal.name} is an API token: only a person may do this")
        return
    if not isinstance(wanted, tuple):
        raise ForbiddenError(f"{handler.name} declares no permission; refused")
    resource, action = wanted
    if not governance_of(connection).access.allowed(principal.subjects, resource, action):
        roles = ", ".join(sorted(principal.roles)) or "no role"
        raise ForbiddenError(f"{principal.name} ({roles}) may not {action} {resource}")


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The API's guard. async on purpose: no I/O here (casbin's answers are cached), and a
    sync guard would cost a thread-pool hop on every request (bench/RESULTS.md, admission)."""
    if handler.opt.get("permission") == "public":
        return
    check_permission(connection, handler, connection.user)
