"""In-memory adapters of `governance.services.ports`: the use cases run on them with no
database. The audit trail is hash-chained by `governance.domain.audit`, as the SQL one is,
so a chain a use case leaves behind can be verified for real."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time
from types import TracebackType
from typing import Any, Self, TypeVar

from governance.domain.audit import ChainedEvent, next_event
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
from governance.domain.errors import AuditSequenceTakenError, InputError
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


class FakeAuditTrail:
    """Committed events, and the ones this unit of work appended since its last commit."""

    def __init__(self) -> None:
        self.committed: list[ChainedEvent] = []
        self.pending: list[ChainedEvent] = []

    def append(
        self, *, actor: str, action: str, subject: str, payload: dict[str, Any]
    ) -> ChainedEvent:
        trail = self.events()
        chained = next_event(
            trail[-1] if trail else None,
            time=datetime.now(UTC),
            actor=actor,
            action=action,
            subject=subject,
            payload=payload,
        )
        self.pending.append(chained)
        return chained

    def head_seq(self) -> int:
        trail = self.events()
        return trail[-1].event.seq if trail else 0

    def events(self) -> list[ChainedEvent]:
        return [*self.committed, *self.pending]

    def actions_after(self, seq: int, prefix: str, limit: int) -> list[AuditAction]:
        found = [
            AuditAction(c.event.seq, c.event.action, c.event.payload)
            for c in self.events()
            if c.event.seq > seq and c.event.action.startswith(prefix)
        ]
        return found[:limit]


class FakeDecisions:
    def __init__(self) -> None:
        self.stored: dict[str, StoredDecision] = {}

    def get(self, decision_id: str) -> StoredDecision | None:
        return self.stored.get(decision_id)


class FakeRequests:
    def __init__(self) -> None:
        self.stored: list[RequestWithEvidence] = []

    def with_evidence(self, states: Sequence[str]) -> list[RequestWithEvidence]:
        """In the order they were added: the tests add them in the SQL query's order."""
        return [request for request in self.stored if request.state in states]


class FakeBuilderKeys:
    """Registered builders by name; what a unit of work changed is undone by its rollback."""

    def __init__(self) -> None:
        self.stored: dict[str, RegisteredBuilder] = {}
        self._before: dict[str, RegisteredBuilder] = {}

    def get(self, name: str) -> RegisteredBuilder | None:
        return self.stored.get(name)

    def add(self, *, name: str, key_id: str, public_key: str, created_by: str) -> RegisteredBuilder:
        builder = RegisteredBuilder(name, key_id, public_key, created_by, datetime.now(UTC))
        self.stored[name] = builder
        return builder

    def revoke(self, name: str, *, by: str, at: datetime) -> RegisteredBuilder:
        revoked = replace(self.stored[name], revoked_at=at, revoked_by=by)
        self.stored[name] = revoked
        return revoked

    def all(self) -> list[RegisteredBuilder]:
        return [self.stored[name] for name in sorted(self.stored)]

    def unrevoked_with_key(self, key_ids: Sequence[str]) -> RegisteredBuilder | None:
        found = (b for b in self.all() if b.key_id in key_ids and b.revoked_at is None)
        return next(found, None)

    def begin(self) -> None:
        self._before = dict(self.stored)

    def commit(self) -> None:
        self._before = dict(self.stored)

    def rollback(self) -> None:
        self.stored = dict(self._before)


class FakeConsumerCursors:
    """Cursor positions by name; an uncommitted move is undone by the rollback."""

    def __init__(self) -> None:
        self.stored: dict[str, int] = {}
        self._before: dict[str, int] = {}

    def position(self, name: str) -> int:
        return self.stored.get(name, 0)

    def advance(self, name: str, seq: int) -> None:
        self.stored[name] = max(seq, self.position(name))

    def begin(self) -> None:
        self._before = dict(self.stored)

    def commit(self) -> None:
        self._before = dict(self.stored)

    def rollback(self) -> None:
        self.stored = dict(self._before)


