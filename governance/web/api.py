"""The HTTP API under /api/v1. Each handler names the permission it needs (checked by the
`authorize` guard before it runs) and calls one service function."""

from __future__ import annotations

import json
from collections.abc import Iterable
from copy import copy
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, Parameter
from pydantic import ValidationError

from governance.bootstrap import Governance
from governance.domain import names
from governance.domain.errors import InputError
from governance.domain.evidence import EvidenceManifest
from governance.domain.model_card import ModelCard
from governance.services.people import Principal
from governance.services.reports import IssuedReport
from governance.services.workflow import Candidate
from governance.store.repository import audit_page
from governance.web.auth import authorize, bearer_secret
from governance.web.problems import MEDIA_TYPE, Problem, on_form_not_utf8

Json = dict[str, Any]
MiB = 1024 * 1024
MAX_EVIDENCE_BYTES = 16 * MiB
MAX_PROVENANCE_BYTES = 1 * MiB
# The largest page offset: SQLite and PostgreSQL take a 64-bit OFFSET, and a larger one
# must be refused (400), not fail in the database driver (500).
MAX_OFFSET = 2**63 - 1
# The largest row id: ids are PostgreSQL `integer`s, so a larger one is refused (400) rather
# than failing in the driver (500).
MAX_ROW_ID = 2**31 - 1


def refuse_nul(fields: Iterable[tuple[str, object]]) -> None:
    """Refuse text with a NUL character (422), the same on every backend: PostgreSQL can
    neither store nor compare one, and its driver failed on it (500)."""
    for name, value in fields:
        if isinstance(value, str) and "\x00" in value:
            raise InputError(name, "contains a NUL character", "send the text without it")


