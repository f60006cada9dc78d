"""Recording gate decisions and reading them back. Rows are inserted, never updated."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import uuid4

from sqlalchemy import Engine, func, text
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from governance.domain.audit import AUDIT_ATTEMPTS, AuditEvent, ChainedEvent, next_event
from governance.domain.errors import InputError
from governance.domain.evidence import Artifact, EvidenceManifest
from governance.domain.policy import PromotionPolicy
from governance.domain.records import AuditEventPage
from governance.store.database import writing
from governance.store.tables import (
    AuditEventRow,
    CheckRun,
    Dataset,
    GateDecision,
    Model,
    ModelVersion,
    Policy,
    utcnow,
)

TableT = TypeVar("TableT", bound=SQLModel)
T = TypeVar("T")

_INSERTS: dict[str, Any] = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


class SqlDecisionRecorder:
    """Stores a gate decision with everything it rests on, all or nothing."""

    def __init__(self, engine: Engine, actor: str = "governance gate") -> None:
        self._engine = engine
        self._actor = actor

    def record(self, manifest: EvidenceManifest, policy: PromotionPolicy) -> str:
        """Store the decision, its check runs and whatever model, version, datasets and
        policy are not stored yet, in one transaction. Returns the decision id."""
        return in_transaction(
            self._engine, lambda session: record_decision(session, manifest, policy, self._actor)
        )


def in_transaction(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction, and run it again when another writer took the audit
    seq it chained onto: the second attempt chains onto that writer's event."""
    for attempt in range(AUDIT_ATTEMPTS):
        try:
            with Session(writing(engine)) as session, session.begin():
                return work(session)
        except IntegrityError as exc:
            if "audit_event" not in str(exc.orig) or attempt == AUDIT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def record_decision(
    session: Session,
    manifest: EvidenceManifest,
    policy: PromotionPolicy,
    actor: str,
    effect_key: str | None = None,
) -> str:
    """Insert a gate decision with its check runs and audit event, in the caller's
    transaction."""
    if policy.content_hash != manifest.policy.sha256:
        raise InputError(
            f"policy {policy.metadata.name} v{policy.metadata.version}",
            f"hashes to {policy.content_hash}, but the manifest was judged under "
            f"{manifest.policy.sha256}",
            "record the decision with the policy document the gate actually ran",
        )
    artifact = _required(manifest, "model")
    data = _required(manifest, "data")
    reference = manifest.artifact("reference")
    document = manifest.model_dump(mode="json")
    decision_id = str(uuid4())
    model = get_or_insert(
        session, Model, {"name": manifest.model_name}, risk_tier=policy.applies_to.risk_tier
    )
    version = model_version(session, model, manifest.model_version, artifact)
    stored_policy = pin_policy(session, policy)
    session.add(
        GateDecision(
            id=decision_id,
            model_version_id=version.id,
            policy_id=stored_policy.id,
            data_dataset_id=_dataset(session, data).id,
            reference_dataset_id=_dataset(session, reference).id if reference else None,
            verdict=manifest.decision.verdict.value,
            summary=manifest.decision.summary,
            manifest=document,
            manifest_sha256=manifest.sha256,
            effect_key=effect_key,
        )
    )
    session.flush()  # the decision row first: check runs point at it
    session.add_all(
        CheckRun(
            decision_id=decision_id,
            check_id=result["id"],
            type=result["type"],
            status=result["status"],
            summary=result["summary"],
            metrics=result["metrics"],
            rules=result["rules"],
            duration_seconds=result["duration_seconds"],
        )
        for result in document["results"]
    )
    append_audit(
        session,
        actor=actor,
        action="gate.decision_recorded",
        subject=f"model:{manifest.model_name}@{manifest.model_version}",
        payload={
            "decision_id": decision_id,
            "verdict": manifest.decision.verdict.value,
            "policy": f"{policy.metadata.name} v{policy.metadata.version}",
            "policy_sha256": policy.content_hash,
            "manifest_sha256": manifest.sha256,
        },
    )
    return decision_id


