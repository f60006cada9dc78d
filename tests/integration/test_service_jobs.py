"""Check jobs at the service layer, on both databases: a job interrupted by a crash is
taken again once its claim lapses; a job that runs twice leaves one verdict; approvals
expire on their date and admission turns to deny."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

import governance.connectors.files as files
from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.connectors.adult import TARGET
from governance.domain.errors import ConflictError
from governance.services.people import SYSTEM, People
from governance.services.workflow import AdmissionCache, Candidate, Workflow
from governance.store.tables import GateDecision, Job, utcnow
from tests.homes import initialise_home
from tests.service_fixtures import PASSWORD, fast_policies

pytest_plugins = ["tests.db_fixtures"]


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def governance(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GOVERNANCE_POLICIES", str(fast_policies(tmp_path / "policies")))
    settings = Settings.from_env(database_url, tmp_path / "home")
    initialise_home(settings, PASSWORD)
    opened = open_governance(settings)
    people = {"dana": "data_scientist", "maria": "model_risk_officer", "bob": "business_owner"}
    for name, role in people.items():  # dana owns the models: an owner is a person
        opened.people.add_user(SYSTEM, name, name.title(), PASSWORD, [role])
    yield opened
    opened.close()


def workflow_with(governance: Governance, clock: Clock) -> Workflow:
    return Workflow(
        governance.units,
        governance.people,
        governance.workflow.policies,
        governance.signing_key,
        files,
        clock=clock,
        job_lease_seconds=60,
    )


def candidate(demo_dir: Path, version: str = "2") -> Candidate:
    return Candidate(
        model="income",
        version=version,
        target="production",
        label=TARGET,
        artifact=demo_dir / "income-reweighed.skops",
        data=demo_dir / "test.parquet",
        reference=demo_dir / "train.parquet",
    )


def person(people: People, name: str):  # the principal behind a fresh session
    return people.authenticate(people.sign_in(name, PASSWORD, 1).token)


def test_a_crashed_job_is_taken_again_and_decided_once(
    governance: Governance, demo_dir: Path
) -> None:
    clock = Clock()
    workflow = workflow_with(governance, clock)
    workflow.register_model(SYSTEM, "income", "high", "dana")
    request_id = workflow.submit(SYSTEM, candidate(demo_dir)).id
    [job_id] = workflow.claimable_jobs()

    # A process claims the job, starts the checks, and dies.
    assert workflow._claim_job(job_id) == request_id
    assert workflow.get_request(request_id).state == "checking"
    assert workflow.claimable_jobs() == []  # claimed: nobody else takes it

    clock.now += timedelta(seconds=61)  # the claim lapses
    assert workflow.claimable_jobs() == [job_id]
    assert workflow.run_job(job_id) is True
    assert workflow.get_request(request_id).state == "awaiting_approval"
    assert workflow.run_job(job_id) is False  # done: never run again

    # Had the dead process come back and finished too, its verdict would be dropped.
    policy, request = workflow._gate_inputs(request_id)
    from governance.services.gate import judge

    workflow._finish_job(job_id, request_id, judge(policy, request, files), policy, None)
    with Session(governance.engine) as session:
        assert len(session.exec(select(GateDecision)).all()) == 1
        job = session.exec(select(Job)).one()
    assert (job.status, job.attempts) == ("done", 2)


def test_approval_expires_and_admission_denies(governance: Governance, demo_dir: Path) -> None:
    clock = Clock()
    workflow = workflow_with(governance, clock)
    workflow.register_model(SYSTEM, "income", "high", "dana")
    request_id = workflow.submit(SYSTEM, candidate(demo_dir)).id
    workflow.run_job(workflow.claimable_jobs()[0])
    for name in ("maria", "bob"):
        workflow.sign(person(governance.people, name), request_id, "approve", "ok", PASSWORD)
    request = workflow.get_request(request_id)
    assert request.state == "approved"
    assert request.expires_at == clock.now + timedelta(days=365)
    assert workflow.admission("income", "2", "production").allowed

    # Another process (its own cache) sees this one's state change once it polls the
    # audit head, which every change moves.
    other = workflow_with(governance, clock)
    assert other.admission("income", "2", "production").state == "approved"
    workflow.promote(SYSTEM, request_id)
    time.sleep(AdmissionCache.POLL_SECONDS * 1.5)
    assert other.admission("income", "2", "production").state == "promoted"

    clock.now += timedelta(days=365, seconds=1)  # the cached allow must not outlive it
    answer = other.admission("income", "2", "production")
    assert not answer.allowed and "expired" in answer.reason  # even before the sweep

    assert workflow.expire_due() == [request_id]
    assert workflow.get_request(request_id).state == "expired"
    assert workflow.expire_due() == []
    with pytest.raises(ConflictError, match="cannot promote a request that is expired"):
        workflow.promote(SYSTEM, request_id)


def test_a_broken_candidate_blocks_with_the_reason(
    governance: Governance, tmp_path: Path, demo_dir: Path
) -> None:
    """Checks that cannot run fail closed: blocked, with the error as the reason."""
    workflow = governance.workflow
    workflow.register_model(SYSTEM, "income", "high", "dana")
    broken = tmp_path / "broken.csv"
    broken.write_text("a,b\n1,2\n")
    request_id = workflow.submit(
        SYSTEM,
        Candidate("income", "9", "production", TARGET, demo_dir / "income-full.skops", broken),
    ).id
    workflow.run_job(workflow.claimable_jobs()[0])
    request = workflow.get_request(request_id)
    assert request.state == "blocked"
    assert "the checks could not run" in request.state_reason
    assert TARGET in request.state_reason
