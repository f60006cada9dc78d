"""The authorization matrix of the HTTP API, against a served process on SQLite and on
PostgreSQL: every principal (one person per human role, the ci and serving API tokens)
calls every endpoint. Where its role may, the call gets past the guard (any answer but 401
or 403: the ids are fake, so 404, 409 or 422 are expected); where it may not, the answer is
403 as problem+json naming the principal, whatever the body.

`MAY_CALL` is the spec, written out by hand: it is not derived from DEFAULT_GRANTS, so a
change of grants that breaks the intended policy fails here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx

from governance.auth.secrets import token_id_of
from tests.service_fixtures import PASSWORD, PEOPLE, Service

pytest_plugins = ["tests.db_fixtures", "tests.service_fixtures"]

PROBLEM_JSON = "application/problem+json"

# Path parameters that name nothing: an allowed call passes the guard and then finds nothing.
PLACEHOLDERS = {
    "name": "no-such-model",
    "model": "no-such-model",
    "version": "1",
    "request_id": "00000000-0000-4000-8000-000000000000",
    "decision_id": "00000000-0000-4000-8000-000000000001",
    "username": "no-such-user",  # disable: never a real person
    "token_id": "000000000000",  # revoke: never a real token
    "subscription_id": "999999",  # unsubscribe: never a real webhook
    "delivery_id": "999999",  # retry: never a real delivery
    "monitor": "drift",
}
# A few bytes as both files of a submission: enough for the form, refused for the model.
UPLOADS = {"artifact": ("model.skops", b"not a model"), "data": ("test.csv", b"a,b\n1,2\n")}


@dataclass(frozen=True, eq=False)
class Endpoint:
    """One operation, as the OpenAPI schema names it, with a minimal body. Bodies that
    would create something are refused by the service (unknown tier, unknown role), so
    the matrix changes nothing."""

    method: str
    path: str
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None  # multipart, with UPLOADS as the files

    @property
    def url(self) -> str:
        return self.path.format(**PLACEHOLDERS)

    @property
    def has_body(self) -> bool:
        return self.json is not None or self.form is not None

    def call(self, client: httpx.Client) -> httpx.Response:
        files = UPLOADS if self.form is not None else None
        return client.request(self.method, self.url, json=self.json, data=self.form, files=files)

    def call_unparseable(self, client: httpx.Client) -> httpx.Response:
        """The same call with a body no parser accepts."""
        headers = {"content-type": "application/json"}
        return client.request(self.method, self.url, content=b"{not json", headers=headers)


ENDPOINTS: dict[str, Endpoint] = {
    # signed in
    "me": Endpoint("GET", "/api/v1/me"),
    "sign_out": Endpoint("DELETE", "/api/v1/sessions/current"),
    "change_password": Endpoint(
        "POST", "/api/v1/me/password", json={"currentPassword": "probe", "newPassword": "short"}
    ),
    # models and policies
    "list_models": Endpoint("GET", "/api/v1/models"),
    "get_model": Endpoint("GET", "/api/v1/models/{name}"),
    "register_model": Endpoint(
        "POST", "/api/v1/models", json={"name": "probe", "riskTier": "no-such-tier"}
    ),
    "list_policies": Endpoint("GET", "/api/v1/policies"),
    # promotion requests
    "list_requests": Endpoint("GET", "/api/v1/requests"),
    "get_request": Endpoint("GET", "/api/v1/requests/{request_id}"),
    "get_evidence": Endpoint("GET", "/api/v1/requests/{request_id}/evidence"),
    "submit": Endpoint(
        "POST", "/api/v1/requests", form={"model": "no-such-model", "version": "1", "label": "y"}
    ),
    "sign": Endpoint(
        "POST",
        "/api/v1/requests/{request_id}/signatures",
        json={"meaning": "approve", "comment": "probe", "password": PASSWORD},
    ),
    "request_waiver": Endpoint(
        "POST",
        "/api/v1/requests/{request_id}/waiver",
        json={"justification": "a probe of the access rules, long enough", "days": 30},
    ),
    "promote": Endpoint("POST", "/api/v1/requests/{request_id}/promote"),
    "revoke": Endpoint("POST", "/api/v1/requests/{request_id}/revoke", json={"reason": "probe"}),
    "get_attestation": Endpoint("GET", "/api/v1/decisions/{decision_id}/attestation"),
    # reports
    "decision_report": Endpoint("GET", "/api/v1/requests/{request_id}/report.pdf"),
    "bias_audit_report": Endpoint("GET", "/api/v1/decisions/{decision_id}/bias-audit.pdf"),
    "inventory_report": Endpoint("GET", "/api/v1/inventory/report.pdf"),
    # serving
    "admission": Endpoint("GET", "/api/v1/admission/{model}/{version}"),
    # audit
    "list_audit": Endpoint("GET", "/api/v1/audit"),
    "verify_audit": Endpoint("GET", "/api/v1/audit/verify"),
    "audit_proof": Endpoint("GET", "/api/v1/audit/proof"),
    # people and tokens
    "list_users": Endpoint("GET", "/api/v1/users"),
    "add_user": Endpoint(
        "POST",
        "/api/v1/users",
        json={"username": "probe", "fullName": "P", "password": PASSWORD, "roles": ["no_such"]},
    ),
    "disable_user": Endpoint("POST", "/api/v1/users/{username}/disable"),
    "unlock_user": Endpoint("POST", "/api/v1/users/{username}/unlock"),
    "reset_password": Endpoint(
        "POST", "/api/v1/users/{username}/password", json={"newPassword": "short"}
    ),
    "list_tokens": Endpoint("GET", "/api/v1/tokens"),
    "create_token": Endpoint(
        "POST", "/api/v1/tokens", json={"name": "probe", "roles": ["no_such"]}
    ),
    "revoke_token": Endpoint("DELETE", "/api/v1/tokens/{token_id}"),
    # webhooks
    "list_webhooks": Endpoint("GET", "/api/v1/webhooks"),
    "subscribe_webhook": Endpoint(
        "POST", "/api/v1/webhooks", json={"url": "ftp://probe", "events": ["request.promoted"]}
    ),
    "unsubscribe_webhook": Endpoint("DELETE", "/api/v1/webhooks/{subscription_id}"),
    "list_deliveries": Endpoint("GET", "/api/v1/webhooks/deliveries"),
    "retry_delivery": Endpoint("POST", "/api/v1/webhooks/deliveries/{delivery_id}/retry"),
    # production monitoring
    "ingest_predictions": Endpoint(
        "POST",
        "/api/v1/models/{name}/versions/{version}/predictions",
        json={"batchId": "probe", "rows": [{"x": 1}]},
    ),
    "list_predictions": Endpoint("GET", "/api/v1/models/{name}/versions/{version}/predictions"),
    "list_monitoring": Endpoint("GET", "/api/v1/requests/{request_id}/monitoring"),
    "run_monitor": Endpoint("POST", "/api/v1/requests/{request_id}/monitoring/{monitor}"),
    # registry connectors
    "list_connectors": Endpoint("GET", "/api/v1/connectors"),
    "sync_connector": Endpoint("POST", "/api/v1/connectors/{name}/sync"),
    # CI builders whose provenance a policy may trust
    "list_builders": Endpoint("GET", "/api/v1/builders"),
    "add_builder": Endpoint(
        "POST", "/api/v1/builders", json={"name": "probe", "publicKey": "not a key"}
    ),
    "revoke_builder": Endpoint("DELETE", "/api/v1/builders/{name}"),
}
# Answer without credentials; tested on their own, not in the matrix. A registry's events
# carry the registry's signature instead (tests/integration/test_mlflow_connector.py).
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("POST", "/api/v1/sessions"),
    ("POST", "/api/v1/connectors/{name}/events"),
}

SIGNED_IN = {"me", "sign_out"}
PERSON = SIGNED_IN | {"change_password"}  # a token has no password to change
READ = {
    "list_models",
    "get_model",
    "list_policies",
    "list_requests",
    "get_request",
    "get_evidence",
    "get_attestation",
    "decision_report",
    "bias_audit_report",
    "inventory_report",
}
AUDIT = {"list_audit", "verify_audit", "audit_proof"}
SIGN = {"sign"}
MANAGE_PEOPLE = {
    "list_users",
    "add_user",
    "disable_user",
    "unlock_user",
    "reset_password",
    "list_tokens",
    "create_token",
    "revoke_token",
}
READ_WEBHOOKS = {"list_webhooks", "list_deliveries"}
MANAGE_WEBHOOKS = READ_WEBHOOKS | {"subscribe_webhook", "unsubscribe_webhook", "retry_delivery"}
MANAGE_BUILDERS = {"list_builders", "add_builder", "revoke_builder"}
ADMINISTER = (
    MANAGE_PEOPLE | MANAGE_WEBHOOKS | MANAGE_BUILDERS | {"list_connectors", "sync_connector"}
)
# production monitoring: people who read see it, risk officers run a check now
WATCH = {"list_predictions", "list_monitoring"}
RUN = {"run_monitor"}
INGEST = {"ingest_predictions"}

# The spec: role → the endpoints it may call. Everything else is 403.
MAY_CALL: dict[str, set[str]] = {
    "data_scientist": PERSON
    | READ
    | WATCH
    | {"register_model", "submit", "request_waiver", "promote"},
    "model_risk_officer": PERSON | READ | WATCH | RUN | AUDIT | SIGN | {"revoke"},
    "business_owner": PERSON | READ | WATCH | SIGN,
    "chief_risk_officer": PERSON | READ | WATCH | RUN | AUDIT | SIGN | {"revoke"},
    "auditor": PERSON
    | READ
    | WATCH
    | AUDIT
    | {"list_users", "list_tokens", "list_connectors", "list_builders"}
    | READ_WEBHOOKS,
    # admin runs the service but never signs: segregation of duties
    "admin": PERSON
    | READ
    | WATCH
    | RUN
    | INGEST
    | AUDIT
    | {"register_model", "promote", "revoke"}
    | ADMINISTER,
    # "reads requests" includes a request's evidence: one permission, requests:read
    "ci": SIGNED_IN | READ | INGEST | {"register_model", "submit", "promote"},
    "serving": SIGNED_IN | INGEST | {"admission", "get_attestation"},
}
# Who plays each role: a person signed in (tests.service_fixtures) or an API token.
PLAYED_BY = {
    "data_scientist": "dana",
    "model_risk_officer": "maria",
    "business_owner": "bob",
    "chief_risk_officer": "carl",
    "auditor": "audrey",
    "admin": "admin",
    "ci": "ci",
    "serving": "serving",
}
MACHINES = {"ci", "serving"}


def principal_name(service: Service, who: str) -> str:
    """The name the server gives the principal: a person's user name, `token:<id>`."""
    return f"token:{token_id_of(service.tokens[who])}" if who in MACHINES else who


