"""People and machines on the in-memory unit of work: users and their roles, sign-in with
its lockout, sessions and API tokens, each change with its audit event, and the refusals
that keep somebody able to manage people."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from governance.auth.secrets import DigestKey, Passwords
from governance.auth.throttle import LOCK_AFTER
from governance.domain.audit import verify_chain
from governance.domain.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    TooManyAttemptsError,
    UnauthenticatedError,
)
from governance.domain.roles import role_name, role_subject, user_subject
from governance.services.people import (
    SYSTEM,
    AddedUser,
    PasswordChanged,
    PasswordReset,
    People,
    Principal,
    Unlocked,
)
from tests.unit.fakes import FakeUnitOfWork

PASSWORD = "violet-harbour-lantern-92"
NEW_PASSWORD = "quiet-meadow-compass-17"


class FakeAccess:
    """The enforcer as people sees it: roles read from the fake's committed grants."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow
        self.refreshes = 0

    def refresh(self) -> None:
        self.refreshes += 1

    def roles_of(self, username: str) -> list[str]:
        return sorted(role_name(r) for r in self._uow.grants.roles_of(user_subject(username)))


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def access(uow: FakeUnitOfWork) -> FakeAccess:
    return FakeAccess(uow)


@pytest.fixture
def people(uow: FakeUnitOfWork, access: FakeAccess) -> People:
    people = People(uow, access, DigestKey(b"k" * 32))  # type: ignore[arg-type]
    people.add_user(SYSTEM, "ada", "Ada Admin", PASSWORD, ["admin"])
    return people


def actions(uow: FakeUnitOfWork) -> list[str]:
    return [c.event.action for c in uow.audit.committed]


def person(people: People, name: str) -> Principal:
    return people.authenticate(people.sign_in(name, PASSWORD, hours=1).token)


def test_a_user_is_added_with_roles_and_an_event(
    people: People, uow: FakeUnitOfWork, access: FakeAccess
) -> None:
    added = people.add_user(SYSTEM, "maria", " Maria Risk ", PASSWORD, ["model_risk_officer"])
    assert added == AddedUser(
        username="maria", full_name="Maria Risk", roles=["model_risk_officer"]
    )
    assert uow.grants.roles_of("user:maria") == [role_subject("model_risk_officer")]
    assert actions(uow) == ["user.added", "user.added"]
    assert uow.audit.committed[-1].event.payload == {
        "full_name": "Maria Risk",
        "roles": ["model_risk_officer"],
    }
    assert access.refreshes == 2
    verify_chain([c for c in uow.audit.committed])
    listed = {u.username: u.roles for u in people.list_users()}
    assert listed == {"ada": ["admin"], "maria": ["model_risk_officer"]}


def test_a_taken_name_is_refused_and_nothing_is_written(
    people: People, uow: FakeUnitOfWork
) -> None:
    with pytest.raises(ConflictError):
        people.add_user(SYSTEM, "ada", "Another Ada", PASSWORD, ["auditor"])
    assert actions(uow) == ["user.added"]
    assert uow.accounts.get("ada").full_name == "Ada Admin"  # type: ignore[union-attr]
    assert people.ensure_user("ada", "Ada", PASSWORD, ["admin"]) is False


def test_an_audit_seq_taken_by_another_writer_is_retried(
    people: People, uow: FakeUnitOfWork
) -> None:
    uow.taken = 1
    people.add_user(SYSTEM, "maria", "Maria", PASSWORD, ["auditor"])
    assert actions(uow) == ["user.added", "user.added"]
    assert uow.accounts.get("maria") is not None


def test_roles_change_with_an_event_and_the_last_admin_keeps_admin(
    people: People, uow: FakeUnitOfWork
) -> None:
    ada = person(people, "ada")
    people.add_user(SYSTEM, "maria", "Maria", PASSWORD, ["auditor"])
    changed = people.set_roles(ada, "maria", ["auditor", "admin"])
    assert changed["changed"] and changed["old_roles"] == ["auditor"]
    assert uow.audit.committed[-1].event.payload == {
        "old": ["auditor"],
        "new": ["admin", "auditor"],
    }
    assert set(uow.accounts.locks) >= {"ada", "maria"}  # every account locked
    unchanged = people.set_roles(ada, "maria", ["admin", "auditor"])
    assert not unchanged["changed"] and actions(uow)[-1] == "user.roles_changed"

    with pytest.raises(InputError, match="your own admin role"):
        people.set_roles(ada, "ada", ["auditor"])
    people.set_disabled(ada, "maria", True)
    maria = Principal("maria", "Maria", "user", frozenset({"admin"}), "maria")
    with pytest.raises(ConflictError, match="last active admin"):
        people.set_roles(maria, "ada", ["auditor"])
    with pytest.raises(NotFoundError):
        people.set_roles(ada, "nobody", ["auditor"])
    assert uow.grants.roles_of("user:ada") == [role_subject("admin")]


