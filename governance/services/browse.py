"""Read-only pages for people: my queue, requests by filter, the model inventory, a model's
version history. One query per page plus one count, whatever the size of the database, so a
list page costs the same with ten models or ten thousand (bench/console.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, and_, exists, func, not_, or_
from sqlalchemy.sql import Select
from sqlmodel import Session, col, select

from governance.domain.errors import InputError, NotFoundError
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.workflow import State
from governance.services.people import Principal
from governance.services.workflow import request_view
from governance.store.tables import (
    AuditEventRow,
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
    """Requests with their version, model and policy: one row each, one query."""
    query = (
        select(PromotionRequest, ModelVersion, Model, Policy)
        .join(ModelVersion, col(PromotionRequest.model_version_id) == col(ModelVersion.id))
        .join(Model, col(ModelVersion.model_id) == col(Model.id))
        .join(Policy, col(PromotionRequest.policy_id) == col(Policy.id))
    )
    return query


def _page_of(session: Session, query: Select[Any], page: Page, *order: Any) -> dict[str, Any]:
    total = session.exec(  # type: ignore[call-overload]
        select(func.count()).select_from(query.order_by(None).subquery())
    ).one()
    rows = session.exec(  # type: ignore[call-overload]
        query.order_by(*order).offset(page.offset).limit(page.size)
    ).all()
    return _listing([_request_row(*row) for row in rows], total, page)


class Browse:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def requests(self, filters: RequestFilter, page: Page) -> dict[str, Any]:
        """Promotion requests, newest first."""
        query = _joined()
        if filters.state:
            query = query.where(col(PromotionRequest.state) == filters.state)
        if filters.model:
            query = query.where(col(Model.name) == filters.model)
        if filters.risk_tier:
            query = query.where(col(Model.risk_tier) == filters.risk_tier)
        if filters.submitted_from:
            start = datetime.combine(filters.submitted_from, time(), UTC)
            query = query.where(col(PromotionRequest.created_at) >= start)
        if filters.submitted_to:
            end = datetime.combine(filters.submitted_to, time(), UTC) + timedelta(days=1)
            query = query.where(col(PromotionRequest.created_at) < end)
        with Session(self._engine) as session:
            return _page_of(
                session, query, page, col(PromotionRequest.created_at).desc(), PromotionRequest.id
            )

    def queue(
        self, principal: Principal, policies: Sequence[PromotionPolicy], page: Page
    ) -> dict[str, Any]:
        """The requests waiting for this person's signature, oldest first: approvals their
        roles may give (not on their own model, not twice), and waivers they may grant.
        The policy's rules are applied here as SQL so that the page stays one query."""
        with Session(self._engine) as session:
            pinned = session.exec(select(Policy.id, Policy.sha256)).all()
        by_hash = {p.content_hash: p for p in policies}
        mine = principal.name
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
        signed_by_me = exists().where(
            and_(
                col(Signature.request_id) == col(PromotionRequest.id),
                col(Signature.username) == mine,
            )
        )
        not_mine = and_(
            col(PromotionRequest.submitter) != mine,
            or_(col(Model.owner).is_(None), col(Model.owner) != mine),
        )
        awaiting = col(PromotionRequest.state) == State.AWAITING_APPROVAL.value
        waiting = or_(
            and_(awaiting, col(PromotionRequest.policy_id).in_(approvable), not_mine),
            and_(awaiting, col(PromotionRequest.policy_id).in_(approvable_own)),
            and_(
                col(PromotionRequest.state) == State.WAIVER_REQUESTED.value,
                col(PromotionRequest.policy_id).in_(waivable),
                not_mine,
            ),
        )
        query = _joined().where(waiting, not_(signed_by_me))
        with Session(self._engine) as session:
            listing = _page_of(
                session, query, page, col(PromotionRequest.updated_at), PromotionRequest.id
            )
        now = utcnow()
        for item in listing["items"]:
            item["waiting"] = now - item["updatedAt"]
        return listing

    def models(
        self, name_contains: str | None, risk_tier: str | None, page: Page
    ) -> dict[str, Any]:
        """The model inventory by name, each with its number of versions and newest one."""
        versions = (
            select(
                col(ModelVersion.model_id).label("model_id"),
                func.count().label("versions"),
                func.max(ModelVersion.created_at).label("latest"),
            )
            .group_by(col(ModelVersion.model_id))
            .subquery()
        )
        query = select(Model, versions.c.versions, versions.c.latest).outerjoin(
            versions, versions.c.model_id == col(Model.id)
        )
        if name_contains:
            escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(col(Model.name).like(f"%{escaped}%", escape="\\"))
        if risk_tier:
            query = query.where(col(Model.risk_tier) == risk_tier)
        with Session(self._engine) as session:
            total = session.exec(
                select(func.count()).select_from(query.order_by(None).subquery())
            ).one()
            rows = session.exec(
                query.order_by(col(Model.name)).offset(page.offset).limit(page.size)
            ).all()
        items = [
            {
                "name": model.name,
                "riskTier": model.risk_tier,
                "owner": model.owner,
                "versions": count or 0,
                "latestVersionAt": latest,
                "createdAt": model.created_at,
            }
            for model, count, latest in rows
        ]
        return _listing(items, total, page)

    def model_history(self, name: str, page: Page) -> dict[str, Any]:
        """One model and its promotion requests, newest first."""
        with Session(self._engine) as session:
            model = session.exec(select(Model).where(col(Model.name) == name)).first()
            if model is None:
                raise NotFoundError(f"model {name!r}", "pick one from the inventory")
            query = _joined().where(col(Model.id) == model.id)
            listing = _page_of(
                session, query, page, col(PromotionRequest.created_at).desc(), PromotionRequest.id
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
            rows = session.exec(
                select(AuditEventRow)
                .where(col(AuditEventRow.subject) == subject)
                .order_by(col(AuditEventRow.seq))
            ).all()
        return RequestDetail(
            request=view,
            policy=parse_policy(policy_row.document),
            manifest=EvidenceManifest.model_validate(decision.manifest) if decision else None,
            events=[
                {
                    "seq": r.seq,
                    "time": r.time,
                    "actor": r.actor,
                    "action": r.action,
                    "hash": r.hash,
                    "payload": r.payload,
                }
                for r in rows
            ],
        )
