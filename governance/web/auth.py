"""Authentication (a bearer secret: an API token or a session) and authorization (casbin,
through the permission each handler names). A handler that names no permission is refused:
forgetting one fails closed."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from governance.bootstrap import Governance
from governance.domain.errors import ForbiddenError, UnauthenticatedError
from governance.services.people import Principal


def bearer_secret(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


class BearerAuthentication(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        secret = bearer_secret(connection)
        if secret is None:
            raise UnauthenticatedError(
                "no credentials: send 'Authorization: Bearer <API token or session token>' "
                "(sign in with POST /api/v1/sessions)"
            )
        governance: Governance = connection.app.state.governance
        principal = governance.people.cached_principal(secret)
        if principal is None:
            principal = await to_thread.run_sync(governance.people.authenticate, secret)
        return AuthenticationResult(user=principal, auth=None)


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """async on purpose: no I/O here (casbin's answers are cached), and a sync guard would
    cost a thread-pool hop on every request (bench/RESULTS.md, admission)."""
    wanted = handler.opt.get("permission")
    if wanted in ("public", "signed-in"):
        return
    principal: Principal = connection.user
    if wanted == "person":  # a person's own credentials: a token has none
        if principal.kind != "user":
            raise ForbiddenError(f"{principal.name} is an API token: only a person may do this")
        return
    if not isinstance(wanted, tuple):
        raise ForbiddenError(f"{handler.name} declares no permission; refused")
    governance: Governance = connection.app.state.governance
    resource, action = wanted
    if not governance.access.allowed(principal.subjects, resource, action):
        roles = ", ".join(sorted(principal.roles)) or "no role"
        raise ForbiddenError(f"{principal.name} ({roles}) may not {action} {resource}")
