"""The audit trail: its events by page, the check of its hash chain, and proofs that a
client can check offline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

import msgspec
from litestar import Controller, Request
from litestar.params import Parameter

from governance.domain.audit import ChainedEvent
from governance.domain.records import AuditEventPage
from governance.store.repository import audit_page
from governance.web.api.bodies import MAX_OFFSET, CamelResponse
from governance.web.api.operations import get
from governance.web.dependencies import governance_of, in_thread
from governance.web.guards import permission


class AuditEventBody(CamelResponse, frozen=True):
    """One state change: who did what to which thing, with the details (`payload`)."""

    seq: int
    time: datetime
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]


class ChainedAuditEvent(CamelResponse, frozen=True):
    """An event with its place in the hash chain (`prev_hash` as the chain's documents
    name it, which an offline checker reads)."""

    event: AuditEventBody
    prev_hash: str = msgspec.field(name="prev_hash")
    hash: str

    @classmethod
    def from_record(cls, record: object) -> Self:
        assert isinstance(record, ChainedEvent)
        return cls(AuditEventBody.from_record(record.event), record.prev_hash, record.hash)


class AuditPage(CamelResponse, frozen=True):
    """Audit events, newest first, with the total under the same filters."""

    items: list[ChainedAuditEvent]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_record(cls, record: object) -> Self:
        assert isinstance(record, AuditEventPage)
        items = ChainedAuditEvent.from_records(record.items)
        return cls(items, record.total, record.limit, record.offset)


class ChainVerified(CamelResponse, frozen=True):
    """The hash chain and the published checkpoints checked; every problem named."""

    intact: bool
    events: int
    head: str | None
    problems: list[str]
    checkpoint_published: int | None


class Consistency(CamelResponse, frozen=True):
    old_size: int = msgspec.field(name="old_size")
    proof: list[str]


class AuditProof(CamelResponse, frozen=True):
    """A proof bundle, as `governance audit prove` writes it and `governance audit check`
    reads it: the signed checkpoint, and the proofs asked for."""

    checkpoint: str
    consistency: Consistency | msgspec.UnsetType = msgspec.UNSET
    event: ChainedAuditEvent | msgspec.UnsetType = msgspec.UNSET
    inclusion: list[str] | msgspec.UnsetType = msgspec.UNSET


class AuditController(Controller):
    """Read-only: nothing here changes the trail (a verify may publish a checkpoint of it)."""

    path = "/audit"
    tags = ("audit",)

    @get("/", opt=permission("audit", "read"))
    async def list_audit(
        self,
        request: Request,
        action: str | None = None,
        subject: str | None = None,
        actor: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> AuditPage:
        engine = governance_of(request).engine
        page = await in_thread(audit_page, engine, action, subject, actor, limit, offset)
        return AuditPage.from_record(page)

    @get("/verify", opt=permission("audit", "read"))
    async def verify_audit(self, request: Request) -> ChainVerified:
        """The hash chain, and the trail against the newest checkpoint published outside the
        database (a cut tail, a rewrite with recomputed hashes); when intact, a checkpoint of it
        is published."""
        return ChainVerified.from_record(await in_thread(governance_of(request).checkpoints.verify))

    @get("/proof", opt=permission("audit", "read"))
    async def audit_proof(
        self,
        request: Request,
        since_size: Annotated[int | None, Parameter(query="sinceSize", ge=1)] = None,
        event: Annotated[int | None, Parameter(ge=1)] = None,
    ) -> AuditProof:
        """A signed checkpoint, with a consistency proof from a kept checkpoint's size and an
        inclusion proof of one event; check it offline with `governance audit check`."""
        bundle = await in_thread(governance_of(request).audit_proof, since_size, event)
        # The bundle is the proof document `audit check` reads, so the service keeps it a
        # document; typed here for the API's schema.
        return msgspec.convert(bundle, AuditProof)