class Camel(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Request bodies: camelCase on the wire, unknown fields refused with their name, and
    no NUL in text."""

    def __post_init__(self) -> None:
        values = (getattr(self, name) for name in self.__struct_fields__)
        refuse_nul(zip(self.__struct_encode_fields__, values, strict=True))


class SignIn(Camel):
    username: str
    password: str


class NewModel(Camel):
    name: Annotated[str, msgspec.Meta(pattern=names.PATTERN)]
    risk_tier: str
    owner: str | None = None


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


class NewUser(Camel):
    username: str
    full_name: str
    password: str
    roles: list[str]


class PasswordChange(Camel):
    current_password: str
    new_password: str


class PasswordReset(Camel):
    new_password: str


class NewToken(Camel):
    name: str
    roles: list[str]
    days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    # The person accountable for what the token does (default: whoever creates it).
    owner: str | None = None


@dataclass
class SubmitForm:
    """A candidate: the model file, and either the data to check it on (the service runs
    the checks) or the evidence manifest of checks already run (`gate --submit`)."""

    model: str
    version: str
    artifact: UploadFile
    target: str = "production"
    label: str | None = None
    data: UploadFile | None = None
    reference: UploadFile | None = None
    champion: UploadFile | None = None
    positive_label: str | None = None
    evidence: UploadFile | None = None
    provenance: UploadFile | None = None  # a CI builder's DSSE envelope over the evidence
    model_card: str | None = None  # a JSON object: purpose, intendedUse, limitations, …

    def __post_init__(self) -> None:
        refuse_nul(vars(self).items())


def _gov(request: Request) -> Governance:
    governance: Governance = request.app.state.governance
    return governance


def client_address(request: Request) -> str | None:
    """The peer's address: behind a proxy, the proxy's (the per-address wait is then shared)."""
    return request.client.host if request.client else None


def _me(request: Request) -> Principal:
    principal: Principal = request.user
    return principal


def permission(resource: str, action: str) -> dict[str, Any]:
    return {"permission": (resource, action)}


SIGNED_IN = {"permission": "signed-in"}
PERSON = {"permission": "person"}  # signed in as a person, not with an API token
PUBLIC = {"exclude_from_auth": True, "permission": "public"}

# The error answers any API operation may give, each as problem+json (problems.py); listed
# in the OpenAPI schema of every handler by `api_router`.
PROBLEMS = {
    status: ResponseSpec(
        Problem, description=description, media_type=MEDIA_TYPE, generate_examples=False
    )
    for status, description in {
        400: "The parameters or the body do not match this schema",
        401: "No credentials, unknown or expired ones, or a wrong password",
        403: "The caller's roles do not allow this, or a rule of the workflow refuses it",
        404: "No such record",
        409: "The record's current state does not allow this",
        413: "The request body is larger than this endpoint accepts",
        422: "A value is not acceptable: the answer names the field and the fix",
        429: "Too many failed sign-ins: wait the Retry-After seconds, or ask an admin to unlock",
    }.items()
}


# --- sessions and me ------------------------------------------------------------------


@post("/sessions", opt=PUBLIC, security=[], status_code=201, summary="Sign in", tags=["people"])
async def sign_in(request: Request, data: SignIn) -> Json:
    governance = _gov(request)
    return await _thread(
        governance.people.sign_in,
        data.username,
        data.password,
        governance.settings.session_hours,
        client_address(request),
    )


@delete("/sessions/current", opt=SIGNED_IN, summary="Sign out", tags=["people"])
async def sign_out(request: Request) -> None:
    secret = bearer_secret(request)
    if secret:
        await _thread(_gov(request).people.sign_out, secret)


@post(
    "/me/password",
    opt=PERSON,
    status_code=200,
    summary="Change my password; my other sessions end",
    tags=["people"],
)
async def change_password(request: Request, data: PasswordChange) -> Json:
    return await _thread(
        _gov(request).people.change_password,
        _me(request).name,
        data.current_password,
        data.new_password,
        bearer_secret(request),
    )


@get("/me", opt=SIGNED_IN, summary="Who am I", tags=["people"])
async def me(request: Request) -> Json:
    principal = _me(request)
    return {
        "name": principal.name,
        "fullName": principal.full_name,
        "kind": principal.kind,
        "roles": sorted(principal.roles),
        "person": principal.person,
    }


# --- models and policies --------------------------------------------------------------


@get("/models", opt=permission("models", "read"), tags=["models"])
async def list_models(request: Request) -> list[Json]:
    return await _thread(_gov(request).workflow.list_models)


@post("/models", opt=permission("models", "register"), status_code=201, tags=["models"])
async def register_model(request: Request, data: NewModel) -> Json:
    return await _thread(
        _gov(request).workflow.register_model, _me(request), data.name, data.risk_tier, data.owner
    )


@get("/models/{name:str}", opt=permission("models", "read"), tags=["models"])
async def get_model(request: Request, name: str) -> Json:
    return await _thread(_gov(request).workflow.get_model, name)


@get("/policies", opt=permission("policies", "read"), tags=["policies"])
async def list_policies(request: Request) -> list[Json]:
    return [
        {
            "name": p.metadata.name,
            "version": p.metadata.version,
            "riskTier": p.applies_to.risk_tier,
            "targets": p.applies_to.targets,
            "sha256": p.content_hash,
            "document": p.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        for p in _gov(request).workflow.policies.policies
    ]


# --- promotion requests ---------------------------------------------------------------


@post(
    "/requests",
    opt=permission("requests", "submit"),
    status_code=202,
    tags=["requests"],
    summary="Submit a model version for promotion; its checks run as a job",
    exception_handlers={UnicodeDecodeError: on_form_not_utf8},
)
async def submit(
    request: Request, data: Annotated[SubmitForm, Body(media_type=RequestEncodingType.MULTI_PART)]
) -> Json:
    governance = _gov(request)
    limit = governance.settings.max_upload_bytes
    stored = {}
    for field in ("artifact", "data", "reference", "champion"):
        upload = getattr(data, field)
        if upload is None:
            continue
        if not isinstance(upload, UploadFile):
            raise InputError(field, "is not a file part", f"send {field} as a file upload")
        stored[field] = await governance.blobs.put(
            field, upload.filename or "", _chunks(upload), limit
        )
    if data.evidence is not None:
        raw = await data.evidence.read(MAX_EVIDENCE_BYTES + 1)
        if len(raw) > MAX_EVIDENCE_BYTES:
            raise InputError("evidence", "is larger than 16 MiB", "upload the gate's manifest")
        manifest = _manifest(raw)
        candidate = Candidate(
            model=data.model,
            version=data.version,
            target=data.target,
            label=manifest.target,
            artifact=stored["artifact"],
            data=stored.get("data"),
            reference=stored.get("reference"),
            champion=stored.get("champion"),
            positive_label=manifest.positive_label,
            model_card=_model_card(data.model_card),
        )
        provenance = await _provenance(data.provenance)
        created = await _thread(
            governance.workflow.submit_evidence, _me(request), candidate, manifest, provenance
        )
        request.app.state.jobs.notify()  # the re-run, unless a trusted builder vouched
        return created
    if "data" not in stored or not data.label:
        missing = "data" if "data" not in stored else "label"
        raise InputError(
            missing,
            "is required when the service runs the checks",
            "send the evaluation data and its label column, or an evidence manifest",
        )
    candidate = Candidate(
        model=data.model,
        version=data.version,
        target=data.target,
        label=data.label,
        artifact=stored["artifact"],
        data=stored["data"],
        reference=stored.get("reference"),
        champion=stored.get("champion"),
        positive_label=data.positive_label,
        model_card=_model_card(data.model_card),
    )
    created = await _thread(governance.workflow.submit, _me(request), candidate)
    request.app.state.jobs.notify()
    return created


def _manifest(raw: bytes) -> EvidenceManifest:
    try:
        return EvidenceManifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(
            "evidence",
            f"is not an evidence manifest ({where}: {first['msg']}; {exc.error_count()} error(s))",
            "upload the JSON that `governance gate --json` writes",
        ) from None


async def _provenance(upload: UploadFile | None) -> Any:
    """The builder's DSSE envelope as JSON, or None. Whether it holds is the workflow's
    question: one that does not means the checks are re-computed, not a refusal."""
    if upload is None:
        return None
    if not isinstance(upload, UploadFile):
        raise InputError("provenance", "is not a file part", "send provenance as a file upload")
    raw = await upload.read(MAX_PROVENANCE_BYTES + 1)
    if len(raw) > MAX_PROVENANCE_BYTES:
        raise InputError("provenance", "is larger than 1 MiB", "upload the DSSE envelope")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InputError(
            "provenance", "is not JSON", "upload the DSSE envelope `gate --builder-key` signs"
        ) from None


def _model_card(raw: str | None) -> ModelCard | None:
    if not raw:
        return None
    try:
        return ModelCard.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(
            "model_card",
            f"is not a model card ({where}: {first['msg']})",
            "send a JSON object with any of purpose, intendedUse, outOfScopeUse, trainingData, "
            "limitations, ethicalConsiderations, contact (text)",
        ) from None


@get("/requests", opt=permission("requests", "read"), tags=["requests"])
async def list_requests(
    request: Request,
    state_filter: Annotated[str | None, Parameter(query="state")] = None,
    model: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
) -> Json:
    return await _thread(_gov(request).workflow.list_requests, state_filter, model, limit, offset)


@get("/requests/{request_id:str}", opt=permission("requests", "read"), tags=["requests"])
async def get_request(request: Request, request_id: str) -> Json:
    return await _thread(_gov(request).workflow.get_request, request_id)


@get("/requests/{request_id:str}/evidence", opt=permission("requests", "read"), tags=["requests"])
async def get_evidence(request: Request, request_id: str) -> Json:
    return await _thread(_gov(request).workflow.manifest, request_id)


@post(
    "/requests/{request_id:str}/signatures",
    opt=permission("requests", "sign"),
    status_code=200,
    tags=["requests"],
    summary="Sign (approve, reject, waive); re-authenticates with the signer's password",
)
async def sign(request: Request, request_id: str, data: SignatureBody) -> Json:
    return await _thread(
        _gov(request).workflow.sign,
        _me(request),
        request_id,
        data.meaning,
        data.comment,
        data.password,
        data.role,
    )


@post(
    "/requests/{request_id:str}/waiver",
    opt=permission("requests", "request_waiver"),
    status_code=200,
    tags=["requests"],
)
async def request_waiver(request: Request, request_id: str, data: WaiverBody) -> Json:
    return await _thread(
        _gov(request).workflow.request_waiver,
        _me(request),
        request_id,
        data.justification,
        data.days,
    )


@post(
    "/requests/{request_id:str}/promote",
    opt=permission("requests", "promote"),
    status_code=200,
    tags=["requests"],
)
async def promote(request: Request, request_id: str) -> Json:
    return await _thread(_gov(request).workflow.promote, _me(request), request_id)


@post(
    "/requests/{request_id:str}/revoke",
    opt=permission("requests", "revoke"),
    status_code=200,
    tags=["requests"],
)
async def revoke(request: Request, request_id: str, data: RevokeBody) -> Json:
    return await _thread(_gov(request).workflow.revoke, _me(request), request_id, data.reason)


@get(
    "/decisions/{decision_id:str}/attestation",
    opt=permission("decisions", "read"),
    tags=["evidence"],
    summary="The decision as a DSSE envelope holding an in-toto Statement",
)
async def get_attestation(request: Request, decision_id: str) -> Json:
    return await _thread(_gov(request).workflow.attestation, decision_id)


# --- reports --------------------------------------------------------------------------

PDF_RESPONSE = {200: ResponseSpec(None, description="A signed PDF/A-3b report",
                                  media_type="application/pdf")}  # fmt: skip


@get(
    "/requests/{request_id:str}/report.pdf",
    opt=permission("reports", "read"),
    tags=["reports"],
    summary="The signed decision report of a request (its sha256 is recorded in the audit trail)",
    responses=PDF_RESPONSE,
)
async def decision_report(request: Request, request_id: str) -> Response[bytes]:
    reports = _gov(request).reports
    issued = await _thread(reports.decision, _me(request).name, request_id)
    return pdf_response(issued)


@get(
    "/decisions/{decision_id:str}/bias-audit.pdf",
    opt=permission("reports", "read"),
    tags=["reports"],
    summary="A signed NYC Local Law 144 bias audit of the decided model on its data",
    responses=PDF_RESPONSE,
)
async def bias_audit_report(
    request: Request,
    decision_id: str,
    scoring: bool = False,
    sex: Annotated[str, Parameter(max_length=200)] = "sex",
    race: Annotated[str, Parameter(max_length=200)] = "race",
    source: Annotated[str | None, Parameter(max_length=1000)] = None,
    date_from: Annotated[str | None, Parameter(query="from", max_length=10)] = None,
    date_to: Annotated[str | None, Parameter(query="to", max_length=10)] = None,
) -> Response[bytes]:
    reports = _gov(request).reports
    audit = (decision_id, sex, race, scoring, source, date_from, date_to)
    issued = await _thread(reports.bias_audit, _me(request).name, *audit)
    return pdf_response(issued)


@get(
    "/inventory/report.pdf",
    opt=permission("reports", "read"),
    tags=["reports"],
    summary="The signed model inventory report",
    responses=PDF_RESPONSE,
)
async def inventory_report(request: Request) -> Response[bytes]:
    issued = await _thread(_gov(request).reports.inventory, _me(request).name)
    return pdf_response(issued)


def pdf_response(issued: IssuedReport) -> Response[bytes]:
    """A signed report as a download, its sha256 in a header (the API and the console)."""
    return Response(
        issued.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{issued.filename}"',
            "X-Report-Sha256": issued.sha256,
            "Cache-Control": "no-store",  # each download is issued and recorded anew
        },
    )


# --- admission ------------------------------------------------------------------------


@get(
    "/admission/{model:str}/{version:str}",
    opt=permission("admission", "check"),
    tags=["serving"],
    sync_to_thread=False,
    summary="May this model version be served? Allow or deny, with the reason",
)
def admission(
    request: Request,
    model: str,
    version: str,
    target: str = "production",
    digest: str | None = None,
) -> Json:
    # Synchronous on purpose: an answer from the cache takes microseconds, and Litestar runs
    # a sync handler in its thread pool only when told to (sync_to_thread below).
    return _gov(request).workflow.admission(model, version, target, digest).as_dict()


# --- audit ----------------------------------------------------------------------------


@get("/audit", opt=permission("audit", "read"), tags=["audit"])
async def list_audit(
    request: Request,
    action: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
) -> Json:
    return await _thread(audit_page, _gov(request).engine, action, subject, actor, limit, offset)


@get("/audit/verify", opt=permission("audit", "read"), tags=["audit"])
async def verify_audit(request: Request) -> Json:
    """The hash chain, and the trail against the newest checkpoint published outside the
    database (a cut tail, a rewrite with recomputed hashes); when intact, a checkpoint of it
    is published."""
    return await _thread(_gov(request).checkpoints.verify)


@get("/audit/proof", opt=permission("audit", "read"), tags=["audit"])
async def audit_proof(
    request: Request,
    since_size: Annotated[int | None, Parameter(query="sinceSize", ge=1)] = None,
    event: Annotated[int | None, Parameter(ge=1)] = None,
) -> Json:
    """A signed checkpoint, with a consistency proof from a kept checkpoint's size and an
    inclusion proof of one event; check it offline with `governance audit check`."""
    return await _thread(_gov(request).audit_proof, since_size, event)


# --- people and tokens ----------------------------------------------------------------


@get("/users", opt=permission("users", "read"), tags=["people"])
async def list_users(request: Request) -> list[Json]:
    return await _thread(_gov(request).people.list_users)


@post("/users", opt=permission("users", "manage"), status_code=201, tags=["people"])
async def add_user(request: Request, data: NewUser) -> Json:
    return await _thread(
        _gov(request).people.add_user,
        _me(request),
        data.username,
        data.full_name,
        data.password,
        data.roles,
    )


@post(
    "/users/{username:str}/disable",
    opt=permission("users", "manage"),
    status_code=200,
    tags=["people"],
)
async def disable_user(request: Request, username: str) -> Json:
    await _thread(_gov(request).people.set_disabled, _me(request), username, True)
    return {"username": username, "disabled": True}


@post(
    "/users/{username:str}/unlock",
    opt=permission("users", "manage"),
    status_code=200,
    summary="End a sign-in lockout now",
    tags=["people"],
)
async def unlock_user(request: Request, username: str) -> Json:
    return await _thread(_gov(request).people.unlock, _me(request), username)


@post(
    "/users/{username:str}/password",
    opt=permission("users", "manage"),
    status_code=200,
    summary="Reset a person's password; their sessions end and a lockout is lifted",
    tags=["people"],
)
async def reset_password(request: Request, username: str, data: PasswordReset) -> Json:
    return await _thread(
        _gov(request).people.reset_password, _me(request), username, data.new_password
    )


@get("/tokens", opt=permission("tokens", "read"), tags=["people"])
async def list_tokens(request: Request) -> list[Json]:
    return await _thread(_gov(request).people.list_tokens)


@post(
    "/tokens",
    opt=permission("tokens", "manage"),
    status_code=201,
    tags=["people"],
    summary="Issue an API token; the secret is in this response only",
)
async def create_token(request: Request, data: NewToken) -> Json:
    return await _thread(
        _gov(request).people.create_token,
        _me(request),
        data.name,
        data.roles,
        data.days,
        data.owner,
    )


@delete("/tokens/{token_id:str}", opt=permission("tokens", "manage"), tags=["people"])
async def revoke_token(request: Request, token_id: str) -> None:
    await _thread(_gov(request).people.revoke_token, _me(request), token_id)


async def _thread(function: Any, *args: Any) -> Any:
    """Database and CPU work off the event loop."""
    from anyio import to_thread

    return await to_thread.run_sync(lambda: function(*args))


async def _chunks(upload: UploadFile) -> Any:
    while chunk := await upload.read(MiB):
        yield chunk


HANDLERS = [
    decision_report,
    bias_audit_report,
    inventory_report,
    sign_in,
    sign_out,
    change_password,
    me,
    list_models,
    register_model,
    get_model,
    list_policies,
    list_requests,
    get_request,
    get_evidence,
    sign,
    request_waiver,
    promote,
    revoke,
    get_attestation,
    admission,
    list_audit,
    verify_audit,
    audit_proof,
    list_users,
    add_user,
    disable_user,
    unlock_user,
    reset_password,
    list_tokens,
    create_token,
    revoke_token,
]


async def _refuse_nul_parameters(request: Request) -> None:
    # async: Litestar runs a sync hook in its thread pool, a hop that costs ~0.2 ms a request
    refuse_nul([*request.path_params.items(), *request.query_params.multi_items()])


def _with_problems(handler: HTTPRouteHandler) -> HTTPRouteHandler:
    """A copy of the handler whose OpenAPI lists the error answers (PROBLEMS) too, and the
    bearer credential unless the handler is public."""
    documented = copy(handler)
    documented.responses = {**PROBLEMS, **(handler.responses or {})}
    if handler.opt.get("permission") != "public":
        documented.security = [{"bearer": []}]
    return documented


def api_router(max_json_bytes: int, max_upload_bytes: int) -> Router:
    """The API, with its body limits: small JSON everywhere, and room for up to four files
    of the upload limit on the one endpoint that takes candidates."""
    from governance.web.api_builders import BUILDER_HANDLERS  # it imports this module
    from governance.web.api_connectors import CONNECTOR_HANDLERS  # it imports this module
    from governance.web.api_monitoring import MONITORING_HANDLERS  # it imports this module
    from governance.web.api_webhooks import WEBHOOK_HANDLERS  # it imports this module

    upload = _with_problems(submit)
    upload.request_max_body_size = 4 * max_upload_bytes + MiB
    return Router(
        path="/api/v1",
        route_handlers=[
            *map(
                _with_problems,
                [
                    *HANDLERS,
                    *WEBHOOK_HANDLERS,
                    *MONITORING_HANDLERS,
                    *CONNECTOR_HANDLERS,
                    *BUILDER_HANDLERS,
                ],
            ),
            upload,
        ],
        guards=[authorize],
        before_request=_refuse_nul_parameters,
        request_max_body_size=max_json_bytes,
    )
