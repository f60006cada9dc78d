"""What the services need from the outside world, as Protocols the adapters satisfy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeVar, runtime_checkable

import pandas as pd

from governance.domain.audit import ChainedEvent
from governance.domain.browsing import (
    AuditFilter,
    ListedModel,
    ListedRequest,
    Page,
    PinnedEvidence,
    QueueRules,
    RequestFilter,
    Slice,
)
from governance.domain.evidence import Artifact, EvidenceManifest
from governance.domain.policy import PromotionPolicy
from governance.domain.records import (
    Account,
    AuditAction,
    CheckedData,
    CheckJob,
    FinalDecisionRecord,
    FinishedChecks,
    InventoryModel,
    IssuedToken,
    LinkedRequest,
    LinkedVersion,
    ModelRecord,
    MonitoredRequest,
    MonitoringRunRecord,
    PinnedPolicy,
    PredictionBatchRecord,
    PromotionRecord,
    ReceivedTotals,
    RecordedVerdict,
    RegisteredBuilder,
    RegistryLinkRecord,
    ReportedRequest,
    RequestWithEvidence,
    SignatureRecord,
    SignedInSession,
    StoredDecision,
    StoredFile,
    StoredPolicy,
    Subscription,
    VersionRecord,
    WaiverRecord,
    WebhookDeliveryRecord,
)
from governance.domain.reporting import DecisionFacts, IssuedReport


@dataclass(frozen=True)
class GateRequest:
    """What the CI pipeline hands the gate. Either a model or a prediction column."""

    policy: Path
    data: Path
    target: str
    model: Path | None = None
    reference: Path | None = None
    champion: Path | None = None
    prediction_col: str | None = None
    score_col: str | None = None
    positive_label: str | None = None
    model_name: str | None = None
    model_version: str | None = None


State = TypeVar("State")


@dataclass(frozen=True)
class Execution:
    """How the gate reads rows: all in memory, streamed in bounded batches from disk, or
    spread over a Dask cluster (`dask`: a scheduler address, or "local" for a cluster on
    this machine). `auto` keeps a single file of at most `exact_rows` rows in memory and
    streams anything bigger. Rank statistics are exact while the data has at most
    `exact_rows` rows; beyond that they come from bins with a stated bound."""

    kind: Literal["auto", "memory", "streamed", "dask"] = "memory"
    dask: str | None = None
    batch_rows: int = 262_144
    exact_rows: int = 2_000_000
    dask_workers: int = 2  # for "local": worker processes
    dask_memory: str = "2GiB"  # for "local": each worker's memory limit
    # How the explainability sample is drawn: by seeded Philox keys, the same rows however
    # the data is split; or with `DataFrame.sample`, as decisions recorded before keys
    # were used drew it (one batch in memory only): what a replay of one of those needs.
    sampling: Literal["keys", "frame"] = "keys"


class Rows(Protocol):
    """A table the gate reads in batches (implemented by `connectors.datasets`)."""

    kind: Literal["memory", "streamed", "dask"]  # how its rows are read
    artifact: Artifact
    columns: list[str]
    rows: int

    def fold(
        self,
        function: Callable[[pd.DataFrame, int], State],
        merge: Callable[[State, State], State],
        columns: list[str] | None = None,
    ) -> State:
        """`function` of each batch (with the index of its first row), merged. Only
        `columns` are read when given."""
        ...


class Window(Protocol):
    """Logged prediction batches in a time window (implemented by `connectors.datasets`)."""

    rows: int  # rows in the window
    columns: list[str]
    exact: bool  # small enough to keep every value a rank statistic needs

    def fold(
        self,
        function: Callable[[pd.DataFrame, int], State],
        merge: Callable[[State, State], State],
    ) -> State | None:
        """`function` of each batch in the window, merged; None for an empty window."""
        ...

    def has_values(self, column: str) -> bool:
        """Whether every row in the window has a value in `column`."""
        ...


class ArtifactSource(Protocol):
    """Reads policies, tables and models (implemented by `connectors.files`)."""

    def load_policy(self, path: Path) -> PromotionPolicy: ...

    def parse_policy_text(self, text: str, source: str) -> PromotionPolicy:
        """A policy from its YAML text (a draft pasted in the console, not a file);
        `source` names it in errors."""
        ...

    def read_table(self, path: Path, role: str = "data") -> tuple[pd.DataFrame, Artifact]: ...

    def open_rows(self, path: Path, role: str, execution: Execution) -> Rows:
        """A file, a Parquet data set (a directory, a glob, a hive-partitioned tree) or an
        fsspec URL, to be read in batches as `execution` says."""
        ...

    def open_window(
        self,
        paths: list[Path],
        start: datetime,
        end: datetime,
        text: list[str],
        labelled: bool,
        execution: Execution,
    ) -> Window:
        """Logged prediction batches (Parquet files) in (start, end]; with an outcome only
        when `labelled`; read in `execution.batch_rows` batches, exact up to its
        `exact_rows`."""
        ...

    def load_model(self, path: Path, role: str = "model") -> tuple[Any, Artifact]: ...

    def load_metrics(self, path: Path) -> tuple[dict[str, float], Artifact]: ...

    def sha256_file(self, path: Path) -> str:
        """The file's sha256 (hex): what a replay matches recorded artifacts by."""
        ...

    def refuse_pickle(self, path: Path, field: str) -> None:
        """Raise `InputError` (naming `field`) unless the file is one loaded without
        unpickling: the service never unpickles what a client sent."""
        ...


