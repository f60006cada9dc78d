"""The console's and API's lists as SQL (`governance.services.ports.ConsoleViews`). A page
is a few short queries, whatever the size of the database: its keys in order from an
index, the rows for those keys, and a count, so a list page costs about the same with ten
models or ten thousand (bench/console.py; migration 0004 has the indexes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from governance.domain.browsing import (
    ListedModel,
    ListedRequest,
    Page,
    PinnedEvidence,
    QueueRules,
    RequestFilter,
    Slice,
)
from governance.domain.copying import copied
from governance.domain.workflow import State
from governance.store.repository import subject_events
from governance.store.session import SqlRepository
from governance.store.tables import (
    GateDecision,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
    Signature,
)


class SqlConsoleViews(SqlRepository):
    def requests(self, filters: RequestFilter, page: Page) -> Slice[ListedRequest]:
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
        return _page_of(self._session, conditions, page, *NEWEST_FIRST, counted=counted)

    def pinned_policies(self) -> list[tuple[int, str]]:
        return [
            (id_, sha256) for id_, sha256 in self._session.exec(select(Policy.id, Policy.sha256))
        ]

    def queue(self, rules: QueueRules, page: Page) -> Slice[ListedRequest]:
        mine = rules.person
        my_models = list(self._session.exec(select(Model.id).where(col(Model.owner) == mine)).all())
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
            (awaiting, rules.approvable, True),
            (awaiting, rules.approvable_own, False),
            (waiver, rules.waivable, True),
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
            return Slice([], 0)
        states = sorted({state for state, ids, _ in kinds if ids})
        conditions = [
            col(PromotionRequest.state).in_(states),
            or_(*branches),
            col(PromotionRequest.id).not_in(signed_by_me),
        ]
        return _page_of(self._session, conditions, page, *LONGEST_WAITING)

    def models(
        self, name_contains: str | None, risk_tier: str | None, page: Page
    ) -> Slice[ListedModel]:
        """The page of models first (by the name index), then the versions of those alone."""
        conditions: list[Any] = []
        if name_contains:
            escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(col(Model.name).like(f"%{escaped}%", escape="\\"))
        if risk_tier:
            conditions.append(col(Model.risk_tier) == risk_tier)
        found = list(
            self._session.exec(
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
            total = self._session.exec(
                select(func.count()).select_from(Model).where(*conditions)
            ).one()
        versions: dict[int, tuple[int, datetime | None]] = {}
        if found:
            counted = self._session.exec(
                select(
                    col(ModelVersion.model_id),
                    func.count(),
                    func.max(col(ModelVersion.created_at)),
                )
                .where(col(ModelVersion.model_id).in_([m.id for m in found]))
                .group_by(col(ModelVersion.model_id))
            ).all()
            versions = {model_id: (count, latest) for model_id, count, latest in counted}
        return Slice(
            [_listed_model(model, *versions.get(model.id or 0, (0, None))) for model in found],
            total,
        )

    def model_requests(
        self, name: str, page: Page
    ) -> tuple[ListedModel, Slice[ListedRequest]] | None:
        model = self._session.exec(select(Model).where(col(Model.name) == name)).first()
        if model is None:
            return None
        requests = _page_of(
            self._session, [_of_models(col(Model.id) == model.id)], page, *NEWEST_FIRST
        )
        return _listed_model(model), requests

    def pinned_evidence(self, request_id: str) -> PinnedEvidence | None:
        request = self._session.get(PromotionRequest, request_id)
        if request is None:
            return None
        policy = self._session.get(Policy, request.policy_id)
        assert policy is not None
        decision = (
            self._session.get(GateDecision, request.decision_id) if request.decision_id else None
        )
        return PinnedEvidence(policy.document, decision.manifest if decision else None)

    def subject_events(self, subject: str) -> list[dict[str, Any]]:
        return subject_events(self._session, subject)


def _listed_model(model: Model, versions: int = 0, latest: datetime | None = None) -> ListedModel:
    return copied(ListedModel, model, versions=versions, latest_version_at=latest)


def _listed_request(
    request: PromotionRequest, version: ModelVersion, model: Model, policy: Policy
) -> ListedRequest:
    return copied(
        ListedRequest,
        request,
        model=model.name,
        version=version.version,
        risk_tier=model.risk_tier,
        owner=model.owner,
        policy_name=policy.name,
        policy_version=policy.version,
    )


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
) -> Slice[ListedRequest]:
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
    return Slice([_listed_request(*row) for row in ordered], total)


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
