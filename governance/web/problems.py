"""Every error as RFC 9457 problem+json: a type, a title, the status, and a detail that
names the field and the fix. Never a traceback."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from governance.domain.errors import (
    ConflictError,
    GovernanceError,
    InputError,
    TooManyAttemptsError,
)
from governance.domain.policy import PolicyError

log = logging.getLogger("governance.web")
MEDIA_TYPE = "application/problem+json"


class Problem(msgspec.Struct):
    """The body of every error answer, for the OpenAPI schema: what `problem` sends."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None  # 422 bad input: the field to fix ...
    fix: str | None = None  # ... and how
    state: str | None = None  # 409: the record's current state
    errors: list[Any] | None = None  # 400: each validation error; 422 policy: each problem


def problem(status: int, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    title = HTTPStatus(status).phrase
    body = {
        "type": f"https://governance.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="governance"'} if status == 401 else None
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def on_governance_error(_: Request, exc: GovernanceError) -> Response[dict[str, Any]]:
    """Every refusal the domain and the services raise: the status is the error's own, and
    the body carries what its class knows (the field and the fix, the record's state, each
    policy problem). A lockout is 429, not 401, with Retry-After: the person learns to wait
    or ask for an unlock instead of doubting a right password."""
    extra: dict[str, Any] = {}
    if isinstance(exc, InputError):
        extra = {"field": exc.subject, "fix": exc.fix or None}
    elif isinstance(exc, ConflictError):
        extra = {"state": exc.state}
    elif isinstance(exc, PolicyError):
        extra = {"errors": list(exc.problems)}
    answer = problem(exc.status, exc.message, **extra)
    if isinstance(exc, TooManyAttemptsError):
        answer.headers["Retry-After"] = str(exc.retry_after)
    return answer


def on_validation(_: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    fields = [
        f"{e.get('key') or e.get('source') or 'body'}: {e.get('message')}"
        for e in errors
        if isinstance(e, dict)
    ]
    detail = "; ".join(fields) or exc.detail
    keys = {e.get("key") for e in errors if isinstance(e, dict) and e.get("key")}
    return problem(400, detail, errors=errors, **({"field": keys.pop()} if len(keys) == 1 else {}))


def on_http(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    detail = exc.detail
    if exc.status_code == 413:
        detail = f"{detail}: the request body is larger than this endpoint accepts"
    return problem(exc.status_code, detail)


def on_form_not_utf8(_: Request, exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    """Litestar decodes each multipart part without a filename as UTF-8 text, and failed
    (500) on one that is not: for the endpoint that takes a form."""
    detail = "a form field is not UTF-8 text: send each file as a file part, with a filename"
    return problem(400, detail)


def on_unexpected(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "the server failed to handle this request; the error is in its log")


HANDLERS: dict[int | type[Exception], Any] = {
    GovernanceError: on_governance_error,
    ValidationException: on_validation,
    HTTPException: on_http,
    Exception: on_unexpected,
}
