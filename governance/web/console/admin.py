"""The admin pages: people and their roles, what each role may do, API tokens, and the
workers that run the service's tasks.

Each handler calls one function: of `People`, or (the workers page) `Governance.workers`.
A refusal (a taken user name, a weak password, an unknown role, a change that would lock
the admins out) comes back as a flash message that names the field and the fix, and nothing
is written. A new token's secret is shown once, in the answer to the form that made it:
never in a redirect, a cookie or a log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect, Template

from governance.auth.secrets import MIN_PASSWORD_LENGTH
from governance.domain.errors import InputError
from governance.domain.roles import HUMAN_ROLES, ROLES
from governance.services.people import People
from governance.web.console.base import (
    REFUSALS,
    CsrfOnly,
    Form,
    act,
    failure_message,
    page,
    redirect,
)
from governance.web.dependencies import as_caller, governance_of, in_thread, principal_of
from governance.web.guards import permission

USERS = "/admin/users"
TOKENS = "/admin/tokens"
WORKERS = "/admin/workers"

# What each role is for, in a sentence; the matrix on the roles page shows what casbin
# actually allows today (an admin may have added grants).
ROLE_PURPOSES = {
    "data_scientist": "Registers models, submits versions to the gate, asks for a waiver "
    "when one is blocked, and promotes what was approved.",
    "model_risk_officer": "Reviews the evidence and signs or rejects; revokes a version "
    "that may no longer serve; reads the audit trail.",
    "business_owner": "Signs for the business that a version may serve it.",
    "chief_risk_officer": "Signs, grants or denies waivers where a policy names this role, "
    "revokes, and reads the audit trail.",
    "auditor": "Reads everything, the audit trail, people and tokens included, and changes "
    "nothing.",
    "admin": "Manages people, their roles and API tokens; may also register, promote and revoke.",
    "ci": "A pipeline's token: registers model versions, submits them, and promotes approved ones.",
    "serving": "A serving system's token: asks whether it may load a model version.",
}


# A checkbox group arrives as a string when one box is ticked, a list when several are.
Checked = list[str] | str


def checked(value: Checked) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# --- people ---------------------------------------------------------------------------


@dataclass
class NewPersonForm:
    username: str
    full_name: str
    password: str
    roles: Checked = field(default_factory=list)
    csrf_token: str = ""


@dataclass
class PasswordResetForm:
    new_password: str
    csrf_token: str = ""


@dataclass
class RolesForm:
    roles: Checked = field(default_factory=list)
    csrf_token: str = ""


@get(USERS, opt=permission("users", "read"), name="console-admin-users")
async def users_page(request: Request) -> Template:
    users = await in_thread(governance_of(request).people.list_users)
    return page(
        request,
        "admin_users.html.j2",
        users=users,
        roles=HUMAN_ROLES,
        min_password=MIN_PASSWORD_LENGTH,
    )


@post(USERS, opt=permission("users", "manage"), name="console-admin-add-user")
async def add_user(request: Request, data: Annotated[NewPersonForm, Form]) -> Redirect:
    username = data.username.strip()
    args = (principal_of(request), username, data.full_name, data.password, checked(data.roles))
    done = f"{username} is added and can sign in with the initial password."
    return await act(request, USERS, governance_of(request).people.add_user, args, done)


@post(
    f"{USERS}/{{username:str}}/roles",
    opt=permission("users", "manage"),
    name="console-admin-set-roles",
)
async def set_roles(request: Request, username: str, data: Annotated[RolesForm, Form]) -> Redirect:
    roles = checked(data.roles)
    args = (principal_of(request), username, roles)
    done = f"The roles of {username} are now: {', '.join(sorted(set(roles))).replace('_', ' ')}."
    return await act(request, USERS, governance_of(request).people.set_roles, args, done)


def _person_change(
    action: str, change: Callable[[People], Callable[..., object]], *args: object, done: str
) -> HTTPRouteHandler:
    """The POST `/admin/users/<username>/<action>` whose form is the CSRF token alone: one
    `People` change to that person as the signed-in admin (`act`); `done` names them `{}`."""

    @post(
        f"{USERS}/{{username:str}}/{action}",
        opt=permission("users", "manage"),
        name=f"console-admin-{action}",
    )
    async def handler(request: Request, username: str, data: Annotated[CsrfOnly, Form]) -> Redirect:
        use = change(governance_of(request).people)
        everything = (principal_of(request), username, *args)
        return await act(request, USERS, use, everything, done.format(username))

    return handler


disable = _person_change(
    "disable",
    lambda people: people.set_disabled,
    True,
    done="{} is disabled and signed out everywhere.",
)
enable = _person_change(
    "enable", lambda people: people.set_disabled, False, done="{} is enabled and can sign in again."
)
unlock = _person_change(
    "unlock", lambda people: people.unlock, done="{} is unlocked and can sign in again."
)


@post(
    f"{USERS}/{{username:str}}/password",
    opt=permission("users", "manage"),
    name="console-admin-reset-password",
)
async def reset_password(
    request: Request, username: str, data: Annotated[PasswordResetForm, Form]
) -> Redirect:
    args = (principal_of(request), username, data.new_password)
    done = f"{username} has a new password (tell it to them privately); their sessions ended."
    return await act(request, USERS, governance_of(request).people.reset_password, args, done)


# --- roles ----------------------------------------------------------------------------


@get("/admin/roles", opt=permission("users", "read"), name="console-admin-roles")
async def roles_page(request: Request) -> Template:
    governance = governance_of(request)
    users = await in_thread(governance.people.list_users)
    return page(
        request,
        "admin_roles.html.j2",
        **role_matrix(governance.access.grants()),
        purposes=ROLE_PURPOSES,
        holders={role: [u for u in users if role in u.roles] for role in ROLES},
    )


def role_matrix(grants: list[list[str]]) -> dict[str, Any]:
    """casbin's `p` lines (role, resource, action) as a table: one row per permission, one
    column per role, the known roles first in their usual order."""
    lines = {(role, resource, action) for role, resource, action, *_ in grants}
    extra = sorted({role for role, _, _ in lines} - set(ROLES))
    return {
        "matrix_roles": [*ROLES, *extra],
        "permissions": sorted({(resource, action) for _, resource, action in lines}),
        "granted": lines,
    }


# --- tokens ---------------------------------------------------------------------------


@dataclass
class NewTokenForm:
    name: str
    roles: Checked = field(default_factory=list)
    days: str = ""
    owner: str = ""  # empty: the admin who creates it
    csrf_token: str = ""


@get(TOKENS, opt=permission("tokens", "read"), name="console-admin-tokens")
async def tokens_page(request: Request) -> Template:
    return await _tokens(request)


@post(TOKENS, opt=permission("tokens", "manage"), name="console-admin-create-token")
async def create_token(
    request: Request, data: Annotated[NewTokenForm, Form]
) -> Template | Redirect:
    """The secret is in this answer only (201, not cached): a redirect would have to carry
    it in the address or a cookie."""
    people = governance_of(request).people
    try:
        created = await as_caller(
            request,
            people.create_token,
            data.name,
            checked(data.roles),
            _days(data.days),
            data.owner.strip() or None,
        )
    except REFUSALS as exc:
        return redirect(request, TOKENS, failure_message(exc), kind="error")
    return await _tokens(request, status_code=201, created=created)


@post(
    f"{TOKENS}/{{token_id:str}}/revoke",
    opt=permission("tokens", "manage"),
    name="console-admin-revoke-token",
)
async def revoke_token(
    request: Request, token_id: str, data: Annotated[CsrfOnly, Form]
) -> Redirect:
    args = (principal_of(request), token_id)
    done = f"Token {token_id} is revoked: it is refused from now on."
    return await act(request, TOKENS, governance_of(request).people.revoke_token, args, done)


async def _tokens(request: Request, status_code: int = 200, **context: Any) -> Template:
    tokens = await in_thread(governance_of(request).people.list_tokens)
    return page(
        request,
        "admin_tokens.html.j2",
        status_code=status_code,
        tokens=tokens,
        roles=ROLES,
        now=datetime.now(UTC),
        **context,
    )


def _days(text: str) -> int | None:
    """Empty: the token never expires."""
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(
            "days", f"is {text!r}", "give a whole number of days, or leave it empty"
        ) from None


# --- workers --------------------------------------------------------------------------


@get(WORKERS, opt=permission("users", "manage"), name="console-admin-workers")
async def workers_page(request: Request) -> Template:
    """Admins only (`users: manage`, which no other role holds, not even the auditor's
    read-everything): what it shows is for whoever runs the service, and a failure's text
    can name hosts and paths."""
    view = await in_thread(governance_of(request).workers)
    return page(request, "admin_workers.html.j2", view=view)


HANDLERS = [
    users_page,
    add_user,
    set_roles,
    disable,
    enable,
    unlock,
    reset_password,
    roles_page,
    tokens_page,
    create_token,
    revoke_token,
    workers_page,
]
