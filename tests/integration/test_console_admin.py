"""The console's admin pages, over HTTP on both databases: people signed in through the
sign-in form add people, change roles, disable and enable, and create and revoke API
tokens. A refusal comes back as a flash message naming the field and the fix, and writes
nothing; who may not manage sees no form and is refused by the server anyway. The workers
page, for admins only, says where tasks run, and with workers (PostgreSQL) shows the
queues, the workers' heartbeats and the failures from procrastinate's own rows."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, func, select

from governance.bootstrap import open_governance
from governance.config import Settings
from governance.services.people import SYSTEM
from governance.store.database import make_engine
from governance.store.repository import audit_trail
from governance.store.tables import (
    AuditEventRow,
    Job,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
    UserAccount,
)
from governance.web.app import create_app
from tests.homes import initialise_home

pytest_plugins = ["tests.db_fixtures"]

ADMIN_PASSWORD = "an-admin-test-passphrase"
PASSWORD = "a-long-test-passphrase"
PEOPLE = {"audrey": ("Audrey Auditor", ["auditor"]), "bob": ("Bob Owner", ["business_owner"])}


@dataclass
class Console:
    app: Litestar
    engine: Engine

    def signed_in(self, username: str, password: str = PASSWORD) -> TestClient[Litestar]:
        """A browser of its own (its own cookies), signed in through the form. Only the
        fixture's client runs the app's start-up and shut-down; the others just call it."""
        client = TestClient(self.app)
        sign_in(client, username, password)
        return client

    def count(self, statement: Any) -> int:
        with Session(self.engine) as session:
            return int(session.exec(statement).one())

    def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (e.event.action, e.event.subject, e.event.payload) for e in audit_trail(self.engine)
        ]


@pytest.fixture
def console(database_url: str, tmp_path: Path) -> Iterator[Console]:
    yield from started(Settings.from_env(database_url, tmp_path / "home"))


@pytest.fixture
def workers_console(migrated_postgres_url: str, tmp_path: Path) -> Iterator[Console]:
    """The console of a server whose tasks run on `governance worker` processes (none runs
    here: the test writes procrastinate's rows as they would)."""
    settings = Settings.from_env(migrated_postgres_url, tmp_path / "home")
    yield from started(replace(settings, tasks="workers"))


def started(settings: Settings) -> Iterator[Console]:
    """The app on an initialised home with `PEOPLE` added, started and stopped once."""
    initialise_home(settings, ADMIN_PASSWORD)
    governance = open_governance(settings)
    for username, (full_name, roles) in PEOPLE.items():
        governance.people.add_user(SYSTEM, username, full_name, PASSWORD, roles)
    governance.close()
    app = create_app(settings, run_jobs=False)
    engine = make_engine(settings.database_url)
    with TestClient(app):  # starts and stops the app once
        yield Console(app, engine)
    engine.dispose()


def sign_in(client: TestClient[Litestar], username: str, password: str) -> None:
    form = client.get("/login")
    login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert login_token, form.text
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "login_token": login_token[1]},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def csrf(client: TestClient[Litestar]) -> str:
    """The session's CSRF token, from the sign-out form every page carries."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert found
    return found[1]


def send(
    client: TestClient[Litestar], path: str, form: dict[str, object] | None = None
) -> httpx.Response:
    """Post a form as the page would (with the CSRF token), and read the page it leads to."""
    return client.post(path, data={**(form or {}), "csrf_token": csrf(client)})


def flash(page: httpx.Response) -> str:
    found = re.search(r'<div class="flash (ok|error)"[^>]*>(.*?)</div>', page.text, re.S)
    assert found, page.text
    return found[1] + ": " + html.unescape(re.sub(r"<[^>]+>", "", found[2])).strip()


def users_named(username: str) -> Any:
    return select(func.count()).select_from(UserAccount).where(UserAccount.username == username)


def audit_size() -> Any:
    return select(func.count()).select_from(AuditEventRow)


@pytest.fixture
def admin(console: Console) -> TestClient[Litestar]:
    return console.signed_in("admin", ADMIN_PASSWORD)


def test_admin_adds_a_person_who_can_then_sign_in(
    console: Console, admin: TestClient[Litestar]
) -> None:
    form = {
        "username": "maria",
        "full_name": "Maria Rossi",
        "password": PASSWORD,
        "roles": ["model_risk_officer", "business_owner"],
    }
    page = send(admin, "/admin/users", form)
    assert page.status_code == 200 and page.url.path == "/admin/users"
    assert flash(page) == "ok: Done: maria is added and can sign in with the initial password."
    row = re.search(r'<tr id="user-maria">.*?</tr>', page.text, re.S)
    assert row and "Maria Rossi" in row[0] and "business owner, model risk officer" in row[0]
    assert "✓ active" in row[0]

    # one ticked box arrives as a single value, not a list
    one = {"username": "carl", "full_name": "Carl Chief", "password": PASSWORD}
    assert flash(send(admin, "/admin/users", {**one, "roles": "chief_risk_officer"})).startswith(
        "ok:"
    )

    maria = console.signed_in("maria")
    home = maria.get("/")
    assert home.status_code == 200 and "Maria Rossi" in home.text
    added = [e for e in console.events() if e[0] == "user.added" and e[1] == "user:maria"]
    assert added and added[0][2]["roles"] == ["business_owner", "model_risk_officer"]


def test_refusals_name_the_field_and_the_fix_and_write_nothing(
    console: Console, admin: TestClient[Litestar]
) -> None:
    before = console.count(audit_size())
    good = {"full_name": "Someone", "password": PASSWORD, "roles": "auditor"}
    cases = [
        ({**good, "username": "audrey"}, "username: audrey exists already. Fix: choose another"),
        ({**good, "username": "eve", "password": "short"}, "password: is 5 characters"),
        ({**good, "username": "eve", "roles": "ci"}, "roles: ci cannot be given to a person"),
        ({**good, "username": "eve", "roles": []}, "roles: is empty. Fix: give one or more"),
        ({**good, "username": "Eve"}, "username: 'Eve' is not a valid user name. Fix: use"),
    ]
    for form, message in cases:
        page = send(admin, "/admin/users", form)
        assert flash(page).startswith(f"error: Refused: {message}"), form
        assert "Fix:" in flash(page)
    assert console.count(users_named("audrey")) == 1
    assert console.count(users_named("eve")) == 0
    assert console.count(audit_size()) == before


def test_a_role_change_is_on_the_audit_trail_and_takes_effect_at_once(
    console: Console, admin: TestClient[Litestar]
) -> None:
    bob = console.signed_in("bob")
    assert bob.get("/admin/users").status_code == 403

    page = send(admin, "/admin/users/bob/roles", {"roles": ["business_owner", "auditor"]})
    assert flash(page) == "ok: Done: The roles of bob are now: auditor, business owner."
    assert console.events()[-1] == (
        "user.roles_changed",
        "user:bob",
        {"old": ["business_owner"], "new": ["auditor", "business_owner"]},
    )
    # the next request sees the new role: no stale principal in the cache
    seen = bob.get("/admin/users")
    assert seen.status_code == 200 and "(auditor, business owner)" in seen.text

    send(admin, "/admin/users/bob/roles", {"roles": "business_owner"})
    assert bob.get("/admin/users").status_code == 403

    refused = send(admin, "/admin/users/bob/roles", {"roles": ["business_owner", "serving"]})
    assert flash(refused).startswith("error: Refused: roles: serving cannot be given to a person")
    assert console.events()[-1][2] == {
        "old": ["auditor", "business_owner"],
        "new": ["business_owner"],
    }


def test_disabling_ends_the_session_and_enabling_lets_them_back(
    console: Console, admin: TestClient[Litestar]
) -> None:
    bob = console.signed_in("bob")
    assert bob.get("/").status_code == 200

    page = send(admin, "/admin/users/bob/disable")
    assert flash(page) == "ok: Done: bob is disabled and signed out everywhere."
    row = re.search(r'<tr id="user-bob">.*?</tr>', page.text, re.S)
    assert row and "✗ disabled" in row[0]
    stopped = bob.get("/", follow_redirects=False)
    assert stopped.status_code == 303 and stopped.headers["location"].startswith("/login")

    assert flash(send(admin, "/admin/users/bob/enable")).startswith("ok: Done: bob is enabled")
    console.signed_in("bob")
    assert [e[0] for e in console.events()][-3:] == [
        "user.disabled",
        "user.enabled",
        "session.started",
    ]


def test_an_admin_cannot_lock_themselves_out(console: Console, admin: TestClient[Litestar]) -> None:
    before = console.count(audit_size())
    page = send(admin, "/admin/users/admin/roles", {"roles": "auditor"})
    assert flash(page) == (
        "error: Refused: roles: you may not take away your own admin role. Fix: keep admin "
        "ticked, or ask another admin to change your roles"
    )
    page = send(admin, "/admin/users/admin/disable")
    assert flash(page).startswith("error: Refused: user admin: you may not disable yourself")
    assert console.count(audit_size()) == before
    assert admin.get("/admin/users").status_code == 200  # still an admin, still signed in


def test_a_token_secret_is_shown_once_works_and_stops_when_revoked(
    console: Console, admin: TestClient[Litestar]
) -> None:
    created = send(admin, "/admin/tokens", {"name": "ci-pipeline", "roles": "ci", "days": "30"})
    assert created.status_code == 201 and created.url.path == "/admin/tokens"
    assert created.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="new-secret"[^>]*>([^<]+)</code>', created.text)
    assert found
    secret = found[1]
    assert secret not in str(created.headers) and "set-cookie" not in created.headers
    token_id = re.search(r"<dt>Id</dt><dd><code>([0-9a-f]+)</code>", created.text)
    assert token_id

    listing = admin.get("/admin/tokens")
    assert (
        secret not in listing.text and "ci-pipeline" in listing.text and "✓ active" in listing.text
    )
    assert "token.created" in [e[0] for e in console.events()]
    assert secret not in str(console.events())

    machine, bearer = TestClient(console.app), {"Authorization": f"Bearer {secret}"}
    me = machine.get("/api/v1/me", headers=bearer)
    assert me.status_code == 200 and me.json()["roles"] == ["ci"]

    revoked = send(admin, f"/admin/tokens/{token_id[1]}/revoke")
    assert flash(revoked) == f"ok: Done: Token {token_id[1]} is revoked: it is refused from now on."
    assert "✗ revoked" in revoked.text
    assert machine.get("/api/v1/me", headers=bearer).status_code == 401

    again = send(admin, f"/admin/tokens/{token_id[1]}/revoke")
    assert flash(again).startswith("error: Refused:")
    bad = send(admin, "/admin/tokens", {"name": "x", "roles": "ci", "days": "soon"})
    assert flash(bad).startswith("error: Refused: days: is 'soon'. Fix: give a whole number")


def test_a_token_answers_to_the_person_named_on_the_form(
    console: Console, admin: TestClient[Litestar]
) -> None:
    """The accountable person: the admin who creates it, or the one named; never a stranger."""
    mine = send(admin, "/admin/tokens", {"name": "mine", "roles": "ci"})
    assert "<dt>Accountable person</dt><dd>admin</dd>" in mine.text
    named = send(admin, "/admin/tokens", {"name": "bobs", "roles": "ci", "owner": "bob"})
    assert named.status_code == 201 and "<dt>Accountable person</dt><dd>bob</dd>" in named.text
    stranger = send(admin, "/admin/tokens", {"name": "x", "roles": "ci", "owner": "eve"})
    assert flash(stranger).startswith("error: Refused: owner: 'eve' is not an active person")
    created = [e[2] for e in console.events() if e[0] == "token.created"]
    assert [(e["name"], e["owner"]) for e in created] == [("mine", "admin"), ("bobs", "bob")]


def test_an_auditor_reads_but_gets_no_forms_and_is_refused(console: Console) -> None:
    audrey = console.signed_in("audrey")
    users = audrey.get("/admin/users")
    assert users.status_code == 200 and "Bob Owner" in users.text
    tokens = audrey.get("/admin/tokens")
    assert tokens.status_code == 200
    roles = audrey.get("/admin/roles")
    assert roles.status_code == 200 and "Audrey Auditor" in roles.text
    for page in (users, tokens):
        assert 'action="/admin' not in page.text and "data-open" not in page.text
    before = console.count(audit_size())
    form = {"username": "eve", "full_name": "Eve", "password": PASSWORD, "roles": "admin"}
    assert send(audrey, "/admin/users", form).status_code == 403
    assert send(audrey, "/admin/users/bob/disable").status_code == 403
    assert send(audrey, "/admin/tokens", {"name": "x", "roles": "ci"}).status_code == 403
    assert console.count(audit_size()) == before


def test_a_business_owner_may_not_see_the_admin_pages(console: Console) -> None:
    bob = console.signed_in("bob")
    for path in ("/admin/users", "/admin/roles", "/admin/tokens"):
        answer = bob.get(path)
        assert answer.status_code == 403 and "may not read" in answer.text, path
    assert 'href="/admin/users"' not in bob.get("/").text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    console: Console, admin: TestClient[Litestar]
) -> None:
    before = console.count(audit_size())
    form = {"username": "eve", "full_name": "Eve", "password": PASSWORD, "roles": "auditor"}
    assert admin.post("/admin/users", data=form).status_code == 403
    assert admin.post("/admin/users", data={**form, "csrf_token": "forged"}).status_code == 403
    assert admin.post("/admin/users/bob/disable", data={}).status_code == 403
    assert console.count(users_named("eve")) == 0
    assert console.count(audit_size()) == before


def test_the_roles_page_shows_what_casbin_allows(
    console: Console, admin: TestClient[Litestar]
) -> None:
    page = admin.get("/admin/roles")
    assert page.status_code == 200
    header = re.search(r"<thead>.*?</thead>", page.text, re.S)
    assert header
    columns = re.findall(r'<th scope="col">([^<]+)</th>', header[0])[1:]
    manage = re.search(
        r'<th scope="row">manage <span class="muted">users</span></th>(.*?)</tr>', page.text, re.S
    )
    assert manage
    cells = re.findall(r"<td>(.*?)</td>", manage[1], re.S)
    assert [c for c, cell in zip(columns, cells, strict=True) if "✓ yes" in cell] == ["admin"]
    check = re.search(
        r'<th scope="row">check <span class="muted">admission</span></th>(.*?)</tr>',
        page.text,
        re.S,
    )
    assert check
    cells = re.findall(r"<td>(.*?)</td>", check[1], re.S)
    assert [c for c, cell in zip(columns, cells, strict=True) if "✓ yes" in cell] == ["serving"]
    assert "Bob Owner" in page.text and "Reads everything" in page.text


# --- workers --------------------------------------------------------------------------


def section(page: httpx.Response, testid: str) -> str:
    """The element a page marks with `data-testid`, up to its end tag."""
    found = re.search(rf'<(\w+) [^>]*data-testid="{testid}"[^>]*>.*?</\1>', page.text, re.S)
    assert found, page.text
    return found[0]


def cells(page: httpx.Response, row_id: str) -> list[str]:
    """The text of each cell of the row `<tr id=row_id>`."""
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    found = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row[1], re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in found]


def failed_check_job(engine: Engine, error: str) -> None:
    """A check job that ended with `error`, on a request of its own (as the job runner
    leaves one that failed for good)."""
    with Session(engine) as session:
        model = Model(name="credit", risk_tier="medium")
        session.add(model)
        session.flush()
        version = ModelVersion(
            model_id=model.id, version="1", artifact_sha256="a" * 64, artifact_uri="file:///m"
        )
        policy = Policy(name="p", version=1, sha256="b" * 64, risk_tier="medium", document={})
        session.add_all([version, policy])
        session.flush()
        request = PromotionRequest(
            id="00000000-0000-0000-0000-000000000001",
            model_version_id=version.id,
            target="production",
            policy_id=policy.id,
            submitter="admin",
            state="blocked",
            inputs={},
        )
        session.add(request)
        session.flush()
        finished = datetime.now(UTC)
        session.add(
            Job(
                request_id=request.id,
                kind="checks",
                status="failed",
                attempts=6,
                error=error,
                finished_at=finished,
            )
        )
        session.commit()


# procrastinate's own function, as `ProcrastinateTaskQueue.defer` calls it
DEFER = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, :lock, :lock,"
    " CAST('{}' AS jsonb), NULL)]::procrastinate_job_to_defer_v1[])"
)


def procrastinate_rows(engine: Engine) -> dict[str, int]:
    """Two workers (one alive and running a check, one silent for an hour), a failed check
    job, and a light task waiting; the ids of the rows the page must show."""
    with engine.begin() as connection:
        alive, silent = (
            connection.execute(
                text("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
            ).scalar_one()
            for _ in range(2)
        )
        connection.execute(
            text(
                "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"
                " WHERE id = :id"
            ),
            {"id": silent},
        )
        jobs = {}
        for name, queue in (("running", "checks"), ("failed", "checks"), ("waiting", "light")):
            values = {"queue": queue, "task": f"governance.{name}", "lock": name}
            jobs[name] = int(connection.execute(DEFER, values).scalar_one()[0])
        connection.execute(
            text(
                "UPDATE procrastinate_jobs SET status = 'doing', worker_id = :worker WHERE id = :id"
            ),
            {"worker": alive, "id": jobs["running"]},
        )
        connection.execute(
            text("UPDATE procrastinate_jobs SET status = 'failed', attempts = 5 WHERE id = :id"),
            {"id": jobs["failed"]},
        )
    return {"alive": alive, "silent": silent, "failed": jobs["failed"]}


def test_the_workers_page_says_tasks_run_in_the_server_when_embedded(
    console: Console, admin: TestClient[Litestar]
) -> None:
    page = admin.get("/admin/workers")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "run inside the server process" in section(page, "mode")
    assert "Running it for an organisation" in page.text
    assert 'data-testid="queues"' not in page.text and 'data-testid="failures"' not in page.text
    assert "No check job has ended with an error." in section(page, "last-check-error")
    # linked from the other admin pages, for admins only
    assert 'href="/admin/workers"' in admin.get("/admin/users").text
    assert 'href="/admin/workers"' not in console.signed_in("audrey").get("/admin/users").text


def test_only_an_admin_may_see_the_workers_page(console: Console) -> None:
    """Not even the auditor, who reads every other admin page: the refusal the admin pages
    give to whoever may not."""
    for username in ("audrey", "bob"):
        answer = console.signed_in(username).get("/admin/workers")
        assert answer.status_code == 403 and "may not manage users" in answer.text, username
        assert "Not allowed" in answer.text


@pytest.mark.postgres
def test_the_workers_page_shows_the_queues_the_workers_and_the_failures(
    workers_console: Console,
) -> None:
    ids = procrastinate_rows(workers_console.engine)
    failed_check_job(workers_console.engine, "RuntimeError: <script>alert(1)</script> & more")
    page = workers_console.signed_in("admin", ADMIN_PASSWORD).get("/admin/workers")
    assert page.status_code == 200
    assert "governance worker" in section(page, "mode")

    assert cells(page, "queue-checks") == ["checks", "0", "1", "1", "0"]
    assert cells(page, "queue-light") == ["light", "1", "0", "0", "0"]

    alive = cells(page, f"worker-{ids['alive']}")
    assert alive[0] == str(ids["alive"]) and alive[1].endswith("UTC")
    assert int(alive[2]) < 60 and alive[3:] == ["1", "✓ alive"]
    silent = cells(page, f"worker-{ids['silent']}")
    assert 3590 <= int(silent[2]) < 3700 and silent[3:] == ["0", "✗ stalled"]

    failure = cells(page, f"failure-{ids['failed']}")
    assert failure[:4] == [str(ids["failed"]), "governance.failed", "checks", "5"]
    assert failure[4].endswith("UTC")  # when procrastinate recorded the failure

    error = section(page, "last-check-error")
    assert "<script>alert" not in page.text
    assert "RuntimeError: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in error
