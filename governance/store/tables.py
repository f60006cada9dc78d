"""The database tables. Rows are written once and never updated: they are evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, String, Text, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

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

    id: int = _serial()
    name: str = Field(unique=True)
    risk_tier: str
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

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    time: datetime = Field(sa_type=UtcDateTime, nullable=False)
    actor: str
    action: str = Field(index=True)
    subject: str = Field(index=True)
    payload: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    prev_hash: str = _sha256()
    hash: str = _sha256(unique=True)