def model_version(session: Session, model: Model, version: str, artifact: Artifact) -> ModelVersion:
    """The stored version, inserted if new; refused when it names other bytes."""
    row = get_or_insert(
        session,
        ModelVersion,
        {"model_id": model.id, "version": version},
        artifact_sha256=artifact.sha256,
        artifact_uri=artifact.uri,
    )
    if row.artifact_sha256 != artifact.sha256:
        raise InputError(
            f"model {model.name} version {version}",
            f"is already recorded with artifact sha256 {row.artifact_sha256}, "
            f"not {artifact.sha256}",
            "a version names one artifact for good: bump the model version",
        )
    return row


def pin_policy(session: Session, policy: PromotionPolicy) -> Policy:
    """The stored policy with this content hash; refused when its name and version are
    already taken by other rules."""
    rival = session.exec(
        select(Policy)
        .filter_by(name=policy.metadata.name, version=policy.metadata.version)
        .where(col(Policy.sha256) != policy.content_hash)
    ).first()
    if rival is not None:
        raise InputError(
            f"policy {policy.metadata.name} v{policy.metadata.version}",
            f"is already recorded with other rules (sha256 {rival.sha256})",
            "a policy version names one document for good: bump metadata.version",
        )
    return get_or_insert(
        session,
        Policy,
        {"sha256": policy.content_hash},
        name=policy.metadata.name,
        version=policy.metadata.version,
        risk_tier=policy.applies_to.risk_tier,
        document=json.loads(policy.canonical_json()),
    )


