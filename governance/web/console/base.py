"""What every console page shares: the session cookie, CSRF, the permission check, flash
messages, and rendering.

People sign in with a password and get a server-side session (the same `UserSession` rows
the API's bearer sessions use); its secret travels in an HttpOnly, SameSite=Strict cookie
and is stored only as a keyed digest. Every unsafe request must carry the session's CSRF
token (a form field or the X-CSRF-Token header) and come from this origin. Each handler
names a permission, as in the API, and the guard checks it with casbin before the handler
runs; templates hide what a person may not do, and the server refuses it anyway."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

from anyio import to_thread
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from governance.domain.errors import ForbiddenError, GovernanceError, UnauthenticatedError
from governance.domain.policy import PromotionPolicy
from governance.services.people import Principal
from governance.web.dependencies import governance_of, in_thread
from governance.web.guards import check_permission
from governance.web.problems import log

SESSION_COOKIE = "governance_session"
LOGIN_COOKIE = "governance_login"  # the CSRF token of the sign-in form, before a session
FLASH_COOKIE = "governance_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# No script but our own files, no inline script, no framing: the console shows text that
# people typed (comments, justifications), and this keeps a missed escape harmless.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequiredError(Exception):
    """No valid session: the console answers with the sign-in page."""


# A handler's form body: `data: Annotated[SomeDataclass, Form]`.
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


# Query parameters of list pages. One `Parameter` per annotation: Litestar reads only the
# first of a nested Annotated, and `page_` would silently be the parameter's name.
PageQuery = Annotated[int, Parameter(query="page", ge=1, le=10**9)]
PageSize = Annotated[int, Parameter(ge=25, le=100)]


def risk_tiers(policies: list[PromotionPolicy]) -> list[str]:
    """The tiers a filter offers: those the policies in force cover."""
    return sorted({p.applies_to.risk_tier for p in policies})


async def console_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Session, same origin and CSRF token for unsafe methods, then the permission."""
    wanted = handler.opt.get("permission")
    request = connection if isinstance(connection, Request) else None
    if request is not None and request.method not in SAFE_METHODS:
        _check_origin(request)
    if wanted == "public":
        return
    secret = connection.cookies.get(SESSION_COOKIE)
    if not secret:
        raise SignInRequiredError
    governance = governance_of(connection)
    principal = governance.people.cached_principal(secret)
    try:
        if principal is None:
            principal = await to_thread.run_sync(governance.people.authenticate, secret)
    except UnauthenticatedError:
        raise SignInRequiredError from None
    if principal.kind != "user":
        raise SignInRequiredError
    connection.scope["user"] = principal
    expected = await to_thread.run_sync(governance.people.csrf_token, secret)
    connection.scope["csrf_token"] = expected  # type: ignore[typeddict-unknown-key]
    if request is not None and request.method not in SAFE_METHODS:
        await _check_csrf(request, expected)
    check_permission(connection, handler, principal)


