"""People and machines: users, sessions, API tokens, and turning a bearer secret into the
principal behind it. Every change is one transaction with its audit event."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from governance.auth.access import (
    HUMAN_ROLES,
    ROLES,
    USER,
    AccessControl,
    role_name,
    role_subject,
    token_subject,
    user_subject,
)
from governance.auth.secrets import (
    DigestKey,
    hash_password,
    new_secret,
    new_token,
    password_matches,
    password_problem,
    token_id_of,
)
from governance.domain.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    UnauthenticatedError,
)
from governance.store.repository import append_audit, in_transaction
from governance.store.tables import ApiToken, CasbinRule, UserAccount, UserSession, utcnow

USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{1,63}$"
SESSION_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Principal:
    """Who is asking: a person (by session) or a machine (by API token). `person` is the
    user name of the person accountable: the person themself, or a token's owner.
    Segregation of duties compares people, never tokens."""

    name: str
    full_name: str
    kind: Literal["user", "token"]
    roles: frozenset[str]
    person: str | None = None

    @property
    def subjects(self) -> tuple[str, ...]:
        """What casbin is asked about: `user:NAME` (roles from its `g` lines, so a role
        change holds at once); a token as `token:ID` and as the `role:R` it was issued with
        (the token row is read at authentication, so a new token works at once in every
        process, before their enforcers load its `g` lines)."""
        if self.kind == "user":
            return (user_subject(self.name),)
        return (self.name, *sorted(role_subject(r) for r in self.roles))


SYSTEM = Principal("governance", "governance service", "user", frozenset({"admin"}))


class People:
    def __init__(self, engine: Engine, access: AccessControl, digest_key: DigestKey) -> None:
        self._engine = engine
        self._access = access
        self._digest = digest_key
        # Bearer secret digest → (principal, valid until). Checking a token is on the hot
        # admission path; entries live two seconds, so a revocation bites within that.
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_lock = threading.Lock()

    # --- users -------------------------------------------------------------------------

    def add_user(
        self, actor: Principal, username: str, full_name: str, password: str, roles: list[str]
    ) -> dict[str, Any]:
        _check_username(username)
        if not full_name.strip():
            raise InputError("full_name", "is empty", "give the name a signature will show")
        problem = password_problem(password)
        if problem:
            raise InputError("password", problem, "choose a longer passphrase")
        _check_roles(roles, HUMAN_ROLES, "a person")

        def work(session: Session) -> dict[str, Any]:
            if session.exec(select(UserAccount).filter_by(username=username)).first():
                raise ConflictError(
                    f"username: {username} exists already. Fix: choose another user name, "
                    "or enable the person who has it"
                )
            session.add(
                UserAccount(
                    username=username,
                    full_name=full_name.strip(),
                    password_hash=hash_password(password),
                )
            )
            # the roles are casbin lines in the same transaction: no person without roles
            for role in sorted(set(roles)):
                session.add(CasbinRule(ptype="g", v0=user_subject(username), v1=role_subject(role)))
            append_audit(
                session,
                actor=actor.name,
                action="user.added",
                subject=f"user:{username}",
                payload={"full_name": full_name.strip(), "roles": sorted(roles)},
            )
            return {"username": username, "full_name": full_name.strip(), "roles": sorted(roles)}

        created = in_transaction(self._engine, work)
        self._access.refresh()
        return created

    def ensure_user(self, username: str, full_name: str, password: str, roles: list[str]) -> bool:
        """Add the user unless it exists (for `governance init`); True when added."""
        with Session(self._engine) as session:
            if session.exec(select(UserAccount).filter_by(username=username)).first():
                return False
        self.add_user(SYSTEM, username, full_name, password, roles)
        return True

    def set_disabled(self, actor: Principal, username: str, disabled: bool) -> None:
        if disabled and actor.name == username:
            raise InputError(
                f"user {username}",
                "you may not disable yourself: it would sign you out for good",
                "ask another admin to do it",
            )

        def work(session: Session) -> None:
            user = _lock_people(session).get(username)
            if user is None:
                raise NotFoundError(f"user {username}", "list the users to find the name")
            if disabled and _active_admins(session) == {username}:
                raise _last_admin(f"user {username}", username, "disable")
            user.disabled = disabled
            session.add(user)
            if disabled:  # a disabled person is signed out everywhere
                for row in session.exec(select(UserSession).filter_by(username=username)):
                    session.delete(row)
            append_audit(
                session,
                actor=actor.name,
                action="user.disabled" if disabled else "user.enabled",
                subject=f"user:{username}",
                payload={},
            )

        in_transaction(self._engine, work)
        self._forget_all()

    def set_roles(self, actor: Principal, username: str, roles: list[str]) -> dict[str, Any]:
        """Replace a person's roles in one transaction with its audit event. Nobody may take
        away their own admin role, and the last active admin keeps it: either would leave
        nobody to manage people."""
        _check_roles(roles, HUMAN_ROLES, "a person")
        wanted = sorted(set(roles))

        def work(session: Session) -> list[str]:
            user = _lock_people(session).get(username)
            if user is None:
                raise NotFoundError(f"user {username}", "list the users to find the name")
            subject = user_subject(username)
            lines = session.exec(select(CasbinRule).filter_by(ptype="g", v0=subject)).all()
            old = sorted({role_name(line.v1) for line in lines if line.v1})
            if old == wanted:
                return old
            added = set(wanted) - set(old)
            if "admin" not in actor.roles and not added <= actor.roles:
                raise ForbiddenError(
                    f"{actor.name} holds {sorted(actor.roles)} and may not give "
                    f"{sorted(added - actor.roles)}"
                )
            if "admin" in old and "admin" not in wanted:
                if actor.name == username:
                    raise InputError(
                        "roles",
                        "you may not take away your own admin role",
                        "keep admin ticked, or ask another admin to change your roles",
                    )
                if _active_admins(session) == {username}:
                    raise _last_admin("roles", username, "take admin from")
            for line in lines:
                session.delete(line)
            for role in wanted:
                session.add(CasbinRule(ptype="g", v0=subject, v1=role_subject(role)))
            append_audit(
                session,
                actor=actor.name,
                action="user.roles_changed",
                subject=f"user:{username}",
                payload={"old": old, "new": wanted},
            )
            return old

        old = in_transaction(self._engine, work)
        if old != wanted:
            self._access.refresh()
            self._forget_all()  # cached principals carry the old roles
        return {"username": username, "roles": wanted, "old_roles": old, "changed": old != wanted}

    def list_users(self) -> list[dict[str, Any]]:
        with Session(self._engine) as session:
            users = session.exec(select(UserAccount).order_by(col(UserAccount.username))).all()
        return [
            {
                "username": u.username,
                "full_name": u.full_name,
                "roles": self._access.roles_of(u.username),
                "disabled": u.disabled,
                "created_at": u.created_at,
            }
            for u in users
        ]

    def verify_password(self, username: str, password: str) -> UserAccount:
        """The active user with this password, else UnauthenticatedError. Used to sign in and
        to re-authenticate at the moment of signing."""
        with Session(self._engine) as session:
            user = session.exec(select(UserAccount).filter_by(username=username)).first()
        if user is None or user.disabled or not password_matches(user.password_hash, password):
            raise UnauthenticatedError("wrong user name or password, or the user is disabled")
        return user

    # --- sessions ----------------------------------------------------------------------

    def sign_in(self, username: str, password: str, hours: int) -> dict[str, Any]:
        user = self.verify_password(username, password)
        secret, csrf = new_secret(), new_secret()
        expires = utcnow() + timedelta(hours=hours)

        def work(session: Session) -> None:
            session.add(
                UserSession(
                    digest=self._digest.digest(secret),
                    username=user.username,
                    csrf_token=csrf,
                    expires_at=expires,
                )
            )
            append_audit(
                session,
                actor=user.username,
                action="session.started",
                subject=f"user:{user.username}",
                payload={"expires_at": expires.isoformat()},
            )

        in_transaction(self._engine, work)
        return {"token": secret, "csrf_token": csrf, "expires_at": expires}

    def sign_out(self, secret: str) -> None:
        digest = self._digest.digest(secret)

        def work(session: Session) -> None:
            row = session.get(UserSession, digest)
            if row is not None:
                session.delete(row)
                append_audit(
                    session,
                    actor=row.username,
                    action="session.ended",
                    subject=f"user:{row.username}",
                    payload={},
                )

        in_transaction(self._engine, work)
        self._forget(digest)

    # --- tokens ------------------------------------------------------------------------

    def create_token(
        self,
        actor: Principal,
        name: str,
        roles: list[str],
        days: int | None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """Issue a token with its accountable person: `owner` if named, else the person who
        creates it (a token's owner when a token creates one); the service itself (the CLI)
        names the first active admin. What the token does counts as that person's for
        segregation of duties."""
        if not name.strip():
            raise InputError("name", "is empty", "name the system that will use the token")
        _check_roles(roles, ROLES, "a token")
        if "admin" not in actor.roles and not set(roles) <= actor.roles:
            raise ForbiddenError(
                f"{actor.name} holds {sorted(actor.roles)} and may not issue a token with "
                f"{sorted(set(roles) - actor.roles)}"
            )
        if days is not None and days < 1:
            raise InputError("days", f"is {days}", "give 1 or more, or leave it out")
        token_id, secret = new_token()
        expires = utcnow() + timedelta(days=days) if days else None

        def work(session: Session) -> str:
            person = _accountable_person(session, owner or actor.person)
            session.add(
                ApiToken(
                    id=token_id,
                    name=name.strip(),
                    owner=person,
                    roles=sorted(roles),
                    digest=self._digest.digest(secret),
                    expires_at=expires,
                )
            )
            for role in sorted(set(roles)):
                session.add(
                    CasbinRule(ptype="g", v0=token_subject(token_id), v1=role_subject(role))
                )
            append_audit(
                session,
                actor=actor.name,
                action="token.created",
                subject=f"token:{token_id}",
                payload={
                    "name": name.strip(),
                    "owner": person,
                    "roles": sorted(roles),
                    "expires_at": expires and expires.isoformat(),
                },
            )
            return person

        person = in_transaction(self._engine, work)
        self._access.refresh()
        return {
            "id": token_id,
            "token": secret,
            "name": name.strip(),
            "owner": person,
            "roles": sorted(roles),
            "expires_at": expires,
        }

    def revoke_token(self, actor: Principal, token_id: str) -> None:
        def work(session: Session) -> None:
            token = session.exec(select(ApiToken).filter_by(id=token_id).with_for_update()).first()
            if token is None:
                raise NotFoundError(f"token {token_id}", "list the tokens to find its id")
            if token.revoked_at is not None:
                raise ConflictError(f"token {token_id} was revoked already")
            token.revoked_at = utcnow()
            session.add(token)
            subject = token_subject(token_id)  # its grants go with it
            for line in session.exec(select(CasbinRule).filter_by(ptype="g", v0=subject)).all():
                session.delete(line)
            append_audit(
                session,
                actor=actor.name,
                action="token.revoked",
                subject=f"token:{token_id}",
                payload={"name": token.name},
            )

        in_transaction(self._engine, work)
        self._access.refresh()
        self._forget_all()

    def list_tokens(self) -> list[dict[str, Any]]:
        with Session(self._engine) as session:
            tokens = session.exec(select(ApiToken).order_by(col(ApiToken.created_at))).all()
        return [t.model_dump(exclude={"digest"}) for t in tokens]

    # --- authentication ----------------------------------------------------------------

    def cached_principal(self, secret: str) -> Principal | None:
        """The principal if it was looked up in the last seconds: no database round trip."""
        cached = self._cache.get(self._digest.digest(secret))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    def authenticate(self, secret: str) -> Principal:
        """The principal behind a bearer secret (an API token or a session)."""
        digest = self._digest.digest(secret)
        now = time.monotonic()
        principal = (
            self._token_principal(digest)
            if token_id_of(secret)
            else self._session_principal(digest)
        )
        with self._cache_lock:
            self._cache[digest] = (principal, now + SESSION_CACHE_SECONDS)
        return principal

    def csrf_token(self, secret: str) -> str | None:
        with Session(self._engine) as session:
            row = session.get(UserSession, self._digest.digest(secret))
        return row.csrf_token if row else None

    def _token_principal(self, digest: str) -> Principal:
        with Session(self._engine) as session:
            token = session.exec(select(ApiToken).filter_by(digest=digest)).first()
        now = utcnow()
        if token is None or token.revoked_at is not None:
            raise UnauthenticatedError("unknown or revoked API token")
        if token.expires_at is not None and token.expires_at <= now:
            raise UnauthenticatedError(f"API token {token.id} expired at {token.expires_at}")
        return Principal(
            token_subject(token.id), token.name, "token", frozenset(token.roles), token.owner
        )

    def _session_principal(self, digest: str) -> Principal:
        with Session(self._engine) as session:
            row = session.get(UserSession, digest)
            user = (
                session.exec(select(UserAccount).filter_by(username=row.username)).first()
                if row
                else None
            )
        if row is None or user is None or user.disabled:
            raise UnauthenticatedError("unknown session or disabled user: sign in again")
        if row.expires_at <= utcnow():
            raise UnauthenticatedError("the session expired: sign in again")
        roles = frozenset(self._access.roles_of(user.username))
        return Principal(user.username, user.full_name, "user", roles, user.username)

    def _forget(self, digest: str) -> None:
        with self._cache_lock:
            self._cache.pop(digest, None)

    def _forget_all(self) -> None:
        with self._cache_lock:
            self._cache.clear()


def _lock_people(session: Session) -> dict[str, UserAccount]:
    """Every person's row, locked (in name order, so two changes never deadlock): changes to
    who is an active admin then run one after another, and the last-admin check holds."""
    rows = session.exec(
        select(UserAccount).order_by(col(UserAccount.username)).with_for_update()
    ).all()
    return {row.username: row for row in rows}


def _active_admins(session: Session) -> set[str]:
    """The user names of the enabled people holding admin (`g, user:NAME, role:admin`)."""
    holders = session.exec(
        select(CasbinRule.v0).where(CasbinRule.ptype == "g", CasbinRule.v1 == role_subject("admin"))
    ).all()
    names = {h.removeprefix(USER) for h in holders if h and h.startswith(USER)}
    enabled = select(UserAccount.username).where(col(UserAccount.disabled).is_(False))
    return names & set(session.exec(enabled).all())


def _accountable_person(session: Session, wanted: str | None) -> str:
    """The person a new token answers to: `wanted` if it is an enabled person, else (no
    person asked for: the service itself issues it) the first active admin (the earliest
    added; migration 0006 gives older tokens the same)."""
    if wanted is None:
        first = session.exec(
            select(UserAccount.username)
            .where(col(UserAccount.username).in_(_active_admins(session)))
            .order_by(col(UserAccount.id))
        ).first()
        if first is None:
            raise InputError("owner", "is not given", "name the person accountable for it")
        return first
    user = session.exec(select(UserAccount).filter_by(username=wanted)).first()
    if user is None or user.disabled:
        raise InputError(
            "owner",
            f"{wanted!r} is not an active person",
            "name the user name of the person accountable for what the token does",
        )
    return user.username


def _last_admin(subject: str, username: str, verb: str) -> ConflictError:
    return ConflictError(
        f"{subject}: {username} is the last active admin; to {verb} them would leave nobody to "
        "manage people. Fix: give another person the admin role first"
    )


def _check_username(username: str) -> None:
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise InputError(
            "username",
            f"{username!r} is not a valid user name",
            "use 2-64 lower-case letters, digits, '.', '_' or '-', starting with a letter",
        )


def _check_roles(roles: list[str], allowed: tuple[str, ...], who: str) -> None:
    if not roles:
        raise InputError("roles", "is empty", f"give one or more of {', '.join(allowed)}")
    unknown = sorted(set(roles) - set(allowed))
    if unknown:
        raise InputError(
            "roles",
            f"{', '.join(unknown)} cannot be given to {who}",
            f"choose from {', '.join(allowed)}",
        )