def test_only_an_admin_gives_roles_it_does_not_hold(people: People, uow: FakeUnitOfWork) -> None:
    people.add_user(SYSTEM, "maria", "Maria", PASSWORD, ["auditor"])
    people.add_user(SYSTEM, "omar", "Omar", PASSWORD, ["data_scientist"])
    omar = person(people, "omar")
    with pytest.raises(ForbiddenError):
        people.set_roles(omar, "maria", ["auditor", "model_risk_officer"])
    assert uow.grants.roles_of("user:maria") == [role_subject("auditor")]


def test_disabling_signs_out_and_never_leaves_no_admin(people: People, uow: FakeUnitOfWork) -> None:
    ada = person(people, "ada")
    people.add_user(SYSTEM, "maria", "Maria", PASSWORD, ["auditor"])
    secret = people.sign_in("maria", PASSWORD, hours=1).token
    people.set_disabled(ada, "maria", True)
    assert actions(uow)[-1] == "user.disabled"
    assert not [s for s in uow.sessions.stored.values() if s.username == "maria"]
    with pytest.raises(UnauthenticatedError):
        people.authenticate(secret)
    with pytest.raises(InputError, match="disable yourself"):
        people.set_disabled(ada, "ada", True)
    other = Principal("omar", "Omar", "user", frozenset({"admin"}), "omar")
    with pytest.raises(ConflictError, match="last active admin"):
        people.set_disabled(other, "ada", True)
    people.set_disabled(ada, "maria", False)
    assert actions(uow)[-1] == "user.enabled"


def test_a_session_starts_authenticates_and_ends(people: People, uow: FakeUnitOfWork) -> None:
    started = people.sign_in("ada", PASSWORD, hours=1)
    principal = people.authenticate(started.token)
    assert (principal.name, principal.kind, principal.roles) == ("ada", "user", {"admin"})
    assert people.csrf_token(started.token) == started.csrf_token
    assert people.cached_principal(started.token) == principal
    people.sign_out(started.token)
    assert actions(uow)[-2:] == ["session.started", "session.ended"]
    assert people.csrf_token(started.token) is None
    with pytest.raises(UnauthenticatedError):
        people.authenticate(started.token)
    people.sign_out(started.token)  # nothing to end: no event
    assert actions(uow)[-1] == "session.ended" and len(actions(uow)) == 3


def test_failures_are_counted_lock_the_account_and_an_admin_unlocks_it(
    people: People, uow: FakeUnitOfWork
) -> None:
    ada = person(people, "ada")
    people.add_user(SYSTEM, "maria", "Maria", PASSWORD, ["auditor"])
    for _ in range(LOCK_AFTER - 1):
        with pytest.raises(UnauthenticatedError):
            people.verify_password("maria", "wrong password!", purpose="sign-in")
    assert uow.accounts.get("maria").failed_sign_ins == LOCK_AFTER - 1  # type: ignore[union-attr]
    with pytest.raises(TooManyAttemptsError):
        people.verify_password("maria", "wrong password!", purpose="sign-in")
    assert actions(uow)[-2:] == ["auth.sign_in_failed", "auth.locked"]
    assert uow.audit.committed[-1].event.payload["failures"] == LOCK_AFTER
    with pytest.raises(TooManyAttemptsError):  # even the right password waits
        people.verify_password("maria", PASSWORD)
    assert uow.audit.committed[-1].event.payload["reason"] == "locked"
    [listed] = [u for u in people.list_users() if u.username == "maria"]
    assert listed.locked_until is not None

    assert people.unlock(ada, "maria") == Unlocked(username="maria", unlocked=True)
    assert actions(uow)[-1] == "auth.unlocked"
    assert people.unlock(ada, "maria") == Unlocked(username="maria", unlocked=False)
    assert actions(uow)[-1] == "auth.unlocked"
    assert people.verify_password("maria", PASSWORD).username == "maria"
    with pytest.raises(NotFoundError):
        people.unlock(ada, "nobody")


