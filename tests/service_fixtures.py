"""A real service for tests: `governance init`, people for every role, then `governance
serve` in its own process on a free loopback port, talked to over HTTP.

Load with `pytest_plugins = ["tests.db_fixtures", "tests.service_fixtures"]`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.connectors.adult import TARGET
from governance.resources import PACKAGED_POLICIES
from governance.services.people import SYSTEM, Principal
from tests.db_fixtures import new_postgres_schema
from tests.homes import initialise_home
from tests.processes import start_group, stop_group

T = TypeVar("T")
PASSWORD = "a-long-test-passphrase"
# One person per human role, and some for the segregation-of-duties and race cases.
PEOPLE = {
    "dana": ("Dana Scientist", ["data_scientist"]),
    "maria": ("Maria Risk", ["model_risk_officer"]),
    "bob": ("Bob Owner", ["business_owner"]),
    "bea": ("Bea Owner", ["business_owner"]),
    "carl": ("Carl Chief", ["chief_risk_officer"]),
    "audrey": ("Audrey Auditor", ["auditor"]),
    "sam": ("Sam Both", ["data_scientist", "model_risk_officer"]),
}
MACHINES = {"ci": ["ci"], "serving": ["serving"]}


@dataclass
class Service:
    url: str
    home: Path
    database_url: str
    process: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kwargs)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GOVERNANCE_HOME": str(self.home),
            "GOVERNANCE_DATABASE_URL": self.database_url,
        }

    def wait_for_state(self, request_id: str, *states: str, timeout: float = 300) -> dict[str, Any]:
        """Poll until the request reaches one of `states` (check jobs run in the server)."""
        deadline = time.monotonic() + timeout
        with self.client("audrey") as client:
            while True:
                body = client.get(f"/api/v1/requests/{request_id}").json()
                if body["state"] in states:
                    return body
                if time.monotonic() > deadline:
                    raise AssertionError(f"request stuck in {body['state']}: {body}")
                time.sleep(0.3)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fast_policies(directory: Path) -> Path:
    """The shipped policies with smaller samples (SHAP on 100 rows instead of 2,000, 50
    bootstrap draws instead of 200): the same checks and rules, a check job of seconds
    instead of a minute."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in PACKAGED_POLICIES.glob("*.yaml"):
        text = (
            source.read_text()
            .replace("sampleSize: 2000", "sampleSize: 100")
            .replace("samples: 200,", "samples: 50,")
        )
        (directory / source.name).write_text(text)
    return directory


def start_service(
    home: Path, database_url: str, workers: int = 1, env: dict[str, str] | None = None
) -> Service:
    """Initialise, add the people and tokens, and serve (with `env` added to its
    environment); fails with the server's log when it does not come up."""
    policies = fast_policies(home / "policies")
    settings = replace(Settings.from_env(database_url, home), policies=policies)
    initialise_home(settings, PASSWORD)
    governance = open_governance(settings)
    tokens = {}
    try:
        for username, (full_name, roles) in PEOPLE.items():
            governance.people.add_user(SYSTEM, username, full_name, PASSWORD, roles)
        for name, roles in MACHINES.items():
            tokens[name] = governance.people.create_token(SYSTEM, name, roles, 30).token
        for username in ["admin", *PEOPLE]:
            tokens[username] = governance.people.sign_in(username, PASSWORD, 8).token
    finally:
        governance.close()
    port = free_port()
    log = (home / "server.log").open("wb")
    env = {
        **os.environ,
        "GOVERNANCE_HOME": str(home),
        "GOVERNANCE_DATABASE_URL": database_url,
        "GOVERNANCE_POLICIES": str(policies),
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "governance.cli", "serve",
        "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    process = start_group(command, env=env, log=log)
    service = Service(f"http://127.0.0.1:{port}", home, database_url, process, tokens)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{service.url}/ready", timeout=2).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_service(service)
            output = (home / "server.log").read_text(errors="replace")
            raise pytest.fail.Exception(
                f"governance serve did not become ready:\n{output}", pytrace=False
            )
        time.sleep(0.2)


def stop_service(service: Service) -> None:
    """Stop the server and its worker processes (its own process group)."""
    stop_group(service.process)


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """A running service on each backend in turn."""
    running = start_service(tmp_path / "home", database_url)
    yield running
    stop_service(running)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One running service per backend for a test module, for tests that each work on a
    model of their own and assert nothing about the service as a whole (a start, with its
    check processes, costs about 10 s of CPU)."""
    home = tmp_path_factory.mktemp(f"service-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'governance.db'}"
    else:
        url = new_postgres_schema(request.getfixturevalue("postgres_database"))
    running = start_service(home / "home", url)
    yield running
    stop_service(running)


def submit(
    service: Service,
    demo_dir: Path,
    model: str,
    version: str,
    who: str = "dana",
    name: str = "income",
    **extra: str,
) -> dict:
    """Submit the demo's `model` file as version `version` of the registered model `name`."""
    files = {
        "artifact": (f"{model}.skops", (demo_dir / f"{model}.skops").read_bytes()),
        "data": ("test.parquet", (demo_dir / "test.parquet").read_bytes()),
        "reference": ("train.parquet", (demo_dir / "train.parquet").read_bytes()),
    }
    form = {"model": name, "version": version, "label": TARGET, "target": "production", **extra}
    with service.client(who) as client:
        response = client.post("/api/v1/requests", data=form, files=files)
    assert response.status_code == 202, response.text
    return response.json()


def register(service: Service, name: str = "income") -> None:
    with service.client("dana") as client:
        response = client.post("/api/v1/models", json={"name": name, "riskTier": "high"})
    assert response.status_code == 201, response.text


def wait_for(probe: Callable[[], T | None], what: str, seconds: float = 90) -> T:
    """Poll `probe` until it answers something other than None (background work)."""
    deadline = time.monotonic() + seconds
    while (value := probe()) is None:
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.3)
    return value


def first_request(service: Service, model: str) -> str | None:
    """The id of the model's newest request, once there is one."""
    with service.client("audrey") as api:
        items = api.get("/api/v1/requests", params={"model": model}).json()["items"]
    return items[0]["id"] if items else None


def approve_and_promote(service: Service, request_id: str) -> None:
    """maria and bob sign, dana promotes: the high-risk policy's quorum, over HTTP."""
    for who in ("maria", "bob"):
        with service.client(who) as api:
            body = {"meaning": "approve", "comment": "reviewed", "password": PASSWORD}
            signed = api.post(f"/api/v1/requests/{request_id}/signatures", json=body)
            assert signed.status_code == 200, signed.text
    with service.client("dana") as api:
        promoted = api.post(f"/api/v1/requests/{request_id}/promote")
        assert promoted.status_code == 200, promoted.text


def open_with_people(
    database_url: str, tmp_path: Path, connectors: Path | None = None
) -> tuple[Governance, dict[str, Principal]]:
    """The service in-process (fast policies, `connectors` if given), initialised, with
    PEOPLE added and each signed in: who the workflow's calls are made as."""
    settings = replace(
        Settings.from_env(database_url, tmp_path / "home"),
        policies=fast_policies(tmp_path / "policies"),
        connectors=connectors,
    )
    initialise_home(settings, PASSWORD)
    governance = open_governance(settings)
    people = {}
    for username, (full_name, roles) in PEOPLE.items():
        governance.people.add_user(SYSTEM, username, full_name, PASSWORD, roles)
        token = governance.people.sign_in(username, PASSWORD, 8).token
        people[username] = governance.people.authenticate(token)
    return governance, people
