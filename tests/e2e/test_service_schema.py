"""Property-based tests of the served API against its own OpenAPI schema, with schemathesis,
on SQLite and on PostgreSQL. Every operation, with generated valid (positive) and invalid
(negative) requests:

- as the admin;
- the four operations the admin's role does not grant (submit, waiver, sign, admission)
  again as a caller whose role does, so that their handlers run and not only the guard;
- as the auditor, who reads: every write must be refused with 403;
- without credentials (valid requests only): 401 everywhere but sign-in;
- a registry's webhook (`POST /api/v1/connectors/{name}/events`) unsigned: 401 for all.

No answer may be a server error, and every answer — errors included, as problem+json —
must have a status code, a media type and a body that the schema documents for the
operation.

Destructive operations cannot take away the credentials the runs use:

- `DELETE /api/v1/sessions/current` signs out the token it is called with, so each of its
  calls gets a session of its own, fresh from `POST /api/v1/sessions`, never the
  fixture's token that the other operations use.
- `POST /api/v1/users/{username}/disable` and `.../password` (a reset) end every session of
  that user, so they are never called for one of the fixture's people (a generated name
  could be one by chance).
- `POST /api/v1/me/password` with a wrong current password counts towards the caller's
  sign-in lockout, so each call is followed by an admin's unlock of the caller.
- `DELETE /api/v1/tokens/{token_id}` needs an id, and generated ones never name a real
  token (nothing feeds ids from answers back into generation here).

The operations run in a loop, one subtest each, rather than through schemathesis' pytest
integration: its `from_fixture` fails on pytest 9 (it sets `Function._nodeid`), and the
schema only exists once the `service` fixture has started the server.
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
# Small: the point is every operation with valid and invalid input, not depth.
FEW = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE

SIGN_IN = ("POST", "/api/v1/sessions")
SIGN_OUT = ("DELETE", "/api/v1/sessions/current")
DISABLE_USER = ("POST", "/api/v1/users/{username}/disable")
RESET_PASSWORD = ("POST", "/api/v1/users/{username}/password")
CHANGE_PASSWORD = ("POST", "/api/v1/me/password")
SERVICE = {("GET", "/health"), ("GET", "/ready")}  # outside the API: no credentials
# A registry's webhook: it carries the registry's signature, not a bearer credential, and
# nothing generated here is signed with a connector's secret (none is configured).
REGISTRY_EVENTS = ("POST", "/api/v1/connectors/{name}/events")
FIXTURE_USERS = {"admin", *PEOPLE}
# The operations the admin's role does not grant, and a caller whose role does.
NOT_ADMIN = {
    ("POST", "/api/v1/requests"): "dana",
    ("POST", "/api/v1/requests/{request_id}/waiver"): "dana",
    ("POST", "/api/v1/requests/{request_id}/signatures"): "maria",
    ("GET", "/api/v1/admission/{model}/{version}"): "serving",
}


def key(operation: APIOperation | Case) -> tuple[str, str]:
    return operation.method.upper(), operation.path


def fresh_session(service: Service, username: str) -> str:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        response = client.post(
            "/api/v1/sessions", json={"username": username, "password": PASSWORD}
        )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def call(case: Case, service: Service, caller: str | None) -> Response:
    """The case as `caller` (a key of `service.tokens`, or None: without credentials), its
    answer checked against the schema."""
    if key(case) in (DISABLE_USER, RESET_PASSWORD):
        assume((case.path_parameters or {}).get("username") not in FIXTURE_USERS)
    headers = {}
    if caller is not None:
        token = service.tokens[caller]
        if key(case) == SIGN_OUT:
            token = fresh_session(service, caller)
        headers["Authorization"] = f"Bearer {token}"
    response = case.call_and_validate(base_url=service.url, headers=headers, checks=CHECKS)
    if key(case) == CHANGE_PASSWORD and caller is not None:
        unlock(service, caller)
    return response


def unlock(service: Service, username: str) -> None:
    with service.client("admin") as admin:
        answer = admin.post(f"/api/v1/users/{username}/unlock")
    assert answer.status_code == 200, answer.text


def expected_status(operation: APIOperation, caller: str | None) -> int | None:
    """The status `caller` must get whatever it sends, if there is one."""
    if key(operation) in SERVICE or key(operation) == SIGN_IN:
        return None
    if caller is None or key(operation) == REGISTRY_EVENTS:
        return 401
    own = (SIGN_OUT, CHANGE_PASSWORD)  # the caller's own session and password
    if caller == "audrey" and operation.method.upper() != "GET" and key(operation) not in own:
        return 403
    return None


def fuzz(
    service: Service, operation: APIOperation, mode: GenerationMode, caller: str | None
) -> None:
    expected = expected_status(operation, caller)

    @FEW
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        response = call(case, service, caller)
        if expected is not None:
            assert response.status_code == expected, f"{case.method} {case.path}: {response.text}"

    run()


def test_every_operation(service: Service, subtests: pytest.Subtests) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/schema/openapi.json")
    # The runs send their own Authorization header: no generated (or negated) credentials.
    schema.config.generation.update(with_security_parameters=False)
    operations = [operation for methods in schema.values() for operation in methods.values()]
    assert len(operations) >= 28
    not_admin = [o for o in operations if key(o) in NOT_ADMIN]
    assert len(not_admin) == len(NOT_ADMIN)
    runs: list[tuple[str | None, GenerationMode, list[APIOperation]]] = [
        ("admin", POSITIVE, operations),
        ("admin", NEGATIVE, operations),
        *[(NOT_ADMIN[key(o)], mode, [o]) for o in not_admin for mode in GenerationMode],
        ("audrey", POSITIVE, operations),
        ("audrey", NEGATIVE, operations),
        (None, POSITIVE, operations),
    ]
    for caller, mode, chosen in runs:
        for operation in chosen:
            if mode.is_negative and not (operation.query or operation.body):
                continue  # any path segment is a valid string: nothing here can be invalid
            with subtests.test(msg=f"{caller or 'anonymous'}: {mode.value} {operation.label}"):
                fuzz(service, operation, mode, caller)
