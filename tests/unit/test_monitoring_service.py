"""Production monitoring's use cases on the in-memory unit of work: a batch stored once
with its audit event, a breach recorded with the revocation it causes in one unit of work
(retried whole when the audit seq was taken), and the refusals, which write nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import governance.connectors.files as files
from governance.domain.audit import verify_chain
from governance.domain.errors import ConflictError, InputError, NotFoundError
from governance.domain.records import CheckedData, MonitoredRequest, ReceivedTotals
from governance.services.monitoring import ProductionMonitoring
from governance.services.people import People
from governance.services.policies import PolicyLibrary
from governance.services.workflow import Workflow
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork
from tests.unit.test_workflow_service import (
    DANA,
    MARIA,
    NOW,
    StubChecks,
    StubPeople,
    StubPolicies,
    StubSource,
    checked,
)

POLICY: dict[str, Any] = {
    "apiVersion": "governance/v1",
    "kind": "PromotionPolicy",
    "metadata": {"name": "monitored", "version": 1},
    "appliesTo": {"riskTier": "medium", "targets": ["production"]},
    "checks": [
        {"id": "perf", "type": "performance", "rules": [{"metric": "accuracy", "min": 0.8}]}
    ],
    "approvals": {"quorum": 1, "roles": ["model_risk_officer"], "expiresAfterDays": 365},
    "waivers": {"allowed": False},
    "monitoring": {"performance": {"schedule": "daily", "onBreach": "revoke"}, "minRows": 10},
}


class FolderBlobs:
    """The content store as a plain folder; nothing uploaded, so data is read where it is."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def stored(self, sha256: str) -> list[Path]:
        return []

    def path_of(self, sha256: str, suffix: str) -> Path:
        return self.root / f"{sha256}{suffix}"

    def write(self, sha256: str, suffix: str, payload: bytes) -> Path:
        target = self.path_of(sha256, suffix)
        target.write_bytes(payload)
        return target


def rows(correct: bool, at: datetime, n: int = 40) -> pd.DataFrame:
    outcome = [i % 2 for i in range(n)]
    return pd.DataFrame(
        {
            "x": [float(i) for i in range(n)],
            "prediction": outcome if correct else [1 - o for o in outcome],
            "outcome": outcome,
            "timestamp": [at] * n,
        }
    )


@pytest.fixture
def uow() -> FakeUnitOfWork:
    units = FakeUnitOfWork()
    units.models.people = {"olga", "dana"}
    return units


@pytest.fixture
def workflow(uow: FakeUnitOfWork) -> Workflow:
    """The workflow of the workflow's unit tests, on the same unit of work."""
    return Workflow(
        uow,
        cast(People, StubPeople()),
        cast(PolicyLibrary, StubPolicies(samples.policy())),
        Ed25519PrivateKey.generate(),
        StubSource(),  # type: ignore[arg-type]  # a source that only hashes and refuses
        clock=lambda: NOW,
        checks=StubChecks(0.9),
    )


@pytest.fixture
def monitoring(uow: FakeUnitOfWork, workflow: Workflow, tmp_path: Path) -> ProductionMonitoring:
    (tmp_path / "d.csv").write_text("x,y\n1.0,0\n2.0,1\n")
    uow.monitoring.versions[("credit", "1")] = 7
    uow.monitoring.checked[7] = CheckedData(
        ["x", "y"], "a" * 64, str(tmp_path / "d.csv"), "csv", "y", "classification", None
    )
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    return ProductionMonitoring(
        uow,
        workflow,
        FolderBlobs(blobs),
        source=files,
        clock=lambda: NOW,  # type: ignore[arg-type]
    )


def promoted(uow: FakeUnitOfWork, workflow: Workflow, tmp_path: Path) -> str:
    """credit 1 promoted at NOW under the monitored policy."""
    request_id = checked(workflow, tmp_path)
    workflow.sign(MARIA, request_id, "approve", "fine", "pw")
    workflow.promote(DANA, request_id)
    uow.monitoring.requests.append(MonitoredRequest(request_id, 7, "credit", "1", POLICY, NOW))
    uow.monitoring.states[request_id] = "promoted"
    return request_id


def actions(uow: FakeUnitOfWork) -> list[str]:
    return [e.event.action for e in uow.audit.events()]


def test_a_batch_is_stored_once_with_its_audit_event(
    uow: FakeUnitOfWork, monitoring: ProductionMonitoring
) -> None:
    sent = monitoring.ingest("serving", "credit", "1", "b-1", rows(True, NOW))
    assert sent.replayed is False and sent.rows == 40 and sent.outcomes == 40
    again = monitoring.ingest("serving", "credit", "1", "b-1", rows(True, NOW))
    assert again.replayed is True and again.sha256 == sent.sha256
    with pytest.raises(ConflictError, match="a batch id is taken once"):
        monitoring.ingest("serving", "credit", "1", "b-1", rows(False, NOW))
    assert actions(uow) == ["predictions.ingested"]
    event = uow.audit.events()[0].event
    assert event.subject == "model:credit@1" and event.payload["batch_id"] == "b-1"
    assert [b.batch_id for b in monitoring.batches("credit", "1")] == ["b-1"]
    assert monitoring.received("credit", "1") == ReceivedTotals(
        batches=1, rows=40, outcomes=40, last_at=NOW
    )


