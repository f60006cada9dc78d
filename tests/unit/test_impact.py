"""`policy_impact` on the in-memory unit of work: which admitted versions a draft covers,
and how it would judge their stored evidence."""

from __future__ import annotations

from governance.domain.verdict import Verdict
from governance.services.impact import policy_impact
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork


def test_a_tighter_draft_flips_the_covered_versions_and_writes_nothing() -> None:
    uow = FakeUnitOfWork()
    old = samples.policy(minimum=0.8)
    uow.requests.stored += [
        samples.request(old, samples.manifest(old, 0.85, "1"), "approved", id="a"),
        samples.request(old, samples.manifest(old, 0.95, "2"), "promoted", id="b"),
        samples.request(old, samples.manifest(old, 0.70, "3"), "blocked", id="c"),
    ]
    report = policy_impact(uow, samples.policy(version=2, minimum=0.9))
    assert [(v.version, v.state, v.changed) for v in report.versions] == [
        ("1", "approved", True),
        ("2", "promoted", False),
    ]
    assert report.versions[0].new_verdict == Verdict.BLOCKED
    assert report.versions[0].decision_id == "d-a" and report.versions[0].request_id == "a"
    assert report.exit_code == 1 and not report.not_covered
    assert uow.opened == ["read"] and uow.commits == 0 and uow.audit.events() == []


def test_the_same_rules_change_nothing() -> None:
    uow = FakeUnitOfWork()
    old = samples.policy()
    uow.requests.stored.append(samples.request(old, samples.manifest(old, 0.85)))
    report = policy_impact(uow, samples.policy(version=2))
    assert [v.changed for v in report.versions] == [False]
    assert report.exit_code == 0
    assert report.as_dict()["states"] == ["approved", "waived", "promoted"]


def test_versions_the_draft_does_not_judge_are_listed_with_the_reason() -> None:
    uow = FakeUnitOfWork()
    low, medium = samples.policy(tier="low"), samples.policy()
    uow.requests.stored += [
        samples.request(low, samples.manifest(low, 0.9), id="tier"),
        samples.request(medium, samples.manifest(medium, 0.9), target="staging", id="target"),
        samples.request(medium, None, id="undecided"),
    ]
    report = policy_impact(uow, samples.policy(version=2))
    assert report.versions == []
    assert [(n.request_id, n.reason) for n in report.not_covered] == [
        ("tier", "its policy is for risk tier low; the draft for medium"),
        ("target", "it is for target staging; the draft applies to production"),
        ("undecided", "its request has no recorded decision to judge again"),
    ]
    assert report.exit_code == 0


def test_only_the_states_asked_for_are_judged() -> None:
    uow = FakeUnitOfWork()
    old = samples.policy()
    uow.requests.stored += [
        samples.request(old, samples.manifest(old, 0.85, "1"), "approved", id="a"),
        samples.request(old, samples.manifest(old, 0.70, "3"), "blocked", id="c"),
    ]
    report = policy_impact(uow, samples.policy(version=2), states=("blocked",))
    assert [v.version for v in report.versions] == ["3"]
    assert report.versions[0].old_verdict == Verdict.BLOCKED