class ContentStore(Protocol):
    """Uploaded files, named by their sha256 (implemented by `store.blobs.BlobStore`)."""

    root: Path  # named in messages: where the files were looked for

    def stored(self, sha256: str) -> list[Path]:
        """The stored files with these bytes, one per suffix they came under; empty for
        anything that is not a sha256."""
        ...


class BlobFiles(ContentStore, Protocol):
    """The content store as production monitoring writes and reads its prediction batches
    (`store.blobs.BlobStore`): Parquet files named by their sha256."""

    def path_of(self, sha256: str, suffix: str) -> Path:
        """Where the file with these bytes and this suffix is (or would be) kept."""
        ...

    def write(self, sha256: str, suffix: str, payload: bytes) -> Path:
        """Keep `payload` (whose sha256 is given) read-only under its hash, written whole
        or not at all; bytes kept already are left as they are."""
        ...


class CheckRunner(Protocol):
    """Judges a request under its pinned policy where the model's code cannot reach the
    service's keys (`governance.services.isolation`); bad input raises `InputError`."""

    def __call__(
        self, policy: PromotionPolicy, request: GateRequest, allow_pickle: bool = False
    ) -> EvidenceManifest: ...


class DecisionRecorder(Protocol):
    """Stores a gate decision and everything it rests on, in one transaction."""

    def record(self, manifest: EvidenceManifest, policy: PromotionPolicy) -> str: ...


@dataclass(frozen=True)
class RegistryVersion:
    """A model version a registry offers for governance, as the registry names it."""

    connector: str  # the configured connector's name, e.g. "mlflow-main"
    model: str  # the registered model's name; the governed model takes the same name
    version: str
    risk_tier: str  # from the version's tag (or the connector's default)
    target: str
    label: str  # the target column of the evaluation data
    source_uri: str  # where the registry keeps the model's files
    run_id: str | None = None
    owner: str | None = None
    positive_label: str | None = None
    data_path: str = ""  # where the registry keeps the evaluation data, if it says
    reference_path: str | None = None
    status: str | None = None  # the governance status the registry shows now
    problem: str | None = None  # why it cannot be governed as it stands (a missing tag)


@dataclass(frozen=True)
class FetchedFiles:
    """A version's files, copied out of the registry to local paths the gate reads."""

    model: Path
    data: Path
    reference: Path | None = None


@dataclass(frozen=True)
class PublishedDecision:
    """What the gatekeeper writes back: the state, the decision, the report's digest;
    `serving` says whether the version should hold the governed alias."""

    status: str  # promoted | approved | blocked | rejected | revoked | expired
    serving: bool
    request_id: str
    decision_id: str | None = None
    report: Path | None = None  # the signed decision report, to keep beside the model
    report_sha256: str | None = None
    reason: str | None = None

    @property
    def withdrawn(self) -> bool:
        """Revoked or expired: the version must stop holding the alias. Any other version
        that holds it was put there by hand, which is the alias guard's to undo."""
        return self.status in ("revoked", "expired")


