"""Signing in can be guessed at no faster than the lockout allows, on both databases: ten
failures in a row lock the account for fifteen minutes (the right password too) until it
expires or an admin unlocks it; each failure, lock and unlock is on the audit trail; an
unknown name costs the same work and locks the same way as a real one; the signing
re-authentication is locked by the same counter; passwords are at least 12 characters and
not common; people change their password and admins reset it, and either ends the other
sessions."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from governance.auth.secrets import DEFAULT_PASSWORD_HASHING, new_password, password_problem
from governance.auth.throttle import ADDRESS_ALLOWANCE, SignInThrottle
from governance.bootstrap import Governance, initialise, open_governance
from governance.cli import app as cli
from governance.config import Settings
from governance.domain.errors import (
    InputError,
    TooManyAttemptsError,
    UnauthenticatedError,
)
from governance.services.people import LOCK_AFTER, SYSTEM, PasswordReset
from governance.store.repository import audit_trail
from governance.store.tables import utcnow
from governance.web.app import create_app
from tests.homes import initialise_home

pytest_plugins = ["tests.db_fixtures"]
PASSWORD = "a-long-test-passphrase"
NEW_PASSWORD = "another-long-passphrase"
ADDRESS = "203.0.113.7"


@pytest.fixture
def governance(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Governance]:
    """An initialised service with maria; `request.param`, when given, names the password
    hashing (the tests run with the smaller set, see conftest.py)."""
    settings = Settings.from_env(database_url, tmp_path / "home")
    if hasattr(request, "param"):
        settings = replace(settings, password_hashing=request.param)
    initialise_home(settings, PASSWORD)
    opened = open_governance(settings)
    opened.people.add_user(SYSTEM, "maria", "Maria Risk", PASSWORD, ["model_risk_officer"])
    yield opened
    opened.close()


def events(governance: Governance, *actions: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (e.event.actor, e.event.action, e.event.subject, e.event.payload)
        for e in audit_trail(governance.engine)
        if e.event.action in actions
    ]


def fail_until_locked(governance: Governance, username: str, client: str = ADDRESS) -> None:
    """LOCK_AFTER wrong passwords: each refused as wrong, the last one with the lock."""
    for attempt in range(1, LOCK_AFTER + 1):
        expected = TooManyAttemptsError if attempt == LOCK_AFTER else UnauthenticatedError
        with pytest.raises(expected) as caught:
            governance.people.sign_in(username, f"wrong-guess-{attempt}", 1, client)
        assert type(caught.value) is expected


# --- lockout ---------------------------------------------------------------------------


def test_ten_failures_lock_the_account_until_an_admin_unlocks(governance: Governance) -> None:
    people = governance.people
    fail_until_locked(governance, "maria")
    with pytest.raises(TooManyAttemptsError) as locked:
        people.sign_in("maria", PASSWORD, 1, ADDRESS)  # the right password, refused
    assert 14 * 60 < locked.value.retry_after <= 15 * 60
    assert "ask an admin to unlock" in str(locked.value)

    failed = events(governance, "auth.sign_in_failed")
    assert len(failed) == LOCK_AFTER + 1
    assert {(actor, subject) for actor, _, subject, _ in failed} == {("anonymous", "user:maria")}
    assert [p["reason"] for *_, p in failed] == ["wrong password"] * LOCK_AFTER + ["locked"]
    assert all(p["username"] == "maria" and p["client"] == ADDRESS for *_, p in failed)
    assert PASSWORD not in str(failed) and "wrong-guess" not in str(failed)
    [(_, _, subject, payload)] = events(governance, "auth.locked")
    assert subject == "user:maria" and payload["failures"] == LOCK_AFTER
    [listed] = [u for u in people.list_users() if u.username == "maria"]
    assert listed.locked_until is not None

    assert people.unlock(SYSTEM, "maria").unlocked is True
    [(actor, _, subject, _)] = events(governance, "auth.unlocked")
    assert (actor, subject) == ("governance", "user:maria")
    assert people.sign_in("maria", PASSWORD, 1, ADDRESS).token


def test_a_success_resets_the_count_and_a_lock_expires(governance: Governance) -> None:
    people = governance.people
    for _ in range(LOCK_AFTER - 1):
        with pytest.raises(UnauthenticatedError):
            people.sign_in("maria", "wrong-guess", 1, ADDRESS)
    people.sign_in("maria", PASSWORD, 1, ADDRESS)  # consecutive failures only
    fail_until_locked(governance, "maria")
    with governance.engine.begin() as connection:  # fifteen minutes later
        connection.execute(
            text("UPDATE user_account SET locked_until = :past WHERE username = 'maria'"),
            {"past": utcnow() - timedelta(seconds=1)},
        )
    people.sign_in("maria", PASSWORD, 1, ADDRESS)


def test_an_unknown_name_is_refused_like_a_real_one(governance: Governance) -> None:
    people = governance.people
    answers: dict[str, list[str]] = {"maria": [], "nobody": []}
    for username, seen in answers.items():
        client = f"198.51.100.{len(username)}"
        for _ in range(LOCK_AFTER - 1):
            with pytest.raises(UnauthenticatedError) as caught:
                people.sign_in(username, "wrong-guess", 1, client)
            seen.append(type(caught.value).__name__ + str(caught.value))
        for password in ("wrong-guess", PASSWORD):  # the tenth failure locks, so a lock
            with pytest.raises(TooManyAttemptsError) as locked:  # does not tell who exists
                people.sign_in(username, password, 1, client)
            seen.append(str(locked.value) + str(round(locked.value.retry_after, -1)))
    assert answers["maria"] == answers["nobody"]


@pytest.mark.parametrize("governance", [DEFAULT_PASSWORD_HASHING], indirect=True)
def test_an_unknown_user_costs_as_much_as_a_real_one(governance: Governance) -> None:
    """Equal work: the answer's time does not tell whether a name exists (a correctness
    property, not a speed claim). The two are timed in turn, so that the machine's load
    weighs on both alike; five of each stay below the lockout."""

    def seconds(username: str, attempt: int) -> float:
        started = time.perf_counter()
        with pytest.raises(UnauthenticatedError):
            governance.people.sign_in(username, f"wrong-{attempt}", 1, ADDRESS)
        return time.perf_counter() - started

    seconds("someone", 0)  # warm up: the dummy hash is made once per process
    times: dict[str, list[float]] = {"maria": [], "nobody": []}
    for attempt in range(5):
        for username, taken in times.items():
            taken.append(seconds(username, attempt))
    real, unknown = (statistics.median(taken) for taken in times.values())
    assert 0.5 < unknown / real < 2, times


def test_one_address_failing_often_must_wait(governance: Governance) -> None:
    """Spraying from one address across many names slows down (per process)."""
    people = governance.people
    people.throttle = SignInThrottle(allowance=3)
    for attempt in range(3):
        with pytest.raises(UnauthenticatedError):
            people.sign_in(f"name{attempt}", "wrong-guess", 1, ADDRESS)
    with pytest.raises(TooManyAttemptsError) as caught:
        people.sign_in("maria", PASSWORD, 1, ADDRESS)
    assert caught.value.retry_after >= 1
    people.sign_in("maria", PASSWORD, 1, "198.51.100.1")  # another address is not slowed


def test_the_address_wait_doubles_up_to_a_minute_and_is_forgotten() -> None:
    now = [0.0]
    throttle = SignInThrottle(clock=lambda: now[0])
    for _ in range(ADDRESS_ALLOWANCE - 1):
        throttle.addresses.add(ADDRESS)
    assert throttle.address_wait(ADDRESS) == 0
    waits = []
    for _ in range(9):
        throttle.addresses.add(ADDRESS)
        waits.append(throttle.address_wait(ADDRESS))
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    now[0] += 30
    assert throttle.address_wait(ADDRESS) == 30
    now[0] += 15 * 60 + 1  # a quarter of an hour without a failure
    assert throttle.address_wait(ADDRESS) == 0
    assert throttle.address_wait(None) == 0


def test_an_unknown_name_lock_expires_like_a_real_one() -> None:
    now = [0.0]
    throttle = SignInThrottle(clock=lambda: now[0])
    for _ in range(LOCK_AFTER):
        throttle.unknown_names.add("nobody")
    assert throttle.unknown_name_wait("nobody") == 15 * 60
    now[0] += 15 * 60
    assert throttle.unknown_name_wait("nobody") == 0
    throttle.unknown_names.add("nobody")  # counted afresh
    assert throttle.unknown_name_wait("nobody") == 0


def test_signing_reauthentication_is_locked_by_the_same_count(governance: Governance) -> None:
    people = governance.people
    maria = people.authenticate(people.sign_in("maria", PASSWORD, 1, ADDRESS).token)
    for attempt in range(1, LOCK_AFTER + 1):
        expected = TooManyAttemptsError if attempt == LOCK_AFTER else UnauthenticatedError
        with pytest.raises(expected):
            governance.workflow.sign(maria, "no-such-request", "approve", "ok", "wrong-guess")
    with pytest.raises(TooManyAttemptsError):  # not "no such request": refused first
        governance.workflow.sign(maria, "no-such-request", "approve", "ok", PASSWORD)
    failed = events(governance, "auth.sign_in_failed")
    assert {(a, p["purpose"]) for a, _, _, p in failed} == {("maria", "signature")}
    with pytest.raises(TooManyAttemptsError):  # and signing in is locked too
        people.sign_in("maria", PASSWORD, 1, ADDRESS)


# --- password policy, change and reset -------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["short-pass", "password1234", "Password2024!", "qwertyuiop12", "iloveyouiloveyou"],
)
def test_short_and_common_passwords_are_refused(governance: Governance, password: str) -> None:
    assert password_problem(password)
    people = governance.people
    maria = people.authenticate(people.sign_in("maria", PASSWORD, 1, ADDRESS).token)
    attempts = [
        lambda: people.add_user(SYSTEM, "dana", "Dana", password, ["data_scientist"]),
        lambda: people.change_password(maria.name, PASSWORD, password, None),
        lambda: people.reset_password(SYSTEM, "maria", password),
        lambda: initialise(
            Settings.from_env(governance.settings.database_url, governance.settings.home / "x"),
            password,
        ),
    ]
    for attempt in attempts:
        with pytest.raises(InputError) as caught:
            attempt()
        assert caught.value.subject == "password" and "Fix:" in caught.value.message
    people.sign_in("maria", PASSWORD, 1, ADDRESS)  # nothing changed


def test_long_uncommon_passwords_pass() -> None:
    assert password_problem("correct horse battery staple") is None
    assert password_problem("a-long-test-passphrase") is None
    assert all(password_problem(new_password()) is None for _ in range(1000))


def test_init_generates_an_admin_password_the_policy_allows(tmp_path: Path) -> None:
    settings = Settings.from_env(f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "home")
    [created] = [line for line in initialise(settings, None) if "admin user" in line]
    password = created.rpartition("password: ")[2]
    assert password_problem(password) is None
    governance = open_governance(settings)
    try:
        governance.people.sign_in("admin", password, 1, ADDRESS)
    finally:
        governance.close()


def test_a_password_change_ends_the_other_sessions(governance: Governance) -> None:
    people = governance.people
    here = people.sign_in("maria", PASSWORD, 1, ADDRESS).token
    elsewhere = people.sign_in("maria", PASSWORD, 1, ADDRESS).token
    with pytest.raises(UnauthenticatedError):
        people.change_password("maria", "wrong-guess", NEW_PASSWORD, here)
    changed = people.change_password("maria", PASSWORD, NEW_PASSWORD, here)
    assert changed.sessions_ended == 1
    assert people.authenticate(here).name == "maria"
    with pytest.raises(UnauthenticatedError):
        people.authenticate(elsewhere)
    with pytest.raises(UnauthenticatedError):
        people.sign_in("maria", PASSWORD, 1, ADDRESS)
    people.sign_in("maria", NEW_PASSWORD, 1, ADDRESS)
    [(actor, _, subject, payload)] = events(governance, "user.password_changed")
    assert (actor, subject, payload) == ("maria", "user:maria", {"sessions_ended": 1})
    failed = events(governance, "auth.sign_in_failed")
    assert [p["purpose"] for *_, p in failed] == ["password change", "sign-in"]


def test_an_admin_reset_ends_every_session_and_unlocks(governance: Governance) -> None:
    people = governance.people
    session = people.sign_in("maria", PASSWORD, 1, ADDRESS).token
    fail_until_locked(governance, "maria")
    reset = people.reset_password(SYSTEM, "maria", NEW_PASSWORD)
    assert reset == PasswordReset(username="maria", sessions_ended=1, unlocked=True)
    with pytest.raises(UnauthenticatedError):
        people.authenticate(session)
    people.sign_in("maria", NEW_PASSWORD, 1, ADDRESS)
    [(actor, _, _, payload)] = events(governance, "user.password_reset")
    assert actor == "governance" and NEW_PASSWORD not in str(payload)


# --- over HTTP: the API, the console and the CLI ---------------------------------------


@pytest.fixture
def api(governance: Governance) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(governance.settings, run_jobs=False)) as client:
        yield client


def bearer(client: TestClient[Litestar], username: str, password: str = PASSWORD) -> dict[str, str]:
    answer = client.post("/api/v1/sessions", json={"username": username, "password": password})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_api_locks_with_429_and_an_admin_unlocks(api: TestClient[Litestar]) -> None:
    admin = bearer(api, "admin")
    maria = bearer(api, "maria")
    wrong = {"username": "maria", "password": "wrong-guess"}
    statuses = [api.post("/api/v1/sessions", json=wrong).status_code for _ in range(LOCK_AFTER)]
    assert statuses == [401] * (LOCK_AFTER - 1) + [429]
    refused = api.post("/api/v1/sessions", json={"username": "maria", "password": PASSWORD})
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 14 * 60 < int(refused.headers["retry-after"]) <= 15 * 60
    assert api.post("/api/v1/users/maria/unlock", headers=maria).status_code == 403
    unlocked = api.post("/api/v1/users/maria/unlock", headers=admin)
    assert unlocked.status_code == 200 and unlocked.json()["unlocked"] is True
    bearer(api, "maria")


def test_api_password_change_and_reset(api: TestClient[Litestar]) -> None:
    admin = bearer(api, "admin")
    here, elsewhere = bearer(api, "maria"), bearer(api, "maria")
    body = {"currentPassword": PASSWORD, "newPassword": "password1234"}
    weak = api.post("/api/v1/me/password", json=body, headers=here)
    assert weak.status_code == 422 and weak.json()["field"] == "password"
    assert "Fix:" in weak.json()["detail"]
    body = {"currentPassword": "wrong-guess", "newPassword": NEW_PASSWORD}
    assert api.post("/api/v1/me/password", json=body, headers=here).status_code == 401
    body = {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    changed = api.post("/api/v1/me/password", json=body, headers=here)
    assert changed.status_code == 200, changed.text
    assert api.get("/api/v1/me", headers=here).status_code == 200
    assert api.get("/api/v1/me", headers=elsewhere).status_code == 401

    short = api.post("/api/v1/users/maria/password", json={"newPassword": "short"}, headers=admin)
    assert short.status_code == 422 and short.json()["field"] == "password"
    reset = api.post("/api/v1/users/maria/password", json={"newPassword": PASSWORD}, headers=admin)
    assert reset.status_code == 200, reset.text
    assert api.get("/api/v1/me", headers=here).status_code == 401
    bearer(api, "maria", PASSWORD)


def test_api_add_user_refuses_a_common_password(api: TestClient[Litestar]) -> None:
    body = {
        "username": "dana",
        "fullName": "Dana",
        "password": "baseball2024",
        "roles": ["data_scientist"],
    }
    refused = api.post("/api/v1/users", json=body, headers=bearer(api, "admin"))
    assert refused.status_code == 422 and refused.json()["field"] == "password"


def console_sign_in(client: TestClient[Litestar], username: str, password: str) -> Any:
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text
    data = {"username": username, "password": password, "login_token": token[1]}
    return client.post("/login", data=data, follow_redirects=False)


def csrf(client: TestClient[Litestar], page: str = "/account/password") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(page).text)
    assert found
    return found[1]


def test_console_lockout_unlock_reset_and_change(governance: Governance) -> None:
    app = create_app(governance.settings, run_jobs=False)
    with TestClient(app) as admin, TestClient(app) as maria:
        for _ in range(LOCK_AFTER):
            console_sign_in(maria, "maria", "wrong-guess")
        locked = console_sign_in(maria, "maria", PASSWORD)
        assert locked.status_code == 429 and "ask an admin to unlock" in locked.text
        assert "retry-after" in locked.headers

        assert console_sign_in(admin, "admin", PASSWORD).status_code == 303
        people = admin.get("/admin/users").text
        assert 'action="/admin/users/maria/unlock"' in people
        token = csrf(admin, "/admin/users")
        answer = admin.post("/admin/users/maria/unlock", data={"csrf_token": token})
        assert "maria is unlocked" in answer.text
        assert 'action="/admin/users/maria/unlock"' not in answer.text
        assert console_sign_in(maria, "maria", PASSWORD).status_code == 303

        form = {"new_password": "short", "csrf_token": token}
        answer = admin.post("/admin/users/maria/password", data=form)
        assert "password: is 5 characters" in answer.text
        form["new_password"] = NEW_PASSWORD
        answer = admin.post("/admin/users/maria/password", data=form)
        assert "maria has a new password" in answer.text
        assert maria.get("/account/password", follow_redirects=False).status_code == 303

        assert console_sign_in(maria, "maria", NEW_PASSWORD).status_code == 303
        form = {
            "current_password": NEW_PASSWORD,
            "new_password": PASSWORD,
            "csrf_token": csrf(maria),
        }
        answer = maria.post("/account/password", data=form)
        assert "Your password is changed" in answer.text
    governance.people.sign_in("maria", PASSWORD, 1, ADDRESS)


def test_cli_unlock_passwd_and_reset(governance: Governance, monkeypatch: Any) -> None:
    monkeypatch.setenv("GOVERNANCE_HOME", str(governance.settings.home))
    database = ["--database", governance.settings.database_url]
    runner = CliRunner()
    fail_until_locked(governance, "maria")
    unlocked = runner.invoke(cli, ["user", "unlock", "maria", *database])
    assert unlocked.exit_code == 0, unlocked.output
    assert "unlocked" in unlocked.output

    env = {"GOVERNANCE_CURRENT_PASSWORD": PASSWORD, "GOVERNANCE_NEW_PASSWORD": "password1234"}
    weak = runner.invoke(cli, ["user", "passwd", "maria", *database], env=env)
    assert weak.exit_code == 2 and "password" in weak.output
    env["GOVERNANCE_NEW_PASSWORD"] = NEW_PASSWORD
    changed = runner.invoke(cli, ["user", "passwd", "maria", *database], env=env)
    assert changed.exit_code == 0, changed.output
    governance.people.sign_in("maria", NEW_PASSWORD, 1, ADDRESS)

    env = {"GOVERNANCE_USER_PASSWORD": PASSWORD}
    reset = runner.invoke(cli, ["user", "reset-password", "maria", *database], env=env)
    assert reset.exit_code == 0, reset.output
    governance.people.sign_in("maria", PASSWORD, 1, ADDRESS)