def test_a_success_clears_the_count(people: People, uow: FakeUnitOfWork) -> None:
    with pytest.raises(UnauthenticatedError):
        people.verify_password("ada", "wrong password!")
    assert uow.accounts.get("ada").failed_sign_ins == 1  # type: ignore[union-attr]
    people.verify_password("ada", PASSWORD)
    assert uow.accounts.get("ada").failed_sign_ins == 0  # type: ignore[union-attr]


def test_an_unknown_name_fails_like_a_wrong_password(people: People, uow: FakeUnitOfWork) -> None:
    with pytest.raises(UnauthenticatedError):
        people.verify_password("nobody", PASSWORD, purpose="sign-in")
    event = uow.audit.committed[-1].event
    assert (event.actor, event.action, event.payload["reason"]) == (
        "anonymous",
        "auth.sign_in_failed",
        "unknown user",
    )


def test_passwords_change_and_reset_end_sessions(people: People, uow: FakeUnitOfWork) -> None:
    ada = person(people, "ada")
    people.add_user(SYSTEM, "maria", "Maria", PASSWORD, ["auditor"])
    kept = people.sign_in("maria", PASSWORD, hours=1).token
    people.sign_in("maria", PASSWORD, hours=1)
    changed = people.change_password("maria", PASSWORD, NEW_PASSWORD, kept)
    assert changed == PasswordChanged(username="maria", sessions_ended=1)
    assert uow.audit.committed[-1].event.payload == {"sessions_ended": 1}
    people.verify_password("maria", NEW_PASSWORD)
    with pytest.raises(InputError, match="is the current one"):
        people.change_password("maria", NEW_PASSWORD, NEW_PASSWORD, None)

    reset = people.reset_password(ada, "maria", PASSWORD)
    assert reset == PasswordReset(username="maria", sessions_ended=1, unlocked=False)
    assert actions(uow)[-1] == "user.password_reset"
    with pytest.raises(InputError, match="is you"):
        people.reset_password(ada, "ada", NEW_PASSWORD)
    with pytest.raises(NotFoundError):
        people.reset_password(ada, "nobody", NEW_PASSWORD)


def test_a_token_answers_to_a_person_and_is_revoked_with_its_grants(
    people: People, uow: FakeUnitOfWork, access: FakeAccess
) -> None:
    created = people.create_token(SYSTEM, "ci", ["data_scientist"], days=30)
    assert created.owner == "ada"  # the first active admin, for the service itself
    token = people.authenticate(created.token)
    assert (token.kind, token.person, token.roles) == ("token", "ada", {"data_scientist"})
    assert uow.grants.roles_of(f"token:{created.id}") == [role_subject("data_scientist")]
    [listed] = people.list_tokens()
    assert listed.id == created.id and not hasattr(listed, "digest")
    assert listed.roles == ["data_scientist"] and listed.revoked_at is None

    people.revoke_token(SYSTEM, created.id)
    assert actions(uow)[-2:] == ["token.created", "token.revoked"]
    assert uow.grants.roles_of(f"token:{created.id}") == []
    with pytest.raises(UnauthenticatedError):
        people.authenticate(created.token)
    with pytest.raises(ConflictError):
        people.revoke_token(SYSTEM, created.id)
    with pytest.raises(NotFoundError):
        people.revoke_token(SYSTEM, "nothere")


def test_a_token_is_refused_what_its_maker_does_not_hold(people: People) -> None:
    people.add_user(SYSTEM, "omar", "Omar", PASSWORD, ["data_scientist"])
    omar = person(people, "omar")
    with pytest.raises(ForbiddenError):
        people.create_token(omar, "ci", ["admin"], days=None)
    with pytest.raises(InputError, match="not an active person"):
        people.create_token(SYSTEM, "ci", ["auditor"], days=None, owner="nobody")
    assert people.create_token(omar, "ci", ["data_scientist"], days=None).owner == "omar"


@pytest.mark.parametrize(
    ("hashing", "parameters"),
    [("rfc9106-low-memory", "m=65536,t=3,p=4"), ("owasp-minimum", "m=19456,t=2,p=1")],
)
def test_passwords_are_hashed_with_the_configured_argon2id_parameters(
    uow: FakeUnitOfWork, access: FakeAccess, hashing: str, parameters: str
) -> None:
    people = People(uow, access, DigestKey(b"k" * 32), Passwords(hashing))  # type: ignore[arg-type]
    people.add_user(SYSTEM, "maria", "Maria Risk", PASSWORD, ["model_risk_officer"])
    stored = uow.accounts.get("maria")
    assert stored is not None and stored.password_hash is not None
    assert stored.password_hash.startswith(f"$argon2id$v=19${parameters}$")
    assert people.sign_in("maria", PASSWORD, hours=1).token


