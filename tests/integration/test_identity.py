"""Who is who (issue 13, items 4 and 5), on both databases.

- casbin subjects live in namespaces (`user:`, `token:`, `role:`): a person whose name is a
  role's name gets nothing from the name, a role change holds at once here and within the
  polling interval in another process, and migration 0006 turns old rules into new ones.
- Segregation of duties compares people: a token answers to a person (its creator or a
  named owner), and that person may not approve what the token registered and submitted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from litestar import Litestar
from litestar.testing import TestClient
from typer.testing import CliRunner

from governance.auth.access import DEFAULT_GRANTS, RULES_CHECK_SECONDS, AccessControl
from governance.bootstrap import Governance
from governance.cli import app as cli
from governance.config import Settings
from governance.connectors.adult import TARGET
from governance.domain.errors import ForbiddenError, InputError
from governance.domain.roles import ROLES
from governance.services.jobs import JobRunner
from governance.services.people import SYSTEM, Principal
from governance.services.workflow import Candidate
from governance.store.database import alembic_config, make_engine
from governance.store.repository import audit_trail
from governance.web.app import create_app
from tests.homes import initialise_home
from tests.service_fixtures import fast_policies

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

PASSWORD = "a-long-test-passphrase"
# A person named like each role, holding only `auditor` (`admin` is init's, demoted later).
NAMED_LIKE_ROLES = [role for role in ROLES if role != "admin"]
# What a name must never give: register a model, submit, manage people and tokens.
WRITES = {
    "register": ("POST", "/api/v1/models", {"json": {"name": "probe", "riskTier": "high"}}),
    "submit": ("POST", "/api/v1/requests", {"data": {"model": "probe"}}),
    "add_user": ("POST", "/api/v1/users", {"json": {"username": "x", "fullName": "X"}}),
    "create_token": ("POST", "/api/v1/tokens", {"json": {"name": "x", "roles": ["admin"]}}),
}


@dataclass
class World:
    governance: Governance
    app: Litestar

    def principal(self, username: str) -> Principal:
        people = self.governance.people
        return people.authenticate(people.sign_in(username, PASSWORD, 1).token)

    @contextmanager
    def client(self, secret: str) -> Iterator[TestClient[Litestar]]:
        """A caller with a bearer secret; the fixture's client alone starts the app."""
        client = TestClient(self.app)
        client.headers["Authorization"] = f"Bearer {secret}"
        yield client

    def session(self, username: str) -> str:
        return str(self.governance.people.sign_in(username, PASSWORD, 1).token)


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    settings = replace(
        Settings.from_env(database_url, tmp_path / "home"),
        policies=fast_policies(tmp_path / "policies"),
    )
    initialise_home(settings, PASSWORD)
    app = create_app(settings, run_jobs=False)
    with TestClient(app):  # changes go through the app's own service: "this process"
        governance = app.state.governance
        governance.people.add_user(SYSTEM, "root", "Root Admin", PASSWORD, ["admin"])
        yield World(governance, app)


# --- item 4: role confusion ---------------------------------------------------------------


def test_a_person_named_like_a_role_gets_nothing_from_the_name(world: World) -> None:
    people = world.governance.people
    for name in NAMED_LIKE_ROLES:
        people.add_user(SYSTEM, name, f"Named {name}", PASSWORD, ["auditor"])
    people.set_roles(world.principal("root"), "admin", ["auditor"])  # `admin`, demoted

    for name in [*NAMED_LIKE_ROLES, "admin"]:
        with world.client(world.session(name)) as client:
            assert client.get("/api/v1/me").json()["roles"] == ["auditor"]
            assert client.get("/api/v1/audit").status_code == 200  # what auditor gives
            for what, (method, path, body) in WRITES.items():
                answer = client.request(method, path, **body)  # type: ignore[arg-type]
                assert answer.status_code == 403, f"{name} may {what}: {answer.text}"
                assert "may not" in answer.json()["detail"]
        for role in ROLES:
            if role != "auditor":
                assert role not in world.governance.access.roles_of(name)


