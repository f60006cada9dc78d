"""The catalog pages: the model inventory and a model's versions, the audit trail with its
chain check, the policies (in force and every pinned version), one policy, the diff of two
versions, and a draft's impact. All read only; each handler calls one service function."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException
from litestar.params import Parameter
from litestar.response import Response, Template

from governance.connectors import files
from governance.domain.errors import InputError
from governance.domain.policy import PolicyError, PromotionPolicy
from governance.reports import documents
from governance.services import catalog
from governance.services.browse import Page
from governance.services.catalog import AuditFilter
from governance.web.console.base import (
    PageQuery,
    PageSize,
    failure_message,
    on_domain_error,
    page,
    risk_tiers,
)
from governance.web.dependencies import governance_of, in_thread
from governance.web.guards import permission

MiB = 1024 * 1024
MAX_DRAFT_BYTES = 1 * MiB
Text = Annotated[str | None, Parameter(max_length=200)]


class DraftTooLargeError(InputError):
    """Over 1 MiB: answered 413, like a body over the limit."""


def _clean(value: str | None) -> str | None:
    return (value or "").strip() or None


# --- models ---------------------------------------------------------------------------


@get("/models", opt=permission("models", "read"), name="console-models")
async def models(
    request: Request,
    name: Text = None,
    tier: str | None = None,
    page_: PageQuery = 1,
    size: PageSize = 25,
) -> Template:
    governance = governance_of(request)
    listing = await in_thread(
        governance.browse.models, _clean(name), tier or None, Page(page_, size)
    )
    return page(
        request,
        "models.html.j2",
        listing=listing,
        name=_clean(name) or "",
        tier=tier or "",
        tiers=risk_tiers(governance.workflow.policies.policies),
    )


@get("/models/{model_name:str}", opt=permission("models", "read"), name="console-model")
async def model(
    request: Request,
    model_name: str,
    page_: PageQuery = 1,
    size: PageSize = 25,
) -> Template:
    history = await in_thread(
        governance_of(request).browse.model_history, model_name, Page(page_, size)
    )
    return page(request, "model.html.j2", listing=history, m=history["model"])


# --- the audit trail ------------------------------------------------------------------


@get("/audit", opt=permission("audit", "read"), name="console-audit")
async def audit(
    request: Request,
    action: Text = None,
    actor: Text = None,
    subject: Text = None,
    seq: Annotated[int | None, Parameter(ge=1, le=2**62)] = None,
    page_: PageQuery = 1,
) -> Template:
    filters = AuditFilter(_clean(action), _clean(actor), _clean(subject))
    units = governance_of(request).units
    listing = await in_thread(catalog.audit_listing, units, filters, page_, seq)
    return page(request, "audit.html.j2", listing=listing, filters=filters)


@get("/audit/verify", opt=permission("audit", "read"), name="console-audit-verify")
async def audit_verify(request: Request) -> Template:
    """The chain check, loaded by the audit page after it shows (it reads every event)."""
    status = await in_thread(governance_of(request).chain_status.current)
    return page(request, "audit_verify.html.j2", status=status, title="Audit chain check")


# --- policies -------------------------------------------------------------------------


def _library(request: Request) -> list[PromotionPolicy]:
    return governance_of(request).workflow.policies.policies


@get("/policies", opt=permission("policies", "read"), name="console-policies")
async def policies(request: Request) -> Template:
    units = governance_of(request).units
    versions = await in_thread(catalog.policy_versions, units, _library(request))
    return page(request, "policies.html.j2", versions=versions)


@get("/policies/diff", opt=permission("policies", "read"), name="console-policy-diff")
async def policy_diff(
    request: Request,
    name: Text = None,
    old: Annotated[str | None, Parameter(query="from", max_length=80)] = None,
    new: Annotated[str | None, Parameter(query="to", max_length=80)] = None,
) -> Template:
    units = governance_of(request).units
    diff = await in_thread(
        catalog.policy_diff, units, _library(request), _clean(name), _clean(old), _clean(new)
    )
    return page(request, "policy_diff.html.j2", diff=diff, name=_clean(name) or diff.new.name)


@get("/policies/impact", opt=permission("policies", "read"), name="console-policy-impact")
async def impact_form(request: Request) -> Template:
    return page(request, "impact.html.j2", draft="")


@post(
    "/policies/impact",
    opt=permission("policies", "read"),  # judges the draft; changes nothing
    name="console-policy-impact-run",
    request_max_body_size=2 * MiB + 64 * 1024,  # a file and a pasted text, each up to 1 MiB
    exception_handlers={UnicodeDecodeError: lambda r, _: _not_utf8(r)},
)
async def impact(request: Request) -> Template:
    """A draft from the file field, else from the text field; a bad one comes back to the
    form with its problems by path (422), never as a traceback."""
    form = await request.form()  # multipart: the guard has read it for the CSRF token
    upload, pasted = form.get("file"), form.get("draft")
    pasted = pasted if isinstance(pasted, str) else ""
    try:
        source, text = await _draft(upload, pasted)
        units = governance_of(request).units
        report = await in_thread(catalog.draft_impact, units, files, text, source)
    except (PolicyError, InputError) as exc:
        problems = exc.problems if isinstance(exc, PolicyError) else [failure_message(exc)]
        status = 413 if isinstance(exc, DraftTooLargeError) else 422
        source = exc.source if isinstance(exc, PolicyError) else ""
        return page(
            request, "impact.html.j2", status, draft=pasted, problems=problems, source=source
        )
    return page(request, "impact.html.j2", draft=pasted, report=report)


async def _draft(upload: Any, pasted: str) -> tuple[str, str]:
    """(where the draft came from, its text)."""
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_DRAFT_BYTES + 1)
        where = f"uploaded file {upload.filename}"
        if len(raw) > MAX_DRAFT_BYTES:
            raise DraftTooLargeError(where, "is larger than 1 MiB", "a policy is a small file")
        try:
            return where, raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PolicyError(where, ["not a text file: a policy is UTF-8 YAML"]) from None
    if len(pasted.encode()) > MAX_DRAFT_BYTES:
        raise DraftTooLargeError("pasted draft", "is larger than 1 MiB", "a policy is a small file")
    if not pasted.strip():
        raise InputError("draft", "is empty", "choose a YAML file or paste the policy's text")
    return "pasted draft", pasted


def _not_utf8(request: Request) -> Response[Any]:
    """Litestar decodes a form field without a filename as UTF-8 and fails on other bytes."""
    refused = ClientException("a form field is not UTF-8 text: upload the draft as a file")
    return on_domain_error(request, refused)


@get(
    "/policies/{policy_name:str}/{ref:str}",
    opt=permission("policies", "read"),
    name="console-policy",
)
async def policy_page(request: Request, policy_name: str, ref: str) -> Template:
    units = governance_of(request).units
    detail = await in_thread(catalog.policy_detail, units, _library(request), policy_name, ref)
    return page(
        request,
        "policy.html.j2",
        detail=detail,
        v=detail.version,
        view=documents.policy_view(detail.policy),
    )


HANDLERS = [
    models,
    model,
    audit,
    audit_verify,
    policies,
    policy_diff,
    impact_form,
    impact,
    policy_page,
]