class FakeRegistryLinks:
    """The linked requests, in the order the tests add them (their `updated_at` order);
    `artifacts` is each request's approved sha256 for the alias guard."""

    def __init__(self) -> None:
        self.stored: list[LinkedRequest] = []
        self.artifacts: dict[str, str] = {}
        self.added: list[tuple[RegistryLinkRecord, str, str]] = []  # linked on submit

    def known(self, connector: str) -> set[tuple[str, str]]:
        return {
            (r.link.registry_model, r.link.registry_version)
            for r in self.stored
            if r.link.connector == connector
        }

    def of_request(self, request_id: str) -> LinkedRequest | None:
        return next((r for r in self.stored if r.request_id == request_id), None)

    def of_connector(self, connector: str) -> list[LinkedVersion]:
        return [
            LinkedVersion(
                r.link.registry_model,
                r.link.registry_version,
                r.state,
                self.artifacts.get(r.request_id, ""),
            )
            for r in self.stored
            if r.link.connector == connector
        ]

    def add(self, link: RegistryLinkRecord, model: str, version: str) -> None:
        self.added.append((link, model, version))


T = TypeVar("T")


def _page(rows: list[T], page: Page) -> Slice[T]:
    return Slice(rows[page.offset : page.offset + page.size], len(rows))


class FakeConsoleViews:
    """The console's lists over plain lists, filtered and ordered as the SQL does it.
    `policy_of` is each request's pinned policy id, `signed` the (person, request id) pairs
    signed already, `events` the audit events by subject."""

    def __init__(self) -> None:
        self.requests_stored: list[ListedRequest] = []
        self.models_stored: list[ListedModel] = []
        self.policies: list[tuple[int, str]] = []
        self.policy_of: dict[str, int] = {}
        self.signed: set[tuple[str, str]] = set()
        self.evidence: dict[str, PinnedEvidence] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}

    def requests(self, filters: RequestFilter, page: Page) -> Slice[ListedRequest]:
        def passes(r: ListedRequest) -> bool:
            submitted = r.created_at.astimezone(UTC)
            return (
                (not filters.state or r.state == filters.state)
                and (not filters.model or r.model == filters.model)
                and (not filters.risk_tier or r.risk_tier == filters.risk_tier)
                and (
                    not filters.submitted_from
                    or submitted >= datetime.combine(filters.submitted_from, time(), UTC)
                )
                and (not filters.submitted_to or submitted.date() <= filters.submitted_to)
            )

        return _page(self._newest_first([r for r in self.requests_stored if passes(r)]), page)

    def pinned_policies(self) -> list[tuple[int, str]]:
        return list(self.policies)

    def queue(self, rules: QueueRules, page: Page) -> Slice[ListedRequest]:
        def signable(r: ListedRequest) -> bool:
            policy = self.policy_of[r.id]
            others = r.submitter != rules.person and r.owner != rules.person
            if (rules.person, r.id) in self.signed:
                return False
            if r.state == "awaiting_approval":
                return (policy in rules.approvable and others) or policy in rules.approvable_own
            return r.state == "waiver_requested" and policy in rules.waivable and others

        waiting = [r for r in self.requests_stored if signable(r)]
        return _page(sorted(waiting, key=lambda r: (r.updated_at, r.id)), page)

    def models(
        self, name_contains: str | None, risk_tier: str | None, page: Page
    ) -> Slice[ListedModel]:
        found = [
            m
            for m in self.models_stored
            if (not name_contains or name_contains in m.name)
            and (not risk_tier or m.risk_tier == risk_tier)
        ]
        return _page(sorted(found, key=lambda m: m.name), page)

    def model_requests(
        self, name: str, page: Page
    ) -> tuple[ListedModel, Slice[ListedRequest]] | None:
        model = next((m for m in self.models_stored if m.name == name), None)
        if model is None:
            return None
        of_model = [r for r in self.requests_stored if r.model == name]
        return model, _page(self._newest_first(of_model), page)

    def pinned_evidence(self, request_id: str) -> PinnedEvidence | None:
        return self.evidence.get(request_id)

    def subject_events(self, subject: str) -> list[dict[str, Any]]:
        return list(self.events.get(subject, []))

    @staticmethod
    def _newest_first(rows: list[ListedRequest]) -> list[ListedRequest]:
        by_id = sorted(rows, key=lambda r: r.id)
        return sorted(by_id, key=lambda r: r.created_at, reverse=True)


