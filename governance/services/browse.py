"""Read-only pages for people: my queue, requests by filter, the model inventory, a model's
version history. A page is a few short queries, whatever the size of the database: its keys
in order from an index, the rows for those keys, and a count, so a list page costs about the
same with ten models or ten thousand (bench/console.py; migration 0004 has the indexes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from governance.domain.errors import InputError, NotFoundError
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.workflow import State
from governance.services.people import Principal
from governance.services.workflow import request_view
from governance.store.repository import subject_events
from governance.store.tables import (
    GateDecision,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
    Signature,
    utcnow,
)

PAGE_SIZES = (25, 50, 100)


@dataclass(frozen=True)
class RequestDetail:
    """Everything the request page shows: the workflow's view of the request, the policy it
    is judged under, the evidence (once the checks ran) and its audit events."""

    request: dict[str, Any]
    policy: PromotionPolicy
    manifest: EvidenceManifest | None
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class Page:
    """Which slice of a list: 1-based page number and its size."""

    number: int = 1
    size: int = 25

    def __post_init__(self) -> None:
        if self.number < 1:
            raise InputError("page", f"is {self.number}", "pages are numbered from 1")
        if self.size not in PAGE_SIZES:
            raise InputError("size", f"is {self.size}", f"use one of {PAGE_SIZES}")

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True)
class RequestFilter:
    state: str | None = None
    model: str | None = None
    risk_tier: str | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None

    def __post_init__(self) -> None:
        if self.state and self.state not in {s.value for s in State}:
            raise InputError("state", f"is {self.state!r}", f"use one of {', '.join(State)}")
        if self.submitted_from and self.submitted_to and self.submitted_from > self.submitted_to:
            raise InputError(
                "to", f"{self.submitted_to} is before {self.submitted_from}", "swap the dates"
            )


def _listing(rows: Sequence[Any], total: int, page: Page) -> dict[str, Any]:
    return {
        "items": list(rows),
        "total": total,
        "page": page.number,
        "size": page.size,
        "pages": max(1, -(-total // page.size)),
    }


def _request_row(
    request: PromotionRequest, version: ModelVersion, model: Model, policy: Policy
) -> dict[str, Any]:
    return {
        "id": request.id,
        "model": model.name,
        "version": version.version,
        "riskTier": model.risk_tier,
        "owner": model.owner,
        "target": request.target,
        "state": request.state,
        "stateReason": request.state_reason,
        "submitter": request.submitter,
        "policy": {"name": policy.name, "version": policy.version},
        "expiresAt": request.expires_at,
        "createdAt": request.created_at,
        "updatedAt": request.updated_at,
    }


def _joined() -> Any:
    """Requests with their version, model and policy: one row each, one query. The columns a
    list does not show (the policy document, the request's inputs) are not loaded."""
    query = (
        select(PromotionRequest, ModelVersion, Model, Policy)
        .join(ModelVersion, col(PromotionRequest.model_version_id) == col(ModelVersion.id))
        .join(Model, col(ModelVersion.model_id) == col(Model.id))
        .join(Policy, col(PromotionRequest.policy_id) == col(Policy.id))
        .options(defer(Policy.document), defer(PromotionRequest.inputs))  # type: ignore[arg-type]
    )
    return query


def _page_of(
    session: Session,
    conditions: Sequence[Any],
    page: Page,
    *order: Any,
    counted: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """One page of requests: first the page's ids, from promotion_request alone, then their
    rows joined. Only the ids walk the ORDER BY and the OFFSET (an index on the sort
    columns holds both, so a deep page skips index entries, not joined rows), and the count
    joins nothing. The same rows as one joined query with OFFSET, at a fraction of its cost
    (bench/console.py). `counted`: the same conditions in the form cheapest to count."""
    ids = list(
        session.exec(
            select(PromotionRequest.id)
            .where(*conditions)
            .order_by(*order)
            .offset(page.offset)
            .limit(page.size)
        ).all()
    )
    if ids and len(ids) < page.size:
        total = page.offset + len(ids)  # the last page: no count needed
    elif not ids and page.offset == 0:
        total = 0
    else:
        total = session.exec(
            select(func.count())
            .select_from(PromotionRequest)
            .where(*(conditions if counted is None else counted))
        ).one()
    rows = session.exec(_joined().where(col(PromotionRequest.id).in_(ids))).all() if ids else []
    position = {request_id: index for index, request_id in enumerate(ids)}
    ordered = sorted(rows, key=lambda row: position[row[0].id])
    return _listing([_request_row(*row) for row in ordered], total, page)


def _of_models(*conditions: Any) -> Any:
    """Requests for the versions of the models that meet the conditions, as a set the
    database builds once: best to count with, and to find one model's few requests."""
    versions = (
        select(ModelVersion.id)
        .join(Model, col(ModelVersion.model_id) == col(Model.id))
        .where(*conditions)
    )
    return col(PromotionRequest.model_version_id).in_(versions)


def _of_models_row_by_row(*conditions: Any) -> Any:
    """The same rows as `_of_models`, checked request by request (two lookups by key) as
    the newest-first index is walked: for a broad filter such as a risk tier, where the
    page is found after a few dozen requests, long before the set of a quarter of all
    versions would be built. (SQLite, without statistics, would otherwise build that set
    and sort every request of the tier.)"""
    return (
        select(ModelVersion.id)
        .join(Model, col(ModelVersion.model_id) == col(Model.id))
        .where(col(ModelVersion.id) == col(PromotionRequest.model_version_id), *conditions)
        .exists()
    )


NEWEST_FIRST = (col(PromotionRequest.created_at).desc(), col(PromotionRequest.id))
LONGEST_WAITING = (col(PromotionRequest.updated_at), col(PromotionRequest.id))


class Browse:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def requests(self, filters: RequestFilter, page: Page) -> dict[str, Any]:
        """Promotion requests, newest first."""
        conditions: list[Any] = []
        if filters.state:
            state = col(PromotionRequest.state)
            # With one model named, its few versions should drive the query. SQLite has no
            # statistics (nothing runs ANALYZE) and would walk every request in the state
            # instead (45,000 in bench/console.py); `state || ''` is not indexed.
            conditions.append((state.concat("") if filters.model else state) == filters.state)
        if filters.submitted_from:
            start = datetime.combine(filters.submitted_from, time(), UTC)
            conditions.append(col(PromotionRequest.created_at) >= start)
        if filters.submitted_to:
            end = datetime.combine(filters.submitted_to, time(), UTC) + timedelta(days=1)
            conditions.append(col(PromotionRequest.created_at) < end)
        counted = list(conditions)
        if filters.model:  # one model: its few versions drive both queries
            of_model = [col(Model.name) == filters.model]
            if filters.risk_tier:
                of_model.append(col(Model.risk_tier) == filters.risk_tier)
            conditions.append(_of_models(*of_model))
            counted.append(_of_models(*of_model))
        elif filters.risk_tier:
            conditions.append(_of_models_row_by_row(col(Model.risk_tier) == filters.risk_tier))
            counted.append(_of_models(col(Model.risk_tier) == filters.risk_tier))
        with Session(self._engine) as session:
            return _page_of(session, conditions, page, *NEWEST_FIRST, counted=counted)

    def queue(
        self, principal: Principal, policies: Sequence[PromotionPolicy], page: Page
    ) -> dict[str, Any]:
        """The requests waiting for this person's signature, oldest first: approvals their
        roles may give (not on their own model, not twice), and waivers they may grant.
        The policy's rules are applied here as SQL, so the page needs no more queries when
        more requests wait."""
        mine = principal.name
        with Session(self._engine) as session:
            pinned = session.exec(select(Policy.id, Policy.sha256)).all()
            my_models = list(session.exec(select(Model.id).where(col(Model.owner) == mine)).all())
        by_hash = {p.content_hash: p for p in policies}
        approvable: list[int] = []
        approvable_own: list[int] = []
        waivable: list[int] = []
        for policy_id, sha256 in pinned:
            policy = by_hash.get(sha256)
            if policy is None:
                continue
            if principal.roles & set(policy.approvals.roles):
                target = approvable if policy.approvals.forbid_self_approval else approvable_own
                target.append(policy_id)
            if policy.waivers.allowed and policy.waivers.approver_role in principal.roles:
                waivable.append(policy_id)
        # "Not signed by me" and "not my model" as NOT IN over two small sets (my
        # signatures, the versions of my models, found by their ids): each is read once
        # from an index, and the candidates need no join. The same rows as NOT EXISTS and
        # `owner != me` (the columns are NOT NULL; a model without an owner is nobody's).
        signed_by_me = select(Signature.request_id).where(col(Signature.username) == mine)
        not_mine = and_(
            col(PromotionRequest.submitter) != mine,
            *(
                [
                    col(PromotionRequest.model_version_id).not_in(
                        select(ModelVersion.id).where(col(ModelVersion.model_id).in_(my_models))
                    )
                ]
                if my_models
                else []
            ),
        )
        awaiting = State.AWAITING_APPROVAL.value
        waiver = State.WAIVER_REQUESTED.value
        # (state, policies, whether their own requests are left out): only the kinds this
        # person may sign, so that the state index picks the candidates.
        kinds = [
            (awaiting, approvable, True),
            (awaiting, approvable_own, False),
            (waiver, waivable, True),
        ]
        branches = [
            and_(
                col(PromotionRequest.state) == state,
                col(PromotionRequest.policy_id).in_(ids),
                *([not_mine] if others_only else []),
            )
            for state, ids, others_only in kinds
            if ids
        ]
        if not branches:
            return _listing([], 0, page)
        states = sorted({state for state, ids, _ in kinds if ids})
        conditions = [
            col(PromotionRequest.state).in_(states),
            or_(*branches),
            col(PromotionRequest.id).not_in(signed_by_me),
        ]
        with Session(self._engine) as session:
            listing = _page_of(session, conditions, page, *LONGEST_WAITING)
        now = utcnow()
        for item in listing["items"]:
            item["waiting"] = now - item["updatedAt"]
        return listing

    def models(
        self, name_contains: str | None, risk_tier: str | None, page: Page
    ) -> dict[str, Any]:
        """The model inventory by name, each with its number of versions and newest one.
        The page of models first (by the name index), then the versions of those alone."""
        conditions: list[Any] = []
        if name_contains:
            escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(col(Model.name).like(f"%{escaped}%", escape="\\"))
        if risk_tier:
            conditions.append(col(Model.risk_tier) == risk_tier)
        with Session(self._engine) as session:
            found = list(
                session.exec(
                    select(Model)
                    .where(*conditions)
                    .order_by(col(Model.name))
                    .offset(page.offset)
                    .limit(page.size)
                ).all()
            )
            if found and len(found) < page.size:
                total = page.offset + len(found)
            elif not found and page.offset == 0:
                total = 0
            else:
                total = session.exec(
                    select(func.count()).select_from(Model).where(*conditions)
                ).one()
            versions: dict[int, tuple[int, datetime | None]] = {}
            if found:
                counted = session.exec(
                    select(
                        col(ModelVersion.model_id),
                        func.count(),
                        func.max(col(ModelVersion.created_at)),
                    )
                    .where(col(ModelVersion.model_id).in_([m.id for m in found]))
                    .group_by(col(ModelVersion.model_id))
                ).all()
                versions = {model_id: (count, latest) for model_id, count, latest in counted}
        items = [
            {
                "name": model.name,
                "riskTier": model.risk_tier,
                "owner": model.owner,
                "versions": versions.get(model.id, (0, None))[0],
                "latestVersionAt": versions.get(model.id, (0, None))[1],
                "createdAt": model.created_at,
            }
            for model in found
        ]
        return _listing(items, total, page)

    def model_history(self, name: str, page: Page) -> dict[str, Any]:
        """One model and its promotion requests, newest first."""
        with Session(self._engine) as session:
            model = session.exec(select(Model).where(col(Model.name) == name)).first()
            if model is None:
                raise NotFoundError(f"model {name!r}", "pick one from the inventory")
            listing = _page_of(
                session, [_of_models(col(Model.id) == model.id)], page, *NEWEST_FIRST
            )
            listing["model"] = {
                "name": model.name,
                "riskTier": model.risk_tier,
                "owner": model.owner,
                "createdAt": model.created_at,
            }
        return listing

    def request_detail(self, request_id: str) -> RequestDetail:
        with Session(self._engine) as session:
            request = session.get(PromotionRequest, request_id)
            if request is None:
                raise NotFoundError(f"request {request_id}", "find it in the list of requests")
            view = request_view(session, request)
            policy_row = session.get(Policy, request.policy_id)
            assert policy_row is not None
            decision = (
                session.get(GateDecision, request.decision_id) if request.decision_id else None
            )
            subject = f"model:{view['model']}@{view['version']}"
            events = subject_events(session, subject)
        return RequestDetail(
            request=view,
            policy=parse_policy(policy_row.document),
            manifest=EvidenceManifest.model_validate(decision.manifest) if decision else None,
            events=events,
        )
