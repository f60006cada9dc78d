"""The database tables. Rows are written once and never updated: they are evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Index, String, Text, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel, col

# Named constraints read the same on SQLite and PostgreSQL, so later migrations can name them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend: SQLite stores no zone, so the value is
    converted to UTC on the way in and marked UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _created_at() -> Any:
    return Field(default_factory=utcnow, sa_type=UtcDateTime, nullable=False)


def _serial() -> Any:
    """An integer key the database assigns on insert; rows are only ever seen after that."""
    return Field(default=None, primary_key=True)


def _sha256(**kwargs: Any) -> Any:
    return Field(sa_type=String(64), nullable=False, **kwargs)


class Model(SQLModel, table=True):
    __tablename__ = "model"
    # The inventory filtered by tier, in name order (migration 0004, as is the owner index).
    __table_args__ = (Index("ix_model_risk_tier_name", "risk_tier", "name"),)

    id: int = _serial()
    name: str = Field(unique=True)
    risk_tier: str
    # a person's user name, never a token (migration 0006); my queue leaves my models out
    owner: str | None = Field(default=None, index=True)
    created_at: datetime = _created_at()


class ModelVersion(SQLModel, table=True):
    """A version names one artifact forever: the same version with other bytes is refused."""

    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: int = _serial()
    model_id: int = Field(foreign_key="model.id")
    version: str
    artifact_sha256: str = _sha256()
    artifact_uri: str
    created_at: datetime = _created_at()


class Dataset(SQLModel, table=True):
    """Stored once per content hash, however many decisions use it."""

    __tablename__ = "dataset"

    id: int = _serial()
    sha256: str = _sha256(unique=True)
    uri: str
    format: str
    rows: int | None = None
    columns: list[str] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = _created_at()


class Policy(SQLModel, table=True):
    """A policy as it was applied: its canonical JSON, pinned by the hash of that JSON."""

    __tablename__ = "policy"

    id: int = _serial()
    name: str
    version: int
    sha256: str = _sha256(unique=True)
    risk_tier: str
    document: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    created_at: datetime = _created_at()


class GateDecision(SQLModel, table=True):
    """One gate run: the verdict and the full evidence manifest it rests on."""

    __tablename__ = "gate_decision"
    __table_args__ = (UniqueConstraint("effect_key", name="uq_gate_decision_effect_key"),)

    id: str = Field(primary_key=True, sa_type=String(36))
    model_version_id: int = Field(foreign_key="model_version.id", index=True)
    policy_id: int = Field(foreign_key="policy.id", index=True)
    data_dataset_id: int = Field(foreign_key="dataset.id")
    reference_dataset_id: int | None = Field(default=None, foreign_key="dataset.id")
    verdict: str
    summary: str = Field(sa_type=Text)
    manifest: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    manifest_sha256: str = _sha256()
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, nullable=False, index=True
    )
    # The effect this decision is (`checks:<request id>`): a check job that runs again after
    # a crash cannot record a second verdict for its request. None for a local gate run.
    effect_key: str | None = Field(default=None, sa_type=String(80))


class CheckRun(SQLModel, table=True):
    """One check's result within a decision; check ids are unique within a policy."""

    __tablename__ = "check_run"
    __table_args__ = (UniqueConstraint("decision_id", "check_id"),)

    id: int = _serial()
    decision_id: str = Field(foreign_key="gate_decision.id", sa_type=String(36))
    check_id: str
    type: str
    status: str
    summary: str = Field(sa_type=Text)
    metrics: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    rules: list[dict[str, Any]] = Field(sa_type=JSON, nullable=False)
    duration_seconds: float