class FakeCatalogViews:
    """The audit pages over the fake trail (committed events and this unit's), and the
    pinned policies as a plain list (`pinned`)."""

    def __init__(self, audit: FakeAuditTrail) -> None:
        self._audit = audit
        self.pinned: list[PinnedPolicy] = []

    def audit_position(self, seq: int, filters: AuditFilter) -> int | None:
        if not any(c.event.seq == seq for c in self._audit.events()):
            return None
        return sum(c.event.seq > seq for c in self._matching(filters))

    def audit_actions(self) -> list[str]:
        return sorted({c.event.action for c in self._audit.events()})

    def audit_page(self, filters: AuditFilter, page: Page) -> Slice[ChainedEvent]:
        return _page(self._matching(filters)[::-1], page)

    def pinned_policies(self) -> list[PinnedPolicy]:
        return list(self.pinned)

    def _matching(self, filters: AuditFilter) -> list[ChainedEvent]:
        """Oldest first, as the trail is."""
        return [
            c
            for c in self._audit.events()
            if all(
                not wanted or getattr(c.event, field) == wanted
                for field, wanted in (
                    ("action", filters.action),
                    ("actor", filters.actor),
                    ("subject", filters.subject),
                )
            )
        ]


class FakeTaskQueue:
    """Tasks deferred in a unit of work: `pending` until it commits, then `queued`; a
    rollback forgets them, as the SQL adapters' transaction does."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, dict[str, Any], str, str]] = []
        self.queued: list[tuple[str, dict[str, Any], str, str]] = []

    def defer(self, task: str, args: dict[str, Any], *, queue: str, lock: str) -> None:
        self.pending.append((task, args, queue, lock))

    def commit(self) -> None:
        self.queued += self.pending
        self.pending = []


class FakeUnitOfWork:
    """One in-memory store that is also its own factory: `use_case(uow, …)` enters it as
    often as the use case opens a unit of work. `taken` makes the next commits fail as if
    another writer had taken the audit seq; `commits` counts the ones that went through,
    `opened` the units asked for (tests that fill the store directly ask for none)."""

    def __init__(self) -> None:
        self.audit = FakeAuditTrail()
        self.decisions = FakeDecisions()
        self.requests = FakeRequests()
        self.builders = FakeBuilderKeys()
        self.console = FakeConsoleViews()
        self.catalog = FakeCatalogViews(self.audit)
        self.cursors = FakeConsumerCursors()
        self.registry_links = FakeRegistryLinks()
        self.models = FakeModels()
        self.promotions = FakePromotions(self.audit)
        self.accounts = FakeAccounts()
        self.grants = FakeGrants()
        self.sessions = FakeSignedInSessions()
        self.tokens = FakeApiTokens()
        self.webhook_subscriptions = FakeWebhookSubscriptions()
        self.webhook_deliveries = FakeWebhookDeliveries(self.webhook_subscriptions)
        self.webhook_trail = FakeWebhookTrail(self.audit, self.cursors)
        self.reports = FakeReportSources()
        self.monitoring = FakePredictionLogs()
        self.tasks = FakeTaskQueue()
        self.commits = 0
        self.taken = 0
        self.read_only = False
        self.opened: list[str] = []  # "read" or "write", one per unit of work asked for

    def __call__(self, read_only: bool = False) -> Self:
        self.read_only = read_only
        self.opened.append("read" if read_only else "write")
        return self

    def __enter__(self) -> Self:
        self.builders.begin()
        self.cursors.begin()
        self.models.begin()
        self.promotions.begin()
        for stored in self._undoable():
            stored.begin()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.rollback()  # nothing left to undo after a commit
        self.read_only = False  # the next unit is a writer unless it asks otherwise

    def commit(self) -> None:
        assert not self.read_only, "a read-only unit of work committed"
        if self.taken and self.audit.pending:
            self.taken -= 1
            raise AuditSequenceTakenError()
        self.audit.committed += self.audit.pending
        self.audit.pending = []
        self.builders.commit()
        self.cursors.commit()
        self.tasks.commit()
        self.models.begin()
        self.promotions.begin()
        for stored in self._undoable():
            stored.commit()
        self.commits += 1

    def rollback(self) -> None:
        self.audit.pending = []
        self.tasks.pending = []
        self.builders.rollback()
        self.cursors.rollback()
        self.models.rollback()
        self.promotions.rollback()
        for stored in self._undoable():
            stored.rollback()

    def _undoable(self) -> tuple[Undoable, ...]:
        return (
            self.accounts,
            self.grants,
            self.sessions,
            self.tokens,
            self.webhook_subscriptions,
            self.webhook_deliveries,
            self.monitoring,
        )


# --- workflow ---


class FakeModels:
    """Models by name, their versions, and the people known; undone by the rollback."""

    def __init__(self) -> None:
        self.stored: dict[str, ModelRecord] = {}
        self.people: set[str] = set()
        self.version_rows: dict[str, list[VersionRecord]] = {}
        self._before: tuple[dict[str, ModelRecord], dict[str, list[VersionRecord]]] = ({}, {})

    def register(self, name: str, risk_tier: str, owner: str | None) -> ModelRecord:
        return self.stored.setdefault(name, ModelRecord(name, risk_tier, owner, _NOW))

    def get(self, name: str) -> ModelRecord | None:
        return self.stored.get(name)

    def all(self) -> list[ModelRecord]:
        return [self.stored[name] for name in sorted(self.stored)]

    def versions(self, name: str) -> list[VersionRecord]:
        return list(self.version_rows.get(name, []))

    def person_known(self, username: str) -> bool:
        return username in self.people

    def begin(self) -> None:
        self._before = copy.deepcopy((self.stored, self.version_rows))

    def rollback(self) -> None:
        self.stored, self.version_rows = copy.deepcopy(self._before)


_NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakePromotions:
    """Promotion requests and what hangs off them, in memory; the audit trail is the unit
    of work's, for the decisions recorded here. `locked` lists the requests got with
    `lock`, as the SQL twin's SELECT … FOR UPDATE would lock them."""

    def __init__(self, audit: FakeAuditTrail) -> None:
        self._audit = audit
        self.requests: dict[str, PromotionRecord] = {}
        self.versions: dict[tuple[str, str], VersionRecord] = {}
        self.policies: dict[str, StoredPolicy] = {}
        self.signature_rows: dict[str, list[SignatureRecord]] = {}
        self.waivers: dict[str, list[WaiverRecord]] = {}
        self.final_rows: dict[str, list[FinalDecisionRecord]] = {}
        self.verdicts: dict[str, RecordedVerdict] = {}
        self.jobs: dict[int, CheckJob] = {}
        self.effect_keys: set[str] = set()
        self.locked: list[str] = []
        self._before: dict[str, Any] = {}

    def record_version(self, model: str, version: str, artifact: Artifact) -> VersionRecord:
        stored = self.versions.setdefault(
            (model, version), VersionRecord(version, artifact.sha256, _NOW)
        )
        if stored.artifact_sha256 != artifact.sha256:
            raise InputError(
                f"model {model} version {version}",
                f"is already recorded with artifact sha256 {stored.artifact_sha256}",
                "bump the model version",
            )
        return stored

    def pin_policy(self, policy: PromotionPolicy) -> StoredPolicy:
        return self.policies.setdefault(
            policy.content_hash,
            StoredPolicy(
                policy.metadata.name,
                policy.metadata.version,
                policy.applies_to.risk_tier,
                policy.content_hash,
                json.loads(policy.canonical_json()),
            ),
        )

    def open_request(
        self, model: str, version: str, target: str, states: Sequence[str]
    ) -> PromotionRecord | None:
        found = (
            r
            for r in self.requests.values()
            if (r.model, r.version, r.target) == (model, version, target) and r.state in states
        )
        return next(found, None)

    def add(self, request: PromotionRecord) -> None:
        self.requests[request.id] = request

    def get(self, request_id: str, *, lock: bool = False) -> PromotionRecord | None:
        if lock:
            self.locked.append(request_id)
        return self.requests.get(request_id)

    def update(self, request: PromotionRecord) -> None:
        self.requests[request.id] = request

    def page(
        self, state: str | None, model: str | None, limit: int, offset: int
    ) -> tuple[int, list[PromotionRecord]]:
        rows = [
            r
            for r in sorted(self.requests.values(), key=lambda r: r.created_at, reverse=True)
            if (not state or r.state == state) and (not model or r.model == model)
        ]
        return len(rows), rows[offset : offset + limit]

    def latest(self, model: str, version: str, target: str) -> PromotionRecord | None:
        rows = [
            r
            for r in self.requests.values()
            if (r.model, r.version, r.target) == (model, version, target)
        ]
        return max(rows, key=lambda r: r.created_at, default=None)

    def due(self, states: Sequence[str], now: datetime) -> list[str]:
        return [
            r.id
            for r in self.requests.values()
            if r.state in states and r.expires_at is not None and r.expires_at <= now
        ]

    def signatures(self, request_id: str) -> list[SignatureRecord]:
        return list(self.signature_rows.get(request_id, []))

    def add_signature(self, request_id: str, signature: SignatureRecord) -> None:
        self.signature_rows.setdefault(request_id, []).append(signature)

    def waiver(self, request_id: str) -> WaiverRecord | None:
        return (self.waivers.get(request_id) or [None])[-1]

    def add_waiver(self, request_id: str, waiver: WaiverRecord) -> None:
        self.waivers.setdefault(request_id, []).append(waiver)

    def finals(self, request_id: str) -> list[FinalDecisionRecord]:
        return list(self.final_rows.get(request_id, []))

    def final(self, decision_id: str) -> FinalDecisionRecord | None:
        rows = (f for finals in self.final_rows.values() for f in finals)
        return next((f for f in rows if f.id == decision_id), None)

    def add_final(self, request_id: str, final: FinalDecisionRecord) -> None:
        self.final_rows.setdefault(request_id, []).append(final)

    def verdict(self, decision_id: str) -> RecordedVerdict | None:
        return self.verdicts.get(decision_id)

    def record_decision(
        self,
        manifest: EvidenceManifest,
        policy: PromotionPolicy,
        actor: str,
        effect_key: str | None = None,
    ) -> str:
        if effect_key is not None:  # the SQL store's unique key
            assert effect_key not in self.effect_keys, f"a second effect {effect_key}"
            self.effect_keys.add(effect_key)
        decision_id = f"decision-{len(self.verdicts) + 1}"
        self.verdicts[decision_id] = RecordedVerdict(
            decision_id,
            manifest.decision.verdict.value,
            manifest.decision.summary,
            manifest.model_dump(mode="json"),
            manifest.sha256,
        )
        self._audit.append(
            actor=actor,
            action="gate.decision_recorded",
            subject=f"model:{manifest.model_name}@{manifest.model_version}",
            payload={"decision_id": decision_id, "verdict": manifest.decision.verdict.value},
        )
        return decision_id

    def enqueue(self, request_id: str, kind: str) -> int:
        job_id = len(self.jobs) + 1
        self.jobs[job_id] = CheckJob(job_id, request_id, "queued", 0, None)
        return job_id

    def claimable_jobs(self, lapsed: datetime) -> list[int]:
        return [
            j.id
            for j in self.jobs.values()
            if j.status == "queued"
            or (j.status == "running" and j.claimed_at is not None and j.claimed_at < lapsed)
        ]

    def job(self, job_id: int) -> CheckJob:
        return self.jobs[job_id]

    def save_job(self, job: CheckJob) -> None:
        self.jobs[job.id] = job

    _TABLES = (
        "effect_keys",
        "requests",
        "versions",
        "policies",
        "signature_rows",
        "waivers",
        "final_rows",
        "verdicts",
        "jobs",
    )

    def begin(self) -> None:
        self._before = copy.deepcopy({name: getattr(self, name) for name in self._TABLES})

    def rollback(self) -> None:
        for name, table in copy.deepcopy(self._before).items():
            setattr(self, name, table)


