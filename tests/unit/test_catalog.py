"""The console's audit and policy pages on the in-memory unit of work: the trail by page
and the page that holds one event, the chain check with its problems named, and every
policy version (in force, pinned, or both). Each page reads in read-only units and commits
nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from governance.domain.errors import NotFoundError
from governance.domain.policy import PromotionPolicy
from governance.domain.records import PinnedPolicy, StoredPolicy
from governance.services import catalog
from governance.services.catalog import AuditFilter, ChainStatus
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork

PINNED_AT = datetime(2026, 5, 1, 12, tzinfo=UTC)


def trail(events: int) -> FakeUnitOfWork:
    """A committed trail: every third event a rejection by rita, the others approvals."""
    uow = FakeUnitOfWork()
    for n in range(1, events + 1):
        action = "signature.reject" if n % 3 == 0 else "signature.approve"
        actor = "rita" if n % 3 == 0 else "olga"
        uow.audit.append(actor=actor, action=action, subject=f"fraud:{n}", payload={"n": n})
    uow.audit.committed, uow.audit.pending = uow.audit.pending, []
    return uow


def pinned(policy: PromotionPolicy, requests: int) -> PinnedPolicy:
    stored = StoredPolicy(
        name=policy.metadata.name,
        version=policy.metadata.version,
        risk_tier=policy.applies_to.risk_tier,
        sha256=policy.content_hash,
        document=json.loads(policy.canonical_json()),
    )
    return PinnedPolicy(stored, PINNED_AT, requests)


def test_the_audit_trail_by_page_newest_first() -> None:
    uow = trail(250)
    listing = catalog.audit_listing(uow, AuditFilter(), 2)
    assert [item["seq"] for item in listing["items"]] == list(range(150, 50, -1))
    assert (listing["total"], listing["pages"], listing["page"], listing["size"]) == (
        250,
        3,
        2,
        100,
    )
    assert listing["actions"] == ["signature.approve", "signature.reject"]
    first = listing["items"][0]
    assert first["time"] == uow.audit.committed[149].event.time
    assert first["hash"] == uow.audit.committed[149].hash
    assert first["prevHash"] == uow.audit.committed[148].hash
    assert json.loads(first["payloadText"]) == {"n": 150}
    assert uow.opened == ["read"] and uow.commits == 0


def test_filters_match_exactly() -> None:
    listing = catalog.audit_listing(trail(30), AuditFilter(actor="rita"))
    assert [item["seq"] for item in listing["items"]] == list(range(30, 0, -3))
    assert listing["total"] == 10 and listing["pages"] == 1
    empty = catalog.audit_listing(trail(3), AuditFilter(action="nothing"))
    assert (empty["items"], empty["total"], empty["pages"]) == ([], 0, 1)


def test_a_link_to_one_event_lands_on_its_page() -> None:
    uow = trail(250)
    assert catalog.audit_listing(uow, AuditFilter(), seq=151)["page"] == 1  # 99 newer
    assert catalog.audit_listing(uow, AuditFilter(), seq=150)["page"] == 2  # 100 newer
    rejected = catalog.audit_listing(uow, AuditFilter(action="signature.reject"), seq=3)
    assert rejected["page"] == 1 and rejected["seq"] == 3  # 82 rejections are newer
    with pytest.raises(NotFoundError):
        catalog.audit_listing(uow, AuditFilter(), seq=251)


def test_the_chain_check_names_the_events_it_finds_wrong() -> None:
    uow = trail(5)
    assert catalog.audit_status(uow) == {
        "intact": True,
        "events": 5,
        "head": uow.audit.committed[-1].hash,
        "problems": [],
        "more": 0,
    }
    chained = uow.audit.committed[2]
    forged = chained.event.model_copy(update={"payload": {"n": 99}})
    uow.audit.committed[2] = chained.model_copy(update={"event": forged})
    status = catalog.audit_status(uow, lambda events: ["checkpoint 7 is not published"])
    assert not status["intact"] and status["more"] == 0
    assert status["problems"][0]["seq"] == 3
    assert status["problems"][-1] == {"text": "checkpoint 7 is not published", "seq": None}
    assert uow.commits == 0 and set(uow.opened) == {"read"}


def test_a_viewer_after_a_check_gets_a_fresh_one() -> None:
    uow = trail(2)
    status = ChainStatus(uow)
    first = status.current()
    uow.audit.append(actor="olga", action="signature.approve", subject="fraud:3", payload={})
    uow.audit.committed, uow.audit.pending = uow.audit.committed + uow.audit.pending, []
    second = status.current()
    assert (first["events"], second["events"]) == (2, 3)
    assert second["checkedAt"] >= first["checkedAt"]


def test_every_policy_version_in_force_or_pinned() -> None:
    uow = FakeUnitOfWork()
    old, current, draft = samples.policy(1), samples.policy(2), samples.policy(3, minimum=0.9)
    uow.catalog.pinned = [pinned(old, 4), pinned(current, 1)]
    versions = catalog.policy_versions(uow, [current, draft])
    assert [(v.version, v.in_force, v.requests, v.ref) for v in versions] == [
        (3, True, 0, "3"),
        (2, True, 1, "2"),
        (1, False, 4, "1"),
    ]
    assert versions[1].pinned_at == PINNED_AT and versions[0].pinned_at is None
    assert versions[0].document == json.loads(draft.canonical_json())
    assert uow.commits == 0 and set(uow.opened) == {"read"}


def test_two_documents_claiming_one_version_are_named_by_sha256() -> None:
    uow = FakeUnitOfWork()
    stored, claimant = samples.policy(1), samples.policy(1, minimum=0.9)
    uow.catalog.pinned = [pinned(stored, 2)]
    versions = catalog.policy_versions(uow, [claimant])
    assert [(v.sha256, v.ref) for v in versions] == [
        (stored.content_hash, stored.content_hash),  # the pinned one first
        (claimant.content_hash, claimant.content_hash),
    ]


def test_a_policy_version_and_the_diff_against_the_one_before() -> None:
    uow = FakeUnitOfWork()
    old, new = samples.policy(1), samples.policy(2, minimum=0.9)
    uow.catalog.pinned = [pinned(old, 1)]
    name = old.metadata.name
    detail = catalog.policy_detail(uow, [new], name, "v1")
    assert detail.version.sha256 == old.content_hash
    assert [v.version for v in detail.siblings] == [2, 1]
    diff = catalog.policy_diff(uow, [new], name, None, None)
    assert (diff.old.version, diff.new.version) == (1, 2)
    assert diff.added and diff.removed
    with pytest.raises(NotFoundError):
        catalog.policy_detail(uow, [new], name, "7")
