"""The whole loop against real parts: an ML team logs a model to a real MLflow server; the
gatekeeper (`governance serve`, its own process) picks it up, checks it, two people sign,
it is promoted and the `production` alias is set in MLflow; the serving system logs
production predictions that drifted; the drift monitor breaches, which revokes the
version: admission turns to deny, the alias is removed in MLflow, and a webhook receiver
started here gets the breach and the revocation, signed."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
from mlflow import MlflowClient

from governance.connectors import files
from governance.connectors.adult import TARGET
from tests.mlflow_fixtures import MlflowServer, log_demo_version
from tests.service_fixtures import (
    Service,
    approve_and_promote,
    first_request,
    start_service,
    stop_service,
    wait_for,
)

pytest_plugins = ["tests.db_fixtures", "tests.mlflow_fixtures"]


@pytest.fixture
def received() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on loopback: its URL, and what it got (headers and body)."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", got
    server.shutdown()
    server.server_close()


def test_drift_in_production_revokes_removes_the_alias_and_alerts(
    database_url: str,
    tmp_path: Path,
    mlflow_server: MlflowServer,
    demo_dir: Path,
    received: tuple[str, list[dict[str, Any]]],
) -> None:
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    model = f"credit-loop-{backend}"
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(
        f"mlflow:\n  - name: mlflow-main\n    trackingUri: {mlflow_server.url}\n"
        f"    pollSeconds: 2\n    models: [{model}]\n"
    )
    # The receiver is on loopback: an admin allow-lists it by host and port, plain http.
    receiver = urlsplit(received[0]).netloc
    env = {
        "GOVERNANCE_CONNECTORS": str(connectors),
        "GOVERNANCE_WEBHOOK_ALLOW_HOSTS": receiver,
        "GOVERNANCE_WEBHOOK_ALLOW_HTTP": "1",
    }
    service = start_service(tmp_path / "home", database_url, env=env)
    try:
        run_the_loop(service, mlflow_server, model, demo_dir, tmp_path, received)
    finally:
        stop_service(service)


def run_the_loop(
    service: Service,
    server: MlflowServer,
    model: str,
    demo_dir: Path,
    tmp_path: Path,
    received: tuple[str, list[dict[str, Any]]],
) -> None:
    url, got = received
    with service.client("admin") as api:
        events = ["monitoring.breach", "request.revoked"]
        subscribed = api.post("/api/v1/webhooks", json={"url": url, "events": events})
        assert subscribed.status_code == 201, subscribed.text
        secret = subscribed.json()["secret"]

    # The ML team's side: log, register and tag a model version in MLflow.
    version = log_demo_version(
        server,
        model,
        demo_dir,
        "income-reweighed.skops",
        tmp_path / "team",
        **{"governance.owner": "dana"},
    )
    mlflow = MlflowClient(tracking_uri=server.url, registry_uri=server.url)

    def alias() -> str | None:
        return mlflow.get_registered_model(model).aliases.get("production")

    request_id = wait_for(lambda: first_request(service, model), "the request opened")
    service.wait_for_state(request_id, "awaiting_approval")
    approve_and_promote(service, request_id)
    assert wait_for(alias, "the alias set on promotion") == version
    assert admission(service, model, version) == "allow"

    # The serving system's side: the day's predictions, from people the model never saw.
    test = pd.read_parquet(demo_dir / "test.parquet").iloc[:2000]
    fitted, _ = files.load_model(demo_dir / "income-reweighed.skops")
    features = test.drop(columns=[TARGET])
    logs = drifted(features).assign(
        prediction=fitted.predict(drifted(features)[list(fitted.feature_names_in_)]),
        timestamp=datetime.now(UTC),
    )
    sink = io.BytesIO()
    logs.to_parquet(sink, index=False)
    with service.client("serving") as api:
        stored = api.post(
            f"/api/v1/models/{model}/versions/{version}/predictions",
            params={"batchId": "2026-11-29"},
            content=sink.getvalue(),
            headers={"Content-Type": "application/vnd.apache.parquet"},
        )
        assert stored.status_code == 201, stored.text
    with service.client("maria") as api:
        checked = api.post(f"/api/v1/requests/{request_id}/monitoring/drift")
        assert checked.status_code in (200, 201), checked.text
        assert checked.json()["status"] == "breach" and checked.json()["action"] == "revoked"

    assert admission(service, model, version) == "deny"
    assert wait_for(lambda: alias() is None or None, "the alias removed") is True

    def status() -> str | None:
        # the connector writes the tags after it moves the alias: wait for them too
        tags = mlflow.get_model_version(model, version).tags
        return tags["governance.status"] if tags.get("governance.status") == "revoked" else None

    assert wait_for(status, "the revoked tag") == "revoked"

    wait_for(lambda: len(got) >= 2 or None, "both alerts delivered", seconds=30)
    bodies = [signed_body(secret, request) for request in got]
    # one transaction: the revocation, then the breach that names it (action: revoked)
    assert [body["event"] for body in bodies] == ["request.revoked", "monitoring.breach"]
    assert bodies[1]["data"]["action"] == "revoked" and bodies[1]["data"]["monitor"] == "drift"
    assert all(model in body["text"] for body in bodies)  # Slack shows `text`


def drifted(rows: pd.DataFrame) -> pd.DataFrame:
    """Older, longer-working people with another mix of sexes, races and work classes."""
    return rows.assign(
        age=rows["age"] + 25,
        hours_per_week=rows["hours_per_week"] + 20,
        sex=rows["sex"].map({"Male": "Female", "Female": "Male"}),
        race="Black",
        workclass="Self-emp-inc",
    )


def signed_body(secret: str, request: dict[str, Any]) -> dict[str, Any]:
    """The body, once its signature checks out the way the README tells receivers to."""
    timestamp = request["headers"]["x-governance-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(f"sha256={expected}", request["headers"]["x-governance-signature"])
    body: dict[str, Any] = json.loads(request["body"])
    return body


def admission(service: Service, model: str, version: str) -> str:
    with service.client("serving") as api:
        answer = api.get(f"/api/v1/admission/{model}/{version}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["decision"])
