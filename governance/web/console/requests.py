"""Signing in and out, my queue, the requests, one request with its evidence, and the
actions on it. Each handler calls one service function and renders or redirects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from governance.auth.secrets import MIN_PASSWORD_LENGTH
from governance.domain.errors import InputError, TooManyAttemptsError, UnauthenticatedError
from governance.domain.workflow import State
from governance.reports import documents
from governance.services.browse import Page, RequestDetail, RequestFilter
from governance.services.people import Principal
from governance.web.console.base import (
    LOGIN_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    CsrfOnly,
    Form,
    PageQuery,
    PageSize,
    act,
    login_token_cookie,
    page,
    redirect,
    risk_tiers,
    session_cookie,
    signed_out,
)
from governance.web.console.monitoring import monitoring_section
from governance.web.dependencies import (
    as_caller,
    client_address,
    governance_of,
    in_thread,
    principal_of,
)
from governance.web.downloads import pdf_response
from governance.web.guards import PUBLIC, SIGNED_IN, permission


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# --- signing in -----------------------------------------------------------------------


@dataclass
class SignInForm:
    username: str
    password: str
    login_token: str = ""
    next: str = "/"


@get("/login", opt=PUBLIC, name="console-login")
async def login_page(
    request: Request, next_: Annotated[str, Parameter(query="next")] = "/"
) -> Template:
    token, cookie = login_token_cookie(request)
    response = page(request, "login.html.j2", login_token=token, next=_safe_next(next_))
    response.cookies.append(cookie)
    return response


@post("/login", opt=PUBLIC, name="console-sign-in")
async def sign_in(request: Request, data: Annotated[SignInForm, Form]) -> Response[Any]:
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or data.login_token != expected:
        return await _login_again(request, data, "the sign-in form expired: sign in again", 403)
    governance = governance_of(request)
    try:
        session = await in_thread(
            governance.people.sign_in,
            data.username.strip(),
            data.password,
            governance.settings.session_hours,
            client_address(request),
        )
    except TooManyAttemptsError as exc:
        locked = await _login_again(request, data, str(exc), 429)
        locked.headers["Retry-After"] = str(exc.retry_after)
        return locked
    except UnauthenticatedError as exc:
        return await _login_again(request, data, str(exc), 401)
    response = Redirect(path=_safe_next(data.next), status_code=303, headers=SECURITY_HEADERS)
    response.cookies.append(session_cookie(request, session.token, session.expires_at))
    return response


async def _login_again(request: Request, data: SignInForm, message: str, status: int) -> Template:
    token, cookie = login_token_cookie(request)
    response = page(
        request,
        "login.html.j2",
        status_code=status,
        login_token=token,
        next=_safe_next(data.next),
        username=data.username,
        error=message,
    )
    response.cookies.append(cookie)
    return response


@post("/logout", opt=SIGNED_IN, name="console-sign-out")
async def sign_out(request: Request) -> Response[Any]:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        await in_thread(governance_of(request).people.sign_out, secret)
    return signed_out(request, redirect(request, "/login", "You are signed out."))


PASSWORD_PAGE = "/account/password"


@dataclass
class PasswordForm:
    current_password: str
    new_password: str
    csrf_token: str = ""


@get(PASSWORD_PAGE, opt=SIGNED_IN, name="console-password")
async def password_page(request: Request) -> Template:
    return page(request, "account_password.html.j2", min_password=MIN_PASSWORD_LENGTH)


@post(PASSWORD_PAGE, opt=SIGNED_IN, name="console-change-password")
async def change_password(request: Request, data: Annotated[PasswordForm, Form]) -> Redirect:
    """The current password, counted and locked like a sign-in; this browser's session
    stays, the others end."""
    args = (
        principal_of(request).name,
        data.current_password,
        data.new_password,
        request.cookies.get(SESSION_COOKIE),
    )
    done = "Your password is changed; your sessions elsewhere are ended."
    return await act(
        request, PASSWORD_PAGE, governance_of(request).people.change_password, args, done
    )


# --- lists ----------------------------------------------------------------------------


@get("/", opt=permission("requests", "read"), name="console-queue")
async def queue(request: Request, page_: PageQuery = 1) -> Template:
    governance = governance_of(request)
    listing = await as_caller(
        request, governance.browse.queue, governance.workflow.policies.policies, Page(page_)
    )
    return page(request, "queue.html.j2", listing=listing)


@get("/requests", opt=permission("requests", "read"), name="console-requests")
async def requests(
    request: Request,
    state_filter: Annotated[str | None, Parameter(query="state")] = None,
    model: Annotated[str | None, Parameter(max_length=200)] = None,
    tier: str | None = None,
    date_from: Annotated[str | None, Parameter(query="from")] = None,
    date_to: Annotated[str | None, Parameter(query="to")] = None,
    page_: PageQuery = 1,
    size: PageSize = 25,
) -> Template:
    filters = RequestFilter(
        state=state_filter or None,
        model=(model or "").strip() or None,
        risk_tier=tier or None,
        submitted_from=_date("from", date_from),
        submitted_to=_date("to", date_to),
    )
    listing = await in_thread(governance_of(request).browse.requests, filters, Page(page_, size))
    return page(
        request,
        "requests.html.j2",
        listing=listing,
        filters=filters,
        states=[s.value for s in State],
        tiers=risk_tiers(governance_of(request).workflow.policies.policies),
    )


def _date(field: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(field, f"is {value!r}", "give a date as YYYY-MM-DD") from None


# --- one request ----------------------------------------------------------------------


@get("/requests/{request_id:str}", opt=permission("requests", "read"), name="console-request")
async def request_page(request: Request, request_id: str) -> Template:
    detail: RequestDetail = await in_thread(
        governance_of(request).browse.request_detail, request_id
    )
    checks = (
        await in_thread(
            lambda: [documents.check_view(r, detail.policy) for r in detail.manifest.results]  # type: ignore[union-attr]
        )
        if detail.manifest
        else []
    )
    return page(
        request,
        "request.html.j2",
        r=detail.request,
        policy=documents.policy_view(detail.policy),
        checks=checks,
        manifest=detail.manifest,
        events=detail.events,
        actions=actions_for(request, principal_of(request), detail),
        monitoring=await monitoring_section(request, detail),
    )


def actions_for(request: Request, principal: Principal, detail: RequestDetail) -> dict[str, Any]:
    """The actions this person may take on this request now: a button is shown only then
    (the server checks each again when it is used)."""
    governance = governance_of(request)
    access = governance.access

    def allowed(resource: str, action: str) -> bool:
        return access.allowed(principal.subjects, resource, action)

    r, policy = detail.request, detail.policy
    state = State(r.state)
    own = principal.name in (r.submitter, r.owner)
    signed = any(s.username == principal.name for s in r.signatures)
    approval_roles = sorted(principal.roles & set(policy.approvals.roles))
    waiver_role = policy.waivers.approver_role if policy.waivers.allowed else None
    sign_ok = allowed("requests", "sign") and not signed
    may_sign_here = allowed("requests", "sign") and (
        (state is State.AWAITING_APPROVAL and bool(approval_roles))
        or (state is State.WAIVER_REQUESTED and waiver_role in principal.roles)
    )
    self_barred = own and (policy.approvals.forbid_self_approval or state is State.WAIVER_REQUESTED)
    return {
        "why_not": _why_not(may_sign_here, signed, self_barred),
        "approve": sign_ok
        and state is State.AWAITING_APPROVAL
        and bool(approval_roles)
        and not (own and policy.approvals.forbid_self_approval),
        "approval_roles": approval_roles,
        "waive": sign_ok
        and state is State.WAIVER_REQUESTED
        and waiver_role in principal.roles
        and not own,
        "request_waiver": allowed("requests", "request_waiver")
        and state is State.BLOCKED
        and policy.waivers.allowed,
        "max_waiver_days": policy.waivers.max_days,
        "promote": allowed("requests", "promote") and state in (State.APPROVED, State.WAIVED),
        "revoke": allowed("requests", "revoke")
        and state in (State.APPROVED, State.WAIVED, State.PROMOTED),
        "report": allowed("reports", "read") and r.gate_decision_id is not None,
    }


def _why_not(may_sign_here: bool, signed: bool, self_barred: bool) -> str | None:
    """Why a person who signs such requests has no button on this one."""
    if not may_sign_here:
        return None
    if signed:
        return "You signed this request already."
    if self_barred:
        return "You submitted or own this model: segregation of duties keeps you from signing it."
    return None


@dataclass
class SignatureForm:
    meaning: str
    comment: str
    password: str
    csrf_token: str = ""
    role: str = ""


@dataclass
class WaiverForm:
    justification: str
    days: int
    csrf_token: str = ""


@dataclass
class RevokeForm:
    reason: str
    csrf_token: str = ""


@post(
    "/requests/{request_id:str}/sign",
    opt=permission("requests", "sign"),
    name="console-sign",
)
async def sign(request: Request, request_id: str, data: Annotated[SignatureForm, Form]) -> Redirect:
    words = {"approve": "approved", "reject": "rejected", "waive": "granted the waiver for"}
    return await _on_request(
        request,
        request_id,
        governance_of(request).workflow.sign,
        data.meaning,
        data.comment,
        data.password,
        data.role or None,
        done=f"You {words.get(data.meaning, 'signed')} it.",
    )


@post(
    "/requests/{request_id:str}/waiver",
    opt=permission("requests", "request_waiver"),
    name="console-request-waiver",
)
async def request_waiver(
    request: Request, request_id: str, data: Annotated[WaiverForm, Form]
) -> Redirect:
    change = governance_of(request).workflow.request_waiver
    args = (data.justification, data.days)
    return await _on_request(request, request_id, change, *args, done="Waiver requested.")


@post(
    "/requests/{request_id:str}/promote",
    opt=permission("requests", "promote"),
    name="console-promote",
)
async def promote(request: Request, request_id: str, data: Annotated[CsrfOnly, Form]) -> Redirect:
    change = governance_of(request).workflow.promote
    return await _on_request(request, request_id, change, done="Promoted.")


@post(
    "/requests/{request_id:str}/revoke",
    opt=permission("requests", "revoke"),
    name="console-revoke",
)
async def revoke(request: Request, request_id: str, data: Annotated[RevokeForm, Form]) -> Redirect:
    change = governance_of(request).workflow.revoke
    return await _on_request(
        request, request_id, change, data.reason, done="Revoked: it may not serve."
    )


async def _on_request(
    request: Request, request_id: str, change: Callable[..., object], *args: object, done: str
) -> Redirect:
    """Run one workflow change on the request as the signed-in person (`act`), then back to
    the request's page."""
    everything = (principal_of(request), request_id, *args)
    return await act(request, f"/requests/{request_id}", change, everything, done)


@get(
    "/requests/{request_id:str}/report.pdf",
    opt=permission("reports", "read"),
    name="console-report",
)
async def report(request: Request, request_id: str) -> Response[bytes]:
    issued = await in_thread(
        governance_of(request).reports.decision, principal_of(request).name, request_id
    )
    return pdf_response(issued)


HANDLERS = [
    login_page,
    sign_in,
    password_page,
    change_password,
    sign_out,
    queue,
    requests,
    request_page,
    sign,
    request_waiver,
    promote,
    revoke,
    report,
]
