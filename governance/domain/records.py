"""What the repositories (`governance.services.ports`) answer with: plain records of what
is stored, so the use cases never see a database row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from governance.domain.audit import ChainedEvent


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


# --- people and webhooks ---


@dataclass(frozen=True)
class Account:
    """A person's account: who they are, their password's hash, and the failed sign-ins in a
    row with the lock they led to. Roles are not here: they are casbin lines (`Grants`)."""

    id: int  # in the order people were added: the first active admin is the earliest
    username: str
    full_name: str
    password_hash: str
    disabled: bool
    created_at: datetime
    failed_sign_ins: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True)
class SignedInSession:
    """A person's session; only the keyed digest of its secret is kept."""

    digest: str
    username: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    """A machine's API token with the person accountable for it (`owner`); only the keyed
    digest of its secret is kept. Revoked, never deleted."""

    id: str
    name: str
    owner: str
    roles: tuple[str, ...]
    digest: str
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Subscription:
    """A URL that wants some webhook events. Its HMAC secret is derived from the service's
    digest key and `salt` when a delivery is signed, so no secret is stored."""

    id: int
    url: str
    events: tuple[str, ...]
    salt: str
    created_by: str
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class WebhookDeliveryRecord:
    """One event for one subscription, and the outcome of its last attempt."""

    id: int
    subscription_id: int
    event_seq: int
    event: str
    payload: dict[str, Any]  # what is POSTed, with the delivery's id
    status: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_status_code: int | None = None
    last_error: str | None = None
    last_answer: str | None = None  # the start of the receiver's answer, for admins only
    last_attempt_at: datetime | None = None
    last_duration_ms: int | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class FinishedChecks:
    """A promotion request's recorded gate decision, as `checks.finished` tells of it."""

    request_id: str
    verdict: str
    summary: str


# --- workflow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRecord:
    """A governed model: its risk tier picks the policy, its owner (a person) may not
    approve it."""

    name: str
    risk_tier: str
    owner: str | None
    created_at: datetime


@dataclass(frozen=True)
class VersionRecord:
    """A model version: one artifact for good, named by its sha256."""

    version: str
    artifact_sha256: str
    created_at: datetime


@dataclass(frozen=True)
class PromotionRecord:
    """A promotion request with what the workflow decides on beside it: its model (name,
    tier, owner), the version's artifact and the pinned policy. Only `state`,
    `state_reason`, `decision_id`, `expires_at` and `updated_at` ever change."""

    id: str
    model: str
    version: str
    risk_tier: str
    model_owner: str | None
    artifact_sha256: str
    target: str
    policy: StoredPolicy
    submitter: str
    submitter_person: str | None
    state: str
    state_reason: str | None
    decision_id: str | None
    inputs: dict[str, Any]
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SignatureRecord:
    """An electronic signature on a request: who, in which role, meaning what, over which
    evidence; inserted once, never changed."""

    username: str
    full_name: str
    role: str
    meaning: str
    comment: str
    evidence_sha256: str
    reauthenticated: bool
    signed_at: datetime


@dataclass(frozen=True)
class WaiverRecord:
    """A request to let a blocked model serve anyway, for `days`."""

    requested_by: str
    justification: str
    days: int
    created_at: datetime


@dataclass(frozen=True)
class FinalDecisionRecord:
    """A final decision (approved, waived, promoted, revoked) and its signed envelope."""

    id: str
    decision: str
    envelope: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class RecordedVerdict:
    """A recorded gate decision as a request shows it: verdict, summary and evidence."""

    id: str
    verdict: str
    summary: str
    manifest: dict[str, Any]
    manifest_sha256: str


@dataclass(frozen=True)
class CheckJob:
    """A request's background checks: claimed by one process at a time (`claimed_at`
    lapses when that process died), run again after a crash, judged once."""

    id: int
    request_id: str
    status: str  # queued | running | done | failed
    attempts: int
    claimed_at: datetime | None
    error: str | None = None
    finished_at: datetime | None = None
    claimed_by: str | None = None  # the process that took it last: host:pid


