"""The folder connector (`folders:` in the connectors file) on a real drop folder: a version
folder the ML team writes is picked up, checked, signed, promoted (decision.json and the
signed report beside the model, the `production` symlink to the version), revoked (the
symlink removed); a symlink moved by hand, or bytes changed under it, are undone; a folder
that cannot be governed is told why in its decision.json."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, col, select

from governance.bootstrap import Governance
from governance.connectors.adult import TARGET
from governance.domain.errors import InputError
from governance.services.jobs import JobRunner
from governance.services.people import Principal
from governance.services.registries import SyncOutcome
from governance.store.tables import AuditEventRow, RegistryLink
from tests.service_fixtures import PASSWORD, open_with_people

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

CONNECTOR = "drop"
MODEL = "credit"
GOOD = "income-reweighed.skops"  # passes the high-risk policy
BAD = "income-full.skops"  # uses sex and race: blocked by its checks
DEFAULT = object()


@dataclass
class Stage:
    governance: Governance
    root: Path  # the connector's folder
    demo: Path
    people: dict[str, Principal]

    def sync(self) -> SyncOutcome:
        return self.governance.registries.sync(CONNECTOR)

    def run_checks(self) -> None:
        JobRunner(self.governance.workflow).run_pending()

    def drop(
        self,
        version: str,
        model_file: str = GOOD,
        candidate: Any = DEFAULT,
        data: str | None = "test.parquet",
        reference: str | None = "train.parquet",
    ) -> Path:
        """Write a version folder as the ML team would: candidate.yaml (a mapping is dumped,
        a string written as is, None leaves it out), the model, the data."""
        folder = self.root / MODEL / version
        folder.mkdir(parents=True)
        if candidate is DEFAULT:
            candidate = {"tier": "high", "label": TARGET}
        if isinstance(candidate, dict):
            candidate = yaml.safe_dump(candidate)
        if candidate is not None:
            (folder / "candidate.yaml").write_text(candidate, encoding="utf-8")
        shutil.copy(self.demo / model_file, folder / "model.skops")
        if data is not None:
            shutil.copy(self.demo / data, folder / f"data{Path(data).suffix}")
        if reference is not None:
            shutil.copy(self.demo / reference, folder / f"reference{Path(reference).suffix}")
        return folder

    def decision(self, version: str) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(
            (self.root / MODEL / version / "decision.json").read_text()
        )
        return record

    @property
    def link(self) -> Path:
        return self.root / MODEL / "production"

    def alias(self) -> str | None:
        return os.readlink(self.link) if self.link.is_symlink() else None


@pytest.fixture
def stage(database_url: str, tmp_path: Path, demo_dir: Path) -> Iterator[Stage]:
    root = tmp_path / "drop"
    root.mkdir()
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(f"folders:\n  - name: {CONNECTOR}\n    path: {root}\n")
    governance, people = open_with_people(database_url, tmp_path, connectors)
    yield Stage(governance, root, demo_dir, people)
    governance.close()


def approve_and_promote(stage: Stage, request_id: str) -> None:
    workflow = stage.governance.workflow
    for who in ("maria", "bob"):
        workflow.sign(stage.people[who], request_id, "approve", "checked the evidence", PASSWORD)
    workflow.promote(stage.people["dana"], request_id)


def promoted_version(stage: Stage, version: str) -> str:
    stage.drop(version)
    request_id: str = stage.sync().opened[0]
    stage.run_checks()
    approve_and_promote(stage, request_id)
    stage.sync()
    assert stage.alias() == version
    return request_id


def audit_actions(stage: Stage, action: str) -> list[AuditEventRow]:
    with Session(stage.governance.engine) as session:
        query = select(AuditEventRow).filter_by(action=action).order_by(col(AuditEventRow.seq))
        return list(session.exec(query))


def links(stage: Stage) -> list[RegistryLink]:
    with Session(stage.governance.engine) as session:
        return list(session.exec(select(RegistryLink)))


def test_round_trip(stage: Stage) -> None:
    stage.drop("v1", candidate={"tier": "high", "label": TARGET, "owner": "dana"})

    opened = stage.sync().opened
    assert len(opened) == 1
    assert stage.sync().opened == []  # found once
    request_id = opened[0]
    [link] = links(stage)
    assert (link.registry_model, link.registry_version) == (MODEL, "v1")
    workflow = stage.governance.workflow
    assert workflow.get_model(MODEL).risk_tier == "high"
    stage.run_checks()
    assert workflow.get_request(request_id).state == "awaiting_approval"
    stage.sync()
    assert stage.decision("v1")["status"] == "awaiting_approval"
    assert stage.decision("v1")["requestId"] == request_id
    assert stage.alias() is None and not stage.link.exists()

    approve_and_promote(stage, request_id)
    stage.sync()
    decision = stage.decision("v1")
    assert decision["status"] == "promoted"
    assert decision["requestId"] == request_id
    assert decision["decisionId"]
    [report] = (stage.root / MODEL / "v1" / "reports").glob("*")
    assert report.suffix == ".pdf"
    assert report.read_bytes().startswith(b"%PDF")
    assert decision["reportSha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    assert stage.alias() == "v1"  # relative: the drop folder can be moved or mounted
    served = stage.root / MODEL / "production" / "model.skops"  # what a server loads
    assert served.read_bytes() == (stage.demo / GOOD).read_bytes()
    assert workflow.admission(MODEL, "v1", "production").allowed
    assert [p.name for p in (stage.root / MODEL).iterdir() if p.name.startswith(".")] == []
    assert stage.sync().aliases_restored == []  # nothing to undo

    workflow.revoke(stage.people["maria"], request_id, "drift in production")
    stage.sync()
    assert stage.alias() is None and not stage.link.exists()
    decision = stage.decision("v1")
    assert decision["status"] == "revoked"
    assert decision["reason"] == "drift in production"
    assert not workflow.admission(MODEL, "v1", "production").allowed
    assert stage.sync().aliases_restored == []  # revoked: nothing may hold the alias
    assert stage.alias() is None


def test_alias_guard_moves_a_hand_set_alias_back(stage: Stage) -> None:
    promoted_version(stage, "v1")
    stage.drop("v2", model_file=BAD)  # governed too, so blocked by its checks
    [blocked] = stage.sync().opened
    stage.run_checks()
    assert stage.governance.workflow.get_request(blocked).state == "blocked"
    stage.sync()
    assert stage.decision("v2")["status"] == "blocked"
    assert stage.alias() == "v1"

    stage.link.unlink()
    stage.link.symlink_to("v2", target_is_directory=True)  # `ln -sfn v2 production`
    restored = stage.sync().aliases_restored
    assert stage.alias() == "v1"
    assert [(r.found, r.restored) for r in restored] == [("v2", "v1")]
    event = audit_actions(stage, "registry.alias_restored")[-1]
    assert event.actor == f"connector:{CONNECTOR}"
    assert event.payload["found"] == "v2" and event.payload["restored"] == "v1"
    assert "no valid approval" in event.payload["why"]

    stage.link.unlink()  # removed by hand: the alias is the gatekeeper's to move
    restored = stage.sync().aliases_restored
    assert stage.alias() == "v1"
    assert "removed by hand" in restored[0].why
    assert stage.sync().aliases_restored == []  # and nothing to do once it is right

    approved = hashlib.sha256((stage.demo / GOOD).read_bytes()).hexdigest()
    tampered = (stage.demo / BAD).read_bytes()
    (stage.root / MODEL / "v1" / "model.skops").write_bytes(tampered)  # in place, alias on it
    restored = stage.sync().aliases_restored
    assert stage.alias() is None and not stage.link.exists()
    assert [(r.found, r.restored) for r in restored] == [("v1", None)]
    event = audit_actions(stage, "registry.alias_restored")[-1]
    assert event.payload["found"] == "v1" and event.payload["restored"] is None
    why = event.payload["why"]
    assert hashlib.sha256(tampered).hexdigest() in why and f"not the approved {approved}" in why

    events = len(audit_actions(stage, "registry.alias_restored"))
    assert stage.sync().aliases_restored == []  # the changed bytes are not served again
    assert stage.alias() is None
    assert len(audit_actions(stage, "registry.alias_restored")) == events

    shutil.copy(stage.demo / GOOD, stage.root / MODEL / "v1" / "model.skops")  # put back
    stage.sync()
    assert stage.alias() == "v1"  # the approved bytes again: still promoted, so served


def test_a_folder_that_cannot_be_governed_is_told_why(stage: Stage) -> None:
    stage.drop("v0", candidate=None)  # no candidate.yaml: not asking to be governed
    no_label = stage.drop("v1", candidate={"tier": "high"})
    stage.drop("v2", candidate={"tier": "extreme", "label": TARGET})
    stage.drop("v3", candidate="- not\n- a mapping\n")
    stage.drop("v4", data=None)

    outcome = stage.sync()
    assert outcome.opened == []
    assert links(stage) == []
    assert not (stage.root / MODEL / "v0" / "decision.json").exists()
    assert f"{MODEL}@v0" not in outcome.refused

    decision = stage.decision("v1")
    assert decision["status"] == "incomplete"
    assert "label is missing" in decision["reason"]
    assert "name the label column" in decision["reason"]
    assert decision["requestId"] == ""
    assert outcome.refused[f"{MODEL}@v1"] == decision["reason"]
    decision = stage.decision("v2")
    assert decision["status"] == "incomplete"
    assert "'extreme'" in decision["reason"] and "low, medium or high" in decision["reason"]
    assert stage.decision("v3")["status"] == "incomplete"
    assert "must be a mapping" in stage.decision("v3")["reason"]
    decision = stage.decision("v4")
    assert decision["status"] == "refused"
    assert "has no data" in decision["reason"]
    assert "add data.parquet or data.csv" in decision["reason"]

    written = (stage.root / MODEL / "v4" / "decision.json").stat().st_mtime_ns
    again = stage.sync()
    assert again.opened == []
    assert again.refused == outcome.refused
    assert (stage.root / MODEL / "v4" / "decision.json").stat().st_mtime_ns == written
    assert stage.alias() is None

    # candidate.yaml is often fixed after the fact: an incomplete folder is looked at again.
    (no_label / "candidate.yaml").write_text(yaml.safe_dump({"tier": "high", "label": TARGET}))
    [request_id] = stage.sync().opened
    assert stage.governance.workflow.get_request(request_id).model == MODEL
    assert stage.governance.workflow.get_model(MODEL).risk_tier == "high"

    # The model is governed at high now; a version that says low would change the rules.
    stage.drop("v5", candidate={"tier": "low", "label": TARGET})
    outcome = stage.sync()
    assert outcome.opened == []
    decision = stage.decision("v5")
    assert decision["status"] == "refused"
    assert "governed at risk tier high" in decision["reason"]
    assert "says low" in decision["reason"]
    assert [link.registry_version for link in links(stage)] == ["v1"]


def test_a_missing_folder_is_a_clear_error(stage: Stage) -> None:
    stage.root.rmdir()
    with pytest.raises(InputError) as raised:
        stage.sync()
    assert str(stage.root) in str(raised.value)
    assert "is not a folder" in str(raised.value)
    [status] = [s for s in stage.governance.registries.status() if s.name == CONNECTOR]
    assert status.kind == "FolderRegistry"
    assert status.last_error.startswith("InputError: ")
    assert str(stage.root) in status.last_error
    assert status.last_sync is not None

    stage.root.mkdir()  # the share is mounted again
    assert stage.sync().last_error is None


def test_a_deleted_version_folder_loses_the_alias(stage: Stage) -> None:
    """The team cleans up and deletes the promoted version's folder: the symlink dangles,
    nothing approved can be served, so the alias goes (and the guard does not fail)."""
    promoted_version(stage, "v1")
    shutil.rmtree(stage.root / MODEL / "v1")
    restored = stage.sync().aliases_restored
    assert stage.alias() is None
    assert [(r.found, r.restored) for r in restored] == [("v1", None)]
    assert "has no model" in restored[0].why
    assert stage.sync().aliases_restored == []
    assert stage.sync().last_error is None


def test_a_hand_edited_decision_file_does_not_stop_the_connector(stage: Stage) -> None:
    stage.drop("v1", data=None)
    assert stage.sync().opened == []
    assert stage.decision("v1")["status"] == "refused"
    (stage.root / MODEL / "v1" / "decision.json").write_text("{not json")
    stage.drop("v2")
    assert len(stage.sync().opened) == 1  # the other folder is still taken
    assert stage.decision("v1")["status"] == "refused"  # and the broken one told again


def test_a_pickled_model_is_refused_unless_the_connector_allows_it(stage: Stage) -> None:
    folder = stage.drop("v1")
    (folder / "model.skops").rename(folder / "model.joblib")  # a pickle runs code on load
    outcome = stage.sync()
    assert outcome.opened == [] and links(stage) == []
    decision = stage.decision("v1")
    assert decision["status"] == "refused"
    assert "model.joblib, a pickle, which runs code when it is loaded" in decision["reason"]
    assert "allowPickle" in decision["reason"]
