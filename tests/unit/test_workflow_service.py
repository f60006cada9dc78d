"""The promotion workflow's use cases on the in-memory unit of work: a request from its
submission to its revocation, each move with its audit event and (for a final decision) its
signed attestation, and the moves refused (segregation of duties, a wrong state), which
write nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.domain.audit import verify_chain
from governance.domain.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from governance.domain.evidence import Artifact, EvidenceManifest
from governance.domain.policy import PromotionPolicy
from governance.services.people import People, Principal
from governance.services.policies import PolicyLibrary
from governance.services.ports import GateRequest
from governance.services.workflow import Candidate, Workflow
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DANA = Principal("dana", "Dana", "user", frozenset({"data_scientist"}), person="dana")
MARIA = Principal("maria", "Maria", "user", frozenset({"model_risk_officer"}), person="maria")
OLGA = Principal("olga", "Olga", "user", frozenset({"model_risk_officer"}), person="olga")


@dataclass(frozen=True)
class Account:
    full_name: str


class StubPeople:
    """Every password is right: re-authentication is `People`'s to test."""

    def verify_password(self, username: str, password: str, **_: Any) -> Account:
        return Account(username.title())


class StubPolicies:
    def __init__(self, policy: PromotionPolicy) -> None:
        self.policy = policy

    def resolve(self, risk_tier: str, target: str) -> PromotionPolicy:
        return self.policy


class StubSource:
    """Every upload is the bytes the sample evidence names, and none is a pickle."""

    def sha256_file(self, path: Path) -> str:
        return "0" * 64

    def refuse_pickle(self, path: Path, field: str) -> None:
        return None


class StubChecks:
    def __init__(self, roc_auc: float) -> None:
        self.roc_auc = roc_auc
        self.asked: list[GateRequest] = []

    def __call__(
        self, policy: PromotionPolicy, request: GateRequest, allow_pickle: bool = False
    ) -> EvidenceManifest:
        """The sample manifest, answered for the request's model and files (which the
        workflow hashes again: `StubSource` says every file is zeros)."""
        self.asked.append(request)
        files = {
            "model": request.model, "data": request.data,
            "reference": request.reference, "champion": request.champion,
        }  # fmt: skip
        artifacts = [
            Artifact(role=role, uri=str(path), sha256="0" * 64, format=path.suffix[1:])  # type: ignore[arg-type]
            for role, path in files.items()
            if path is not None
        ]
        answered = {
            "model_name": request.model_name,
            "model_version": request.model_version,
            "artifacts": artifacts,
        }
        return samples.manifest(policy, self.roc_auc).model_copy(update=answered)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    units = FakeUnitOfWork()
    units.models.people = {"olga", "dana"}
    return units


@pytest.fixture
def checks() -> StubChecks:
    return StubChecks(0.9)


@pytest.fixture
def workflow(uow: FakeUnitOfWork, checks: StubChecks) -> Workflow:
    return Workflow(
        uow,
        cast(People, StubPeople()),
        cast(PolicyLibrary, StubPolicies(samples.policy())),
        Ed25519PrivateKey.generate(),
        StubSource(),  # type: ignore[arg-type]  # a source that only hashes and refuses
        clock=lambda: NOW,
        checks=checks,
    )


def candidate(tmp_path: Path) -> Candidate:
    return Candidate("credit", "1", "production", "y", tmp_path / "m.skops", tmp_path / "d.csv")


def checked(workflow: Workflow, tmp_path: Path) -> str:
    """A request of credit 1, owned by olga, whose checks passed: awaiting approval."""
    workflow.register_model(DANA, "credit", "medium", "olga")
    request_id = str(workflow.submit(DANA, candidate(tmp_path)).id)
    [job] = workflow.claimable_jobs()
    assert workflow.run_job(job)
    return request_id


def actions(uow: FakeUnitOfWork) -> list[str]:
    return [e.event.action for e in uow.audit.events()]


def test_a_request_goes_from_submission_to_revocation_on_the_trail(
    uow: FakeUnitOfWork, workflow: Workflow, checks: StubChecks, tmp_path: Path
) -> None:
    request_id = checked(workflow, tmp_path)
    assert checks.asked[0].model_name == "credit" and checks.asked[0].data == tmp_path / "d.csv"
    assert workflow.get_request(request_id).state == "awaiting_approval"
    assert workflow.claimable_jobs() == []  # the job is done and not run twice

    signed = workflow.sign(MARIA, request_id, "approve", "the AUC holds", "pw")
    assert signed.state == "approved"
    assert signed.expires_at == NOW + timedelta(days=365)
    assert [s.username for s in signed.signatures] == ["maria"]
    assert workflow.promote(DANA, request_id).state == "promoted"
    admission = workflow.admission("credit", "1", "production", "sha256:" + "0" * 64)
    assert admission.allowed and admission.request_id == request_id
    revoked = workflow.revoke(MARIA, request_id, "the bank withdrew it")
    assert revoked.state == "revoked"
    assert [d.decision for d in revoked.decisions] == ["approved", "promoted", "revoked"]
    assert not workflow.admission("credit", "1", "production").allowed

    assert actions(uow) == [
        "model.registered",
        "request.submitted",
        "request.start_checks",
        "gate.decision_recorded",
        "request.checks_passed",
        "signature.approve",
        "request.approve",
        "request.promote",
        "request.revoke",
    ]
    verify_chain(uow.audit.events())
    final = uow.audit.events()[-1].event.payload
    assert (final["from"], final["to"], final["reason"]) == (
        "promoted",
        "revoked",
        "the bank withdrew it",
    )
    assert workflow.attestation(final["final_decision_id"])["payloadType"]
    assert set(uow.promotions.locked) >= {request_id}  # every move locked the request
    listed = workflow.list_requests(state="revoked", model="credit")
    assert listed.total == 1 and listed.items[0].id == request_id


