"""People and machines at the service layer, on both databases: secrets are never stored,
tokens expire and revoke, disabled people are signed out, and every change is audited."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from governance.bootstrap import Governance, initialise, open_governance
from governance.config import Settings
from governance.domain.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    UnauthenticatedError,
)
from governance.services.people import SYSTEM
from governance.store.repository import audit_trail
from governance.store.tables import ApiToken, UserAccount, utcnow
from tests.homes import initialise_home

pytest_plugins = ["tests.db_fixtures"]
PASSWORD = "a-long-test-passphrase"


@pytest.fixture
def governance(database_url: str, tmp_path: Path):
    settings = Settings.from_env(database_url, tmp_path / "home")
    initialise_home(settings, PASSWORD)
    opened = open_governance(settings)
    yield opened
    opened.close()


def test_init_is_idempotent(governance: Governance) -> None:
    again = initialise(governance.settings, None)
    assert again == []  # nothing to do, and the admin's password is unchanged
    governance.people.verify_password("admin", PASSWORD)


def test_passwords_and_token_secrets_are_never_stored(governance: Governance) -> None:
    people = governance.people
    people.add_user(SYSTEM, "maria", "Maria Risk", PASSWORD, ["model_risk_officer"])
    token = people.create_token(SYSTEM, "ci", ["ci"], 30)
    with Session(governance.engine) as session:
        user = session.exec(select(UserAccount).filter_by(username="maria")).one()
        stored = session.exec(select(ApiToken)).one()
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert stored.digest != token.token and token.token.split("_")[-1] not in stored.digest
    [listed] = people.list_tokens()
    assert not hasattr(listed, "token") and not hasattr(listed, "digest")
    assert people.authenticate(token.token).roles == frozenset({"ci"})
    events = [e.event for e in audit_trail(governance.engine)]
    assert PASSWORD not in str([e.payload for e in events])
    assert token.token not in str([e.payload for e in events])


def test_bad_people_input_names_the_field(governance: Governance) -> None:
    people = governance.people
    cases = [
        (("Maria", "Maria", PASSWORD, ["auditor"]), "username"),
        (("maria", " ", PASSWORD, ["auditor"]), "full_name"),
        (("maria", "Maria", "short", ["auditor"]), "password"),
        (("maria", "Maria", PASSWORD, ["ci"]), "roles"),
        (("maria", "Maria", PASSWORD, []), "roles"),
    ]
    for arguments, field in cases:
        with pytest.raises(InputError) as caught:
            people.add_user(SYSTEM, *arguments)
        assert caught.value.subject == field
    people.add_user(SYSTEM, "maria", "Maria", PASSWORD, ["auditor"])
    with pytest.raises(ConflictError):
        people.add_user(SYSTEM, "maria", "Maria", PASSWORD, ["auditor"])


def test_tokens_expire_and_revoke(governance: Governance) -> None:
    people = governance.people
    token = people.create_token(SYSTEM, "serving", ["serving"], 1)
    assert people.authenticate(token.token).name == f"token:{token.id}"

    people.revoke_token(SYSTEM, token.id)  # takes effect at once in this process
    with pytest.raises(UnauthenticatedError, match="revoked"):
        people.authenticate(token.token)
    with pytest.raises(ConflictError):
        people.revoke_token(SYSTEM, token.id)

    expiring = people.create_token(SYSTEM, "old", ["serving"], 1)
    with governance.engine.begin() as connection:
        connection.execute(
            text("UPDATE api_token SET expires_at = :past WHERE id = :id"),
            {"past": utcnow() - timedelta(seconds=1), "id": expiring.id},
        )
    with pytest.raises(UnauthenticatedError, match="expired"):
        people.authenticate(expiring.token)


def test_a_token_carries_no_more_than_its_issuer(governance: Governance) -> None:
    people = governance.people
    people.add_user(SYSTEM, "dana", "Dana", PASSWORD, ["data_scientist"])
    dana = people.authenticate(people.sign_in("dana", PASSWORD, 1).token)
    people.create_token(dana, "mine", ["data_scientist"], 1)
    with pytest.raises(ForbiddenError, match="may not issue"):
        people.create_token(dana, "escalate", ["admin"], 1)


def test_a_disabled_person_is_signed_out_and_cannot_sign_in(governance: Governance) -> None:
    people = governance.people
    people.add_user(SYSTEM, "bob", "Bob Owner", PASSWORD, ["business_owner"])
    session = people.sign_in("bob", PASSWORD, 8).token
    assert people.authenticate(session).full_name == "Bob Owner"
    people.set_disabled(SYSTEM, "bob", True)
    with pytest.raises(UnauthenticatedError):
        people.authenticate(session)
    with pytest.raises(UnauthenticatedError):
        people.sign_in("bob", PASSWORD, 8)
    actions = [e.event.action for e in audit_trail(governance.engine)]
    assert actions[-4:] == ["user.added", "session.started", "user.disabled", "auth.sign_in_failed"]


def test_set_roles_replaces_them_audits_and_drops_cached_principals(
    governance: Governance,
) -> None:
    people = governance.people
    people.add_user(SYSTEM, "bob", "Bob Owner", PASSWORD, ["business_owner"])
    session = people.sign_in("bob", PASSWORD, 8).token
    assert people.authenticate(session).roles == frozenset({"business_owner"})
    assert not governance.access.allowed(("user:bob",), "audit", "read")

    changed = people.set_roles(SYSTEM, "bob", ["auditor", "business_owner", "auditor"])
    assert changed["roles"] == ["auditor", "business_owner"] and changed["changed"]
    assert people.cached_principal(session) is None  # the next request looks again
    assert people.authenticate(session).roles == frozenset({"auditor", "business_owner"})
    assert governance.access.allowed(("user:bob",), "audit", "read")
    last = audit_trail(governance.engine)[-1].event
    assert (last.action, last.actor, last.subject) == (
        "user.roles_changed",
        "governance",
        "user:bob",
    )
    assert last.payload == {"old": ["business_owner"], "new": ["auditor", "business_owner"]}

    size = len(audit_trail(governance.engine))
    assert not people.set_roles(SYSTEM, "bob", ["business_owner", "auditor"])["changed"]
    assert len(audit_trail(governance.engine)) == size  # no change, no event


def test_set_roles_refusals_write_nothing(governance: Governance) -> None:
    people = governance.people
    people.add_user(SYSTEM, "dana", "Dana", PASSWORD, ["data_scientist"])
    admin = people.authenticate(people.sign_in("admin", PASSWORD, 1).token)
    dana = people.authenticate(people.sign_in("dana", PASSWORD, 1).token)
    size = len(audit_trail(governance.engine))

    for roles, field in ((["ci"], "roles"), ([], "roles")):
        with pytest.raises(InputError) as caught:
            people.set_roles(SYSTEM, "dana", roles)
        assert caught.value.subject == field
    with pytest.raises(NotFoundError):
        people.set_roles(SYSTEM, "nobody", ["auditor"])
    with pytest.raises(ForbiddenError, match="may not give"):
        people.set_roles(dana, "dana", ["data_scientist", "admin"])
    # lockout: nobody drops their own admin role or disables themselves ...
    with pytest.raises(InputError, match="your own admin role"):
        people.set_roles(admin, "admin", ["auditor"])
    with pytest.raises(InputError, match="disable yourself"):
        people.set_disabled(admin, "admin", True)
    # ... and the last active admin stays one, whoever asks
    with pytest.raises(ConflictError, match="last active admin"):
        people.set_roles(SYSTEM, "admin", ["auditor"])
    with pytest.raises(ConflictError, match="last active admin"):
        people.set_disabled(SYSTEM, "admin", True)
    assert len(audit_trail(governance.engine)) == size
    assert governance.access.roles_of("admin") == ["admin"]

    people.set_roles(admin, "dana", ["admin"])
    people.set_disabled(SYSTEM, "admin", True)  # with a second active admin, the first may go
    with pytest.raises(ConflictError, match="dana is the last active admin"):
        people.set_roles(SYSTEM, "dana", ["auditor"])
    people.set_roles(SYSTEM, "admin", ["auditor"])  # a disabled admin does not count


def test_two_admins_cannot_disable_each_other_at_once(governance: Governance) -> None:
    """Whichever change commits second sees the first one and is refused."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    people = governance.people
    people.add_user(SYSTEM, "ann", "Ann Admin", PASSWORD, ["admin"])
    start = Barrier(2)

    def disable(username: str) -> str:
        start.wait()
        try:
            people.set_disabled(SYSTEM, username, True)
        except ConflictError:
            return "refused"
        return "done"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(disable, ["admin", "ann"]))
    assert outcomes == ["done", "refused"]
    assert len([u for u in people.list_users() if "admin" in u.roles and not u.disabled]) == 1


