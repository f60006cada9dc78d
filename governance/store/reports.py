"""The reports' reads over SQL (`governance.services.ports.ReportSources`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from governance.domain.records import InventoryModel, InventoryRequest, ReportedRequest
from governance.store.session import SqlRepository
from governance.store.tables import (
    GateDecision,
    Model,
    ModelVersion,
    PromotionRequest,
    WaiverRequest,
)


class SqlReportSources(SqlRepository):
    def request(self, request_id: str) -> ReportedRequest | None:
        row = self._session.get(PromotionRequest, request_id)
        if row is None:
            return None
        return ReportedRequest(row.id, row.state, row.decision_id, row.inputs.get("model_card"))

    def owner(self, model: str, version: str) -> str | None:
        query = (
            select(col(Model.owner))
            .join(ModelVersion, col(ModelVersion.model_id) == col(Model.id))
            .where(col(Model.name) == model)
            .where(col(ModelVersion.version) == version)
        )
        return self._session.execute(query).scalar_one_or_none()

    def inventory(self) -> list[InventoryModel]:
        session = self._session
        models = session.execute(select(Model).order_by(col(Model.name))).scalars().all()
        requests = (
            session.execute(
                select(PromotionRequest, ModelVersion)
                .join(ModelVersion, col(PromotionRequest.model_version_id) == col(ModelVersion.id))
                .order_by(col(PromotionRequest.created_at).desc())
            )
            .tuples()
            .all()
        )
        asked = set(session.execute(select(col(WaiverRequest.request_id))).scalars().all())
        verdicts = (
            session.execute(
                select(col(ModelVersion.model_id), col(GateDecision.verdict))
                .join(GateDecision, col(GateDecision.model_version_id) == col(ModelVersion.id))
                .order_by(col(GateDecision.created_at))
            )
            .tuples()
            .all()
        )
        latest_verdict = dict(verdicts)  # the newest decision per model wins
        by_model: dict[int, list[InventoryRequest]] = {}
        for request, version in requests:
            by_model.setdefault(version.model_id, []).append(
                InventoryRequest(
                    request.id,
                    request.state,
                    version.version,
                    request.expires_at,
                    request.id in asked,
                )
            )
        return [
            InventoryModel(
                model.name,
                model.risk_tier,
                model.owner,
                tuple(by_model.get(model.id, [])),
                latest_verdict.get(model.id),
            )
            for model in models
        ]