def test_the_owner_may_not_approve_and_the_refusal_writes_nothing(
    uow: FakeUnitOfWork, workflow: Workflow, tmp_path: Path
) -> None:
    request_id = checked(workflow, tmp_path)
    before = actions(uow)

    with pytest.raises(ForbiddenError, match="olga"):
        workflow.sign(OLGA, request_id, "approve", "looks right to me", "pw")

    assert actions(uow) == before
    assert uow.promotions.signatures(request_id) == []
    assert workflow.get_request(request_id).state == "awaiting_approval"


def test_moves_the_state_machine_lacks_are_refused(
    uow: FakeUnitOfWork, workflow: Workflow, tmp_path: Path
) -> None:
    workflow.register_model(DANA, "credit", "medium", "olga")
    request_id = str(workflow.submit(DANA, candidate(tmp_path)).id)
    before = actions(uow)

    with pytest.raises(ConflictError, match="submitted"):
        workflow.sign(MARIA, request_id, "approve", "too early", "pw")
    with pytest.raises(ConflictError):
        workflow.promote(DANA, request_id)
    with pytest.raises(ConflictError, match="open request"):
        workflow.submit(DANA, candidate(tmp_path))
    with pytest.raises(NotFoundError):
        workflow.promote(DANA, "no-such-request")

    assert actions(uow) == before
    assert workflow.get_request(request_id).state == "submitted"


def test_a_model_is_owned_by_a_person_and_keeps_its_tier(
    uow: FakeUnitOfWork, workflow: Workflow
) -> None:
    with pytest.raises(InputError, match="not a person"):
        workflow.register_model(DANA, "credit", "medium", "token:ci")
    workflow.register_model(DANA, "credit", "medium", None)  # owned by the person asking
    with pytest.raises(ConflictError, match="risk tier medium"):
        workflow.register_model(DANA, "credit", "high", None)
    assert workflow.get_model("credit").owner == "dana"
    assert actions(uow) == ["model.registered"]


def test_blocked_checks_then_an_expired_decision(
    uow: FakeUnitOfWork, workflow: Workflow, checks: StubChecks, tmp_path: Path
) -> None:
    checks.roc_auc = 0.5
    request_id = checked(workflow, tmp_path)
    assert workflow.get_request(request_id).state == "blocked"
    with pytest.raises(ConflictError, match="allows no waivers"):
        workflow.request_waiver(DANA, request_id, "the business needs it for the quarter", 5)

    request = uow.promotions.requests[request_id]
    uow.promotions.requests[request_id] = request.__class__(
        **{**vars(request), "state": "approved", "expires_at": NOW - timedelta(days=1)}
    )
    assert workflow.expire_due() == [request_id]
    assert workflow.get_request(request_id).state == "expired"
    assert actions(uow)[-1] == "request.expire"


def test_the_check_task_is_queued_with_the_request_and_only_if_it_commits(
    uow: FakeUnitOfWork, workflow: Workflow, tmp_path: Path
) -> None:
    workflow.register_model(DANA, "credit", "medium", "olga")
    request_id = str(workflow.submit(DANA, candidate(tmp_path)).id)
    [job] = workflow.claimable_jobs()
    assert uow.tasks.queued == [("governance.checks", {"job_id": job}, "checks", request_id)]
    with pytest.raises(ConflictError):  # the same version again: refused, nothing queued
        workflow.submit(DANA, candidate(tmp_path))
    assert len(uow.tasks.queued) == 1 and uow.tasks.pending == []


def test_a_check_job_run_again_after_a_crash_records_one_verdict(
    uow: FakeUnitOfWork, workflow: Workflow, checks: StubChecks, tmp_path: Path
) -> None:
    """A worker killed after the verdict committed, whose job procrastinate runs again on
    another worker (which claims it however recent the first claim: lease 0)."""
    workflow.register_model(DANA, "credit", "medium", "olga")
    request_id = str(workflow.submit(DANA, candidate(tmp_path)).id)
    [job] = workflow.claimable_jobs()
    assert workflow.run_job(job)
    uow.promotions.jobs[job] = replace(uow.promotions.jobs[job], status="running")
    workflow.job_lease_seconds = 0.0
    assert workflow.run_job(job)  # it ran again ...
    assert len(checks.asked) == 2
    assert actions(uow).count("gate.decision_recorded") == 1  # ... and recorded nothing
    assert actions(uow).count("request.checks_passed") == 1
    assert uow.promotions.effect_keys == {f"checks:{request_id}"}
    assert workflow.get_request(request_id).state == "awaiting_approval"


def test_a_job_that_failed_on_every_try_blocks_its_request_with_the_reason(
    uow: FakeUnitOfWork, workflow: Workflow, tmp_path: Path
) -> None:
    workflow.register_model(DANA, "credit", "medium", "olga")
    request_id = str(workflow.submit(DANA, candidate(tmp_path)).id)
    [job] = workflow.claimable_jobs()
    uow.promotions.jobs[job] = replace(uow.promotions.jobs[job], status="running")
    request = uow.promotions.requests[request_id]
    uow.promotions.requests[request_id] = replace(request, state="checking")
    workflow.give_up_job(job, "OperationalError: the database is restarting")
    blocked = workflow.get_request(request_id)
    assert blocked.state == "blocked"
    assert "after every try: OperationalError" in str(blocked.state_reason)
    assert uow.promotions.jobs[job].status == "failed"