class AuditEventRow(SQLModel, table=True):
    """One link of the audit hash chain (`governance.domain.audit`). `seq` is given, not
    generated: two writers that take the same number collide, and one retries."""

    __tablename__ = "audit_event"
    # A filtered audit page walks one of these newest first (migration 0004).
    __table_args__ = (
        Index("ix_audit_event_action_seq", "action", "seq"),
        Index("ix_audit_event_actor_seq", "actor", "seq"),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    time: datetime = Field(sa_type=UtcDateTime, nullable=False)
    actor: str
    action: str
    subject: str = Field(index=True)
    payload: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    prev_hash: str = _sha256()
    hash: str = _sha256(unique=True)


class PromotionRequest(SQLModel, table=True):
    """A model version on its way to a target. The one mutable row of the workflow: its
    `state` moves only through `governance.domain.workflow`, each move under a row lock and
    with an audit event in the same transaction, so the trail holds every earlier value."""

    __tablename__ = "promotion_request"

    id: str = Field(primary_key=True, sa_type=String(36))
    model_version_id: int = Field(foreign_key="model_version.id", index=True)
    target: str
    policy_id: int = Field(foreign_key="policy.id")
    submitter: str  # who asked: a user name, `token:ID` or `connector:NAME`
    # The person accountable for the submission (the submitter, or the token's owner);
    # None for a registry connector. Segregation of duties compares it (migration 0006).
    submitter_person: str | None = None
    state: str
    state_reason: str | None = Field(default=None, sa_type=Text)
    decision_id: str | None = Field(
        default=None, foreign_key="gate_decision.id", sa_type=String(36)
    )
    inputs: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()


# The console's lists (migration 0004), each read from its index alone: a page's ids are
# the index's entries in order, so a deep page skips entries, not rows; and the count reads
# no row. Newest first (also by date, and by tier through the version id); a state's newest
# first; and the queue: a state's longest waiting first, with every column it filters on.
# The two that lead with state also serve every lookup by state.
Index(
    "ix_promotion_request_created_at",
    col(PromotionRequest.created_at).desc(),
    col(PromotionRequest.id),
    col(PromotionRequest.model_version_id),
)
Index(
    "ix_promotion_request_state_created_at",
    col(PromotionRequest.state),
    col(PromotionRequest.created_at).desc(),
    col(PromotionRequest.id),
)
Index(
    "ix_promotion_request_state_updated_at",
    col(PromotionRequest.state),
    col(PromotionRequest.updated_at),
    col(PromotionRequest.id),
    col(PromotionRequest.policy_id),
    col(PromotionRequest.submitter),
    col(PromotionRequest.model_version_id),
)


class Job(SQLModel, table=True):
    """A unit of background work. One job per (request, kind): a job runs again after a
    crash, but it can never be enqueued twice, and its verdict is taken only once."""

    __tablename__ = "job"
    __table_args__ = (UniqueConstraint("request_id", "kind"),)

    id: int = _serial()
    request_id: str = Field(foreign_key="promotion_request.id", sa_type=String(36))
    kind: str
    status: str = Field(index=True)  # queued | running | done | failed
    attempts: int = 0
    claimed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    claimed_by: str | None = Field(default=None, sa_type=String(120))  # host:pid
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _created_at()
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Signature(SQLModel, table=True):
    """An electronic signature: who (full name as shown), when, what it means, and the hash
    of the evidence they looked at. Inserted once; never updated or deleted."""

    __tablename__ = "signature"
    # What this person signed: the queue leaves those out (migration 0004).
    __table_args__ = (Index("ix_signature_username_request_id", "username", "request_id"),)

    id: int = _serial()
    request_id: str = Field(foreign_key="promotion_request.id", sa_type=String(36), index=True)
    username: str
    full_name: str
    role: str
    meaning: str  # approve | reject | waive
    comment: str = Field(sa_type=Text)
    evidence_sha256: str = _sha256()
    reauthenticated: bool
    signed_at: datetime = _created_at()


class WaiverRequest(SQLModel, table=True):
    __tablename__ = "waiver_request"

    id: int = _serial()
    request_id: str = Field(foreign_key="promotion_request.id", sa_type=String(36), index=True)
    requested_by: str
    justification: str = Field(sa_type=Text)
    days: int
    created_at: datetime = _created_at()


class FinalDecision(SQLModel, table=True):
    """A final decision (approved, waived, promoted, revoked) and its signed attestation."""

    __tablename__ = "final_decision"
    # Each final decision once per request, so its attestation is signed once.
    __table_args__ = (
        UniqueConstraint("request_id", "decision", name="uq_final_decision_request_decision"),
    )

    id: str = Field(primary_key=True, sa_type=String(36))
    request_id: str = Field(foreign_key="promotion_request.id", sa_type=String(36), index=True)
    decision: str
    envelope: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    created_at: datetime = _created_at()


class UserAccount(SQLModel, table=True):
    """A person. Roles live in the access-control policy (casbin), not here."""

    __tablename__ = "user_account"

    id: int = _serial()
    username: str = Field(unique=True)
    full_name: str
    password_hash: str
    disabled: bool = False
    created_at: datetime = _created_at()
    # Failed sign-ins in a row (reset by a success), and until when the account is locked.
    failed_sign_ins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ApiToken(SQLModel, table=True):
    """A machine's credential. The secret is shown once; only its keyed digest is kept."""

    __tablename__ = "api_token"

    id: str = Field(primary_key=True, sa_type=String(16))
    name: str
    owner: str  # the person accountable for what it does (a user name; migration 0006)
    roles: list[str] = Field(sa_type=JSON, nullable=False)
    digest: str = _sha256(unique=True)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = _created_at()


class UserSession(SQLModel, table=True):
    """A person's signed-in session; like a token, only the digest of its secret is kept."""

    __tablename__ = "user_session"

    digest: str = Field(primary_key=True, sa_type=String(64))
    username: str = Field(index=True)
    csrf_token: str
    expires_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    created_at: datetime = _created_at()


class CasbinRule(SQLModel, table=True):
    """casbin's policy lines (`p, role:R, resource, action`, `g, user:NAME, role:R` and
    `g, token:ID, role:R`), in the layout its SQLAlchemy adapter reads."""

    __tablename__ = "casbin_rule"

    id: int = _serial()
    ptype: str = Field(sa_type=String(255))
    v0: str | None = Field(default=None, sa_type=String(255))
    v1: str | None = Field(default=None, sa_type=String(255))
    v2: str | None = Field(default=None, sa_type=String(255))
    v3: str | None = Field(default=None, sa_type=String(255))
    v4: str | None = Field(default=None, sa_type=String(255))
    v5: str | None = Field(default=None, sa_type=String(255))

    def __str__(self) -> str:
        """The policy line as casbin's adapter hands it to casbin: `p, role:R, obj, act`."""
        values = (self.v0, self.v1, self.v2, self.v3, self.v4, self.v5)
        return ", ".join([self.ptype, *(v for v in values if v is not None)])


# --- connectors, production monitoring and webhooks (migration 0005) ---------------------
# Unlike the evidence above, deliveries are work items whose status moves; what they
# deliver is the audit trail, which they never change.


class RegistryLink(SQLModel, table=True):
    """Where a governed model version came from in an external registry (an MLflow server
    named in the connectors file), so a decision can be written back to it."""

    __tablename__ = "registry_link"
    __table_args__ = (UniqueConstraint("connector", "registry_model", "registry_version"),)

    id: int = _serial()
    connector: str
    registry_model: str
    registry_version: str
    model_version_id: int = Field(foreign_key="model_version.id", unique=True)
    run_id: str | None = None
    source_uri: str = Field(sa_type=Text)
    discovered_at: datetime = _created_at()


class PredictionBatch(SQLModel, table=True):
    """One batch of production predictions for a model version. The rows live in the blob
    store as Parquet (`sha256`); a batch id is taken once per version, so a retried upload
    stores nothing twice."""

    __tablename__ = "prediction_batch"
    __table_args__ = (
        UniqueConstraint("model_version_id", "batch_id"),
        Index("ix_prediction_batch_version_last_at", "model_version_id", "last_at"),
    )

    id: int = _serial()
    model_version_id: int = Field(foreign_key="model_version.id")
    batch_id: str = Field(sa_type=String(128))
    source: str  # api | directory
    actor: str
    rows: int
    outcomes: int  # rows that carry an observed outcome
    first_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    last_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    columns: list[str] = Field(sa_type=JSON, nullable=False)
    sha256: str = _sha256()
    size_bytes: int
    received_at: datetime = _created_at()


class MonitoringRun(SQLModel, table=True):
    """One scheduled (or asked-for) production check of a promoted request. `due_at` is the
    slot the schedule gave it: two processes that both see it due collide on the unique
    key, so a slot runs once, and the next slot is known after a restart."""

    __tablename__ = "monitoring_run"
    __table_args__ = (UniqueConstraint("request_id", "monitor", "due_at"),)

    id: int = _serial()
    request_id: str = Field(foreign_key="promotion_request.id", sa_type=String(36), index=True)
    monitor: str  # drift | performance | fairness
    due_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    status: str  # running | pass | breach | insufficient | error
    rows: int = 0
    window_start: datetime | None = Field(default=None, sa_type=UtcDateTime)
    window_end: datetime | None = Field(default=None, sa_type=UtcDateTime)
    summary: str = Field(default="", sa_type=Text)
    results: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON, nullable=False)
    action: str | None = None  # alerted | revoked
    started_at: datetime = _created_at()
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class WebhookSubscription(SQLModel, table=True):
    """A URL that wants some events. Its HMAC secret is derived from the service's digest
    key and `salt` when a delivery is signed, so no secret is stored."""

    __tablename__ = "webhook_subscription"

    id: int = _serial()
    url: str = Field(sa_type=Text)
    events: list[str] = Field(sa_type=JSON, nullable=False)
    salt: str = Field(sa_type=String(64))
    created_by: str
    active: bool = True
    created_at: datetime = _created_at()


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: created from the audit trail, sent until it is
    accepted or its attempts run out, every attempt's outcome kept for the admins."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_seq"),
        Index("ix_webhook_delivery_status_next_at", "status", "next_attempt_at"),
    )

    id: int = _serial()
    subscription_id: int = Field(foreign_key="webhook_subscription.id")
    event_seq: int
    event: str
    payload: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    status: str  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    # The start of the receiver's last answer, sanitised; shown to admins only.
    last_answer: str | None = Field(default=None, max_length=64)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_duration_ms: int | None = None
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = _created_at()


class ConsumerCursor(SQLModel, table=True):
    """How far a consumer of the audit trail (webhook fan-out, registry publisher) has
    read, moved in the transaction that acts on what it read."""

    __tablename__ = "consumer_cursor"

    name: str = Field(primary_key=True, sa_type=String(64))
    seq: int = 0


class Builder(SQLModel, table=True):
    """A CI builder whose signed provenance a policy may accept instead of a re-run: its
    Ed25519 public key, registered by an admin. Revoked, never deleted: past acceptances
    still name it."""

    __tablename__ = "builder"

    id: int = _serial()
    name: str = Field(sa_type=String(63), nullable=False, unique=True)
    key_id: str = Field(sa_type=String(64), nullable=False)
    public_key: str = Field(sa_type=Text, nullable=False)
    created_by: str = Field(nullable=False)
    created_at: datetime = _created_at()
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    revoked_by: str | None = None
