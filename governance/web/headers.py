"""Headers every answer gets, set once for the whole app by a `before_send` hook, so error
answers (a refused credential, a 404) get them too:

- `Strict-Transport-Security` when the request came over https — directly, or through a
  proxy uvicorn trusts (`--forwarded-allow-ips` / `FORWARDED_ALLOW_IPS`; its
  `X-Forwarded-Proto` sets the scheme), so a browser never falls back to plain http;
- `Cache-Control: no-store` on every API answer that does not say otherwise: sign-in,
  token and webhook creation carry secrets shown once, and the rest is personal or
  decision data no shared cache should keep."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

HSTS = "max-age=31536000; includeSubDomains"
API = "/api/"


async def security_headers(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    https = scope.get("scheme") == "https"
    api = scope["path"].startswith(API)
    if not (https or api):
        return
    headers = MutableScopeHeaders.from_message(message)
    if api and "cache-control" not in headers:
        headers["Cache-Control"] = "no-store"
    if https:
        headers["Strict-Transport-Security"] = HSTS