# --- people and webhooks ---


class Undoable:
    """A store kept in `stored` (a dict); what a unit of work changed is undone by its
    rollback. `stored` maps a key to an immutable record or a list copied on write."""

    def __init__(self) -> None:
        self.stored: dict[Any, Any] = {}
        self._before: dict[Any, Any] = {}

    def begin(self) -> None:
        self._before = dict(self.stored)

    def commit(self) -> None:
        self._before = dict(self.stored)

    def rollback(self) -> None:
        self.stored = dict(self._before)


class FakeAccounts(Undoable):
    """Accounts by user name; `locked` records who a unit of work locked, for the tests."""

    def __init__(self) -> None:
        super().__init__()
        self.locks: list[str] = []

    def get(self, username: str) -> Account | None:
        return self.stored.get(username)

    def locked(self, username: str) -> Account | None:
        self.locks.append(username)
        return self.get(username)

    def lock_all(self) -> dict[str, Account]:
        self.locks.extend(sorted(self.stored))
        return {a.username: a for a in self.all()}

    def all(self) -> list[Account]:
        return [self.stored[name] for name in sorted(self.stored)]

    def add(self, *, username: str, full_name: str, password_hash: str) -> Account:
        next_id = 1 + max((a.id for a in self.stored.values()), default=0)
        added = Account(next_id, username, full_name, password_hash, False, datetime.now(UTC))
        self.stored[username] = added
        return added

    def save(self, account: Account) -> None:
        assert account.username in self.stored
        self.stored[account.username] = account


