"""People and machines: users, sessions, API tokens, and turning a bearer secret into the
principal behind it. Every change is one transaction with its audit event."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from governance.auth.secrets import (
    MIN_PASSWORD_LENGTH,
    DigestKey,
    Passwords,
    new_secret,
    new_token,
    password_problem,
    token_id_of,
)
from governance.auth.throttle import LOCK_AFTER, LOCK_SECONDS, SignInThrottle
from governance.domain.copying import copied
from governance.domain.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    TooManyAttemptsError,
    UnauthenticatedError,
)
from governance.domain.records import Account, IssuedToken, SignedInSession
from governance.domain.roles import (
    HUMAN_ROLES,
    ROLES,
    USER,
    role_name,
    role_subject,
    token_subject,
    user_subject,
)
from governance.services.ports import AccessRules, UnitOfWork, UnitOfWorkFactory
from governance.services.revocation import to_revoke
from governance.services.unit_of_work import run_in_unit_of_work

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


# What the People functions answer: records, not wire formats; the API and the console
# each present them in their own way (web/api/people.py has the response schemas).


@dataclass(frozen=True)
class AddedUser:
    """A person just added, with the roles they were given (sorted)."""

    username: str
    full_name: str
    roles: list[str]


@dataclass(frozen=True)
class ListedUser:
    """A person as admins see them: roles, whether disabled, and until when a lockout lasts
    (None when they are not locked now)."""

    username: str
    full_name: str
    roles: list[str]
    disabled: bool
    created_at: datetime
    locked_until: datetime | None


@dataclass(frozen=True)
class Unlocked:
    """The end of a lockout: `unlocked` is False when the account was not locked."""

    username: str
    unlocked: bool


@dataclass(frozen=True)
class PasswordChanged:
    """A person's own password change, with the number of their other sessions it ended."""

    username: str
    sessions_ended: int


@dataclass(frozen=True)
class PasswordReset:
    """An admin's reset: the sessions it ended, and whether it lifted a lockout."""

    username: str
    sessions_ended: int
    unlocked: bool


@dataclass(frozen=True)
class StartedSession:
    """A new session: its bearer secret and CSRF token (shown once, never stored) and its
    end."""

    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class CreatedToken:
    """A token just issued, with its secret: the only time the secret is seen."""

    id: str
    token: str
    name: str
    owner: str
    roles: list[str]
    expires_at: datetime | None


