"""Promotion requests once submitted: listed, read with their evidence, signed, waived,
promoted and revoked; and the attestation of a decision. Submitting one is submissions.py."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request
from litestar.params import Parameter

from governance.web.api.bodies import MAX_OFFSET, Camel, Json
from governance.web.api.operations import get, post
from governance.web.dependencies import governance_of, in_thread, principal_of
from governance.web.guards import permission


class SignatureBody(Camel):
    meaning: str
    comment: str
    password: str
    role: str | None = None


class WaiverBody(Camel):
    justification: str
    days: Annotated[int, msgspec.Meta(ge=1, le=3650)]


class RevokeBody(Camel):
    reason: str


class RequestController(Controller):
    """A request's life after submission: each change is one workflow function."""

    path = "/requests"
    tags = ("requests",)

    @get("/", opt=permission("requests", "read"))
    async def list_requests(
        self,
        request: Request,
        state_filter: Annotated[str | None, Parameter(query="state")] = None,
        model: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Json:
        workflow = governance_of(request).workflow
        return await in_thread(workflow.list_requests, state_filter, model, limit, offset)

    @get("/{request_id:str}", opt=permission("requests", "read"))
    async def get_request(self, request: Request, request_id: str) -> Json:
        return await in_thread(governance_of(request).workflow.get_request, request_id)

    @get("/{request_id:str}/evidence", opt=permission("requests", "read"))
    async def get_evidence(self, request: Request, request_id: str) -> Json:
        return await in_thread(governance_of(request).workflow.manifest, request_id)

    @post(
        "/{request_id:str}/signatures",
        opt=permission("requests", "sign"),
        status_code=200,
        summary="Sign (approve, reject, waive); re-authenticates with the signer's password",
    )
    async def sign(self, request: Request, request_id: str, data: SignatureBody) -> Json:
        return await in_thread(
            governance_of(request).workflow.sign,
            principal_of(request),
            request_id,
            data.meaning,
            data.comment,
            data.password,
            data.role,
        )

    @post("/{request_id:str}/waiver", opt=permission("requests", "request_waiver"), status_code=200)
    async def request_waiver(self, request: Request, request_id: str, data: WaiverBody) -> Json:
        return await in_thread(
            governance_of(request).workflow.request_waiver,
            principal_of(request),
            request_id,
            data.justification,
            data.days,
        )

    @post("/{request_id:str}/promote", opt=permission("requests", "promote"), status_code=200)
    async def promote(self, request: Request, request_id: str) -> Json:
        workflow = governance_of(request).workflow
        return await in_thread(workflow.promote, principal_of(request), request_id)

    @post("/{request_id:str}/revoke", opt=permission("requests", "revoke"), status_code=200)
    async def revoke(self, request: Request, request_id: str, data: RevokeBody) -> Json:
        workflow = governance_of(request).workflow
        return await in_thread(workflow.revoke, principal_of(request), request_id, data.reason)


class DecisionController(Controller):
    """A decision, as evidence others can check without this service."""

    path = "/decisions"
    tags = ("evidence",)

    @get(
        "/{decision_id:str}/attestation",
        opt=permission("decisions", "read"),
        summary="The decision as a DSSE envelope holding an in-toto Statement",
    )
    async def get_attestation(self, request: Request, decision_id: str) -> Json:
        return await in_thread(governance_of(request).workflow.attestation, decision_id)