class FakeGrants(Undoable):
    """Casbin's `g` lines as subject → role subjects (a tuple, replaced on each change)."""

    def roles_of(self, subject: str) -> list[str]:
        return list(self.stored.get(subject, ()))

    def holders(self, role: str) -> list[str]:
        return [subject for subject, roles in self.stored.items() if role in roles]

    def grant(self, subject: str, role: str) -> None:
        self.stored[subject] = (*self.stored.get(subject, ()), role)

    def revoke_all(self, subject: str) -> None:
        self.stored.pop(subject, None)


class FakeSignedInSessions(Undoable):
    def get(self, digest: str) -> SignedInSession | None:
        return self.stored.get(digest)

    def add(self, session: SignedInSession) -> None:
        self.stored[session.digest] = session

    def remove(self, digest: str) -> None:
        self.stored.pop(digest, None)

    def end_all(self, username: str, keep: str | None = None) -> int:
        ending = [d for d, s in self.stored.items() if s.username == username and d != keep]
        for digest in ending:
            del self.stored[digest]
        return len(ending)


class FakeApiTokens(Undoable):
    """Tokens by id, in the order they were issued."""

    def add(
        self,
        *,
        token_id: str,
        name: str,
        owner: str,
        roles: Sequence[str],
        digest: str,
        expires_at: datetime | None,
    ) -> None:
        now = datetime.now(UTC)
        self.stored[token_id] = IssuedToken(
            token_id, name, owner, tuple(roles), digest, expires_at, None, now
        )

    def locked(self, token_id: str) -> IssuedToken | None:
        return self.stored.get(token_id)

    def with_digest(self, digest: str) -> IssuedToken | None:
        return next((t for t in self.stored.values() if t.digest == digest), None)

    def revoke(self, token_id: str, at: datetime) -> None:
        self.stored[token_id] = replace(self.stored[token_id], revoked_at=at)

    def all(self) -> list[IssuedToken]:
        return list(self.stored.values())