def list_decisions(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The latest decisions, newest first, as plain rows for a table or a listing."""
    query = (
        sa_select(
            col(GateDecision.id),
            col(Model.name),
            col(ModelVersion.version),
            col(GateDecision.verdict),
            col(Policy.name),
            col(Policy.version),
            col(GateDecision.created_at),
        )
        .join(ModelVersion, col(GateDecision.model_version_id) == col(ModelVersion.id))
        .join(Model, col(ModelVersion.model_id) == col(Model.id))
        .join(Policy, col(GateDecision.policy_id) == col(Policy.id))
        .order_by(col(GateDecision.created_at).desc())
        .limit(limit)
    )
    keys = ("id", "model", "version", "verdict", "policy_name", "policy_version", "created_at")
    with engine.connect() as connection:
        return [dict(zip(keys, row, strict=True)) for row in connection.execute(query)]


def get_manifest(engine: Engine, decision_id: str) -> EvidenceManifest:
    """The evidence manifest exactly as it was recorded."""
    with Session(engine) as session:
        decision = session.get(GateDecision, decision_id)
    if decision is None:
        raise InputError(
            f"decision {decision_id}", "is not recorded", "list the decisions to find its id"
        )
    return EvidenceManifest.model_validate(decision.manifest)


def _required(manifest: EvidenceManifest, role: str) -> Artifact:
    artifact = manifest.artifact(role)
    if artifact is None:
        raise InputError(
            f"evidence manifest for {manifest.model_name} {manifest.model_version}",
            f"has no {role} artifact",
            f"add the {role} file the gate judged",
        )
    return artifact


def _dataset(session: Session, artifact: Artifact) -> Dataset:
    return get_or_insert(
        session,
        Dataset,
        {"sha256": artifact.sha256},
        uri=artifact.uri,
        format=artifact.format,
        rows=artifact.rows,
        columns=artifact.columns,
    )


def get_or_insert(
    session: Session, table: type[TableT], key: dict[str, Any], **values: Any
) -> TableT:
    """The row with this unique key, inserted first if missing. INSERT … ON CONFLICT DO NOTHING
    rather than select-then-insert, so concurrent gates never trip over each other's rows."""
    insert = _INSERTS[session.get_bind().dialect.name]
    session.exec(
        insert(table).values(**key, **values).on_conflict_do_nothing(index_elements=list(key))
    )
    return session.exec(select(table).filter_by(**key)).one()


# The advisory lock key of the audit trail's appenders (any fixed 64-bit number: "audit").
AUDIT_TRAIL_LOCK = int.from_bytes(b"audit", "big")


def append_audit(
    session: Session, *, actor: str, action: str, subject: str, payload: dict[str, Any]
) -> ChainedEvent:
    """Chain one event onto the trail, inside the caller's transaction; returns it.

    On PostgreSQL the appender first takes the trail's transaction lock, held to commit:
    writers chain one after another instead of racing for the next seq and starting over
    (with many API processes and workers, the losers of that race ran out of tries). SQLite
    has one writer at a time already."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_TRAIL_LOCK})
    head = session.exec(
        select(AuditEventRow).order_by(col(AuditEventRow.seq).desc()).limit(1)
    ).first()
    chained = next_event(
        chained_event(head) if head else None,
        time=utcnow(),
        actor=actor,
        action=action,
        subject=subject,
        payload=payload,
    )
    session.add(
        AuditEventRow(**chained.event.model_dump(), prev_hash=chained.prev_hash, hash=chained.hash)
    )
    session.flush()
    return chained


def subject_events(session: Session, subject: str) -> list[dict[str, Any]]:
    """The audit events about one subject (a model version), oldest first, as the request
    page and the decision report list them."""
    rows = session.exec(
        select(AuditEventRow)
        .where(col(AuditEventRow.subject) == subject)
        .order_by(col(AuditEventRow.seq))
    ).all()
    return [
        {
            "seq": r.seq,
            "time": r.time,
            "actor": r.actor,
            "action": r.action,
            "hash": r.hash,
            "payload": r.payload,
        }
        for r in rows
    ]


def chained_event(row: AuditEventRow) -> ChainedEvent:
    event = AuditEvent.model_validate(row, from_attributes=True)
    return ChainedEvent(event=event, prev_hash=row.prev_hash, hash=row.hash)


def audit_trail(engine: Engine) -> list[ChainedEvent]:
    """The whole trail in seq order, as stored (verify it with `verify_chain`)."""
    with Session(engine) as session:
        return chained_events(session)


def chained_events(session: Session) -> list[ChainedEvent]:
    """The whole trail in seq order, read in the caller's transaction."""
    rows = session.exec(select(AuditEventRow).order_by(col(AuditEventRow.seq))).all()
    return [chained_event(row) for row in rows]


def audit_page(
    engine: Engine,
    action: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> AuditEventPage:
    """Audit events, newest first, filtered; with the total for pagination."""
    with Session(engine) as session:
        events, total = audit_events_page(session, action, subject, actor, limit, offset)
    return AuditEventPage(events, total, limit, offset)


def audit_events_page(
    session: Session,
    action: str | None,
    subject: str | None,
    actor: str | None,
    limit: int,
    offset: int,
) -> tuple[list[ChainedEvent], int]:
    """`audit_page` in the caller's transaction. The page's seqs are read first (from an
    index: a deep page skips index entries, not events), then those events alone; the
    count reads no event."""
    seq = col(AuditEventRow.seq)
    conditions = [
        col(column) == value
        for column, value in (
            (AuditEventRow.action, action),
            (AuditEventRow.subject, subject),
            (AuditEventRow.actor, actor),
        )
        if value
    ]
    seqs = session.exec(
        select(seq).where(*conditions).order_by(seq.desc()).offset(offset).limit(limit)
    ).all()
    if seqs and len(seqs) < limit:
        total = offset + len(seqs)  # the last page: no count needed
    elif not seqs and offset == 0:
        total = 0
    else:
        total = session.exec(
            select(func.count()).select_from(AuditEventRow).where(*conditions)
        ).one()
    rows = (
        session.exec(select(AuditEventRow).where(seq.in_(seqs)).order_by(seq.desc())).all()
        if seqs
        else []
    )
    return [chained_event(row) for row in rows], total
