"""The console's audit and policy pages as SQL (`governance.services.ports.CatalogViews`):
the audit trail by page (`repository.audit_events_page`, bench/console.py times it) and
every pinned policy with how many requests pinned it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, true
from sqlmodel import col, select

from governance.domain.audit import ChainedEvent
from governance.domain.browsing import AuditFilter, Page, Slice
from governance.domain.copying import copied
from governance.domain.records import PinnedPolicy, StoredPolicy
from governance.store.repository import audit_events_page
from governance.store.session import SqlRepository
from governance.store.tables import AuditEventRow, Policy, PromotionRequest


class SqlCatalogViews(SqlRepository):
    def audit_position(self, seq: int, filters: AuditFilter) -> int | None:
        if self._session.get(AuditEventRow, seq) is None:
            return None
        newer = select(func.count()).select_from(AuditEventRow).where(_matching(filters))
        return self._session.exec(newer.where(col(AuditEventRow.seq) > seq)).one()

    def audit_actions(self) -> list[str]:
        action = col(AuditEventRow.action)
        return list(self._session.exec(select(action).distinct().order_by(action)))

    def audit_page(self, filters: AuditFilter, page: Page) -> Slice[ChainedEvent]:
        events, total = audit_events_page(
            self._session,
            filters.action,
            filters.subject,
            filters.actor,
            limit=page.size,
            offset=page.offset,
        )
        return Slice(events, total)

    def pinned_policies(self) -> list[PinnedPolicy]:
        pinned_by = (
            select(col(PromotionRequest.policy_id), func.count())
            .group_by(col(PromotionRequest.policy_id))
            .subquery()
        )
        rows = self._session.exec(
            select(Policy, pinned_by.c[1]).outerjoin(
                pinned_by, pinned_by.c.policy_id == col(Policy.id)
            )
        ).all()
        return [
            PinnedPolicy(
                copied(StoredPolicy, row),
                row.created_at,
                count or 0,
            )
            for row, count in rows
        ]


def _matching(filters: AuditFilter) -> Any:
    """The filters as one SQL condition (`audit_events_page`'s, for counting)."""
    conditions = [
        col(column) == value
        for column, value in (
            (AuditEventRow.action, filters.action),
            (AuditEventRow.actor, filters.actor),
            (AuditEventRow.subject, filters.subject),
        )
        if value
    ]
    return and_(true(), *conditions)