def test_a_batch_id_another_writer_took_meanwhile_answers_its_batch(
    uow: FakeUnitOfWork, monitoring: ProductionMonitoring
) -> None:
    first = monitoring.ingest("serving", "credit", "1", "b-0", rows(True, NOW))
    rival = uow.monitoring.batch(7, "b-0")
    assert rival is not None
    uow.monitoring.rival = replace(rival, batch_id="b-1")
    sent = monitoring.ingest("serving", "credit", "1", "b-1", rows(True, NOW))
    assert sent.replayed is True and sent.sha256 == first.sha256
    assert actions(uow) == ["predictions.ingested"]  # the rival's event is the rival's


def test_a_breach_and_its_revocation_are_one_unit_of_work(
    uow: FakeUnitOfWork, workflow: Workflow, monitoring: ProductionMonitoring, tmp_path: Path
) -> None:
    request_id = promoted(uow, workflow, tmp_path)
    monitoring.ingest("serving", "credit", "1", "bad", rows(False, NOW + timedelta(hours=1)))
    before = len(actions(uow))
    uow.taken = 1  # the first try of the outcome's unit loses the audit seq: run again whole
    [run] = monitoring.run_due(NOW + timedelta(days=1, minutes=1))
    assert (run.monitor, run.status, run.action) == ("performance", "breach", "revoked")
    assert run.due_at == NOW + timedelta(days=1) and run.rows == 40
    assert uow.taken == 0  # the lost try was made, and undone whole
    assert actions(uow)[before:] == ["request.revoke", "monitoring.breach"]
    breach = uow.audit.events()[-1].event
    assert breach.payload["request_id"] == request_id and breach.payload["action"] == "revoked"
    verify_chain(uow.audit.events())
    assert workflow.get_request(request_id).state == "revoked"
    assert run.id in uow.monitoring.locked and request_id in uow.promotions.locked
    assert [r.status for r in monitoring.runs(request_id)] == ["breach"]
    # the slot is settled: the next tick runs nothing
    assert monitoring.run_due(NOW + timedelta(days=1, minutes=2)) == []


def test_a_clean_window_passes_and_a_revoked_request_is_only_alerted(
    uow: FakeUnitOfWork, workflow: Workflow, monitoring: ProductionMonitoring, tmp_path: Path
) -> None:
    request_id = promoted(uow, workflow, tmp_path)
    monitoring.ingest("serving", "credit", "1", "good", rows(True, NOW + timedelta(hours=1)))
    [run] = monitoring.run_due(NOW + timedelta(days=1, minutes=1))
    assert run.status == "pass" and run.action is None
    assert actions(uow)[-1] == "monitoring.checked"
    # revoked by hand after the check found it promoted: the breach alerts, revokes nothing
    monitoring.ingest(
        "serving", "credit", "1", "bad", rows(False, NOW + timedelta(days=1, hours=1))
    )
    workflow.revoke(MARIA, request_id, "withdrawn")
    [run] = monitoring.run_due(NOW + timedelta(days=2, minutes=1))
    assert run.status == "breach" and run.action == "alerted", run.summary
    assert actions(uow)[-2:] == ["request.revoke", "monitoring.breach"]
    assert actions(uow).count("request.revoke") == 1


def test_refusals_write_nothing(
    uow: FakeUnitOfWork, workflow: Workflow, monitoring: ProductionMonitoring, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="batchId"):
        monitoring.ingest("serving", "credit", "1", "bad id!", rows(True, NOW))
    with pytest.raises(NotFoundError):
        monitoring.ingest("serving", "credit", "2", "b-1", rows(True, NOW))
    uow.monitoring.versions[("credit", "3")] = 8
    with pytest.raises(ConflictError, match="has not been checked yet"):
        monitoring.ingest("serving", "credit", "3", "b-1", rows(True, NOW))
    with pytest.raises(NotFoundError):
        monitoring.run_now(MARIA, "nope", "performance")
    request_id = promoted(uow, workflow, tmp_path)
    with pytest.raises(InputError, match="does not set"):
        monitoring.run_now(MARIA, request_id, "drift")
    uow.monitoring.add_run(request_id, "performance", NOW, NOW)  # another process runs it
    with pytest.raises(ConflictError, match="running now"):
        monitoring.run_now(MARIA, request_id, "performance")
    uow.monitoring.states[request_id] = "revoked"
    with pytest.raises(ConflictError, match="only a promoted version is monitored"):
        monitoring.run_now(MARIA, request_id, "performance")
    assert not [a for a in actions(uow) if a.startswith(("predictions.", "monitoring."))]
