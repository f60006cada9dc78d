"""Production monitoring's repository over SQL (`governance.services.ports`
`PredictionLogs`): prediction batches, the data a version was checked on, the promoted
requests to monitor and their runs, answered in domain records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy import select as columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from governance.domain.copying import copied
from governance.domain.records import (
    CheckedData,
    MonitoredRequest,
    MonitoringRunRecord,
    PredictionBatchRecord,
    ReceivedTotals,
    StoredFile,
)
from governance.domain.workflow import State
from governance.store.session import SqlRepository
from governance.store.tables import (
    Dataset,
    FinalDecision,
    GateDecision,
    Model,
    ModelVersion,
    MonitoringRun,
    Policy,
    PredictionBatch,
    PromotionRequest,
)


class SqlPredictionLogs(SqlRepository):
    # --- prediction batches ------------------------------------------------------------

    def version_id(self, model: str, version: str) -> int | None:
        return self._version_id(model, version)

    def checked_data(self, version_id: int) -> CheckedData | None:
        decision = self._session.exec(
            select(GateDecision)
            .filter_by(model_version_id=version_id)
            .order_by(col(GateDecision.created_at).desc())
            .limit(1)
        ).first()
        if decision is None:
            return None
        data = self._session.get(Dataset, decision.data_dataset_id)
        assert data is not None
        manifest = decision.manifest
        return CheckedData(
            columns=list(data.columns or []),
            sha256=data.sha256,
            uri=data.uri,
            format=data.format,
            target=manifest["target"],
            task=manifest["task"],
            positive_label=manifest.get("positive_label"),
        )

    def batch(self, version_id: int, batch_id: str) -> PredictionBatchRecord | None:
        row = self._session.exec(
            select(PredictionBatch).filter_by(model_version_id=version_id, batch_id=batch_id)
        ).first()
        return _batch(row) if row else None

    def add_batch(self, batch: PredictionBatchRecord) -> bool:
        # In a savepoint: a batch id another writer took just now is reported (False), and
        # the unit of work goes on to read that writer's batch.
        try:
            with self._session.begin_nested():
                self._session.add(PredictionBatch(**vars(batch)))
        except IntegrityError as exc:
            if "prediction_batch" not in str(exc.orig):
                raise
            return False
        return True

    def batches(self, version_id: int, limit: int) -> list[PredictionBatchRecord]:
        rows = self._session.exec(
            select(PredictionBatch)
            .filter_by(model_version_id=version_id)
            .order_by(col(PredictionBatch.id).desc())
            .limit(limit)
        ).all()
        return [_batch(row) for row in rows]

    def received(self, version_id: int) -> ReceivedTotals:
        batches, rows, outcomes, last_at = self._session.exec(
            select(
                func.count(col(PredictionBatch.id)),
                func.coalesce(func.sum(PredictionBatch.rows), 0),
                func.coalesce(func.sum(PredictionBatch.outcomes), 0),
                func.max(PredictionBatch.last_at),
            ).where(PredictionBatch.model_version_id == version_id)
        ).one()
        return ReceivedTotals(int(batches), int(rows), int(outcomes), last_at)

    def batch_files(self, version_id: int, start: datetime, end: datetime) -> list[str]:
        query = (
            select(PredictionBatch.sha256)
            .filter_by(model_version_id=version_id)
            .where(col(PredictionBatch.last_at) > start, col(PredictionBatch.first_at) <= end)
            .order_by(col(PredictionBatch.id))
        )
        return list(self._session.exec(query).all())

    # --- promoted requests -------------------------------------------------------------

    def promoted(self, request_id: str | None = None) -> list[MonitoredRequest]:
        query = (
            columns(
                col(PromotionRequest.id),
                col(PromotionRequest.model_version_id),
                col(Model.name),
                col(ModelVersion.version),
                col(Policy.document),
                col(FinalDecision.created_at),
            )
            .join(Policy, col(Policy.id) == col(PromotionRequest.policy_id))
            .join(FinalDecision, col(FinalDecision.request_id) == col(PromotionRequest.id))
            .join(ModelVersion, col(ModelVersion.id) == col(PromotionRequest.model_version_id))
            .join(Model, col(Model.id) == col(ModelVersion.model_id))
            .where(col(PromotionRequest.state) == State.PROMOTED.value)
            .where(col(FinalDecision.decision) == State.PROMOTED.value)
        )
        if request_id is not None:
            query = query.where(col(PromotionRequest.id) == request_id)
        return [
            MonitoredRequest(*row)
            for row in self._session.execute(query.order_by(col(PromotionRequest.id))).tuples()
        ]

    def request_state(self, request_id: str) -> str | None:
        request = self._session.get(PromotionRequest, request_id)
        return request.state if request else None

    def reference(self, request_id: str) -> tuple[StoredFile, bool]:
        request = self._session.get(PromotionRequest, request_id)
        decision = self._session.get(GateDecision, request.decision_id) if request else None
        assert decision is not None
        dataset_id = decision.reference_dataset_id or decision.data_dataset_id
        data = self._session.get(Dataset, dataset_id)
        assert data is not None
        stored = StoredFile(data.sha256, data.uri, data.format)
        return stored, decision.reference_dataset_id is not None

    # --- runs --------------------------------------------------------------------------

    def runs(self, request_id: str, limit: int) -> list[MonitoringRunRecord]:
        rows = self._session.exec(
            select(MonitoringRun)
            .filter_by(request_id=request_id)
            .order_by(col(MonitoringRun.due_at).desc(), col(MonitoringRun.id).desc())
            .limit(limit)
        ).all()
        return [_run(row) for row in rows]

    def slot(
        self, request_id: str, monitor: str, due_at: datetime, *, lock: bool = False
    ) -> MonitoringRunRecord | None:
        query = select(MonitoringRun).filter_by(
            request_id=request_id, monitor=monitor, due_at=due_at
        )
        row = self._session.exec(query.with_for_update() if lock else query).first()
        return _run(row) if row else None

    def add_run(
        self, request_id: str, monitor: str, due_at: datetime, started_at: datetime
    ) -> int | None:
        row = MonitoringRun(
            request_id=request_id,
            monitor=monitor,
            due_at=due_at,
            status="running",
            started_at=started_at,
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError:  # another process claimed the slot
            return None
        return row.id

    def run(self, run_id: int) -> MonitoringRunRecord:
        query = select(MonitoringRun).where(MonitoringRun.id == run_id).with_for_update()
        return _run(self._session.exec(query).one())

    def save_run(self, run: MonitoringRunRecord) -> None:
        row = self._session.get(MonitoringRun, run.id)
        assert row is not None
        for name, value in vars(run).items():
            setattr(row, name, value)
        self._session.add(row)
        self._session.flush()


def _batch(row: PredictionBatch) -> PredictionBatchRecord:
    return copied(PredictionBatchRecord, row, columns=list(row.columns))


def _run(row: MonitoringRun) -> MonitoringRunRecord:
    return copied(MonitoringRunRecord, row, results=list(row.results))
