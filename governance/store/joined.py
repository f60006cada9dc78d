"""An ORM session seen as a unit of work's repositories, for the services still on the
ORM whose transaction a workflow state change must join."""

from __future__ import annotations

from sqlmodel import Session

from governance.store.registry_links import SqlRegistryLinks
from governance.store.uow import SqlAuditTrail
from governance.store.workflow import SqlModels, SqlPromotions


class SessionUnit:
    """An ORM session seen as the repositories the workflow's state changes write through
    (`ports.WorkflowUnit`), for callers still on the ORM (monitoring, reports) whose own
    transaction a change must join."""

    def __init__(self, session: Session) -> None:
        self.audit = SqlAuditTrail(session)
        self.models = SqlModels(session)
        self.promotions = SqlPromotions(session)
        self.registry_links = SqlRegistryLinks(session)
