"""In-memory adapters of `governance.services.ports`: the use cases run on them with no
database. The audit trail is hash-chained by `governance.domain.audit`, as the SQL one is,
so a chain a use case leaves behind can be verified for real."""

from __future__ import annotations

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
from governance.domain.errors import AuditSequenceTakenError
from governance.domain.records import (
    AuditAction,
    InventoryModel,
    LinkedRequest,
    LinkedVersion,
    PinnedPolicy,
    RegisteredBuilder,
    ReportedRequest,
    RequestWithEvidence,
    StoredDecision,
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
        self.reports = FakeReportSources()
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
        self.commits += 1

    def rollback(self) -> None:
        self.audit.pending = []
        self.builders.rollback()
        self.cursors.rollback()


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
