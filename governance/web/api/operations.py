"""The route decorators of the API: Litestar's, with what every operation documents in the
OpenAPI schema added, so that no controller can forget it: the error answers (each as
problem+json, problems.py) and the bearer credential unless the handler is public."""

from __future__ import annotations

from typing import Any

import litestar
from litestar.openapi.datastructures import ResponseSpec

from governance.web.problems import MEDIA_TYPE, Problem

# The error answers any API operation may give.
PROBLEMS = {
    status: ResponseSpec(
        Problem, description=description, media_type=MEDIA_TYPE, generate_examples=False
    )
    for status, description in {
        400: "The parameters or the body do not match this schema",
        401: "No credentials, unknown or expired ones, or a wrong password",
        403: "The caller's roles do not allow this, or a rule of the workflow refuses it",
        404: "No such record",
        409: "The record's current state does not allow this",
        413: "The request body is larger than this endpoint accepts",
        422: "A value is not acceptable: the answer names the field and the fix",
        429: "Too many failed sign-ins: wait the Retry-After seconds, or ask an admin to unlock",
    }.items()
}


def _documented(options: dict[str, Any]) -> dict[str, Any]:
    options["responses"] = {**PROBLEMS, **(options.get("responses") or {})}
    if options.get("opt", {}).get("permission") != "public":
        options["security"] = [{"bearer": []}]
    return options


def get(path: str, **options: Any) -> litestar.get:
    return litestar.get(path, **_documented(options))


def post(path: str, **options: Any) -> litestar.post:
    return litestar.post(path, **_documented(options))


def delete(path: str, **options: Any) -> litestar.delete:
    return litestar.delete(path, **_documented(options))
