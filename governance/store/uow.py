"""The unit of work over SQL (SQLite, PostgreSQL): one session, one transaction, and the
repositories the use cases see (`governance.services.ports`), which answer in domain
records, never in ORM rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from governance.domain.audit import ChainedEvent
from governance.domain.copying import copied
from governance.domain.errors import AuditSequenceTakenError
from governance.domain.records import (
    AuditAction,
    RegisteredBuilder,
    RequestWithEvidence,
    StoredDecision,
    StoredPolicy,
)
from governance.store.catalog import SqlCatalogViews
from governance.store.console import SqlConsoleViews
from governance.store.database import writing
from governance.store.monitoring import SqlPredictionLogs
from governance.store.people import SqlAccounts, SqlApiTokens, SqlGrants, SqlSignedInSessions
from governance.store.registry_links import SqlConsumerCursors, SqlRegistryLinks
from governance.store.reports import SqlReportSources
from governance.store.repository import append_audit, chained_events
from governance.store.session import SqlRepository
from governance.store.tables import (
    AuditEventRow,
    Builder,
    GateDecision,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
)
from governance.store.tasks import EmbeddedTaskQueue, ProcrastinateTaskQueue
from governance.store.webhooks import (
    SqlWebhookDeliveries,
    SqlWebhookSubscriptions,
    SqlWebhookTrail,
)
from governance.store.workflow import SqlModels, SqlPromotions


class SqlUnitOfWork:
    """`with SqlUnitOfWork(engine) as uow: …; uow.commit()`. A writing unit begins with
    the write lock on SQLite (`writing`); a conflict on the audit seq surfaces as
    `AuditSequenceTakenError`, after the rollback."""

    def __init__(self, engine: Engine, read_only: bool = False, tasks: str = "embedded") -> None:
        self._engine = engine if read_only else writing(engine)
        self._tasks_mode = tasks

    def __enter__(self) -> Self:
        self._session = Session(self._engine)
        self._session.begin()
        self.audit = SqlAuditTrail(self._session)
        self.decisions = SqlDecisions(self._session)
        self.reports = SqlReportSources(self._session)
        self.requests = SqlRequests(self._session)
        self.builders = SqlBuilderKeys(self._session)
        self.console = SqlConsoleViews(self._session)
        self.catalog = SqlCatalogViews(self._session)
        self.cursors = SqlConsumerCursors(self._session)
        self.accounts = SqlAccounts(self._session)
        self.grants = SqlGrants(self._session)
        self.sessions = SqlSignedInSessions(self._session)
        self.tokens = SqlApiTokens(self._session)
        self.webhook_subscriptions = SqlWebhookSubscriptions(self._session)
        self.webhook_deliveries = SqlWebhookDeliveries(self._session)
        self.webhook_trail = SqlWebhookTrail(self._session)
        self.registry_links = SqlRegistryLinks(self._session)
        self.models = SqlModels(self._session)
        self.promotions = SqlPromotions(self._session)
        self.monitoring = SqlPredictionLogs(self._session)
        self.tasks: EmbeddedTaskQueue | ProcrastinateTaskQueue = (
            ProcrastinateTaskQueue(self._session)
            if self._tasks_mode == "workers"
            else EmbeddedTaskQueue()
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.rollback()  # nothing left to undo after a commit
        finally:
            self._session.close()
        if isinstance(error, IntegrityError) and "audit_event" in str(error.orig):
            raise AuditSequenceTakenError() from error

    def commit(self) -> None:
        self._session.commit()

    def rollback(self) -> None:
        self._session.rollback()


class SqlAuditTrail(SqlRepository):
    def append(
        self, *, actor: str, action: str, subject: str, payload: dict[str, object]
    ) -> ChainedEvent:
        return append_audit(
            self._session, actor=actor, action=action, subject=subject, payload=payload
        )

    def head_seq(self) -> int:
        query = select(func.coalesce(func.max(AuditEventRow.seq), 0))
        return int(self._session.execute(query).scalar_one())

    def events(self) -> list[ChainedEvent]:
        return chained_events(self._session)

    def actions_after(self, seq: int, prefix: str, limit: int) -> list[AuditAction]:
        query = (
            select(col(AuditEventRow.seq), col(AuditEventRow.action), col(AuditEventRow.payload))
            .where(col(AuditEventRow.seq) > seq)
            .where(col(AuditEventRow.action).like(f"{prefix}%"))
            .order_by(col(AuditEventRow.seq))
            .limit(limit)
        )
        return [AuditAction(*row) for row in self._session.execute(query).tuples()]


class SqlDecisions(SqlRepository):
    def get(self, decision_id: str) -> StoredDecision | None:
        decision = self._session.get(GateDecision, decision_id)
        if decision is None:
            return None
        policy = self._session.get(Policy, decision.policy_id)
        return StoredDecision(
            id=decision.id,
            manifest=decision.manifest,
            manifest_sha256=decision.manifest_sha256,
            policy=stored_policy(policy) if policy else None,
        )


class SqlRequests(SqlRepository):
    def with_evidence(self, states: Sequence[str]) -> list[RequestWithEvidence]:
        query = (
            select(PromotionRequest, ModelVersion, Model, Policy, GateDecision)
            .join(ModelVersion, col(PromotionRequest.model_version_id) == col(ModelVersion.id))
            .join(Model, col(ModelVersion.model_id) == col(Model.id))
            .join(Policy, col(PromotionRequest.policy_id) == col(Policy.id))
            .outerjoin(GateDecision, col(PromotionRequest.decision_id) == col(GateDecision.id))
            .where(col(PromotionRequest.state).in_(list(states)))
            .order_by(
                col(Model.name),
                col(ModelVersion.id),
                col(PromotionRequest.target),
                col(PromotionRequest.created_at),
            )
        )
        return [
            copied(
                RequestWithEvidence,
                request,
                model=model.name,
                version=version.version,
                policy=stored_policy(policy),
                decision_id=decision.id if decision else None,
                manifest=decision.manifest if decision else None,
            )
            for request, version, model, policy, decision in self._session.execute(query).tuples()
        ]


class SqlBuilderKeys(SqlRepository):
    def get(self, name: str) -> RegisteredBuilder | None:
        row = self._row(name)
        return registered(row) if row else None

    def add(self, *, name: str, key_id: str, public_key: str, created_by: str) -> RegisteredBuilder:
        row = Builder(name=name, key_id=key_id, public_key=public_key, created_by=created_by)
        self._session.add(row)
        self._session.flush()
        return registered(row)

    def revoke(self, name: str, *, by: str, at: datetime) -> RegisteredBuilder:
        row = self._row(name)
        assert row is not None, "revoke a builder got (and locked) in this unit of work"
        row.revoked_at, row.revoked_by = at, by
        self._session.add(row)
        return registered(row)

    def all(self) -> list[RegisteredBuilder]:
        query = select(Builder).order_by(col(Builder.name))
        return [registered(row) for row in self._session.execute(query).scalars()]

    def unrevoked_with_key(self, key_ids: Sequence[str]) -> RegisteredBuilder | None:
        query = (
            select(Builder)
            .where(col(Builder.key_id).in_(list(key_ids)))
            .where(col(Builder.revoked_at).is_(None))
        )
        row = self._session.execute(query).scalars().first()
        return registered(row) if row else None

    def _row(self, name: str) -> Builder | None:
        query = select(Builder).filter_by(name=name).with_for_update()
        return self._session.execute(query).scalars().first()


def registered(row: Builder) -> RegisteredBuilder:
    return copied(RegisteredBuilder, row)


def stored_policy(row: Policy) -> StoredPolicy:
    return copied(StoredPolicy, row)


class SqlUnits:
    """The use cases' unit-of-work factory (`ports.UnitOfWorkFactory`) over one engine."""

    def __init__(self, engine: Engine, tasks: str = "embedded") -> None:
        self._engine = engine
        self._tasks = tasks

    def __call__(self, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._engine, read_only, self._tasks)
