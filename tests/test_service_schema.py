"""Property-based tests of the served API against its own OpenAPI schema, with schemathesis,
on SQLite and on PostgreSQL: every operation, as the admin (may do everything) and as the
auditor (reads only), with generated valid (positive) and invalid (negative) requests, and
without credentials. No answer may be a server error, and every answer — errors included,
as problem+json — must have a status code, a media type and a body that the schema
documents for the operation; the auditor's writes must be refused with 403, and calls
without credentials with 401.

Destructive operations cannot take away the credentials the runs use:

- `DELETE /api/v1/sessions/current` signs out the token it is called with, so each of its
  calls gets a session of its own, fresh from `POST /api/v1/sessions`, never the
  fixture's token that the other operations use.
- `POST /api/v1/users/{username}/disable` ends every session of that user, so it is never
  called for one of the fixture's people (a generated name could be one by chance).
- `DELETE /api/v1/tokens/{token_id}` needs an id, and generated ones never name a real
  token; the runs authenticate with sessions anyway, which it cannot revoke.

The operations run in a loop, one subtest each, rather than through schemathesis' pytest
integration: its `from_fixture` breaks on pytest 9 (it sets `Function._nodeid`), and the
schema is only there once the `service` fixture has started the server.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service_fixtures import PASSWORD, PEOPLE, Service

pytest_plugins = ["tests.db_fixtures", "tests.service_fixtures"]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SIGN_OUT = ("DELETE", "/api/v1/sessions/current")
DISABLE_USER = ("POST", "/api/v1/users/{username}/disable")
# Operations any caller may use, whatever the roles: every other write is refused to the
# auditor with 403.
OPEN_WRITES = {("POST", "/api/v1/sessions"), SIGN_OUT}
PUBLIC = {("POST", "/api/v1/sessions")}  # and /health, /ready
FIXTURE_USERS = {"admin", *PEOPLE}
# Small: the point is every operation with valid and invalid input, not depth.
FEW = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fresh_session(service: Service, username: str) -> str:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        response = client.post(
            "/api/v1/sessions", json={"username": username, "password": PASSWORD}
        )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def call(case: Case, service: Service, username: str | None) -> Response:
    """The case as `username` (None: without credentials), its answer checked against the
    schema."""
    operation = (case.method.upper(), case.path)
    if operation == DISABLE_USER:
        assume((case.path_parameters or {}).get("username") not in FIXTURE_USERS)
    headers = {}
    if username is not None:
        token = fresh_session(service, username) if operation == SIGN_OUT else None
        headers["Authorization"] = f"Bearer {token or service.tokens[username]}"
    return case.call_and_validate(base_url=service.url, headers=headers, checks=CHECKS)


def expected_status(operation: APIOperation, username: str | None) -> int | None:
    """The one status the caller must get whatever it sends, if there is one."""
    if operation.path in ("/health", "/ready"):
        return None
    if username is None:
        return None if (operation.method.upper(), operation.path) in PUBLIC else 401
    writes = operation.method.upper() != "GET"
    if (
        username == "audrey"
        and writes
        and (operation.method.upper(), operation.path) not in OPEN_WRITES
    ):
        return 403
    return None


def fuzz(
    service: Service, operation: APIOperation, mode: GenerationMode, username: str | None
) -> None:
    expected = expected_status(operation, username)

    @FEW
    @given(case=operation.as_strategy(generation_mode=mode))
    def test(case: Case) -> None:
        response = call(case, service, username)
        if expected is not None:
            assert response.status_code == expected, f"{case.method} {case.path}: {response.text}"

    test()


def test_every_operation(service: Service, subtests: pytest.Subtests) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/schema/openapi.json")
    # The runs send their own Authorization header: no generated (or negated) credentials.
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 28
    runs = [(username, mode) for username in ("admin", "audrey") for mode in GenerationMode] + [
        (None, GenerationMode.POSITIVE)
    ]
    for username, mode in runs:
        for operation in operations:
            if mode.is_negative and not (operation.query or operation.body):
                continue  # any path segment is a valid string: nothing here can be invalid
            who = username or "anonymous"
            with subtests.test(msg=f"{who}: {mode.value} {operation.label}"):
                fuzz(service, operation, mode, username)
