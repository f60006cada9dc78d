"""Registry links and audit-trail cursors over SQL (`governance.services.ports`
`RegistryLinks`, `ConsumerCursors`, `SubmissionLink`), for the registry connectors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import col, select

from governance.domain.copying import copied
from governance.domain.records import (
    LinkedRequest,
    LinkedVersion,
    PromotionRecord,
    RegistryLinkRecord,
)
from governance.store.session import SqlRepository
from governance.store.tables import (
    ConsumerCursor,
    Model,
    ModelVersion,
    PromotionRequest,
    RegistryLink,
)


class SqlRegistryLinks(SqlRepository):
    def known(self, connector: str) -> set[tuple[str, str]]:
        links = self._session.exec(select(RegistryLink).filter_by(connector=connector))
        return {(link.registry_model, link.registry_version) for link in links}

    def of_request(self, request_id: str) -> LinkedRequest | None:
        row = self._session.exec(
            select(PromotionRequest, RegistryLink)
            .join(
                RegistryLink,
                col(RegistryLink.model_version_id) == col(PromotionRequest.model_version_id),
            )
            .where(PromotionRequest.id == request_id)
        ).first()
        if row is None:
            return None
        request, link = row
        return copied(
            LinkedRequest,
            request,
            link=copied(RegistryLinkRecord, link),
            request_id=request.id,
        )

    def of_connector(self, connector: str) -> list[LinkedVersion]:
        rows = self._session.exec(
            select(RegistryLink, PromotionRequest, ModelVersion)
            .join(ModelVersion, col(ModelVersion.id) == col(RegistryLink.model_version_id))
            .join(
                PromotionRequest,
                col(PromotionRequest.model_version_id) == col(ModelVersion.id),
            )
            .where(RegistryLink.connector == connector)
            .order_by(col(PromotionRequest.updated_at))
        ).all()
        return [
            LinkedVersion(
                link.registry_model, link.registry_version, request.state, version.artifact_sha256
            )
            for link, request, version in rows
        ]

    def add(self, link: RegistryLinkRecord, model: str, version: str) -> None:
        stored = self._session.exec(
            select(ModelVersion)
            .join(Model, col(ModelVersion.model_id) == col(Model.id))
            .where(Model.name == model, ModelVersion.version == version)
        ).one()
        self._session.add(RegistryLink(**vars(link), model_version_id=stored.id))


class SqlConsumerCursors(SqlRepository):
    def position(self, name: str) -> int:
        cursor = self._session.get(ConsumerCursor, name)
        return cursor.seq if cursor else 0

    def advance(self, name: str, seq: int) -> None:
        cursor = self._session.get(ConsumerCursor, name, with_for_update=True)
        if cursor is None:
            self._session.add(ConsumerCursor(name=name, seq=seq))
        elif cursor.seq < seq:
            cursor.seq = seq
            self._session.add(cursor)


def link_on_submit(link: RegistryLinkRecord) -> Callable[[Any, PromotionRecord], None]:
    """`ports.SubmissionLink`: the link, added in the workflow's submit transaction through
    its unit of work (a `ports.WorkflowUnit`, which the store does not import)."""

    def add(uow: Any, request: PromotionRecord) -> None:
        uow.registry_links.add(link, request.model, request.version)

    return add