class Registry(Protocol):
    """A model registry the gatekeeper sits beside (MLflow; local files). Adding one
    (SageMaker, Vertex AI, Weights & Biases) means implementing these six methods."""

    name: str

    @property
    def alias(self) -> str:
        """The alias the gatekeeper governs, e.g. "production"."""
        ...

    @property
    def verify_digest(self) -> bool:
        """Whether the alias guard re-reads the served model's bytes each pass."""
        ...

    def discover(self) -> list[RegistryVersion]:
        """Versions that ask to be governed (by tag), newest last; already-known ones too."""
        ...

    def fetch(self, version: RegistryVersion, into: Path) -> FetchedFiles:
        """Copy the model and its evaluation (and reference) data into `into`."""
        ...

    def publish(self, version: RegistryVersion, decision: PublishedDecision) -> None:
        """Write the decision back (tags), and set or remove the governed alias."""
        ...

    def alias_holder(self, model: str) -> str | None:
        """The version the governed alias points at now, if any (for the alias guard)."""
        ...

    def move_alias(self, model: str, version: str | None) -> None:
        """Point the governed alias at `version`, or remove it when None."""
        ...

    def model_sha256(self, model: str, version: str, into: Path) -> str:
        """The sha256 of the version's model file as the registry serves it now."""
        ...


