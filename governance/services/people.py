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
    MIN_PASSWORD_LENGTH,
    DigestKey,
    hash_password,
    new_secret,
    new_token,
    password_matches,
    password_problem,
    token_id_of,
)
from governance.auth.throttle import LOCK_AFTER, LOCK_SECONDS, SignInThrottle
from governance.domain.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    TooManyAttemptsError,
    UnauthenticatedError,
)
from governance.store.repository import append_audit, in_transaction
from governance.store.tables import ApiToken, CasbinRule, UserAccount, UserSession, utcnow

USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{1,63}$"
SESSION_CACHE_SECONDS = 2.0
# The answers to a failed sign-in: the same whether the name exists, is disabled or locked.
WRONG_PASSWORD = "wrong user name or password, or the user is disabled"
LOCKED = (
    f"too many failed sign-ins in a row: the account is locked for {LOCK_SECONDS // 60} "
    "minutes, even with the right password. Fix: try again later, or ask an admin to unlock it"
)
SLOW_DOWN = "too many failed sign-ins from this address. Fix: wait before trying again"
# What a sign-in attempt was for, on its audit events; the first is made by nobody known.
Purpose = Literal["sign-in", "signature", "password change"]


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
        # The in-process waits (per client address, per unknown name); see throttle.py.
        self.throttle = SignInThrottle()

    # --- users -------------------------------------------------------------------------

    def add_user(
        self, actor: Principal, username: str, full_name: str, password: str, roles: list[str]
    ) -> dict[str, Any]:
        _check_username(username)
        if not full_name.strip():
            raise InputError("full_name", "is empty", "give the name a signature will show")
        check_password(password)
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
                "locked_until": _locked_until(u),
            }
            for u in users
        ]

    def verify_password(
        self,
        username: str,
        password: str,
        client: str | None = None,
        purpose: Purpose = "signature",
    ) -> UserAccount:
        """The active user with this password, else UnauthenticatedError; while the account
        or the client address must wait, TooManyAttemptsError, without looking at the
        password. Used to sign in, to re-authenticate at the moment of signing and to change
        a password. An unknown name costs the same work and locks the same way as a real
        one. Each failure is on the audit trail, in the transaction that counts it."""
        wait = self.throttle.address_wait(client)
        if wait:
            raise TooManyAttemptsError(SLOW_DOWN, wait)
        name = username[:64]  # what is recorded and counted of a name that cannot exist
        with Session(self._engine) as session:
            user = session.exec(select(UserAccount).filter_by(username=username)).first()
        locked = self.throttle.unknown_name_wait(name) if user is None else _locked_for(user)
        if locked:
            self._failed(name, client, purpose, "locked", known=user is not None)
            raise TooManyAttemptsError(LOCKED, locked)
        matches = password_matches(user.password_hash if user else None, password)
        if user is not None and matches and not user.disabled:
            if user.failed_sign_ins:
                self._clear_failures(user.username)
            return user
        reason = "unknown user" if user is None else "disabled" if matches else "wrong password"
        if self._failed(name, client, purpose, reason, known=user is not None):
            raise TooManyAttemptsError(LOCKED, LOCK_SECONDS)
        raise UnauthenticatedError(WRONG_PASSWORD)

    def _failed(
        self, name: str, client: str | None, purpose: Purpose, reason: str, known: bool
    ) -> bool:
        """Count and record one failure; True when it locked the account."""
        if client is not None:
            self.throttle.addresses.add(client)
        counting = reason != "locked"  # a refusal while locked does not extend the lock
        unknown_count = self.throttle.unknown_names.add(name) if counting and not known else 0
        actor = "anonymous" if purpose == "sign-in" else name
        subject = f"user:{name}"

        def work(session: Session) -> bool:
            now = utcnow()
            count, until = unknown_count, now + timedelta(seconds=LOCK_SECONDS)
            locking = counting and count == LOCK_AFTER
            user = session.exec(
                select(UserAccount).filter_by(username=name).with_for_update()
            ).first()
            if counting and user is not None:
                if user.locked_until is not None and user.locked_until <= now:
                    user.failed_sign_ins = 0  # the lock expired: count afresh
                user.failed_sign_ins += 1
                count = user.failed_sign_ins
                locking = count >= LOCK_AFTER and _locked_for(user) == 0
                if locking:
                    user.locked_until = until
                session.add(user)
            payload = {"username": name, "client": client, "purpose": purpose, "reason": reason}
            append_audit(
                session, actor=actor, action="auth.sign_in_failed", subject=subject, payload=payload
            )
            if locking:
                locked = {"failures": count, "until": until.isoformat()}
                append_audit(
                    session, actor=actor, action="auth.locked", subject=subject, payload=locked
                )
            return locking

        return in_transaction(self._engine, work)

    def _clear_failures(self, username: str) -> None:
        def work(session: Session) -> None:
            user = session.exec(
                select(UserAccount).filter_by(username=username).with_for_update()
            ).one()
            user.failed_sign_ins, user.locked_until = 0, None
            session.add(user)

        in_transaction(self._engine, work)

    def unlock(self, actor: Principal, username: str) -> dict[str, Any]:
        """End a lockout and its count of failures now, on the audit trail."""

        def work(session: Session) -> bool:
            user = session.exec(
                select(UserAccount).filter_by(username=username).with_for_update()
            ).first()
            if user is None:
                raise NotFoundError(f"user {username}", "list the users to find the name")
            was_locked = _locked_for(user) > 0
            if not was_locked and not user.failed_sign_ins:
                return False
            payload = {"failures": user.failed_sign_ins, "was_locked": was_locked}
            user.failed_sign_ins, user.locked_until = 0, None
            session.add(user)
            append_audit(
                session,
                actor=actor.name,
                action="auth.unlocked",
                subject=f"user:{username}",
                payload=payload,
            )
            return was_locked

        return {"username": username, "unlocked": in_transaction(self._engine, work)}

    def change_password(
        self, username: str, current: str, new: str, keep_secret: str | None
    ) -> dict[str, Any]:
        """A person's own change: the current password first (counted and locked like a
        sign-in), then the new one; every session but `keep_secret`'s ends."""
        check_password(new)
        if new == current:
            raise InputError("password", "is the current one", "choose a new password")
        self.verify_password(username, current, purpose="password change")
        keep = self._digest.digest(keep_secret) if keep_secret else None
        ended, _ = self._set_password(username, username, new, keep, "user.password_changed")
        return {"username": username, "sessions_ended": ended}

    def reset_password(self, actor: Principal, username: str, new: str) -> dict[str, Any]:
        """An admin sets someone's password: their sessions end and a lockout is lifted."""
        check_password(new)
        if actor.name == username:
            raise InputError(
                f"user {username}",
                "is you: a reset does not ask for the current password",
                "change your own password with your current one",
            )
        ended, unlocked = self._set_password(actor.name, username, new, None, "user.password_reset")
        return {"username": username, "sessions_ended": ended, "unlocked": unlocked}

    def _set_password(
        self, actor: str, username: str, new: str, keep: str | None, action: str
    ) -> tuple[int, bool]:
        """(sessions ended, whether a lock was lifted), in one transaction with the event;
        the event says neither password."""
        hashed = hash_password(new)

        def work(session: Session) -> tuple[int, bool]:
            user = session.exec(
                select(UserAccount).filter_by(username=username).with_for_update()
            ).first()
            if user is None:
                raise NotFoundError(f"user {username}", "list the users to find the name")
            unlocked = _locked_for(user) > 0
            user.password_hash, user.failed_sign_ins, user.locked_until = hashed, 0, None
            session.add(user)
            ended = 0
            for row in session.exec(select(UserSession).filter_by(username=username)):
                if row.digest != keep:
                    session.delete(row)
                    ended += 1
            payload: dict[str, Any] = {"sessions_ended": ended}
            if action == "user.password_reset":
                payload["unlocked"] = unlocked
            append_audit(
                session, actor=actor, action=action, subject=f"user:{username}", payload=payload
            )
            return ended, unlocked

        done = in_transaction(self._engine, work)
        self._forget_all()  # cached principals of the ended sessions
        return done

    # --- sessions ----------------------------------------------------------------------

    def sign_in(
        self, username: str, password: str, hours: int, client: str | None = None
    ) -> dict[str, Any]:
        """A new session for the person with this password; `client` is the address the
        attempt came from, for the audit trail and the per-address wait."""
        user = self.verify_password(username, password, client, "sign-in")
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


def check_password(password: str) -> None:
    """Refuse a password the policy does not allow, naming the field and the fix."""
    problem = password_problem(password)
    if problem:
        raise InputError(
            "password",
            problem,
            f"choose a passphrase of {MIN_PASSWORD_LENGTH} or more characters, such as "
            "several unrelated words, that is not a common password",
        )


def _locked_for(user: UserAccount) -> float:
    """Seconds the account stays locked; 0 when it is not."""
    if user.locked_until is None:
        return 0.0
    return max(0.0, (user.locked_until - utcnow()).total_seconds())


def _locked_until(user: UserAccount) -> Any:
    return user.locked_until if _locked_for(user) else None


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