@dataclass(frozen=True)
class ListedToken:
    """A token as it is listed: everything but the digest of its secret."""

    id: str
    name: str
    owner: str
    roles: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class People:
    def __init__(
        self,
        units: UnitOfWorkFactory,
        access: AccessRules,
        digest_key: DigestKey,
        passwords: Passwords | None = None,
    ) -> None:
        self._units = units
        self._access = access
        self._digest = digest_key
        self._passwords = passwords or Passwords()
        self._evened_out = False  # whether the passwords were told the stored hashes
        # Bearer secret digest → (principal, valid until). Checking a token is on the hot
        # admission path; entries live two seconds, so a revocation bites within that.
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_lock = threading.Lock()
        # The in-process waits (per client address, per unknown name); see throttle.py.
        self.throttle = SignInThrottle()

    # --- users -------------------------------------------------------------------------

    def add_user(
        self, actor: Principal, username: str, full_name: str, password: str, roles: list[str]
    ) -> AddedUser:
        _check_username(username)
        if not full_name.strip():
            raise InputError("full_name", "is empty", "give the name a signature will show")
        check_password(password)
        _check_roles(roles, HUMAN_ROLES, "a person")

        password_hash = self._passwords.hash(password)

        def work(uow: UnitOfWork) -> AddedUser:
            if uow.accounts.get(username):
                raise ConflictError(
                    f"username: {username} exists already. Fix: choose another user name, "
                    "or enable the person who has it"
                )
            uow.accounts.add(
                username=username, full_name=full_name.strip(), password_hash=password_hash
            )
            # the roles are casbin lines in the same transaction: no person without roles
            _grant(uow, user_subject(username), roles)
            uow.audit.append(
                actor=actor.name,
                action="user.added",
                subject=f"user:{username}",
                payload={"full_name": full_name.strip(), "roles": sorted(roles)},
            )
            return AddedUser(username, full_name.strip(), sorted(roles))

        created = run_in_unit_of_work(self._units, work)
        self._access.refresh()
        return created

    def ensure_user(self, username: str, full_name: str, password: str, roles: list[str]) -> bool:
        """Add the user unless it exists (for `governance init`); True when added."""
        with self._units(read_only=True) as uow:
            if uow.accounts.get(username):
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

        def work(uow: UnitOfWork) -> None:
            people = uow.accounts.lock_all()
            user = people.get(username)
            if user is None:
                raise NotFoundError(f"user {username}", "list the users to find the name")
            if disabled and _active_admins(uow, people.values()) == {username}:
                raise _last_admin(f"user {username}", username, "disable")
            uow.accounts.save(replace(user, disabled=disabled))
            if disabled:  # a disabled person is signed out everywhere
                uow.sessions.end_all(username)
            uow.audit.append(
                actor=actor.name,
                action="user.disabled" if disabled else "user.enabled",
                subject=f"user:{username}",
                payload={},
            )

        run_in_unit_of_work(self._units, work)
        self._forget_all()

    def set_roles(self, actor: Principal, username: str, roles: list[str]) -> dict[str, Any]:
        """Replace a person's roles in one transaction with its audit event. Nobody may take
        away their own admin role, and the last active admin keeps it: either would leave
        nobody to manage people."""
        _check_roles(roles, HUMAN_ROLES, "a person")
        wanted = sorted(set(roles))

        def work(uow: UnitOfWork) -> list[str]:
            people = uow.accounts.lock_all()
            if username not in people:
                raise NotFoundError(f"user {username}", "list the users to find the name")
            subject = user_subject(username)
            old = sorted({role_name(role) for role in uow.grants.roles_of(subject)})
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
                if _active_admins(uow, people.values()) == {username}:
                    raise _last_admin("roles", username, "take admin from")
            uow.grants.revoke_all(subject)
            _grant(uow, subject, wanted)
            uow.audit.append(
                actor=actor.name,
                action="user.roles_changed",
                subject=f"user:{username}",
                payload={"old": old, "new": wanted},
            )
            return old

        old = run_in_unit_of_work(self._units, work)
        if old != wanted:
            self._access.refresh()
            self._forget_all()  # cached principals carry the old roles
        return {"username": username, "roles": wanted, "old_roles": old, "changed": old != wanted}

    def list_users(self) -> list[ListedUser]:
        with self._units(read_only=True) as uow:
            users = uow.accounts.all()
        return [
            ListedUser(
                username=u.username,
                full_name=u.full_name,
                roles=self._access.roles_of(u.username),
                disabled=u.disabled,
                created_at=u.created_at,
                locked_until=_locked_until(u),
            )
            for u in users
        ]

    def verify_password(
        self,
        username: str,
        password: str,
        client: str | None = None,
        purpose: Purpose = "signature",
    ) -> Account:
        """The active user with this password, else UnauthenticatedError; while the account
        or the client address must wait, TooManyAttemptsError, without looking at the
        password. Used to sign in, to re-authenticate at the moment of signing and to change
        a password. An unknown name costs the same work and locks the same way as a real
        one. Each failure is on the audit trail, in the transaction that counts it."""
        wait = self.throttle.address_wait(client)
        if wait:
            raise TooManyAttemptsError(SLOW_DOWN, wait)
        name = username[:64]  # what is recorded and counted of a name that cannot exist
        with self._units(read_only=True) as uow:
            user = uow.accounts.get(username)
        locked = self.throttle.unknown_name_wait(name) if user is None else _locked_for(user)
        if locked:
            self._failed(name, client, purpose, "locked", known=user is not None)
            raise TooManyAttemptsError(LOCKED, locked)
        if not self._evened_out:  # once per process: see Passwords.even_out
            with self._units(read_only=True) as uow:
                self._passwords.even_out(account.password_hash for account in uow.accounts.all())
            self._evened_out = True
        matches = self._passwords.matches(user.password_hash if user else None, password)
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

        def work(uow: UnitOfWork) -> bool:
            now = _now()
            count, until = unknown_count, now + timedelta(seconds=LOCK_SECONDS)
            locking = counting and count == LOCK_AFTER
            user = uow.accounts.locked(name)
            if counting and user is not None:
                failed = user.failed_sign_ins
                if user.locked_until is not None and user.locked_until <= now:
                    failed = 0  # the lock expired: count afresh
                count = failed + 1
                locking = count >= LOCK_AFTER and _locked_for(user) == 0
                locked_until = until if locking else user.locked_until
                uow.accounts.save(replace(user, failed_sign_ins=count, locked_until=locked_until))
            payload = {"username": name, "client": client, "purpose": purpose, "reason": reason}
            uow.audit.append(
                actor=actor, action="auth.sign_in_failed", subject=subject, payload=payload
            )
            if locking:
                locked = {"failures": count, "until": until.isoformat()}
                uow.audit.append(actor=actor, action="auth.locked", subject=subject, payload=locked)
            return locking

        return run_in_unit_of_work(self._units, work)

    def _clear_failures(self, username: str) -> None:
        def work(uow: UnitOfWork) -> None:
            user = uow.accounts.locked(username)
            assert user is not None, "an account that just signed in"
            uow.accounts.save(replace(user, failed_sign_ins=0, locked_until=None))

        run_in_unit_of_work(self._units, work)

    def unlock(self, actor: Principal, username: str) -> Unlocked:
        """End a lockout and its count of failures now, on the audit trail."""

        def work(uow: UnitOfWork) -> bool:
            user = uow.accounts.locked(username)
            if user is None:
                raise NotFoundError(f"user {username}", "list the users to find the name")
            was_locked = _locked_for(user) > 0
            if not was_locked and not user.failed_sign_ins:
                return False
            payload = {"failures": user.failed_sign_ins, "was_locked": was_locked}
            uow.accounts.save(replace(user, failed_sign_ins=0, locked_until=None))
            uow.audit.append(
                actor=actor.name,
                action="auth.unlocked",
                subject=f"user:{username}",
                payload=payload,
            )
            return was_locked

        return Unlocked(username, run_in_unit_of_work(self._units, work))

    def change_password(
        self, username: str, current: str, new: str, keep_secret: str | None
    ) -> PasswordChanged:
        """A person's own change: the current password first (counted and locked like a
        sign-in), then the new one; every session but `keep_secret`'s ends."""
        check_password(new)
        if new == current:
            raise InputError("password", "is the current one", "choose a new password")
        self.verify_password(username, current, purpose="password change")
        keep = self._digest.digest(keep_secret) if keep_secret else None
        ended, _ = self._set_password(username, username, new, keep, "user.password_changed")
        return PasswordChanged(username, ended)

    def reset_password(self, actor: Principal, username: str, new: str) -> PasswordReset:
        """An admin sets someone's password: their sessions end and a lockout is lifted."""
        check_password(new)
        if actor.name == username:
            raise InputError(
                f"user {username}",
                "is you: a reset does not ask for the current password",
                "change your own password with your current one",
            )
        ended, unlocked = self._set_password(actor.name, username, new, None, "user.password_reset")
        return PasswordReset(username, ended, unlocked)

    def _set_password(
        self, actor: str, username: str, new: str, keep: str | None, action: str
    ) -> tuple[int, bool]:
        """(sessions ended, whether a lock was lifted), in one transaction with the event;
        the event says neither password."""
        hashed = self._passwords.hash(new)

        def work(uow: UnitOfWork) -> tuple[int, bool]:
            user = uow.accounts.locked(username)
            if user is None:
                raise NotFoundError(f"user {username}", "list the users to find the name")
            unlocked = _locked_for(user) > 0
            changed = replace(user, password_hash=hashed, failed_sign_ins=0, locked_until=None)
            uow.accounts.save(changed)
            ended = uow.sessions.end_all(username, keep)
            payload: dict[str, Any] = {"sessions_ended": ended}
            if action == "user.password_reset":
                payload["unlocked"] = unlocked
            uow.audit.append(
                actor=actor, action=action, subject=f"user:{username}", payload=payload
            )
            return ended, unlocked

        done = run_in_unit_of_work(self._units, work)
        self._forget_all()  # cached principals of the ended sessions
        return done

    # --- sessions ----------------------------------------------------------------------

    def sign_in(
        self, username: str, password: str, hours: int, client: str | None = None
    ) -> StartedSession:
        """A new session for the person with this password; `client` is the address the
        attempt came from, for the audit trail and the per-address wait."""
        user = self.verify_password(username, password, client, "sign-in")
        secret, csrf = new_secret(), new_secret()
        expires = _now() + timedelta(hours=hours)
        started = SignedInSession(self._digest.digest(secret), user.username, csrf, expires)
        # A hash made under other parameters than the configured ones is made again now,
        # while the password is at hand (GOVERNANCE_PASSWORD_HASHING).
        rehashed = self._passwords.rehashed(user.password_hash, password)

        def work(uow: UnitOfWork) -> None:
            # A reset, a change or a disable committed while the password was checked wins.
            current = uow.accounts.locked(user.username)
            if current is None or current.disabled or current.password_hash != user.password_hash:
                raise UnauthenticatedError(WRONG_PASSWORD)
            payload: dict[str, Any] = {"expires_at": expires.isoformat()}
            if rehashed is not None:
                uow.accounts.save(replace(current, password_hash=rehashed))
                payload["password_rehashed"] = self._passwords.hashing
            uow.sessions.add(started)
            uow.audit.append(
                actor=user.username,
                action="session.started",
                subject=f"user:{user.username}",
                payload=payload,
            )

        run_in_unit_of_work(self._units, work)
        return StartedSession(secret, csrf, expires)

    def sign_out(self, secret: str) -> None:
        digest = self._digest.digest(secret)

        def work(uow: UnitOfWork) -> None:
            found = uow.sessions.get(digest)
            if found is not None:
                uow.sessions.remove(digest)
                uow.audit.append(
                    actor=found.username,
                    action="session.ended",
                    subject=f"user:{found.username}",
                    payload={},
                )

        run_in_unit_of_work(self._units, work)
        self._forget(digest)

    # --- tokens ------------------------------------------------------------------------

    def create_token(
        self,
        actor: Principal,
        name: str,
        roles: list[str],
        days: int | None,
        owner: str | None = None,
    ) -> CreatedToken:
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
        expires = _now() + timedelta(days=days) if days else None
        digest = self._digest.digest(secret)

        def work(uow: UnitOfWork) -> str:
            person = _accountable_person(uow, owner or actor.person)
            uow.tokens.add(
                token_id=token_id,
                name=name.strip(),
                owner=person,
                roles=sorted(roles),
                digest=digest,
                expires_at=expires,
            )
            _grant(uow, token_subject(token_id), roles)
            uow.audit.append(
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

        person = run_in_unit_of_work(self._units, work)
        self._access.refresh()
        return CreatedToken(token_id, secret, name.strip(), person, sorted(roles), expires)

    def revoke_token(self, actor: Principal, token_id: str) -> None:
        def work(uow: UnitOfWork) -> None:
            what, fix = f"token {token_id}", "list the tokens to find its id"
            token = to_revoke(uow.tokens.locked(token_id), what, fix)
            uow.tokens.revoke(token_id, _now())
            uow.grants.revoke_all(token_subject(token_id))  # its grants go with it
            uow.audit.append(
                actor=actor.name,
                action="token.revoked",
                subject=f"token:{token_id}",
                payload={"name": token.name},
            )

        run_in_unit_of_work(self._units, work)
        self._access.refresh()
        self._forget_all()

    def list_tokens(self) -> list[ListedToken]:
        with self._units(read_only=True) as uow:
            tokens = uow.tokens.all()
        return [_listed(t) for t in tokens]

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
        with self._units(read_only=True) as uow:
            row = uow.sessions.get(self._digest.digest(secret))
        return row.csrf_token if row else None

    def _token_principal(self, digest: str) -> Principal:
        with self._units(read_only=True) as uow:
            token = uow.tokens.with_digest(digest)
        now = _now()
        if token is None or token.revoked_at is not None:
            raise UnauthenticatedError("unknown or revoked API token")
        if token.expires_at is not None and token.expires_at <= now:
            raise UnauthenticatedError(f"API token {token.id} expired at {token.expires_at}")
        return Principal(
            token_subject(token.id), token.name, "token", frozenset(token.roles), token.owner
        )

    def _session_principal(self, digest: str) -> Principal:
        with self._units(read_only=True) as uow:
            row = uow.sessions.get(digest)
            user = uow.accounts.get(row.username) if row else None
        if row is None or user is None or user.disabled:
            raise UnauthenticatedError("unknown session or disabled user: sign in again")
        if row.expires_at <= _now():
            raise UnauthenticatedError("the session expired: sign in again")
        roles = frozenset(self._access.roles_of(user.username))
        return Principal(user.username, user.full_name, "user", roles, user.username)

    def _forget(self, digest: str) -> None:
        with self._cache_lock:
            self._cache.pop(digest, None)

    def _forget_all(self) -> None:
        with self._cache_lock:
            self._cache.clear()


def _now() -> datetime:
    return datetime.now(UTC)


def _active_admins(uow: UnitOfWork, people: Iterable[Account]) -> set[str]:
    """The user names of the enabled `people` holding admin (`g, user:NAME, role:admin`).
    The changes that ask pass every account, locked (`Accounts.lock_all`): changes to who
    is an active admin then run one after another, and the last-admin check holds."""
    holders = uow.grants.holders(role_subject("admin"))
    names = {h.removeprefix(USER) for h in holders if h.startswith(USER)}
    return names & {person.username for person in people if not person.disabled}


def _accountable_person(uow: UnitOfWork, wanted: str | None) -> str:
    """The person a new token answers to: `wanted` if it is an enabled person, else (no
    person asked for: the service itself issues it) the first active admin (the earliest
    added; migration 0006 gives older tokens the same)."""
    if wanted is None:
        people = uow.accounts.all()
        admins = _active_admins(uow, people)
        first = min((p for p in people if p.username in admins), key=lambda p: p.id, default=None)
        if first is None:
            raise InputError("owner", "is not given", "name the person accountable for it")
        return first.username
    user = uow.accounts.get(wanted)
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


def _locked_for(user: Account) -> float:
    """Seconds the account stays locked; 0 when it is not."""
    if user.locked_until is None:
        return 0.0
    return max(0.0, (user.locked_until - _now()).total_seconds())


def _locked_until(user: Account) -> datetime | None:
    return user.locked_until if _locked_for(user) else None


def _listed(token: IssuedToken) -> ListedToken:
    """A token as it is listed: everything but the digest of its secret."""
    return copied(ListedToken, token, roles=list(token.roles))


def _grant(uow: UnitOfWork, subject: str, roles: Iterable[str]) -> None:
    """Each of the roles to the casbin subject, once, in the unit of work's transaction."""
    for role in sorted(set(roles)):
        uow.grants.grant(subject, role_subject(role))


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
