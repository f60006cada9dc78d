"""Promotion requests once submitted: listed, read with their evidence, signed, waived,
promoted and revoked; and the attestation of a decision. Submitting one is submissions.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request
from litestar.params import Parameter

from governance.web.api.bodies import MAX_OFFSET, Camel, CamelResponse, Json, NestedResponse
from governance.web.api.operations import get, post
from governance.web.dependencies import as_caller, governance_of, in_thread
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


class PinnedPolicy(CamelResponse, frozen=True):
    """The policy a request is judged under, pinned when it was submitted."""

    name: str
    version: int
    sha256: str


class RequestSummary(NestedResponse, frozen=True):
    """A promotion request as a list shows it: what is offered for where, and its state."""

    id: str
    model: str
    version: str
    risk_tier: str
    target: str
    state: str
    state_reason: str | None
    submitter: str
    submitter_person: str | None
    policy: PinnedPolicy
    artifact_sha256: str
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class RequestList(NestedResponse, frozen=True):
    """One page of promotion requests, newest first, and how many match in all."""

    items: list[RequestSummary]
    total: int
    limit: int
    offset: int


class Signature(CamelResponse, frozen=True):
    """An electronic signature: who, in which role, meaning what, over which evidence."""

    username: str
    full_name: str
    role: str
    meaning: str
    comment: str
    evidence_sha256: str
    reauthenticated: bool
    signed_at: datetime


class Waiver(CamelResponse, frozen=True):
    """The waiver asked for a blocked request: by whom, why, and for how many days."""

    requested_by: str
    justification: str
    days: int
    created_at: datetime = msgspec.field(name="requestedAt")


class FinalDecision(CamelResponse, frozen=True):
    """A final decision; its signed attestation is GET /decisions/{id}/attestation."""

    id: str
    decision: str
    created_at: datetime


class PromotionRequest(RequestSummary, frozen=True):
    """A request as people decide on it: the evidence (`checks` are the manifest's results;
    `evidence` says how they were checked), the approval rules of the pinned policy, the
    signatures, the waiver asked for, and the final decisions issued."""

    owner: str | None
    verdict: str | None
    decision_summary: str | None
    gate_decision_id: str | None
    evidence_sha256: str | None
    checks: list[dict[str, Any]]
    evidence: dict[str, Any]
    approval_rules: dict[str, Any]
    signatures: list[Signature]
    waiver: Waiver | None
    decisions: list[FinalDecision]


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
    ) -> RequestList:
        workflow = governance_of(request).workflow
        page = await in_thread(workflow.list_requests, state_filter, model, limit, offset)
        return RequestList.from_record(page)

    @get("/{request_id:str}", opt=permission("requests", "read"))
    async def get_request(self, request: Request, request_id: str) -> PromotionRequest:
        view = await in_thread(governance_of(request).workflow.get_request, request_id)
        return PromotionRequest.from_record(view)

    @get("/{request_id:str}/evidence", opt=permission("requests", "read"))
    async def get_evidence(self, request: Request, request_id: str) -> Json:
        return await in_thread(governance_of(request).workflow.manifest, request_id)

    @post(
        "/{request_id:str}/signatures",
        opt=permission("requests", "sign"),
        status_code=200,
        summary="Sign (approve, reject, waive); re-authenticates with the signer's password",
    )
    async def sign(
        self, request: Request, request_id: str, data: SignatureBody
    ) -> PromotionRequest:
        signed = await as_caller(
            request,
            governance_of(request).workflow.sign,
            request_id,
            data.meaning,
            data.comment,
            data.password,
            data.role,
        )
        return PromotionRequest.from_record(signed)

    @post("/{request_id:str}/waiver", opt=permission("requests", "request_waiver"), status_code=200)
    async def request_waiver(
        self, request: Request, request_id: str, data: WaiverBody
    ) -> PromotionRequest:
        asked = await as_caller(
            request,
            governance_of(request).workflow.request_waiver,
            request_id,
            data.justification,
            data.days,
        )
        return PromotionRequest.from_record(asked)

    @post("/{request_id:str}/promote", opt=permission("requests", "promote"), status_code=200)
    async def promote(self, request: Request, request_id: str) -> PromotionRequest:
        workflow = governance_of(request).workflow
        promoted = await as_caller(request, workflow.promote, request_id)
        return PromotionRequest.from_record(promoted)

    @post("/{request_id:str}/revoke", opt=permission("requests", "revoke"), status_code=200)
    async def revoke(self, request: Request, request_id: str, data: RevokeBody) -> PromotionRequest:
        workflow = governance_of(request).workflow
        revoked = await as_caller(request, workflow.revoke, request_id, data.reason)
        return PromotionRequest.from_record(revoked)


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
