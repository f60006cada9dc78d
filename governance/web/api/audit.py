"""The audit trail: its events by page, the check of its hash chain, and proofs that a
client can check offline."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request
from litestar.params import Parameter

from governance.store.repository import audit_page
from governance.web.api.bodies import MAX_OFFSET, Json
from governance.web.api.operations import get
from governance.web.dependencies import governance_of, in_thread
from governance.web.guards import permission


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
    ) -> Json:
        engine = governance_of(request).engine
        return await in_thread(audit_page, engine, action, subject, actor, limit, offset)

    @get("/verify", opt=permission("audit", "read"))
    async def verify_audit(self, request: Request) -> Json:
        """The hash chain, and the trail against the newest checkpoint published outside the
        database (a cut tail, a rewrite with recomputed hashes); when intact, a checkpoint of it
        is published."""
        return await in_thread(governance_of(request).checkpoints.verify)

    @get("/proof", opt=permission("audit", "read"))
    async def audit_proof(
        self,
        request: Request,
        since_size: Annotated[int | None, Parameter(query="sinceSize", ge=1)] = None,
        event: Annotated[int | None, Parameter(ge=1)] = None,
    ) -> Json:
        """A signed checkpoint, with a consistency proof from a kept checkpoint's size and an
        inclusion proof of one event; check it offline with `governance audit check`."""
        return await in_thread(governance_of(request).audit_proof, since_size, event)