@runtime_checkable
class EventSource(Protocol):
    """A registry that calls us when something changes (MLflow's webhooks), so the
    connector syncs at once instead of at the next poll."""

    def verify_event(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `UnauthenticatedError` unless the registry signed this event."""
        ...


# --- the unit of work and its repositories (the write side) ----------------------------


class AuditTrail(Protocol):
    """The hash-chained audit trail: appended to, never changed."""

    def append(
        self, *, actor: str, action: str, subject: str, payload: dict[str, Any]
    ) -> ChainedEvent:
        """Chain one event onto the head, in this unit of work. Two units that chain onto
        the same head cannot both commit: the second raises `AuditSequenceTakenError`."""
        ...

    def head_seq(self) -> int:
        """The seq of the newest event (0 for an empty trail)."""
        ...

    def events(self) -> list[ChainedEvent]:
        """The whole trail in seq order, as stored (check it with `verify_chain`)."""
        ...

    def actions_after(self, seq: int, prefix: str, limit: int) -> list[AuditAction]:
        """Up to `limit` events after `seq` whose action starts with `prefix`, in seq
        order: what a consumer of the trail (the registry publisher) has not read yet."""
        ...


class ConsumerCursors(Protocol):
    """How far each consumer of the audit trail has read (by name)."""

    def position(self, name: str) -> int:
        """The seq read up to (0 before the first read)."""
        ...

    def advance(self, name: str, seq: int) -> None:
        """Move the cursor up to `seq`, never back; locked until the unit of work ends."""
        ...


class RegistryLinks(Protocol):
    """Which governed versions came from which registry (`governance.services.registries`);
    a link is added in the workflow's submit transaction (`SubmissionLink`)."""

    def known(self, connector: str) -> set[tuple[str, str]]:
        """(registry model, registry version) of every version this connector linked."""
        ...

    def of_request(self, request_id: str) -> LinkedRequest | None:
        """The request with the link of its version; None when it is not from a registry."""
        ...

    def of_connector(self, connector: str) -> list[LinkedVersion]:
        """Every request on this connector's versions, least recently updated first."""
        ...

    def add(self, link: RegistryLinkRecord, model: str, version: str) -> None:
        """Link the governed version (stored already) to the registry's."""
        ...


class SubmissionLink(Protocol):
    """What a registry connector adds to `Workflow.submit`'s transaction (its `also`): the
    link from the new request's version to the registry's, so a version is opened once."""

    def __call__(
        self, link: RegistryLinkRecord
    ) -> Callable[[WorkflowUnit, PromotionRecord], None]: ...


class FileIntake(Protocol):
    """Fetched files taken into the content store (`store.blobs.BlobStore.adopt`)."""

    def adopt(self, source: Path) -> Path:
        """Move the file in under its sha256, and return where it now is."""
        ...


class Decisions(Protocol):
    """Recorded gate decisions (inserted by the gate's `DecisionRecorder`, never updated)."""

    def get(self, decision_id: str) -> StoredDecision | None: ...


class BuilderKeys(Protocol):
    """The registered CI builders (`governance.services.builders`)."""

    def get(self, name: str) -> RegisteredBuilder | None:
        """The builder of this name, revoked or not; locked until the unit of work ends."""
        ...

    def add(
        self, *, name: str, key_id: str, public_key: str, created_by: str
    ) -> RegisteredBuilder: ...

    def revoke(self, name: str, *, by: str, at: datetime) -> RegisteredBuilder:
        """Mark the (existing, locked) builder revoked."""
        ...

    def all(self) -> list[RegisteredBuilder]:
        """Every builder, revoked ones too, by name."""
        ...

    def unrevoked_with_key(self, key_ids: Sequence[str]) -> RegisteredBuilder | None:
        """A builder not revoked whose key has one of these ids, if any."""
        ...


class TaskQueue(Protocol):
    """Where a task goes to be run later, in the caller's transaction: it is queued if and
    only if the change that asked for it commits. Embedded (SQLite, one box): the server
    process runs it from the job table. Workers (PostgreSQL): a procrastinate job that any
    `governance worker` takes."""

    def defer(self, task: str, args: dict[str, Any], *, queue: str, lock: str) -> None:
        """Queue `task` with `args` (JSON) on `queue`. `lock` keeps two jobs of one subject
        from being queued at once, and from running at once."""
        ...


class UnitOfWork(Protocol):
    """One transaction over the repositories: `with units() as uow: …; uow.commit()`.
    Leaving the block without `commit()` rolls back, so a failed use case writes nothing.
    A use case moving off the ORM adds its repository here (a Protocol speaking in
    `governance.domain` records), its SQL twin in `store.uow` and its fake in the tests."""

    @property
    def audit(self) -> AuditTrail: ...

    @property
    def decisions(self) -> Decisions: ...

    @property
    def requests(self) -> Requests: ...

    @property
    def builders(self) -> BuilderKeys: ...

    @property
    def console(self) -> ConsoleViews: ...

    @property
    def catalog(self) -> CatalogViews: ...

    @property
    def cursors(self) -> ConsumerCursors: ...

    @property
    def registry_links(self) -> RegistryLinks: ...

    @property
    def models(self) -> Models: ...

    @property
    def promotions(self) -> Promotions: ...

    @property
    def accounts(self) -> Accounts: ...

    @property
    def grants(self) -> Grants: ...

    @property
    def sessions(self) -> SignedInSessions: ...

    @property
    def tokens(self) -> ApiTokens: ...

    @property
    def webhook_subscriptions(self) -> WebhookSubscriptions: ...

    @property
    def webhook_deliveries(self) -> WebhookDeliveries: ...

    @property
    def webhook_trail(self) -> WebhookTrail: ...

    @property
    def reports(self) -> ReportSources: ...

    @property
    def monitoring(self) -> PredictionLogs: ...

    @property
    def tasks(self) -> TaskQueue: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """What the use cases are given: a new, not yet entered, unit of work per call. A
    `read_only` one may not write, so on SQLite it does not take the write lock and never
    makes a writer wait."""

    def __call__(self, read_only: bool = False) -> UnitOfWork: ...


# --- read views (queries the console, API and reports show) -----------------------------


class Requests(Protocol):
    """Promotion requests, as the read-only use cases see them."""

    def with_evidence(self, states: Sequence[str]) -> list[RequestWithEvidence]:
        """The requests in `states`, ordered by model name, version (oldest first),
        target and creation time."""
        ...


class ConsoleViews(Protocol):
    """The lists the console and the API page through (`governance.services.browse`). Each
    is a page of a list, in the list's order, with the list's total; the SQL twin answers
    with a few short queries whatever the size of the database (bench/console.py)."""

    def requests(self, filters: RequestFilter, page: Page) -> Slice[ListedRequest]:
        """Promotion requests that pass the filter, newest first."""
        ...

    def pinned_policies(self) -> list[tuple[int, str]]:
        """(id, sha256) of every policy a request pinned, for `QueueRules`."""
        ...

    def queue(self, rules: QueueRules, page: Page) -> Slice[ListedRequest]:
        """The requests waiting for this person's signature, longest waiting first: awaiting
        approval under `approvable` (not their own model or submission) or `approvable_own`
        policies, or waiting for a waiver under `waivable` ones (not their own); none they
        signed already."""
        ...

    def models(
        self, name_contains: str | None, risk_tier: str | None, page: Page
    ) -> Slice[ListedModel]:
        """The model inventory by name, each with its number of versions and newest one."""
        ...

    def model_requests(
        self, name: str, page: Page
    ) -> tuple[ListedModel, Slice[ListedRequest]] | None:
        """The model of this name and its promotion requests, newest first; None if none."""
        ...

    def pinned_evidence(self, request_id: str) -> PinnedEvidence | None:
        """The request's pinned policy and recorded manifest; None for no such request."""
        ...

    def subject_events(self, subject: str) -> list[dict[str, Any]]:
        """The audit events about one subject (a model version), oldest first."""
        ...


class CatalogViews(Protocol):
    """The console's audit and policy pages (`governance.services.catalog`): the trail by
    page, as the SQL twin answers it with a few short queries (bench/console.py), and the
    policies requests pinned."""

    def audit_position(self, seq: int, filters: AuditFilter) -> int | None:
        """How many events that pass the filters are newer than event `seq`; None when
        there is no such event."""
        ...

    def audit_actions(self) -> list[str]:
        """Every action the trail holds, once each, sorted."""
        ...

    def audit_page(self, filters: AuditFilter, page: Page) -> Slice[ChainedEvent]:
        """The events that pass the filters, newest first."""
        ...

    def pinned_policies(self) -> list[PinnedPolicy]:
        """Every stored policy, with how many requests pinned it."""
        ...


# --- reports and monitoring --------------------------------------------------------------


class ReportSources(Protocol):
    """What the reports (`governance.services.reports`) read besides the trail and the
    decisions: the request a decision report is of, the model's owner, the inventory."""

    def request(self, request_id: str) -> ReportedRequest | None: ...

    def owner(self, model: str, version: str) -> str | None:
        """The owner of the model this version belongs to (None: no owner, no version)."""
        ...

    def inventory(self) -> list[InventoryModel]:
        """Every model by name, with its requests and newest verdict; the SQL twin answers
        with four queries whatever the number of models."""
        ...


class ReportRenderer(Protocol):
    """Lays a report out, embeds its evidence (as canonical JSON), an attestation of it
    and the attestation key, and signs it (`reports.issuing.Signing`). Each `statement` is
    the in-toto Statement to attest; the evidence's sha256 is added to its predicate."""

    def decision(
        self, facts: DecisionFacts, statement: dict[str, Any], clock: Callable[[], datetime]
    ) -> IssuedReport:
        """The promotion decision report; its evidence is the manifest."""
        ...

    def bias_audit(
        self,
        audit: dict[str, Any],
        title: str,
        model: dict[str, Any],
        evidence: dict[str, Any],
        statement: dict[str, Any],
        clock: Callable[[], datetime],
    ) -> IssuedReport:
        """The LL144 bias audit of `model` (its name, version and hashes)."""
        ...

    def inventory(
        self,
        models: list[dict[str, Any]],
        evidence: dict[str, Any],
        statement: dict[str, Any],
        clock: Callable[[], datetime],
    ) -> IssuedReport: ...


# --- people and webhooks ---


class Accounts(Protocol):
    """People's accounts (`governance.services.people`)."""

    def get(self, username: str) -> Account | None: ...

    def locked(self, username: str) -> Account | None:
        """The account, locked until the unit of work ends (SELECT … FOR UPDATE)."""
        ...

    def lock_all(self) -> dict[str, Account]:
        """Every account by user name, each locked (in name order, so two units never
        deadlock): changes to who is an active admin then run one after another."""
        ...

    def all(self) -> list[Account]:
        """Every account, by user name."""
        ...

    def add(self, *, username: str, full_name: str, password_hash: str) -> Account: ...

    def save(self, account: Account) -> None:
        """Store what may change of an existing account: disabled, password hash, failed
        sign-ins and lock."""
        ...


class Grants(Protocol):
    """Who holds which role: casbin's `g, SUBJECT, ROLE` lines (`user:NAME`, `token:ID`,
    `role:R`), read by the enforcer (`governance.auth.access`) after a change."""

    def roles_of(self, subject: str) -> list[str]:
        """The role subjects granted to `subject`."""
        ...

    def holders(self, role: str) -> list[str]:
        """The subjects granted the role subject `role`."""
        ...

    def grant(self, subject: str, role: str) -> None: ...

    def revoke_all(self, subject: str) -> None:
        """Take every role from `subject`."""
        ...


class SignedInSessions(Protocol):
    """People's sessions, by the digest of their secret."""

    def get(self, digest: str) -> SignedInSession | None: ...

    def add(self, session: SignedInSession) -> None: ...

    def remove(self, digest: str) -> None: ...

    def end_all(self, username: str, keep: str | None = None) -> int:
        """End the person's sessions but the one with digest `keep`; how many ended."""
        ...


class ApiTokens(Protocol):
    """Machines' API tokens."""

    def add(
        self,
        *,
        token_id: str,
        name: str,
        owner: str,
        roles: Sequence[str],
        digest: str,
        expires_at: datetime | None,
    ) -> None: ...

    def locked(self, token_id: str) -> IssuedToken | None:
        """The token, locked until the unit of work ends (SELECT … FOR UPDATE)."""
        ...

    def with_digest(self, digest: str) -> IssuedToken | None: ...

    def revoke(self, token_id: str, at: datetime) -> None:
        """Mark the (existing, locked) token revoked."""
        ...

    def all(self) -> list[IssuedToken]:
        """Every token, revoked ones too, oldest first."""
        ...


class AccessRules(Protocol):
    """The casbin enforcer as the people use case sees it (`governance.auth.access`)."""

    def refresh(self) -> None:
        """Load the rules again now: a grant this process just wrote holds at once."""
        ...

    def roles_of(self, username: str) -> list[str]:
        """A person's roles, by their names (`admin`, not `role:admin`)."""
        ...


class KeyedSecrets(Protocol):
    """Secrets derived from the service's digest key (`governance.auth.secrets.DigestKey`),
    so they need not be stored."""

    def derive(self, purpose: str, salt: str) -> str: ...


class WebhookSubscriptions(Protocol):
    """The URLs that subscribed to webhook events (`governance.services.webhooks`)."""

    def add(
        self,
        *,
        url: str,
        events: Sequence[str],
        salt: str,
        created_by: str,
        created_at: datetime,
    ) -> Subscription: ...

    def get(self, subscription_id: int) -> Subscription | None: ...

    def locked(self, subscription_id: int) -> Subscription | None:
        """The subscription, locked until the unit of work ends (SELECT … FOR UPDATE)."""
        ...

    def deactivate(self, subscription_id: int) -> Subscription:
        """Mark the (existing, locked) subscription unsubscribed."""
        ...

    def all(self) -> list[Subscription]:
        """Every subscription, unsubscribed ones too, by id."""
        ...

    def active(self) -> list[Subscription]: ...


class WebhookDeliveries(Protocol):
    """One delivery per audit event and subscription (a unique key), with its attempts."""

    def add(
        self,
        *,
        subscription_id: int,
        event_seq: int,
        event: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> None:
        """A pending delivery, due `now`."""
        ...

    def due(self, now: datetime, limit: int) -> list[int]:
        """The ids of up to `limit` pending deliveries due by `now`, the longest due first."""
        ...

    def locked(self, delivery_id: int) -> WebhookDeliveryRecord | None:
        """The delivery, locked until the unit of work ends (SELECT … FOR UPDATE)."""
        ...

    def save(self, delivery: WebhookDeliveryRecord) -> None:
        """Store what may change of an existing delivery: its status, attempts, when it is
        due, and its last attempt's outcome."""
        ...

    def page(
        self, status: str | None, subscription_id: int | None, limit: int, offset: int
    ) -> Slice[tuple[WebhookDeliveryRecord, str]]:
        """The deliveries (with their subscription's URL) that have this status and
        subscription (None: any), newest first."""
        ...


class WebhookTrail(Protocol):
    """What the webhook fan-out reads of the audit trail and of what its events name, and
    its cursor (moved with `ConsumerCursors.advance`)."""

    def cursor(self, name: str) -> int | None:
        """How far the consumer read; None when it never started."""
        ...

    def locked_cursor(self, name: str) -> int | None:
        """The same, the cursor locked until the unit of work ends (SELECT … FOR UPDATE):
        two processes never fan out the same batch."""
        ...

    def start_cursor(self, name: str, seq: int) -> None:
        """Start the consumer at `seq` unless it started already (INSERT … ON CONFLICT DO
        NOTHING: concurrent starts do not trip over each other)."""
        ...

    def events_after(self, seq: int, limit: int) -> list[ChainedEvent]:
        """Up to `limit` events after `seq`, in seq order."""
        ...

    def hashes_through(self, seq: int) -> list[str]:
        """The hashes of the events up to and including `seq`, in seq order."""
        ...

    def first_seq(self, subject: str, action: str) -> int | None:
        """The seq of the first event with this subject and action, if any."""
        ...

    def actions_through(self, subject: str, action: str, seq: int) -> list[ChainedEvent]:
        """The events with this subject and action up to and including `seq`."""
        ...

    def finished_checks(self, model: str, version: str, decision_id: str) -> FinishedChecks | None:
        """The request of this model version whose checks recorded the decision, with the
        decision's verdict and summary; None for a decision no request holds."""
        ...

    def policy_document(self, request_id: str) -> dict[str, Any]:
        """The document of the policy the (existing) request pinned."""
        ...


# --- workflow ---------------------------------------------------------------------------


class Models(Protocol):
    """The model inventory and the people who may own a model (`services.workflow`)."""

    def register(self, name: str, risk_tier: str, owner: str | None) -> ModelRecord:
        """The model of this name, inserted first if missing (with this tier and owner);
        concurrent registrations of one name never trip over each other."""
        ...

    def get(self, name: str) -> ModelRecord | None: ...

    def all(self) -> list[ModelRecord]:
        """Every model, by name."""
        ...

    def versions(self, name: str) -> list[VersionRecord]:
        """The model's versions, oldest first."""
        ...

    def person_known(self, username: str) -> bool:
        """Whether a person (a user account, not a token) has this user name."""
        ...


class Promotions(Protocol):
    """Promotion requests and what hangs off them: signatures, waivers, final decisions,
    the checks' jobs and their recorded gate decisions (`services.workflow`)."""

    def record_version(self, model: str, version: str, artifact: Artifact) -> VersionRecord:
        """The stored version of the (stored) model, inserted if new; `InputError` when it
        names other bytes."""
        ...

    def pin_policy(self, policy: PromotionPolicy) -> StoredPolicy:
        """The stored policy with this content hash, inserted if new; `InputError` when its
        name and version are taken by other rules."""
        ...

    def open_request(
        self, model: str, version: str, target: str, states: Sequence[str]
    ) -> PromotionRecord | None:
        """A request of this version for this target in one of `states`, if any."""
        ...

    def add(self, request: PromotionRecord) -> None:
        """Insert a new request of a stored version under a pinned policy."""
        ...

    def get(self, request_id: str, *, lock: bool = False) -> PromotionRecord | None:
        """The request; with `lock`, its row is locked until the unit of work ends
        (SELECT … FOR UPDATE on PostgreSQL; SQLite's writer holds the database already)."""
        ...

    def update(self, request: PromotionRecord) -> None:
        """Write the request's changing fields (state, reason, decision, expiry, updated)."""
        ...

    def page(
        self, state: str | None, model: str | None, limit: int, offset: int
    ) -> tuple[int, list[PromotionRecord]]:
        """The total of requests that pass the filters, and one page of them, newest first."""
        ...

    def latest(self, model: str, version: str, target: str) -> PromotionRecord | None:
        """The version's newest request for this target."""
        ...

    def due(self, states: Sequence[str], now: datetime) -> list[str]:
        """The ids of requests in `states` whose expiry is at or before `now`."""
        ...

    def signatures(self, request_id: str) -> list[SignatureRecord]:
        """The request's signatures, in the order they were given."""
        ...

    def add_signature(self, request_id: str, signature: SignatureRecord) -> None: ...

    def waiver(self, request_id: str) -> WaiverRecord | None:
        """The request's newest waiver request."""
        ...

    def add_waiver(self, request_id: str, waiver: WaiverRecord) -> None: ...

    def finals(self, request_id: str) -> list[FinalDecisionRecord]:
        """The request's final decisions, oldest first."""
        ...

    def final(self, decision_id: str) -> FinalDecisionRecord | None: ...

    def add_final(self, request_id: str, final: FinalDecisionRecord) -> None: ...

    def verdict(self, decision_id: str) -> RecordedVerdict | None:
        """A recorded gate decision."""
        ...

    def record_decision(
        self,
        manifest: EvidenceManifest,
        policy: PromotionPolicy,
        actor: str,
        effect_key: str | None = None,
    ) -> str:
        """Record a gate decision with its check runs and its audit event (as the gate's
        `DecisionRecorder` does), in this unit of work; returns its id. `effect_key` names
        the effect it is: a second decision with the same key is refused."""
        ...

    def enqueue(self, request_id: str, kind: str) -> int:
        """Record the request's background job of this kind (one per request and kind), its
        status, attempts and error as the console shows them; returns its id."""
        ...

    def claimable_jobs(self, lapsed: datetime) -> list[int]:
        """Ids of jobs queued, or running but claimed before `lapsed`, oldest first."""
        ...

    def job(self, job_id: int) -> CheckJob:
        """The job, locked until the unit of work ends."""
        ...

    def save_job(self, job: CheckJob) -> None:
        """Write the job's status, attempts, claim, error and finish time."""
        ...


class WorkflowUnit(Protocol):
    """What the workflow's state changes write through: the repositories of any unit of
    work, so a change such as a monitoring breach's revocation joins the caller's unit."""

    @property
    def audit(self) -> AuditTrail: ...

    @property
    def models(self) -> Models: ...

    @property
    def promotions(self) -> Promotions: ...

    @property
    def registry_links(self) -> RegistryLinks: ...


# --- monitoring ---


class PredictionLogs(Protocol):
    """Production monitoring's records (`governance.services.monitoring`): the batches of
    predictions serving sent, the data each version was checked on, the promoted requests
    to monitor, and their runs, one per (request, monitor, slot)."""

    def version_id(self, model: str, version: str) -> int | None: ...

    def checked_data(self, version_id: int) -> CheckedData | None:
        """The data the version's latest gate decision checked; None before any."""
        ...

    def batch(self, version_id: int, batch_id: str) -> PredictionBatchRecord | None: ...

    def add_batch(self, batch: PredictionBatchRecord) -> bool:
        """Insert the batch; False (and nothing inserted) when another writer took its
        batch id just now, which this unit of work can then read."""
        ...

    def batches(self, version_id: int, limit: int) -> list[PredictionBatchRecord]:
        """The version's batches, newest first."""
        ...

    def received(self, version_id: int) -> ReceivedTotals:
        """Batches, rows, outcomes and the latest prediction's time, in one query."""
        ...

    def batch_files(self, version_id: int, start: datetime, end: datetime) -> list[str]:
        """The sha256 of each batch with rows in (start, end], oldest batch first."""
        ...

    def promoted(self, request_id: str | None = None) -> list[MonitoredRequest]:
        """The promoted requests (or this one, if promoted), by id."""
        ...

    def request_state(self, request_id: str) -> str | None:
        """The request's state; None when there is no such request."""
        ...

    def reference(self, request_id: str) -> tuple[StoredFile, bool]:
        """The reference set the request's decision was given, or its evaluation data when
        none was; and whether one was given."""
        ...

    def runs(self, request_id: str, limit: int) -> list[MonitoringRunRecord]:
        """The request's runs, newest slot first."""
        ...

    def slot(
        self, request_id: str, monitor: str, due_at: datetime, *, lock: bool = False
    ) -> MonitoringRunRecord | None:
        """The slot's run, if any; with `lock`, locked until the unit of work ends."""
        ...

    def add_run(
        self, request_id: str, monitor: str, due_at: datetime, started_at: datetime
    ) -> int | None:
        """Insert the slot's run as `running` and return its id; None (and nothing
        inserted) when the slot has a run already."""
        ...

    def run(self, run_id: int) -> MonitoringRunRecord:
        """The run, locked until the unit of work ends."""
        ...

    def save_run(self, run: MonitoringRunRecord) -> None:
        """Write the run's status, window, rows, summary, results, action and times."""
        ...