def _check_origin(request: Request[Any, Any, Any]) -> None:
    """A browser names the page a form came from; refuse one from another site."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return  # not a browser (a script with the token still passes the CSRF check)
    parts = urlsplit(source)
    if f"{parts.scheme}://{parts.netloc}" != f"{request.url.scheme}://{request.url.netloc}":
        raise ForbiddenError(f"a form from {parts.netloc or source!r} may not change anything here")


async def _check_csrf(request: Request[Any, Any, Any], expected: str | None) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        raise ForbiddenError(
            "the form's CSRF token is missing or wrong: reload the page and send it again"
        )


# --- answers ------------------------------------------------------------------------


def can(request: Request[Any, Any, Any], resource: str, action: str) -> bool:
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        return False
    return governance_of(request).access.allowed(principal.subjects, resource, action)


def page(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Template:
    """A full page, or only its `content` block when htmx asks for a part of it."""
    flash = _read_flash(request)
    principal = request.scope.get("user")
    template_context = {
        "me": principal if isinstance(principal, Principal) else None,
        # the session's token, read by the guard; "" on a page without a session
        "csrf_token": request.scope.get("csrf_token") or "",
        "can": lambda resource, action: can(request, resource, action),
        "flash": flash,
        "path": request.url.path,
        "query": request.query_params,
        "partial": request.headers.get("hx-request") == "true"
        and request.headers.get("hx-boosted") != "true",
        **context,
    }
    response = Template(
        template, context=template_context, status_code=status_code, headers=SECURITY_HEADERS
    )
    if flash:
        response.cookies.append(_expired(FLASH_COOKIE, request))
    return response


def redirect(
    request: Request[Any, Any, Any], to: str, message: str | None = None, kind: str = "ok"
) -> Redirect:
    """After a change: back to a page (POST/redirect/GET) with a message to show once."""
    response = Redirect(path=to, status_code=303, headers=SECURITY_HEADERS)
    if message:
        response.cookies.append(
            Cookie(
                key=FLASH_COOKIE,
                value=quote(f"{kind}:{message}"),
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                max_age=60,
            )
        )
    return response


def _read_flash(request: Request[Any, Any, Any]) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, text = unquote(raw).partition(":")
    if kind not in ("ok", "error") or not text:
        return None
    return {"kind": kind, "text": text[:1000]}


def _expired(key: str, request: Request[Any, Any, Any]) -> Cookie:
    return _cookie(request, key, "", "/", max_age=0)


def session_cookie(request: Request[Any, Any, Any], secret: str, expires: datetime) -> Cookie:
    """The session's secret, kept by the browser for as long as the session lives: Max-Age
    in seconds left (Litestar's `expires` takes seconds too, not a point in time)."""
    left = expires.replace(tzinfo=expires.tzinfo or UTC) - datetime.now(UTC)
    return _cookie(request, SESSION_COOKIE, secret, "/", max_age=max(int(left.total_seconds()), 0))


def login_token_cookie(request: Request[Any, Any, Any]) -> tuple[str, Cookie]:
    token = secrets.token_urlsafe(24)
    return token, _cookie(request, LOGIN_COOKIE, token, "/login", max_age=3600)


def _cookie(
    request: Request[Any, Any, Any], key: str, value: str, path: str, *, max_age: int
) -> Cookie:
    """Every console cookie: out of scripts' reach, never sent with another site's request,
    and only over HTTPS when the console is served over it."""
    return Cookie(
        key=key,
        value=value,
        path=path,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def signed_out(request: Request[Any, Any, Any], response: Response[Any]) -> Response[Any]:
    response.cookies.append(_expired(SESSION_COOKIE, request))
    return response


@dataclass
class CsrfOnly:
    """The body of a form whose only field is its CSRF token (a confirmation)."""

    csrf_token: str = ""


async def act(
    request: Request[Any, Any, Any], back: str, function: Any, args: tuple[Any, ...], done: str
) -> Redirect:
    """Run one change; either way, back to the page with what happened. A refusal (a rule,
    a wrong password, a changed state) changes nothing and is shown as the reason."""
    try:
        await in_thread(function, *args)
    except REFUSALS as exc:
        return redirect(request, back, failure_message(exc), kind="error")
    return redirect(request, back, done)


# --- errors -------------------------------------------------------------------------


def _error(request: Request[Any, Any, Any], status: int, detail: str) -> Template:
    titles = {
        400: "The request is not valid",
        401: "Sign in again",
        403: "Not allowed",
        404: "Not found",
        409: "Not possible in this state",
        413: "Too large",
        422: "Please correct the form",
        429: "Too many attempts",
        500: "Something went wrong",
    }
    return page(
        request,
        "error.html.j2",
        status_code=status,
        title=titles.get(status, "Error"),
        status=status,
        detail=detail,
    )


def on_sign_in_required(request: Request[Any, Any, Any], _: SignInRequiredError) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/login?next={quote(target, safe='')}"
    if request.headers.get("hx-request") == "true":
        # htmx follows a redirect inside the fragment; tell it to load the sign-in page
        return Response(b"", status_code=401, headers={"HX-Redirect": login})
    response = Redirect(path=login, status_code=303, headers=SECURITY_HEADERS)
    return signed_out(request, response)


def on_domain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, detail = _status_of(exc)
    if status >= 500:
        log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, status, detail)


def _status_of(exc: Exception) -> tuple[int, str]:
    """The console's one mapping of an error: its status and the sentence a person reads.
    A refusal (`GovernanceError`) brings its own status, as in the API."""
    if isinstance(exc, GovernanceError):
        return exc.status, exc.message
    if isinstance(exc, ValidationException):
        return 400, "a value in the address or the form is not valid: " + str(exc.detail)
    if isinstance(exc, NotFoundException):
        return 404, "there is no page at this address"
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    return 500, "the server failed to handle this request; the error is in its log"


# What an action may refuse with; anything else is a fault, handled as a 500 and logged.
REFUSALS = GovernanceError


def failure_message(exc: Exception) -> str:
    """The sentence a person reads when an action fails."""
    return _status_of(exc)[1]


# Every class the app maps to problem+json is mapped here too: Litestar picks the handler
# by the exception's class before it looks at the layer, so `Exception` alone is not enough.
HANDLERS: dict[int | type[Exception], Any] = {
    SignInRequiredError: on_sign_in_required,
    **{kind: on_domain_error for kind in (GovernanceError, ValidationException, HTTPException)},
    Exception: on_domain_error,
}
