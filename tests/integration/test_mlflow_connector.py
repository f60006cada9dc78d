"""The MLflow registry connector against a real `mlflow server` on loopback: a version the
ML team logs and tags is picked up, checked, signed, promoted (the alias is set and the
decision written back), revoked (the alias is removed); an alias moved by hand is moved
back; a version that cannot be governed is told why."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from sqlmodel import Session, select

from governance.bootstrap import Governance
from governance.connectors.adult import TARGET
from governance.services.jobs import JobRunner
from governance.services.people import Principal
from governance.services.registries import SyncOutcome
from governance.store.tables import AuditEventRow, RegistryLink
from tests.mlflow_fixtures import MlflowServer, log_demo_version, log_version
from tests.service_fixtures import (
    PASSWORD,
    approve_and_promote,
    first_request,
    open_with_people,
    start_service,
    stop_service,
    wait_for,
)

pytest_plugins = ["tests.db_fixtures", "tests.mlflow_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

CONNECTOR = "mlflow-test"


@dataclass
class Stage:
    governance: Governance
    client: MlflowClient
    model: str
    people: dict[str, Principal]
    files: Path

    def sync(self) -> SyncOutcome:
        return self.governance.registries.sync(CONNECTOR)

    def run_checks(self) -> None:
        JobRunner(self.governance.workflow).run_pending()

    def log(self, model_file: str, **tags: str) -> str:
        all_tags = {"governance.tier": "high", "governance.label": TARGET, **tags}
        return log_version(
            MlflowServer(self.client.tracking_uri, Path()),
            self.model,
            self.files / model_file,
            self.files / "data.parquet",
            self.files / "reference.parquet",
            all_tags,
        )

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.model, version).tags)

    def alias(self) -> str | None:
        return self.client.get_registered_model(self.model).aliases.get("production")


@pytest.fixture
def stage(
    database_url: str,
    tmp_path: Path,
    mlflow_server: MlflowServer,
    demo_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Stage]:
    backend = request.node.callspec.params["database_url"]
    model = f"credit-{request.node.originalname.removeprefix('test_')}-{backend}"[:60]
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(  # one server for the session: each test governs its own model
        f"mlflow:\n  - name: {CONNECTOR}\n    trackingUri: {mlflow_server.url}\n"
        f"    alias: production\n    models: [{model}]\n"
    )
    governance, people = open_with_people(database_url, tmp_path, connectors)
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(demo_dir / "test.parquet", files / "data.parquet")
    shutil.copy(demo_dir / "train.parquet", files / "reference.parquet")
    for model_file in demo_dir.glob("*.skops"):
        shutil.copy(model_file, files / model_file.name)
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    yield Stage(governance, client, model, people, files)
    governance.close()


def sign_and_promote(stage: Stage, request_id: str) -> None:
    workflow = stage.governance.workflow
    for who in ("maria", "bob"):
        workflow.sign(stage.people[who], request_id, "approve", "checked the evidence", PASSWORD)
    workflow.promote(stage.people["dana"], request_id)


def audit_actions(stage: Stage, action: str) -> list[AuditEventRow]:
    with Session(stage.governance.engine) as session:
        return list(session.exec(select(AuditEventRow).filter_by(action=action)))


def test_round_trip(stage: Stage) -> None:
    version = stage.log("income-reweighed.skops", **{"governance.owner": "dana"})

    opened = stage.sync().opened
    assert len(opened) == 1
    assert stage.sync().opened == []  # found once
    request_id = opened[0]
    stage.run_checks()
    workflow = stage.governance.workflow
    assert workflow.get_request(request_id).state == "awaiting_approval"
    stage.sync()
    assert stage.tags(version)["governance.status"] == "awaiting_approval"
    assert stage.alias() is None

    sign_and_promote(stage, request_id)
    stage.sync()
    tags = stage.tags(version)
    assert tags["governance.status"] == "promoted"
    assert tags["governance.requestId"] == request_id
    assert len(tags["governance.reportSha256"]) == 64
    assert stage.alias() == version
    run_id = stage.client.get_model_version(stage.model, version).run_id
    reports = [a.path for a in stage.client.list_artifacts(run_id, "governance/reports")]
    assert len(reports) == 1 and reports[0].endswith(".pdf")
    admission = workflow.admission(stage.model, version, "production")
    assert admission.allowed

    workflow.revoke(stage.people["maria"], request_id, "drift in production")
    stage.sync()
    assert stage.alias() is None
    tags = stage.tags(version)
    assert tags["governance.status"] == "revoked"
    assert tags["governance.reason"] == "drift in production"
    assert not workflow.admission(stage.model, version, "production").allowed


def test_alias_guard_moves_a_hand_set_alias_back(stage: Stage) -> None:
    approved = stage.log("income-reweighed.skops")
    request_id = stage.sync().opened[0]
    stage.run_checks()
    sign_and_promote(stage, request_id)
    stage.sync()
    assert stage.alias() == approved
    unapproved = stage.log("income-full.skops")  # governed too, so blocked by its checks
    stage.sync()
    stage.run_checks()

    stage.client.set_registered_model_alias(stage.model, "production", unapproved)
    restored = stage.sync().aliases_restored
    assert stage.alias() == approved
    assert [r.found for r in restored] == [unapproved]
    event = audit_actions(stage, "registry.alias_restored")[-1]
    assert event.payload["found"] == unapproved and event.payload["restored"] == approved
    assert "no valid approval" in event.payload["why"]

    stage.client.delete_registered_model_alias(stage.model, "production")
    stage.sync()
    assert stage.alias() == approved  # the alias is the gatekeeper's to move
    assert stage.sync().aliases_restored == []  # and nothing to do once it is right


def test_a_version_that_cannot_be_governed_is_told_why(stage: Stage) -> None:
    server = MlflowServer(stage.client.tracking_uri, Path())
    no_label = log_version(
        server,
        stage.model,
        stage.files / "income-reweighed.skops",
        stage.files / "data.parquet",
        stage.files / "reference.parquet",
        {"governance.tier": "high"},
    )
    outcome = stage.sync()
    assert outcome.opened == []
    assert "governance.label is missing" in outcome.refused[f"{stage.model}@{no_label}"]
    tags = stage.tags(no_label)
    assert tags["governance.status"] == "incomplete"
    assert "governance.label" in tags["governance.reason"]
    with Session(stage.governance.engine) as session:
        assert session.exec(select(RegistryLink)).all() == []

    wrong_tier = stage.log("income-reweighed.skops", **{"governance.tier": "extreme"})
    stage.sync()
    assert "low, medium or high" in stage.tags(wrong_tier)["governance.reason"]

    # Tags are often set one at a time: once the label is there, the version is taken.
    stage.client.set_model_version_tag(stage.model, no_label, "governance.label", TARGET)
    assert len(stage.sync().opened) == 1


def test_a_pickled_model_is_refused_unless_the_connector_allows_it(stage: Stage) -> None:
    """A pickle runs code when it is loaded: the connector reads skops only, unless told
    that everyone who can write to this registry is trusted."""
    import mlflow
    import mlflow.sklearn
    import skops.io

    model_file = stage.files / "income-reweighed.skops"
    fitted = skops.io.load(model_file, trusted=skops.io.get_untrusted_types(file=model_file))
    mlflow.set_tracking_uri(stage.client.tracking_uri)
    try:
        with mlflow.start_run() as run:
            logged = mlflow.sklearn.log_model(
                fitted,
                name="model",
                serialization_format="cloudpickle",
                registered_model_name=stage.model,
            )
            stage.client.log_artifact(
                run.info.run_id, str(stage.files / "data.parquet"), "governance"
            )
    finally:
        mlflow.set_tracking_uri("")
    version = str(logged.registered_model_version)
    stage.client.set_model_version_tag(stage.model, version, "governance.tier", "high")
    stage.client.set_model_version_tag(stage.model, version, "governance.label", TARGET)

    outcome = stage.sync()
    assert outcome.opened == []
    tags = stage.tags(version)
    assert tags["governance.status"] == "refused"
    assert "cloudpickle, which runs code when it is loaded" in tags["governance.reason"]
    assert "serialization_format='skops'" in tags["governance.reason"]
    with Session(stage.governance.engine) as session:
        assert session.exec(select(RegistryLink)).all() == []
    assert stage.sync().refused == outcome.refused  # not fetched again


def test_served_the_registry_webhook_wakes_the_connector(
    database_url: str, tmp_path: Path, mlflow_server: MlflowServer, demo_dir: Path
) -> None:
    """`governance serve` with a connector that polls only hourly: MLflow's own webhooks
    (signed with a shared secret) make it pick a version up, and put an alias removed by
    hand back, within seconds; a promotion reaches MLflow within seconds too."""
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    model, secret = f"credit-served-{backend}", "a-secret-shared-with-mlflow"
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(
        f"mlflow:\n  - name: {CONNECTOR}\n    trackingUri: {mlflow_server.url}\n"
        f"    pollSeconds: 3600\n    webhookSecretEnv: GOVERNANCE_TEST_MLFLOW_SECRET\n"
        f"    models: [{model}]\n"
    )
    service = start_service(
        tmp_path / "home",
        database_url,
        env={"GOVERNANCE_CONNECTORS": str(connectors), "GOVERNANCE_TEST_MLFLOW_SECRET": secret},
    )
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    events_url = f"{service.url}/api/v1/connectors/{CONNECTOR}/events"
    hook = client.create_webhook(
        name=f"governance-{backend}",
        url=events_url,
        events=["model_version_tag.set", "model_version_alias.deleted"],
        secret=secret,
    )
    try:
        forged = httpx.post(events_url, json={"entity": "model_version"}, timeout=10)
        assert forged.status_code == 401, forged.text

        version = log_demo_version(
            mlflow_server, model, demo_dir, "income-reweighed.skops", tmp_path / "team"
        )
        request_id = wait_for(lambda: first_request(service, model), "the request opened")
        service.wait_for_state(request_id, "awaiting_approval")
        approve_and_promote(service, request_id)

        def alias() -> str | None:
            return client.get_registered_model(model).aliases.get("production")

        assert wait_for(alias, "the alias set on promotion") == version

        def report_sha256() -> str | None:
            return client.get_model_version(model, version).tags.get("governance.reportSha256")

        wait_for(report_sha256, "the signed report's sha256 on the version")
        client.delete_registered_model_alias(model, "production")
        assert wait_for(alias, "the alias put back") == version  # the webhook woke the guard

        def restorations() -> list[dict] | None:
            with service.client("audrey") as api:
                params = {"action": "registry.alias_restored"}
                return api.get("/api/v1/audit", params=params).json()["items"] or None

        restored = wait_for(restorations, "the restoration on the audit trail")
        assert [event["event"]["payload"]["why"] for event in restored] == [
            f"the alias was removed by hand; {model} {version} is the promoted version"
        ]
    finally:
        client.delete_webhook(hook.webhook_id)
        stop_service(service)