# --- monitoring ---


@dataclass(frozen=True)
class CheckedData:
    """The data a version's latest gate decision checked, as production rows must match it:
    its columns, where its bytes are, and how the gate read the model's outputs."""

    columns: list[str]
    sha256: str
    uri: str
    format: str
    target: str
    task: str
    positive_label: str | None


@dataclass(frozen=True)
class StoredFile:
    """A data set a decision rests on: its bytes by sha256, or at its recorded location."""

    sha256: str
    uri: str
    format: str


@dataclass(frozen=True)
class PredictionBatchRecord:
    """One batch of a version's production predictions, stored once per batch id."""

    model_version_id: int
    batch_id: str
    source: str
    actor: str
    rows: int
    outcomes: int
    first_at: datetime
    last_at: datetime
    columns: list[str]
    sha256: str
    size_bytes: int
    received_at: datetime


@dataclass(frozen=True)
class ReceivedTotals:
    """What a version's serving sent so far."""

    batches: int
    rows: int
    outcomes: int
    last_at: datetime | None


@dataclass(frozen=True)
class MonitoredRequest:
    """A promoted request with the policy document it was judged under and when it was
    promoted, which its monitors' slots are counted from."""

    request_id: str
    model_version_id: int
    model: str
    version: str
    policy_document: dict[str, Any]
    promoted_at: datetime


@dataclass(frozen=True)
class MonitoringRunRecord:
    """One slot of one monitor of a request: claimed `running`, then finished once."""

    id: int
    request_id: str
    monitor: str
    due_at: datetime
    status: str
    started_at: datetime
    rows: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    summary: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    action: str | None = None
    finished_at: datetime | None = None


# --- the workflow's answers (what `Workflow` returns to the API, console, CLI, reports) ---


@dataclass(frozen=True)
class ModelDetail:
    """A governed model with every version registered under it, oldest first."""

    name: str
    risk_tier: str
    owner: str | None
    created_at: datetime
    versions: tuple[VersionRecord, ...]


@dataclass(frozen=True)
class SubmittedRequest:
    """A request just opened: its checks are queued, under the policy pinned for it."""

    id: str
    state: str
    policy_sha256: str


@dataclass(frozen=True)
class RequestPage:
    """One page of promotion requests, newest first, and how many match in all."""

    items: tuple[PromotionRecord, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class RequestView:
    """A request as people decide on it: its state, the pinned policy's approval rules, the
    evidence (`checks` are the manifest's results; `evidence` says how it was checked), the
    signatures, the waiver asked for, and the final decisions issued."""

    id: str
    model: str
    version: str
    risk_tier: str
    target: str
    state: str
    state_reason: str | None
    submitter: str
    submitter_person: str | None
    policy: StoredPolicy
    artifact_sha256: str
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    owner: str | None
    verdict: str | None
    decision_summary: str | None
    gate_decision_id: str | None
    evidence_sha256: str | None
    checks: list[dict[str, Any]]
    evidence: dict[str, Any]
    approval_rules: dict[str, Any]
    signatures: tuple[SignatureRecord, ...]
    waiver: WaiverRecord | None
    decisions: tuple[FinalDecisionRecord, ...]


# --- the audit trail's answers (typed API responses, issue 14) ---------------------------


@dataclass(frozen=True)
class ChainCheck:
    """The audit trail checked: its hash chain and, when asked, the trail against the
    checkpoints published outside the database. Every problem is named, the chain's first."""

    intact: bool
    events: int
    head: str | None  # the newest event's hash; None for an empty trail
    problems: list[str]


@dataclass(frozen=True)
class VerifiedChain(ChainCheck):
    """A check of the whole trail, with the size of the checkpoint published of it (None
    when it is not intact, or this process cannot sign)."""

    checkpoint_published: int | None = None


@dataclass(frozen=True)
class AuditEventPage:
    """Audit events, newest first, with the total under the same filters for pagination."""

    items: list[ChainedEvent]
    total: int
    limit: int
    offset: int