def in_call_order() -> Iterator[tuple[str, Endpoint]]:
    """The table with sign-out last: it ends the sessions every other call uses."""
    yield from sorted(ENDPOINTS.items(), key=lambda item: item[0] == "sign_out")


def describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:200]}"


def is_problem(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith(PROBLEM_JSON)


def denial_problem(response: httpx.Response, principal: str) -> str | None:
    """What is wrong with a response that should be a refusal, or None."""
    if response.status_code != 403:
        return f"expected 403, got {describe(response)}"
    if not is_problem(response):
        return f"403 is not problem+json: {response.headers.get('content-type')}"
    if principal not in response.json().get("detail", ""):
        return f"403 does not name {principal}: {response.text[:200]}"
    return None


def check_cell(
    client: httpx.Client, endpoint: Endpoint, allowed: bool, principal: str
) -> list[str]:
    """The mismatches of one (role, endpoint) cell. A refusal must not depend on the body:
    a denied call with a body is repeated with one that does not parse."""
    response = endpoint.call(client)
    if allowed:
        if response.status_code in (401, 403) or response.status_code >= 500:
            return [f"should be allowed, got {describe(response)}"]
        return []
    problems = [denial_problem(response, principal)]
    if endpoint.has_body:
        problem = denial_problem(endpoint.call_unparseable(client), principal)
        problems.append(problem and f"with an unparseable body: {problem}")
    return [problem for problem in problems if problem]


def bearer_client(service: Service, secret: str | None) -> httpx.Client:
    headers = {"Authorization": secret} if secret else {}
    return httpx.Client(base_url=service.url, headers=headers, timeout=120)


def sign_in(service: Service, username: str) -> str:
    """A fresh session's secret (POST /api/v1/sessions answers without credentials)."""
    with service.client() as anonymous:
        response = anonymous.post(
            "/api/v1/sessions", json={"username": username, "password": PASSWORD}
        )
    assert response.status_code == 201, describe(response)
    token: str = response.json()["token"]
    return token


def table_against_schema(service: Service) -> list[str]:
    """Every served operation has a row in ENDPOINTS (or is public), and every row is served."""
    schema = httpx.get(f"{service.url}/schema/openapi.json", timeout=30)
    assert schema.status_code == 200, describe(schema)
    served = {
        (method.upper(), path)
        for path, operations in schema.json()["paths"].items()
        for method in operations
        if method in ("get", "put", "post", "patch", "delete")
    }
    table = {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS.values()}
    return [
        *(f"{m} {p}: served, but no row in ENDPOINTS" for m, p in sorted(served - PUBLIC - table)),
        *(f"{m} {p}: a row in ENDPOINTS, but not served" for m, p in sorted(table - served)),
        *(f"{m} {p}: public, but not served" for m, p in sorted(PUBLIC - served)),
    ]


def public_endpoints(service: Service) -> list[str]:
    """/health, /ready, the schema and signing in answer without credentials."""
    wrong = []
    with service.client() as anonymous:
        for path in ("/health", "/ready", "/schema/openapi.json"):
            response = anonymous.get(path)
            if response.status_code != 200:
                wrong.append(f"anonymous GET {path}: expected 200, got {describe(response)}")
    sign_in(service, "audrey")
    return wrong


def unauthenticated_calls(service: Service) -> list[str]:
    """Without credentials, or with a bearer secret the server never issued, every endpoint
    in the table answers 401 as problem+json."""
    wrong = []
    for bearer in (None, "Bearer not-a-session", "Bearer gov_000000000000_not-a-token"):
        with bearer_client(service, bearer) as client:
            for endpoint in ENDPOINTS.values():
                response = endpoint.call(client)
                if response.status_code != 401 or not is_problem(response):
                    wrong.append(
                        f"{bearer or 'no credentials'} {endpoint.method} {endpoint.path}: "
                        f"expected 401 problem+json, got {describe(response)}"
                    )
    return wrong


def role_matrix(service: Service) -> list[str]:
    """Every (role, endpoint) cell, against MAY_CALL."""
    wrong = []
    with ExitStack() as stack:
        clients = {
            role: stack.enter_context(service.client(who)) for role, who in PLAYED_BY.items()
        }
        for name, endpoint in in_call_order():
            for role, client in clients.items():
                principal = principal_name(service, PLAYED_BY[role])
                allowed = name in MAY_CALL[role]
                for problem in check_cell(client, endpoint, allowed, principal):
                    wrong.append(f"{role} {endpoint.method} {endpoint.path}: {problem}")
    return wrong


def test_the_spec_names_every_role_and_only_known_endpoints() -> None:
    assert set(MAY_CALL) == set(PLAYED_BY)
    for role, names in MAY_CALL.items():
        assert names <= set(ENDPOINTS), f"{role}: no such endpoint {names - set(ENDPOINTS)}"


def test_access_matrix(service: Service) -> None:
    """One served process per backend for the table check, the 401s and the whole matrix;
    every mismatch is listed, not just the first."""
    wrong = [
        *table_against_schema(service),
        *public_endpoints(service),
        *unauthenticated_calls(service),
        *role_matrix(service),
    ]
    assert not wrong, f"{len(wrong)} mismatches:\n" + "\n".join(wrong)


def test_me_and_sign_out_for_every_principal(service: Service) -> None:
    """Each person signs in afresh, asks who they are, signs out, and the session is gone;
    a token's sign-out answers too, and leaves the token working."""
    for role, who in PLAYED_BY.items():
        machine = who in MACHINES
        secret = service.tokens[who] if machine else sign_in(service, who)
        with bearer_client(service, f"Bearer {secret}") as client:
            me = client.get("/api/v1/me")
            assert me.status_code == 200, f"{who}: {describe(me)}"
            assert me.json()["name"] == principal_name(service, who)
            assert me.json()["kind"] == ("token" if machine else "user")
            assert me.json()["roles"] == [role]
            if who in PEOPLE:
                assert me.json()["fullName"] == PEOPLE[who][0]

            signed_out = client.delete("/api/v1/sessions/current")
            assert signed_out.status_code == 204, f"{who}: {describe(signed_out)}"
            after = client.get("/api/v1/me")
            if machine:
                assert after.status_code == 200, f"{who}: {describe(after)}"
            else:
                assert after.status_code == 401 and is_problem(after), f"{who}: {describe(after)}"
    # Signing out the fresh sessions left the fixture's sessions alone.
    with service.client("audrey") as client:
        assert client.get("/api/v1/me").status_code == 200