def test_another_process_follows_a_role_change_within_a_second(governance: Governance) -> None:
    """Two server processes: a role given through one holds in the other without a
    restart, and a role taken away stops holding there too."""
    from governance.auth.access import RULES_CHECK_SECONDS, AccessControl

    other = AccessControl(governance.engine)  # what a second process builds at its start
    governance.people.add_user(SYSTEM, "zoe", "Zoe Risk", "a-long-test-passphrase", ["auditor"])

    def held_within(expected: bool) -> None:
        deadline = time.monotonic() + RULES_CHECK_SECONDS + 2
        while other.allowed(["user:zoe"], "requests", "sign") is not expected:
            assert time.monotonic() < deadline, f"the other process still answers {not expected}"
            time.sleep(0.05)

    held_within(False)
    admin = governance.people.authenticate(governance.people.sign_in("admin", PASSWORD, 1).token)
    governance.people.set_roles(admin, "zoe", ["model_risk_officer"])
    held_within(True)
    assert other.roles_of("zoe") == ["model_risk_officer"]
    governance.people.set_roles(admin, "zoe", ["auditor"])
    held_within(False)


def test_a_person_and_their_roles_are_written_in_one_transaction(governance: Governance) -> None:
    """The roles are casbin lines written with the user row: a refused add leaves no line."""
    from governance.store.tables import CasbinRule

    def lines(username: str) -> list[str]:
        with Session(governance.engine) as session:
            subject = f"user:{username}"
            rows = session.exec(select(CasbinRule).filter_by(ptype="g", v0=subject)).all()
        return sorted(row.v1 or "" for row in rows)

    governance.people.add_user(SYSTEM, "zoe", "Zoe", PASSWORD, ["auditor", "business_owner"])
    assert lines("zoe") == ["role:auditor", "role:business_owner"]
    assert governance.access.roles_of("zoe") == ["auditor", "business_owner"]
    with pytest.raises(ConflictError):
        governance.people.add_user(SYSTEM, "zoe", "Zoe Again", PASSWORD, ["model_risk_officer"])
    assert lines("zoe") == ["role:auditor", "role:business_owner"]
