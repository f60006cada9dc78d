"""Read-only pages for people: my queue, requests by filter, the model inventory, a model's
version history. Each page is read in one read-only unit of work, whose console views
(`ports.ConsoleViews`) hold the SQL that keeps a page cheap at any size (`store.console`);
here the pages are shaped as the API shows them, and a queue's policies are read as rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from governance.domain.browsing import (
    PAGE_SIZES,
    ListedModel,
    ListedRequest,
    Page,
    QueueRules,
    RequestFilter,
)
from governance.domain.errors import NotFoundError
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.records import RequestView
from governance.services.people import Principal
from governance.services.ports import UnitOfWorkFactory

__all__ = ["PAGE_SIZES", "Browse", "Page", "RequestDetail", "RequestFilter"]


@dataclass(frozen=True)
class RequestDetail:
    """Everything the request page shows: the workflow's view of the request, the policy it
    is judged under, the evidence (once the checks ran) and its audit events."""

    request: RequestView
    policy: PromotionPolicy
    manifest: EvidenceManifest | None
    events: list[dict[str, Any]]


class Browse:
    """`request_view` is the workflow's view of one request (`Workflow.get_request`), which
    the request page shows as the API does."""

    def __init__(
        self,
        units: UnitOfWorkFactory,
        request_view: Callable[[str], RequestView],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._units = units
        self._request_view = request_view
        self._clock = clock

    def requests(self, filters: RequestFilter, page: Page) -> dict[str, Any]:
        """Promotion requests, newest first."""
        with self._units(read_only=True) as uow:
            found = uow.console.requests(filters, page)
        return _listing([_request_row(r) for r in found.items], found.total, page)

    def queue(
        self, principal: Principal, policies: Sequence[PromotionPolicy], page: Page
    ) -> dict[str, Any]:
        """The requests waiting for this person's signature, oldest first: approvals their
        roles may give (not on their own model, not twice), and waivers they may grant.
        The policy's rules become sets of pinned policies the query filters on, so the
        page needs no more queries when more requests wait."""
        with self._units(read_only=True) as uow:
            rules = _queue_rules(principal, policies, uow.console.pinned_policies())
            found = uow.console.queue(rules, page)
        now = self._clock()
        items = [_request_row(r) for r in found.items]
        for item in items:
            item["waiting"] = now - item["updatedAt"]
        return _listing(items, found.total, page)

    def models(
        self, name_contains: str | None, risk_tier: str | None, page: Page
    ) -> dict[str, Any]:
        """The model inventory by name, each with its number of versions and newest one."""
        with self._units(read_only=True) as uow:
            found = uow.console.models(name_contains, risk_tier, page)
        items = [
            {
                **_model_row(model),
                "versions": model.versions,
                "latestVersionAt": model.latest_version_at,
                "createdAt": model.created_at,
            }
            for model in found.items
        ]
        return _listing(items, found.total, page)

    def model_history(self, name: str, page: Page) -> dict[str, Any]:
        """One model and its promotion requests, newest first."""
        with self._units(read_only=True) as uow:
            found = uow.console.model_requests(name, page)
        if found is None:
            raise NotFoundError(f"model {name!r}", "pick one from the inventory")
        model, requests = found
        listing = _listing([_request_row(r) for r in requests.items], requests.total, page)
        listing["model"] = {**_model_row(model), "createdAt": model.created_at}
        return listing

    def request_detail(self, request_id: str) -> RequestDetail:
        with self._units(read_only=True) as uow:
            pinned = uow.console.pinned_evidence(request_id)
        if pinned is None:
            raise NotFoundError(f"request {request_id}", "find it in the list of requests")
        view = self._request_view(request_id)
        with self._units(read_only=True) as uow:
            events = uow.console.subject_events(f"model:{view.model}@{view.version}")
        return RequestDetail(
            request=view,
            policy=parse_policy(pinned.policy_document),
            manifest=None
            if pinned.manifest is None
            else EvidenceManifest.model_validate(pinned.manifest),
            events=events,
        )


def _queue_rules(
    principal: Principal, policies: Sequence[PromotionPolicy], pinned: list[tuple[int, str]]
) -> QueueRules:
    """Which pinned policies let this person approve (on others' models, or on their own
    too where the policy does not forbid self-approval) or grant a waiver. A pinned policy
    no longer in the library gets nobody's signature."""
    by_hash = {p.content_hash: p for p in policies}
    rules = QueueRules(principal.name, [], [], [])
    for policy_id, sha256 in pinned:
        policy = by_hash.get(sha256)
        if policy is None:
            continue
        if principal.roles & set(policy.approvals.roles):
            own = not policy.approvals.forbid_self_approval
            (rules.approvable_own if own else rules.approvable).append(policy_id)
        if policy.waivers.allowed and policy.waivers.approver_role in principal.roles:
            rules.waivable.append(policy_id)
    return rules


def _listing(rows: Sequence[Any], total: int, page: Page) -> dict[str, Any]:
    return {
        "items": list(rows),
        "total": total,
        "page": page.number,
        "size": page.size,
        "pages": max(1, -(-total // page.size)),
    }


def _model_row(model: ListedModel) -> dict[str, Any]:
    return {"name": model.name, "riskTier": model.risk_tier, "owner": model.owner}


def _request_row(request: ListedRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "model": request.model,
        "version": request.version,
        "riskTier": request.risk_tier,
        "owner": request.owner,
        "target": request.target,
        "state": request.state,
        "stateReason": request.state_reason,
        "submitter": request.submitter,
        "policy": {"name": request.policy_name, "version": request.policy_version},
        "expiresAt": request.expires_at,
        "createdAt": request.created_at,
        "updatedAt": request.updated_at,
    }