def test_a_role_change_holds_at_once_here_and_soon_in_another_process(world: World) -> None:
    """The demoted `admin` is refused at once by this process, and by a second enforcer
    (another server process) within its polling interval; a role given holds the same way."""
    other = AccessControl(world.governance.engine)  # built before the change
    admin = world.principal("admin")
    assert other.allowed(admin.subjects, "users", "manage")

    world.governance.people.set_roles(world.principal("root"), "admin", ["auditor"])
    with world.client(world.session("admin")) as client:
        refused = client.post("/api/v1/users", json={"username": "x", "fullName": "X"})
    assert refused.status_code == 403, refused.text
    within(lambda: not other.allowed(admin.subjects, "users", "manage"))
    assert other.roles_of("admin") == ["auditor"]

    world.governance.people.set_roles(world.principal("root"), "admin", ["admin"])
    within(lambda: other.allowed(admin.subjects, "users", "manage"))


def within(holds: object) -> None:
    deadline = time.monotonic() + RULES_CHECK_SECONDS + 2
    while not holds():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the other process still answers as before"
        time.sleep(0.05)


def test_migration_0006_namespaces_old_rules_and_gives_tokens_a_person(
    empty_database_url: str,
) -> None:
    """A database at 0005 with rules in the old form (a user named `ci` holding auditor),
    tokens created by a person, by the CLI and by a token, and a model a token registered
    and submitted: after the upgrade each decision is by role, not by name, each token
    answers to a person, and the downgrade gives the old form back."""
    config = alembic_config(empty_database_url)
    command.upgrade(config, "0005")
    engine = make_engine(empty_database_url)
    try:
        tables = sa.MetaData()
        tables.reflect(engine)
        t = tables.tables
        now = datetime.now(UTC)
        with engine.begin() as db:
            for username, role in (
                ("admin", "admin"),
                ("ci", "auditor"),
                ("dana", "data_scientist"),
            ):
                db.execute(
                    t["user_account"].insert(),
                    {"username": username, "full_name": username, "password_hash": "x",
                     "disabled": False, "created_at": now},
                )  # fmt: skip
                db.execute(t["casbin_rule"].insert(), {"ptype": "g", "v0": username, "v1": role})
            for role, grants in DEFAULT_GRANTS.items():
                for resource, action in grants:
                    db.execute(
                        t["casbin_rule"].insert(),
                        {"ptype": "p", "v0": role, "v1": resource, "v2": action},
                    )
            for token_id, owner, roles, revoked in (
                ("tokcli", "governance", ["ci"], None),
                ("tokdana", "dana", ["serving"], None),
                ("tokchild", "token:tokcli", ["ci"], None),
                ("tokgone", "dana", ["ci"], now),
            ):
                db.execute(
                    t["api_token"].insert(),
                    {"id": token_id, "name": token_id, "owner": owner, "roles": roles,
                     "digest": token_id.ljust(64, "0"), "revoked_at": revoked, "created_at": now},
                )  # fmt: skip
            model_id = db.execute(
                t["model"].insert(),
                {
                    "name": "income",
                    "risk_tier": "high",
                    "owner": "token:tokdana",
                    "created_at": now,
                },
            ).inserted_primary_key[0]
            version_id = db.execute(
                t["model_version"].insert(),
                {"model_id": model_id, "version": "1", "artifact_sha256": "a" * 64,
                 "artifact_uri": "file:///m", "created_at": now},
            ).inserted_primary_key[0]  # fmt: skip
            policy_id = db.execute(
                t["policy"].insert(),
                {"name": "p", "version": 1, "sha256": "b" * 64, "risk_tier": "high",
                 "document": {}, "created_at": now},
            ).inserted_primary_key[0]  # fmt: skip
            for request_id, submitter in (("r-token", "token:tokdana"), ("r-conn", "connector:x")):
                db.execute(
                    t["promotion_request"].insert(),
                    {"id": request_id, "model_version_id": version_id, "target": "production",
                     "policy_id": policy_id, "submitter": submitter, "state": "submitted",
                     "inputs": {}, "created_at": now, "updated_at": now},
                )  # fmt: skip

        command.upgrade(config, "0006")
        access = AccessControl(engine)
        assert not access.allowed(("user:ci",), "models", "register")
        assert not access.allowed(("user:ci",), "requests", "submit")
        assert access.allowed(("user:ci",), "audit", "read")
        assert access.roles_of("ci") == ["auditor"]
        assert access.allowed(("user:dana",), "requests", "submit")
        assert access.allowed(("user:admin",), "users", "manage")
        assert access.allowed(("token:tokcli",), "requests", "submit")
        assert access.allowed(("token:tokdana",), "admission", "check")
        assert not access.allowed(("token:tokdana",), "requests", "submit")
        assert not access.allowed(("token:tokgone",), "requests", "submit")  # revoked
        assert not access.allowed(("ci",), "models", "register")  # a bare name is nobody
        with engine.connect() as db:
            owners = dict(db.execute(sa.select(t["api_token"].c.id, t["api_token"].c.owner)).all())
            assert owners == {
                "tokcli": "admin",  # the CLI made it: the first admin
                "tokdana": "dana",
                "tokchild": "admin",  # made by tokcli: its person
                "tokgone": "dana",
            }
            requests = sa.text("SELECT id, submitter, submitter_person FROM promotion_request")
            assert sorted(db.execute(requests).all()) == [
                ("r-conn", "connector:x", None),
                ("r-token", "token:tokdana", "dana"),
            ]
            assert db.execute(sa.text("SELECT owner FROM model")).scalar() == "dana"

        command.downgrade(config, "0005")
        with engine.connect() as db:
            rules = db.execute(sa.text("SELECT ptype, v0, v1 FROM casbin_rule")).all()
            columns = [c["name"] for c in sa.inspect(db).get_columns("promotion_request")]
        assert ("g", "ci", "auditor") in rules and ("p", "admin", "users") in rules
        assert not any(":" in (v0 or "") + (v1 or "") for _, v0, v1 in rules)
        assert "submitter_person" not in columns
    finally:
        engine.dispose()


