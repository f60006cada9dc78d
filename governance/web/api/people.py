"""People and their credentials: signing in and out, who am I and my password, the
accounts admins manage, and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request

from governance.web.api.bodies import Camel, CamelResponse, Response
from governance.web.api.operations import delete, get, post
from governance.web.auth import bearer_secret
from governance.web.dependencies import (
    as_caller,
    client_address,
    governance_of,
    in_thread,
    principal_of,
)
from governance.web.guards import PERSON, PUBLIC, SIGNED_IN, permission


class SignIn(Camel):
    username: str
    password: str


class PasswordChange(Camel):
    current_password: str
    new_password: str


class NewUser(Camel):
    username: str
    full_name: str
    password: str
    roles: list[str]


class PasswordReset(Camel):
    new_password: str


class NewToken(Camel):
    name: str
    roles: list[str]
    days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    # The person accountable for what the token does (default: whoever creates it).
    owner: str | None = None


# The answers. Those about accounts, sessions and tokens are snake_case on the wire (they
# were before the API took camelCase); `Me` is camelCase.


class Session(Response, frozen=True):
    """A new session: the bearer secret and CSRF token, shown in this answer only."""

    token: str
    csrf_token: str
    expires_at: datetime


class Me(CamelResponse, frozen=True):
    """The caller: `person` is who is accountable (themself, or a token's owner)."""

    name: str
    full_name: str
    kind: Literal["user", "token"]
    roles: list[str]
    person: str | None


class AddedUser(Response, frozen=True):
    username: str
    full_name: str
    roles: list[str]


class User(Response, frozen=True):
    """A person with an account; `locked_until` is null unless they are locked out now."""

    username: str
    full_name: str
    roles: list[str]
    disabled: bool
    created_at: datetime
    locked_until: datetime | None


class Disabled(Response, frozen=True):
    username: str
    disabled: bool


class Unlocked(Response, frozen=True):
    """`unlocked` is false when the account was not locked (its failure count is cleared)."""

    username: str
    unlocked: bool


class PasswordChanged(Response, frozen=True):
    username: str
    sessions_ended: int


class PasswordWasReset(Response, frozen=True):
    username: str
    sessions_ended: int
    unlocked: bool


class CreatedToken(Response, frozen=True):
    """A token just issued; `token` is its secret, in this answer only."""

    id: str
    token: str
    name: str
    owner: str
    roles: list[str]
    expires_at: datetime | None


class Token(Response, frozen=True):
    """A token as it is listed: never its secret nor its digest."""

    id: str
    name: str
    owner: str
    roles: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class SessionController(Controller):
    """Bearer sessions: a person's password exchanged for a session token, and its end."""

    path = "/sessions"
    tags = ("people",)

    @post("/", opt=PUBLIC, security=[], status_code=201, summary="Sign in")
    async def sign_in(self, request: Request, data: SignIn) -> Session:
        governance = governance_of(request)
        started = await in_thread(
            governance.people.sign_in,
            data.username,
            data.password,
            governance.settings.session_hours,
            client_address(request),
        )
        return Session.from_record(started)

    @delete("/current", opt=SIGNED_IN, summary="Sign out")
    async def sign_out(self, request: Request) -> None:
        secret = bearer_secret(request)
        if secret:
            await in_thread(governance_of(request).people.sign_out, secret)


class MeController(Controller):
    """The caller: who they are, and a person's own password."""

    path = "/me"
    tags = ("people",)

    @post(
        "/password",
        opt=PERSON,
        status_code=200,
        summary="Change my password; my other sessions end",
    )
    async def change_password(self, request: Request, data: PasswordChange) -> PasswordChanged:
        changed = await in_thread(
            governance_of(request).people.change_password,
            principal_of(request).name,
            data.current_password,
            data.new_password,
            bearer_secret(request),
        )
        return PasswordChanged.from_record(changed)

    @get("/", opt=SIGNED_IN, summary="Who am I")
    async def me(self, request: Request) -> Me:
        principal = principal_of(request)
        return Me(
            name=principal.name,
            full_name=principal.full_name,
            kind=principal.kind,
            roles=sorted(principal.roles),
            person=principal.person,
        )


class UserController(Controller):
    """The people with an account, which admins add, disable, unlock and reset."""

    path = "/users"
    tags = ("people",)

    @get("/", opt=permission("users", "read"))
    async def list_users(self, request: Request) -> list[User]:
        return User.from_records(await in_thread(governance_of(request).people.list_users))

    @post("/", opt=permission("users", "manage"), status_code=201)
    async def add_user(self, request: Request, data: NewUser) -> AddedUser:
        added = await as_caller(
            request,
            governance_of(request).people.add_user,
            data.username,
            data.full_name,
            data.password,
            data.roles,
        )
        return AddedUser.from_record(added)

    @post("/{username:str}/disable", opt=permission("users", "manage"), status_code=200)
    async def disable_user(self, request: Request, username: str) -> Disabled:
        await as_caller(request, governance_of(request).people.set_disabled, username, True)
        return Disabled(username=username, disabled=True)

    @post(
        "/{username:str}/unlock",
        opt=permission("users", "manage"),
        status_code=200,
        summary="End a sign-in lockout now",
    )
    async def unlock_user(self, request: Request, username: str) -> Unlocked:
        done = await as_caller(request, governance_of(request).people.unlock, username)
        return Unlocked.from_record(done)

    @post(
        "/{username:str}/password",
        opt=permission("users", "manage"),
        status_code=200,
        summary="Reset a person's password; their sessions end and a lockout is lifted",
    )
    async def reset_password(
        self, request: Request, username: str, data: PasswordReset
    ) -> PasswordWasReset:
        reset = await as_caller(
            request, governance_of(request).people.reset_password, username, data.new_password
        )
        return PasswordWasReset.from_record(reset)


class TokenController(Controller):
    """API tokens: issued with roles and an accountable owner, listed, revoked."""

    path = "/tokens"
    tags = ("people",)

    @get("/", opt=permission("tokens", "read"))
    async def list_tokens(self, request: Request) -> list[Token]:
        return Token.from_records(await in_thread(governance_of(request).people.list_tokens))

    @post(
        "/",
        opt=permission("tokens", "manage"),
        status_code=201,
        summary="Issue an API token; the secret is in this response only",
    )
    async def create_token(self, request: Request, data: NewToken) -> CreatedToken:
        created = await as_caller(
            request,
            governance_of(request).people.create_token,
            data.name,
            data.roles,
            data.days,
            data.owner,
        )
        return CreatedToken.from_record(created)

    @delete("/{token_id:str}", opt=permission("tokens", "manage"))
    async def revoke_token(self, request: Request, token_id: str) -> None:
        await as_caller(request, governance_of(request).people.revoke_token, token_id)
