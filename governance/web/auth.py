"""Authentication for the API: a bearer secret (an API token or a session) turned into the
principal the guard (guards.py) then checks each handler's permission for."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from governance.bootstrap import Governance
from governance.domain.errors import UnauthenticatedError


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