# --- item 5: segregation of duties between people ------------------------------------------


@pytest.mark.parametrize("accountable", ["creator", "named owner"])
def test_a_person_may_not_approve_what_their_token_submitted(
    world: World, demo_dir: Path, accountable: str
) -> None:
    """A `ci` token registers and submits; the person it answers to holds data_scientist
    and business_owner and tries to approve: refused (403) for segregation of duties."""
    people = world.governance.people
    roles = ["data_scientist", "business_owner"]
    if accountable == "creator":  # pat issues the token: pat must hold admin to give ci
        people.add_user(SYSTEM, "pat", "Pat Both", PASSWORD, [*roles, "admin"])
        token = people.create_token(world.principal("pat"), "pipeline", ["ci"], 1)
    else:
        people.add_user(SYSTEM, "pat", "Pat Both", PASSWORD, roles)
        token = people.create_token(world.principal("root"), "pipeline", ["ci"], 1, owner="pat")
    people.add_user(SYSTEM, "maria", "Maria Risk", PASSWORD, ["model_risk_officer"])

    with world.client(token.token) as ci:
        registered = ci.post("/api/v1/models", json={"name": "income", "riskTier": "high"})
        assert registered.status_code == 201, registered.text
    workflow = world.governance.workflow
    request = workflow.submit(
        people.authenticate(token.token),
        Candidate(
            model="income",
            version="2",
            target="production",
            label=TARGET,
            artifact=demo_dir / "income-reweighed.skops",
            data=demo_dir / "test.parquet",
            reference=demo_dir / "train.parquet",
        ),
    )
    JobRunner(workflow).run_pending()
    assert workflow.get_request(request.id).state == "awaiting_approval"

    with world.client(world.session("pat")) as client:
        body = {"meaning": "approve", "comment": "looks fine", "password": PASSWORD}
        refused = client.post(f"/api/v1/requests/{request.id}/signatures", json=body)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "segregation of duties" in refused.json()["detail"]
    checked = workflow.get_request(request.id)
    assert checked.submitter == f"token:{token.id}"
    assert checked.submitter_person == "pat"  # recorded with the request
    assert checked.owner == "pat" == registered.json()["owner"]  # a person, not `token:…`
    assert token.owner == "pat"
    trail = audit_trail(world.governance.engine)
    [submitted] = [e.event for e in trail if e.event.action == "request.submitted"]
    assert submitted.actor == f"token:{token.id}"
    assert submitted.payload["submitter_person"] == "pat"
    # somebody else may: the rule is about pat, not about tokens
    workflow.sign(world.principal("maria"), request.id, "approve", "checked", PASSWORD)
    with pytest.raises(ForbiddenError, match="segregation of duties"):
        workflow.sign(world.principal("pat"), request.id, "approve", "mine", PASSWORD)


