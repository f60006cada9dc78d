"""The console's pages on the in-memory unit of work: how a page is shaped and counted, which
requests wait for whose signature, and what the request page gathers. Each page reads in
read-only units and commits nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from governance.domain.browsing import ListedModel, ListedRequest, PinnedEvidence
from governance.domain.errors import InputError, NotFoundError
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.records import RequestView
from governance.services.browse import Browse, Page, RequestFilter
from governance.services.people import Principal
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
STRICT = samples.policy(version=1)  # approvals by model_risk_officer, never one's own model


def lenient() -> PromotionPolicy:
    """Self-approval allowed, and waivers granted by a risk lead."""
    document = json.loads(samples.policy(version=2).canonical_json())
    document["approvals"]["forbidSelfApproval"] = False
    document["waivers"] = {"allowed": True, "approverRole": "risk_lead"}
    return parse_policy(document)


def request(
    id_: str,
    *,
    model: str = "fraud",
    state: str = "awaiting_approval",
    owner: str = "olga",
    submitter: str = "sam",
    tier: str = "medium",
    age_days: int = 0,
) -> ListedRequest:
    at = NOW - timedelta(days=age_days)
    return ListedRequest(
        id=id_,
        model=model,
        version="1",
        risk_tier=tier,
        owner=owner,
        target="production",
        state=state,
        state_reason=None,
        submitter=submitter,
        policy_name="unit",
        policy_version=1,
        expires_at=None,
        created_at=at,
        updated_at=at,
    )


def person(name: str, *roles: str) -> Principal:
    return Principal(name=name, full_name=name.title(), kind="user", roles=frozenset(roles))


def no_view(request_id: str) -> RequestView:
    raise AssertionError(f"the workflow's view of {request_id} was not needed")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def browse(uow: FakeUnitOfWork) -> Browse:
    return Browse(uow, no_view, clock=lambda: NOW)


def test_requests_newest_first_in_pages_counted(uow: FakeUnitOfWork, browse: Browse) -> None:
    uow.console.requests_stored = [request(f"r{i:02}", age_days=i) for i in range(30)]

    first = browse.requests(RequestFilter(), Page(1, 25))
    second = browse.requests(RequestFilter(), Page(2, 25))

    assert [item["id"] for item in first["items"]][:3] == ["r00", "r01", "r02"]
    assert (first["total"], first["pages"], len(first["items"])) == (30, 2, 25)
    assert [item["id"] for item in second["items"]] == [f"r{i}" for i in range(25, 30)]
    assert first["items"][0]["policy"] == {"name": "unit", "version": 1}
    assert first["items"][0]["riskTier"] == "medium"
    assert uow.opened == ["read", "read"] and uow.commits == 0


def test_requests_filtered(uow: FakeUnitOfWork, browse: Browse) -> None:
    uow.console.requests_stored = [
        request("a", state="promoted", age_days=3),
        request("b", model="churn", tier="high", age_days=2),
        request("c", age_days=1),
    ]

    by_state = browse.requests(RequestFilter(state="awaiting_approval"), Page())
    by_tier = browse.requests(RequestFilter(risk_tier="high"), Page())
    since = browse.requests(RequestFilter(submitted_from=date(2026, 4, 29)), Page())

    assert [item["id"] for item in by_state["items"]] == ["c", "b"]
    assert [item["id"] for item in by_tier["items"]] == ["b"]
    assert [item["id"] for item in since["items"]] == ["c", "b"]


def test_an_empty_list_is_one_page(browse: Browse) -> None:
    assert browse.requests(RequestFilter(), Page()) == {
        "items": [],
        "total": 0,
        "page": 1,
        "size": 25,
        "pages": 1,
    }


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Page(0),
        lambda: Page(1, 30),
        lambda: RequestFilter(state="sleeping"),
        lambda: RequestFilter(submitted_from=date(2026, 2, 1), submitted_to=date(2026, 1, 1)),
    ],
)
def test_bad_pages_and_filters_are_refused_before_any_query(bad: Any) -> None:
    with pytest.raises(InputError):
        bad()


def test_queue_holds_what_this_person_may_sign(uow: FakeUnitOfWork, browse: Browse) -> None:
    uow.console.policies = [(1, STRICT.content_hash), (2, lenient().content_hash), (3, "gone")]
    uow.console.requests_stored = [
        request("others", age_days=1),
        request("own-model", owner="maria", age_days=2),
        request("own-lenient", owner="maria", age_days=3),
        request("signed", age_days=4),
        request("waiver", state="waiver_requested", age_days=5),
        request("unknown-policy", age_days=6),
    ]
    uow.console.policy_of = {
        "others": 1,
        "own-model": 1,
        "own-lenient": 2,
        "signed": 1,
        "waiver": 2,
        "unknown-policy": 3,
    }
    uow.console.signed = {("maria", "signed")}
    maria = person("maria", "model_risk_officer")
    lead = person("lee", "risk_lead")

    mine = browse.queue(maria, [STRICT, lenient()], Page())
    leads = browse.queue(lead, [STRICT, lenient()], Page())

    assert [item["id"] for item in mine["items"]] == ["own-lenient", "others"]  # oldest first
    assert mine["items"][1]["waiting"] == timedelta(days=1)
    assert [item["id"] for item in leads["items"]] == ["waiver"]
    assert browse.queue(person("nobody"), [STRICT, lenient()], Page())["total"] == 0


def test_models_with_their_versions(uow: FakeUnitOfWork, browse: Browse) -> None:
    uow.console.models_stored = [
        ListedModel("fraud-b", "high", "olga", NOW, versions=3, latest_version_at=NOW),
        ListedModel("churn", "low", None, NOW),
        ListedModel("fraud-a", "medium", "olga", NOW, versions=1, latest_version_at=NOW),
    ]

    listing = browse.models("fraud", None, Page())

    assert [item["name"] for item in listing["items"]] == ["fraud-a", "fraud-b"]
    assert listing["items"][1] == {
        "name": "fraud-b",
        "riskTier": "high",
        "owner": "olga",
        "versions": 3,
        "latestVersionAt": NOW,
        "createdAt": NOW,
    }
    assert browse.models(None, "low", Page())["items"][0]["versions"] == 0


def test_model_history(uow: FakeUnitOfWork, browse: Browse) -> None:
    uow.console.models_stored = [ListedModel("fraud", "medium", "olga", NOW)]
    uow.console.requests_stored = [
        request("old", age_days=9),
        request("new"),
        request("x", model="y"),
    ]

    history = browse.model_history("fraud", Page())

    assert [item["id"] for item in history["items"]] == ["new", "old"]
    assert history["model"] == {
        "name": "fraud",
        "riskTier": "medium",
        "owner": "olga",
        "createdAt": NOW,
    }
    with pytest.raises(NotFoundError, match="pick one from the inventory"):
        browse.model_history("nope", Page())


def test_request_detail_gathers_view_policy_evidence_and_events(uow: FakeUnitOfWork) -> None:
    evidence = samples.manifest(STRICT, 0.9)
    uow.console.evidence["r1"] = PinnedEvidence(
        json.loads(STRICT.canonical_json()), evidence.model_dump(mode="json")
    )
    uow.console.events["model:fraud@1"] = [{"seq": 1, "action": "request.submitted"}]
    views = {"r1": samples.request_view("r1", model="fraud")}
    browse = Browse(uow, views.__getitem__)

    detail = browse.request_detail("r1")

    assert detail.request == views["r1"]
    assert detail.policy.content_hash == STRICT.content_hash
    assert detail.manifest == evidence
    assert detail.events == [{"seq": 1, "action": "request.submitted"}]
    assert uow.commits == 0


def test_request_detail_before_the_checks_and_of_no_request(
    uow: FakeUnitOfWork, browse: Browse
) -> None:
    uow.console.evidence["r1"] = PinnedEvidence(json.loads(STRICT.canonical_json()), None)
    views = {"r1": samples.request_view("r1", model="fraud")}

    assert Browse(uow, views.__getitem__).request_detail("r1").manifest is None
    with pytest.raises(NotFoundError, match="find it in the list of requests"):
        browse.request_detail("r2")


def test_a_page_sees_the_rows_as_given(uow: FakeUnitOfWork, browse: Browse) -> None:
    """The service shapes rows, it does not filter them again."""
    row = replace(request("r"), state_reason="blocked by perf", owner=None)
    uow.console.requests_stored = [row]

    [item] = browse.requests(RequestFilter(), Page())["items"]

    assert (item["stateReason"], item["owner"], item["expiresAt"]) == (
        "blocked by perf",
        None,
        None,
    )