class FakeWebhookSubscriptions(Undoable):
    """Subscriptions by id, numbered from 1 in the order they are added."""

    def add(
        self,
        *,
        url: str,
        events: Sequence[str],
        salt: str,
        created_by: str,
        created_at: datetime,
    ) -> Subscription:
        added = Subscription(
            len(self.stored) + 1, url, tuple(events), salt, created_by, True, created_at
        )
        self.stored[added.id] = added
        return added

    def get(self, subscription_id: int) -> Subscription | None:
        return self.stored.get(subscription_id)

    def locked(self, subscription_id: int) -> Subscription | None:
        return self.get(subscription_id)

    def deactivate(self, subscription_id: int) -> Subscription:
        inactive = replace(self.stored[subscription_id], active=False)
        self.stored[subscription_id] = inactive
        return inactive

    def all(self) -> list[Subscription]:
        return [self.stored[key] for key in sorted(self.stored)]

    def active(self) -> list[Subscription]:
        return [s for s in self.all() if s.active]


class FakeWebhookDeliveries(Undoable):
    """Deliveries by id, numbered from 1; one per subscription and event, as the unique
    key of the SQL table holds; the log joins the subscriptions' URLs."""

    def __init__(self, subscriptions: FakeWebhookSubscriptions) -> None:
        super().__init__()
        self._subscriptions = subscriptions

    def add(
        self,
        *,
        subscription_id: int,
        event_seq: int,
        event: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> None:
        assert not any(
            (d.subscription_id, d.event_seq) == (subscription_id, event_seq)
            for d in self.stored.values()
        ), "the unique key"
        delivery_id = len(self.stored) + 1
        self.stored[delivery_id] = WebhookDeliveryRecord(
            delivery_id, subscription_id, event_seq, event, payload, "pending", 0, now, now
        )

    def due(self, now: datetime, limit: int) -> list[int]:
        due = [
            d for d in self.stored.values() if d.status == "pending" and d.next_attempt_at <= now
        ]
        return [d.id for d in sorted(due, key=lambda d: d.next_attempt_at)][:limit]

    def locked(self, delivery_id: int) -> WebhookDeliveryRecord | None:
        return self.stored.get(delivery_id)

    def save(self, delivery: WebhookDeliveryRecord) -> None:
        assert delivery.id in self.stored
        self.stored[delivery.id] = delivery

    def page(
        self, status: str | None, subscription_id: int | None, limit: int, offset: int
    ) -> Slice[tuple[WebhookDeliveryRecord, str]]:
        urls = {s.id: s.url for s in self._subscriptions.stored.values()}
        found = [
            (d, urls[d.subscription_id])
            for d in sorted(self.stored.values(), key=lambda d: d.id, reverse=True)
            if (status is None or d.status == status)
            and (not subscription_id or d.subscription_id == subscription_id)
        ]
        return Slice(found[offset : offset + limit], len(found))


class FakeWebhookTrail:
    """The fan-out's reads over the fake trail and cursors; what the events name (requests'
    finished checks by (model, version, decision id), pinned policies by request id) is
    filled in by the tests."""

    def __init__(self, audit: FakeAuditTrail, cursors: FakeConsumerCursors) -> None:
        self._audit = audit
        self._cursors = cursors
        self.checks: dict[tuple[str, str, str], FinishedChecks] = {}
        self.policies: dict[str, dict[str, Any]] = {}

    def cursor(self, name: str) -> int | None:
        return self._cursors.stored.get(name)

    def locked_cursor(self, name: str) -> int | None:
        return self.cursor(name)

    def start_cursor(self, name: str, seq: int) -> None:
        self._cursors.stored.setdefault(name, seq)

    def events_after(self, seq: int, limit: int) -> list[ChainedEvent]:
        return [c for c in self._audit.events() if c.event.seq > seq][:limit]

    def hashes_through(self, seq: int) -> list[str]:
        return [c.hash for c in self._audit.events() if c.event.seq <= seq]

    def first_seq(self, subject: str, action: str) -> int | None:
        found = self.actions_through(subject, action, self._audit.head_seq())
        return found[0].event.seq if found else None

    def actions_through(self, subject: str, action: str, seq: int) -> list[ChainedEvent]:
        return [
            c
            for c in self._audit.events()
            if (c.event.subject, c.event.action) == (subject, action) and c.event.seq <= seq
        ]

    def finished_checks(self, model: str, version: str, decision_id: str) -> FinishedChecks | None:
        return self.checks.get((model, version, decision_id))

    def policy_document(self, request_id: str) -> dict[str, Any]:
        return self.policies[request_id]


# --- reports and monitoring ---


class FakeReportSources:
    """The reports' reads as plain data: requests by id, owners by (model, version), and
    the inventory in the order the tests add it (the SQL's name order)."""

    def __init__(self) -> None:
        self.requests: dict[str, ReportedRequest] = {}
        self.owners: dict[tuple[str, str], str] = {}
        self.models: list[InventoryModel] = []

    def request(self, request_id: str) -> ReportedRequest | None:
        return self.requests.get(request_id)

    def owner(self, model: str, version: str) -> str | None:
        return self.owners.get((model, version))

    def inventory(self) -> list[InventoryModel]:
        return list(self.models)


# --- monitoring ---


class FakePredictionLogs(Undoable):
    """Batches and runs in `stored` (keyed ("batch", version id, batch id) and ("run", id)),
    undone by the rollback; what the tests set up (versions, checked data, promoted
    requests, states, reference sets) in plain attributes. `rival` is a batch another
    writer commits just before this unit's insert, which `add_batch` then reports."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[tuple[str, str], int] = {}
        self.checked: dict[int, CheckedData] = {}
        self.requests: list[MonitoredRequest] = []
        self.states: dict[str, str] = {}
        self.references: dict[str, tuple[StoredFile, bool]] = {}
        self.rival: PredictionBatchRecord | None = None
        self.locked: list[int] = []

    def version_id(self, model: str, version: str) -> int | None:
        return self.versions.get((model, version))

    def checked_data(self, version_id: int) -> CheckedData | None:
        return self.checked.get(version_id)

    def batch(self, version_id: int, batch_id: str) -> PredictionBatchRecord | None:
        return self.stored.get(("batch", version_id, batch_id))

    def add_batch(self, batch: PredictionBatchRecord) -> bool:
        key = ("batch", batch.model_version_id, batch.batch_id)
        if self.rival is not None:
            self.stored[key], self.rival = self.rival, None
            self._before[key] = self.stored[key]  # the rival committed: no rollback undoes it
        if key in self.stored:
            return False
        self.stored[key] = batch
        return True

    def batches(self, version_id: int, limit: int) -> list[PredictionBatchRecord]:
        return self._batches(version_id)[::-1][:limit]

    def received(self, version_id: int) -> ReceivedTotals:
        batches = self._batches(version_id)
        return ReceivedTotals(
            len(batches),
            sum(b.rows for b in batches),
            sum(b.outcomes for b in batches),
            max((b.last_at for b in batches), default=None),
        )

    def batch_files(self, version_id: int, start: datetime, end: datetime) -> list[str]:
        return [
            b.sha256 for b in self._batches(version_id) if b.last_at > start and b.first_at <= end
        ]

    def promoted(self, request_id: str | None = None) -> list[MonitoredRequest]:
        return [
            r
            for r in sorted(self.requests, key=lambda r: r.request_id)
            if self.states.get(r.request_id) == "promoted" and request_id in (None, r.request_id)
        ]

    def request_state(self, request_id: str) -> str | None:
        return self.states.get(request_id)

    def reference(self, request_id: str) -> tuple[StoredFile, bool]:
        return self.references[request_id]

    def runs(self, request_id: str, limit: int) -> list[MonitoringRunRecord]:
        runs = [r for r in self._runs() if r.request_id == request_id]
        return sorted(runs, key=lambda r: (r.due_at, r.id), reverse=True)[:limit]

    def slot(
        self, request_id: str, monitor: str, due_at: datetime, *, lock: bool = False
    ) -> MonitoringRunRecord | None:
        for run in self._runs():
            if (run.request_id, run.monitor, run.due_at) == (request_id, monitor, due_at):
                if lock:
                    self.locked.append(run.id)
                return run
        return None

    def add_run(
        self, request_id: str, monitor: str, due_at: datetime, started_at: datetime
    ) -> int | None:
        if self.slot(request_id, monitor, due_at) is not None:
            return None
        run_id = 1 + max((r.id for r in self._runs()), default=0)
        self.stored[("run", run_id)] = MonitoringRunRecord(
            run_id, request_id, monitor, due_at, "running", started_at
        )
        return run_id

    def run(self, run_id: int) -> MonitoringRunRecord:
        self.locked.append(run_id)
        run: MonitoringRunRecord = self.stored[("run", run_id)]
        return run

    def save_run(self, run: MonitoringRunRecord) -> None:
        assert ("run", run.id) in self.stored
        self.stored[("run", run.id)] = run

    def _batches(self, version_id: int) -> list[PredictionBatchRecord]:
        """The version's batches in the order they were stored."""
        return [v for k, v in self.stored.items() if k[0] == "batch" and k[1] == version_id]

    def _runs(self) -> list[MonitoringRunRecord]:
        return [v for k, v in self.stored.items() if k[0] == "run"]
