"""Webhook subscriptions, their deliveries, and what the fan-out reads of the trail, over
SQL (`governance.services.ports` `WebhookSubscriptions`, `WebhookDeliveries`,
`WebhookTrail`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from governance.domain.audit import ChainedEvent
from governance.domain.browsing import Slice
from governance.domain.copying import copied
from governance.domain.records import FinishedChecks, Subscription, WebhookDeliveryRecord
from governance.store.repository import chained_event, get_or_insert
from governance.store.session import SqlRepository
from governance.store.tables import (
    AuditEventRow,
    ConsumerCursor,
    GateDecision,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
    WebhookDelivery,
    WebhookSubscription,
)


class SqlWebhookSubscriptions(SqlRepository):
    def add(
        self,
        *,
        url: str,
        events: Sequence[str],
        salt: str,
        created_by: str,
        created_at: datetime,
    ) -> Subscription:
        row = WebhookSubscription(
            url=url, events=list(events), salt=salt, created_by=created_by, created_at=created_at
        )
        self._session.add(row)
        self._session.flush()
        return subscription(row)

    def get(self, subscription_id: int) -> Subscription | None:
        row = self._session.get(WebhookSubscription, subscription_id)
        return subscription(row) if row else None

    def locked(self, subscription_id: int) -> Subscription | None:
        row = self._locked(subscription_id)
        return subscription(row) if row else None

    def deactivate(self, subscription_id: int) -> Subscription:
        row = self._locked(subscription_id)
        assert row is not None, "deactivate a subscription got (and locked) in this unit"
        row.active = False
        self._session.add(row)
        return subscription(row)

    def all(self) -> list[Subscription]:
        query = select(WebhookSubscription).order_by(col(WebhookSubscription.id))
        return [subscription(row) for row in self._session.exec(query)]

    def active(self) -> list[Subscription]:
        query = select(WebhookSubscription).filter_by(active=True)
        return [subscription(row) for row in self._session.exec(query)]

    def _locked(self, subscription_id: int) -> WebhookSubscription | None:
        query = (
            select(WebhookSubscription)
            .where(WebhookSubscription.id == subscription_id)
            .with_for_update()
        )
        return self._session.exec(query).first()


class SqlWebhookDeliveries(SqlRepository):
    def add(
        self,
        *,
        subscription_id: int,
        event_seq: int,
        event: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> None:
        self._session.add(
            WebhookDelivery(
                subscription_id=subscription_id,
                event_seq=event_seq,
                event=event,
                payload=payload,
                status="pending",
                next_attempt_at=now,
                created_at=now,
            )
        )

    def due(self, now: datetime, limit: int) -> list[int]:
        query = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == "pending")
            .where(col(WebhookDelivery.next_attempt_at) <= now)
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(limit)
        )
        return list(self._session.exec(query).all())

    def locked(self, delivery_id: int) -> WebhookDeliveryRecord | None:
        row = self._session.get(WebhookDelivery, delivery_id, with_for_update=True)
        return delivery(row) if row else None

    def save(self, changed: WebhookDeliveryRecord) -> None:
        row = self._session.get(WebhookDelivery, changed.id)
        assert row is not None, "save a delivery read in this unit of work"
        row.status, row.attempts = changed.status, changed.attempts
        row.next_attempt_at = changed.next_attempt_at
        row.last_status_code, row.last_error = changed.last_status_code, changed.last_error
        row.last_answer, row.last_attempt_at = changed.last_answer, changed.last_attempt_at
        row.last_duration_ms, row.delivered_at = changed.last_duration_ms, changed.delivered_at
        self._session.add(row)
        self._session.flush()

    def page(
        self, status: str | None, subscription_id: int | None, limit: int, offset: int
    ) -> Slice[tuple[WebhookDeliveryRecord, str]]:
        conditions = [
            condition
            for condition, wanted in (
                (col(WebhookDelivery.status) == status, status is not None),
                (col(WebhookDelivery.subscription_id) == subscription_id, subscription_id),
            )
            if wanted
        ]
        total = self._session.exec(
            select(func.count()).select_from(WebhookDelivery).where(*conditions)
        ).one()
        rows = self._session.exec(
            select(WebhookDelivery, WebhookSubscription.url)
            .join(WebhookSubscription)
            .where(*conditions)
            .order_by(col(WebhookDelivery.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
        return Slice([(delivery(row), url) for row, url in rows], int(total))


class SqlWebhookTrail(SqlRepository):
    def cursor(self, name: str) -> int | None:
        row = self._session.get(ConsumerCursor, name)
        return row.seq if row else None

    def locked_cursor(self, name: str) -> int | None:
        query = select(ConsumerCursor).where(ConsumerCursor.name == name).with_for_update()
        row = self._session.exec(query).first()
        return row.seq if row else None

    def start_cursor(self, name: str, seq: int) -> None:
        get_or_insert(self._session, ConsumerCursor, {"name": name}, seq=seq)

    def events_after(self, seq: int, limit: int) -> list[ChainedEvent]:
        query = (
            select(AuditEventRow)
            .where(col(AuditEventRow.seq) > seq)
            .order_by(col(AuditEventRow.seq))
            .limit(limit)
        )
        return [chained_event(row) for row in self._session.exec(query).all()]

    def hashes_through(self, seq: int) -> list[str]:
        query = (
            select(AuditEventRow.hash)
            .where(col(AuditEventRow.seq) <= seq)
            .order_by(col(AuditEventRow.seq))
        )
        return list(self._session.exec(query).all())

    def first_seq(self, subject: str, action: str) -> int | None:
        query = (
            select(func.min(AuditEventRow.seq))
            .where(col(AuditEventRow.subject) == subject)
            .where(col(AuditEventRow.action) == action)
        )
        return self._session.exec(query).one()

    def actions_through(self, subject: str, action: str, seq: int) -> list[ChainedEvent]:
        query = (
            select(AuditEventRow)
            .where(col(AuditEventRow.subject) == subject)
            .where(col(AuditEventRow.action) == action)
            .where(col(AuditEventRow.seq) <= seq)
        )
        return [chained_event(row) for row in self._session.exec(query).all()]

    def finished_checks(self, model: str, version: str, decision_id: str) -> FinishedChecks | None:
        request = self._session.exec(
            select(PromotionRequest)
            .join(ModelVersion)
            .join(Model)
            .where(col(Model.name) == model, col(ModelVersion.version) == version)
            .where(col(PromotionRequest.decision_id) == decision_id)
        ).first()
        decision = self._session.get(GateDecision, decision_id)
        if request is None or decision is None:
            return None
        return FinishedChecks(request.id, decision.verdict, decision.summary)

    def policy_document(self, request_id: str) -> dict[str, Any]:
        request = self._session.get(PromotionRequest, request_id)
        assert request is not None  # the trail names only requests that exist
        policy = self._session.get(Policy, request.policy_id)
        assert policy is not None
        return policy.document


def subscription(row: WebhookSubscription) -> Subscription:
    return copied(Subscription, row, events=tuple(row.events))


def delivery(row: WebhookDelivery) -> WebhookDeliveryRecord:
    return copied(WebhookDeliveryRecord, row)