def test_a_hash_made_under_other_parameters_still_verifies() -> None:
    """Each hash carries its parameters: changing the setting locks nobody out."""
    old, new = Passwords("rfc9106-low-memory"), Passwords("owasp-minimum")
    assert new.matches(old.hash(PASSWORD), PASSWORD) and old.matches(new.hash(PASSWORD), PASSWORD)
    assert not new.matches(old.hash(PASSWORD), NEW_PASSWORD)
    assert not new.matches(None, PASSWORD)  # no such user: the dummy hash, and no


def test_a_hash_under_other_parameters_is_made_again_at_sign_in(
    uow: FakeUnitOfWork, access: FakeAccess
) -> None:
    """After the setting changes, each person's hash takes the configured parameters at
    their next sign-in, in the transaction that starts the session (its event says so);
    a wrong password changes nothing, and a second sign-in finds nothing to do."""
    before = People(uow, access, DigestKey(b"k" * 32), Passwords("rfc9106-low-memory"))  # type: ignore[arg-type]
    before.add_user(SYSTEM, "maria", "Maria Risk", PASSWORD, ["model_risk_officer"])
    after = People(uow, access, DigestKey(b"k" * 32), Passwords("owasp-minimum"))  # type: ignore[arg-type]

    def stored() -> str:
        account = uow.accounts.get("maria")
        assert account is not None
        return account.password_hash

    old = stored()
    with pytest.raises(UnauthenticatedError):
        after.sign_in("maria", NEW_PASSWORD, hours=1)
    assert stored() == old
    after.sign_in("maria", PASSWORD, hours=1)
    assert stored().startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    after.sign_in("maria", PASSWORD, hours=1)
    started = [c.event for c in uow.audit.committed if c.event.action == "session.started"]
    assert [e.payload.get("password_rehashed") for e in started] == ["owasp-minimum", None]
    assert before.sign_in("maria", PASSWORD, hours=1).token  # still verifies under the old


def test_a_password_reset_while_the_old_one_is_checked_wins(
    people: People, uow: FakeUnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old password was right when checked, but a reset committed before the session
    was recorded: no session is started with it."""
    people.add_user(SYSTEM, "maria", "Maria Risk", PASSWORD, ["model_risk_officer"])
    checked = people.verify_password

    def checked_then_reset(*arguments: Any, **keywords: Any) -> Any:
        account = checked(*arguments, **keywords)
        people.reset_password(SYSTEM, "maria", NEW_PASSWORD)
        return account

    monkeypatch.setattr(people, "verify_password", checked_then_reset)
    with pytest.raises(UnauthenticatedError):
        people.sign_in("maria", PASSWORD, hours=1)
    assert not [c for c in uow.audit.committed if c.event.action == "session.started"]


def test_refusals_cost_alike_while_hashes_of_two_parameter_sets_are_stored(
    uow: FakeUnitOfWork, access: FakeAccess
) -> None:
    """After the setting changed, maria's hash is still under the old, costlier set: a
    wrong password for her and any password for a name that does not exist take as long
    (timed in turn, so that the machine's load weighs on both alike)."""
    before = People(uow, access, DigestKey(b"k" * 32), Passwords("rfc9106-low-memory"))  # type: ignore[arg-type]
    before.add_user(SYSTEM, "maria", "Maria Risk", PASSWORD, ["model_risk_officer"])
    after = People(uow, access, DigestKey(b"k" * 32), Passwords("owasp-minimum"))  # type: ignore[arg-type]

    def seconds(username: str) -> float:
        started = time.perf_counter()
        with pytest.raises(UnauthenticatedError):
            after.verify_password(username, NEW_PASSWORD)
        return time.perf_counter() - started

    seconds("nobody")  # warm up: the stored hashes are read, the dummy hash is made
    times: dict[str, list[float]] = {"maria": [], "nobody": []}
    for _ in range(4):  # below the lockout
        for username, taken in times.items():
            taken.append(seconds(username))
    real, unknown = (statistics.median(taken) for taken in times.values())
    assert 0.5 < unknown / real < 2, times
