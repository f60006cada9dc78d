"""What the repositories (`governance.services.ports`) answer with: plain records of what
is stored, so the use cases never see a database row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StoredPolicy:
    """A policy as it was pinned: its canonical JSON document and the hash of that JSON."""

    name: str
    version: int
    risk_tier: str
    sha256: str
    document: dict[str, Any]


@dataclass(frozen=True)
class PinnedPolicy:
    """A stored policy, when it was first pinned and by how many requests (0 or more): the
    console lists every version a decision may rest on."""

    policy: StoredPolicy
    pinned_at: datetime
    requests: int


@dataclass(frozen=True)
class StoredDecision:
    """A recorded gate decision: the manifest exactly as stored, the hash recorded with it,
    and the policy row it points at (None when that row is gone)."""

    id: str
    manifest: dict[str, Any]
    manifest_sha256: str
    policy: StoredPolicy | None


@dataclass(frozen=True)
class RequestWithEvidence:
    """A promotion request with what it was judged on: its version, the policy it pinned,
    and its recorded decision's manifest (None when it has no decision)."""

    id: str
    state: str
    target: str
    model: str
    version: str
    policy: StoredPolicy
    decision_id: str | None
    manifest: dict[str, Any] | None


@dataclass(frozen=True)
class RegisteredBuilder:
    """A CI builder whose signed provenance a policy may accept: its Ed25519 public key
    (PEM) and who registered it. Revoked, never deleted: past acceptances still name it."""

    name: str
    key_id: str
    public_key: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None


@dataclass(frozen=True)
class AuditAction:
    """An audit event as a consumer of the trail reads it: where, what, and about what."""

    seq: int
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class RegistryLinkRecord:
    """Where a governed version came from: the connector and the registry's own names."""

    connector: str
    registry_model: str
    registry_version: str
    source_uri: str
    run_id: str | None = None


@dataclass(frozen=True)
class LinkedRequest:
    """A promotion request of a version that came from a registry, as the registry is told
    of it: its state, its gate decision and why it is where it is."""

    link: RegistryLinkRecord
    request_id: str
    state: str
    decision_id: str | None
    state_reason: str | None


@dataclass(frozen=True)
class LinkedVersion:
    """A registry's version under governance, for the alias guard: a request's state and
    the sha256 of the artifact it approved."""

    registry_model: str
    registry_version: str
    state: str
    artifact_sha256: str


@dataclass(frozen=True)
class ReportedRequest:
    """A promotion request as its decision report starts from it: its state, its gate
    decision (None until its checks finish) and the model card submitted with it."""

    id: str
    state: str
    decision_id: str | None
    model_card: dict[str, Any] | None


@dataclass(frozen=True)
class InventoryRequest:
    """One promotion request of a model, as the inventory weighs it: whether a waiver was
    asked for it, and until when an approval holds (None: no expiry)."""

    id: str
    state: str
    version: str
    expires_at: datetime | None
    waiver_asked: bool


@dataclass(frozen=True)
class InventoryModel:
    """A governed model with its promotion requests (newest first) and the verdict of its
    newest gate decision (None when it has none)."""

    name: str
    risk_tier: str
    owner: str | None
    requests: tuple[InventoryRequest, ...]
    latest_verdict: str | None
