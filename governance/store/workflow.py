"""The workflow's repositories over SQL (`governance.services.ports` `Models`,
`Promotions`): models, promotion requests and what hangs off them, answered in domain
records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select

from governance.domain.copying import copied
from governance.domain.evidence import Artifact, EvidenceManifest
from governance.domain.policy import PromotionPolicy
from governance.domain.records import (
    CheckJob,
    FinalDecisionRecord,
    ModelRecord,
    PromotionRecord,
    RecordedVerdict,
    SignatureRecord,
    StoredPolicy,
    VersionRecord,
    WaiverRecord,
)
from governance.store.repository import get_or_insert, model_version, pin_policy, record_decision
from governance.store.session import SqlRepository
from governance.store.tables import (
    FinalDecision,
    GateDecision,
    Job,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
    Signature,
    UserAccount,
    WaiverRequest,
)


class SqlModels(SqlRepository):
    def register(self, name: str, risk_tier: str, owner: str | None) -> ModelRecord:
        row = get_or_insert(self._session, Model, {"name": name}, risk_tier=risk_tier, owner=owner)
        return _model(row)

    def get(self, name: str) -> ModelRecord | None:
        row = self._session.exec(select(Model).filter_by(name=name)).first()
        return _model(row) if row else None

    def all(self) -> list[ModelRecord]:
        return [_model(m) for m in self._session.exec(select(Model).order_by(col(Model.name)))]

    def versions(self, name: str) -> list[VersionRecord]:
        rows = self._session.exec(
            select(ModelVersion)
            .join(Model, col(ModelVersion.model_id) == col(Model.id))
            .where(Model.name == name)
            .order_by(col(ModelVersion.id))
        )
        return [copied(VersionRecord, row) for row in rows]

    def person_known(self, username: str) -> bool:
        query = select(UserAccount.id).filter_by(username=username)
        return self._session.exec(query).first() is not None


class SqlPromotions(SqlRepository):
    def record_version(self, model: str, version: str, artifact: Artifact) -> VersionRecord:
        stored = self._session.exec(select(Model).filter_by(name=model)).one()
        row = model_version(self._session, stored, version, artifact)
        return copied(VersionRecord, row)

    def pin_policy(self, policy: PromotionPolicy) -> StoredPolicy:
        return copied(StoredPolicy, pin_policy(self._session, policy))

    def open_request(
        self, model: str, version: str, target: str, states: Sequence[str]
    ) -> PromotionRecord | None:
        row = self._session.exec(
            select(PromotionRequest)
            .where(PromotionRequest.model_version_id == self._version_id(model, version))
            .where(PromotionRequest.target == target)
            .where(col(PromotionRequest.state).in_(list(states)))
        ).first()
        return self._record(row) if row else None

    def add(self, request: PromotionRecord) -> None:
        policy = self._session.exec(select(Policy).filter_by(sha256=request.policy.sha256)).one()
        version_id = self._version_id(request.model, request.version)
        assert version_id is not None, "add a request of a stored version"
        self._session.add(
            PromotionRequest(
                id=request.id,
                model_version_id=version_id,
                target=request.target,
                policy_id=policy.id,
                submitter=request.submitter,
                submitter_person=request.submitter_person,
                state=request.state,
                state_reason=request.state_reason,
                decision_id=request.decision_id,
                inputs=request.inputs,
                expires_at=request.expires_at,
                created_at=request.created_at,
                updated_at=request.updated_at,
            )
        )
        self._session.flush()

    def get(self, request_id: str, *, lock: bool = False) -> PromotionRecord | None:
        query = select(PromotionRequest).where(PromotionRequest.id == request_id)
        row = self._session.exec(query.with_for_update() if lock else query).first()
        return self._record(row) if row else None

    def update(self, request: PromotionRecord) -> None:
        row = self._session.get(PromotionRequest, request.id)
        assert row is not None, "update a request got in this unit of work"
        row.state, row.state_reason = request.state, request.state_reason
        row.decision_id, row.expires_at = request.decision_id, request.expires_at
        row.updated_at = request.updated_at
        self._session.add(row)
        self._session.flush()

    def page(
        self, state: str | None, model: str | None, limit: int, offset: int
    ) -> tuple[int, list[PromotionRecord]]:
        query = (
            select(PromotionRequest)
            .join(ModelVersion, col(PromotionRequest.model_version_id) == col(ModelVersion.id))
            .join(Model, col(ModelVersion.model_id) == col(Model.id))
        )
        if state:
            query = query.where(PromotionRequest.state == state)
        if model:
            query = query.where(Model.name == model)
        total = self._session.exec(select(func.count()).select_from(query.subquery())).one()
        rows = self._session.exec(
            query.order_by(col(PromotionRequest.created_at).desc()).offset(offset).limit(limit)
        ).all()
        return total, [self._record(row) for row in rows]

    def latest(self, model: str, version: str, target: str) -> PromotionRecord | None:
        row = self._session.exec(
            select(PromotionRequest)
            .join(ModelVersion, col(PromotionRequest.model_version_id) == col(ModelVersion.id))
            .join(Model, col(ModelVersion.model_id) == col(Model.id))
            .where(Model.name == model, ModelVersion.version == version)
            .where(PromotionRequest.target == target)
            .order_by(col(PromotionRequest.created_at).desc())
            .limit(1)
        ).first()
        return self._record(row) if row else None

    def due(self, states: Sequence[str], now: datetime) -> list[str]:
        return list(
            self._session.exec(
                select(PromotionRequest.id)
                .where(col(PromotionRequest.state).in_(list(states)))
                .where(col(PromotionRequest.expires_at) <= now)
            ).all()
        )

    def signatures(self, request_id: str) -> list[SignatureRecord]:
        rows = self._session.exec(
            select(Signature).filter_by(request_id=request_id).order_by(col(Signature.id))
        )
        return [copied(SignatureRecord, row) for row in rows]

    def add_signature(self, request_id: str, signature: SignatureRecord) -> None:
        self._session.add(Signature(request_id=request_id, **vars(signature)))
        self._session.flush()

    def waiver(self, request_id: str) -> WaiverRecord | None:
        row = self._session.exec(
            select(WaiverRequest)
            .filter_by(request_id=request_id)
            .order_by(col(WaiverRequest.id).desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return copied(WaiverRecord, row)

    def add_waiver(self, request_id: str, waiver: WaiverRecord) -> None:
        self._session.add(WaiverRequest(request_id=request_id, **vars(waiver)))

    def finals(self, request_id: str) -> list[FinalDecisionRecord]:
        rows = self._session.exec(
            select(FinalDecision)
            .filter_by(request_id=request_id)
            .order_by(col(FinalDecision.created_at))
        )
        return [_final(row) for row in rows]

    def final(self, decision_id: str) -> FinalDecisionRecord | None:
        row = self._session.get(FinalDecision, decision_id)
        return _final(row) if row else None

    def add_final(self, request_id: str, final: FinalDecisionRecord) -> None:
        self._session.add(FinalDecision(request_id=request_id, **vars(final)))

    def verdict(self, decision_id: str) -> RecordedVerdict | None:
        row = self._session.get(GateDecision, decision_id)
        if row is None:
            return None
        return copied(RecordedVerdict, row)

    def record_decision(
        self,
        manifest: EvidenceManifest,
        policy: PromotionPolicy,
        actor: str,
        effect_key: str | None = None,
    ) -> str:
        return record_decision(self._session, manifest, policy, actor, effect_key)

    def enqueue(self, request_id: str, kind: str) -> int:
        job = Job(request_id=request_id, kind=kind, status="queued")
        self._session.add(job)
        self._session.flush()
        return job.id

    def claimable_jobs(self, lapsed: datetime) -> list[int]:
        return list(
            self._session.exec(
                select(Job.id)
                .where(
                    (col(Job.status) == "queued")
                    | ((col(Job.status) == "running") & (col(Job.claimed_at) < lapsed))
                )
                .order_by(col(Job.id))
            ).all()
        )

    def job(self, job_id: int) -> CheckJob:
        row = self._session.exec(select(Job).where(Job.id == job_id).with_for_update()).one()
        return copied(CheckJob, row)

    def save_job(self, job: CheckJob) -> None:
        row = self._session.get(Job, job.id)
        assert row is not None, "save a job got in this unit of work"
        row.status, row.attempts, row.claimed_at = job.status, job.attempts, job.claimed_at
        row.error, row.finished_at, row.claimed_by = job.error, job.finished_at, job.claimed_by
        self._session.add(row)

    def _record(self, row: PromotionRequest) -> PromotionRecord:
        version = self._session.get(ModelVersion, row.model_version_id)
        model = self._session.get(Model, version.model_id) if version else None
        policy = self._session.get(Policy, row.policy_id)
        assert version and model and policy  # foreign keys guarantee all three
        return copied(
            PromotionRecord,
            row,
            model=model.name,
            version=version.version,
            risk_tier=model.risk_tier,
            model_owner=model.owner,
            artifact_sha256=version.artifact_sha256,
            policy=copied(StoredPolicy, policy),
        )


def _model(row: Model) -> ModelRecord:
    return copied(ModelRecord, row)


def _final(row: FinalDecision) -> FinalDecisionRecord:
    return copied(FinalDecisionRecord, row)