def test_a_token_names_an_active_person_as_its_owner(world: World) -> None:
    people = world.governance.people
    root = world.principal("root")
    people.set_disabled(root, "admin", True)
    for owner in ("nobody", "token:abc", "governance", "admin"):  # admin: disabled
        with pytest.raises(InputError) as refused:
            people.create_token(root, "pipeline", ["ci"], 1, owner=owner)
        assert refused.value.subject == "owner"
    people.set_disabled(root, "admin", False)
    assert people.create_token(root, "pipeline", ["ci"], 1).owner == "root"  # its creator
    assert people.create_token(SYSTEM, "cli", ["ci"], 1).owner == "admin"  # the first admin
    with world.client(world.session("root")) as client:
        answer = client.post(
            "/api/v1/tokens", json={"name": "p", "roles": ["ci"], "owner": "nobody"}
        )
    assert answer.status_code == 422 and answer.json()["field"] == "owner"
    listed = {t.name: t.owner for t in people.list_tokens()}
    assert listed == {"pipeline": "root", "cli": "admin"}


def test_a_model_owner_must_be_a_person(world: World) -> None:
    people = world.governance.people
    token = people.create_token(world.principal("root"), "pipeline", ["ci"], 1)
    with world.client(token.token) as ci:
        for owner in ("nobody", f"token:{token.id}"):
            body = {"name": "income", "riskTier": "high", "owner": owner}
            refused = ci.post("/api/v1/models", json=body)
            assert refused.status_code == 422, refused.text  # bad input, mapped centrally
            assert refused.json()["field"] == "owner"
        assert ci.get("/api/v1/models").json() == []  # nothing half-written
        body = {"name": "income", "riskTier": "high", "owner": "admin"}
        assert ci.post("/api/v1/models", json=body).json()["owner"] == "admin"


def test_the_cli_names_the_accountable_person(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = world.governance.settings
    monkeypatch.setenv("GOVERNANCE_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "200")
    create = ["token", "create", "pipeline", "--role", "ci", "--database", settings.database_url]
    runner = CliRunner()
    named = runner.invoke(cli, [*create, "--owner", "root"])
    assert named.exit_code == 0 and "accountable: root" in named.output
    default = runner.invoke(cli, create)
    assert default.exit_code == 0 and "accountable: admin" in default.output  # the first admin
    refused = runner.invoke(cli, [*create, "--owner", "nobody"])
    assert refused.exit_code == 2 and "owner: 'nobody' is not an active person" in refused.output
    assert "Traceback" not in refused.output
    listed = runner.invoke(cli, ["token", "list", "--database", settings.database_url])
    assert listed.exit_code == 0 and "accountable" in listed.output
    assert re.findall(r"pipeline\W+(\w+)", listed.output) == ["root", "admin"]
