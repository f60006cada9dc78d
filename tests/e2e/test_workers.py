"""Tasks on `governance worker` processes over a real PostgreSQL (GOVERNANCE_TASKS=workers):
the API processes only queue; workers killed with `kill -9` or stopped with SIGTERM leave
nothing half done, and every request gets exactly one verdict."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from governance.workers import conninfo
from tests.processes import start_group, stop_group
from tests.service_fixtures import (
    PASSWORD,
    Service,
    free_port,
    register,
    start_service,
    stop_service,
    submit,
    wait_for,
)

pytestmark = pytest.mark.postgres
pytest_plugins = ["tests.db_fixtures", "tests.service_fixtures"]

STALLED_SECONDS = "4"  # a worker silent this long is taken for dead (the floor)
WORKERS_ENV = {"GOVERNANCE_TASKS": "workers", "GOVERNANCE_WORKER_STALLED_SECONDS": STALLED_SECONDS}
DECIDED = ("awaiting_approval", "blocked")
_logs = itertools.count()


class Workers:
    """`governance worker` processes of one service, each in a process group of its own."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.logs.append(self.service.home / f"worker-{next(_logs)}.log")
        log = self.logs[-1].open("wb")
        command = [sys.executable, "-m", "governance.cli", "worker", *args]
        env = {**self.service.env(), **WORKERS_ENV}
        process = start_group(command, env=env, log=log)
        self.processes.append(process)
        return process

    def log(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes:
            stop_group(process)


@pytest.fixture(scope="module")
def workers_service(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One service in workers mode for the module's tests: its server runs no task."""
    from tests.db_fixtures import new_postgres_schema

    home = tmp_path_factory.mktemp("workers")
    running = start_service(home / "home", new_postgres_schema(postgres_database), env=WORKERS_ENV)
    yield running
    stop_service(running)


@pytest.fixture
def workers(workers_service: Service) -> Iterator[Workers]:
    started = Workers(workers_service)
    yield started
    started.stop_all()


def query(service: Service, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo(service.database_url), autocommit=True) as connection:
        return connection.execute(statement, params).fetchall()  # type: ignore[arg-type]


def job_of(service: Service, request_id: str) -> tuple[str, str | None]:
    [(status, claimed_by)] = query(
        service, "SELECT status, claimed_by FROM job WHERE request_id = %s", request_id
    )
    return status, claimed_by


def verdicts(service: Service, request_id: str) -> tuple[int, int]:
    """(gate decisions, verdict audit events) recorded for the request."""
    [(decisions,)] = query(
        service, "SELECT count(*) FROM gate_decision WHERE effect_key = %s", f"checks:{request_id}"
    )
    [(events,)] = query(
        service,
        "SELECT count(*) FROM audit_event WHERE payload->>'request_id' = %s"
        " AND action IN ('request.checks_passed', 'request.checks_blocked')",
        request_id,
    )
    return int(decisions), int(events)


def audit_verifies(service: Service) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "governance.cli", "audit", "verify"],
        env=service.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def wait_running(service: Service, request_id: str) -> str:
    """The host:pid of the worker that took the request's check job."""

    def probe() -> str | None:
        status, claimed_by = job_of(service, request_id)
        return claimed_by if status == "running" else None

    return wait_for(probe, "the check job starting", 120)


def test_a_worker_killed_mid_check_leaves_the_job_to_another(
    workers_service: Service, workers: Workers, demo_dir: Path
) -> None:
    service = workers_service
    register(service, "killed")
    first = workers.start()
    request_id = submit(service, demo_dir, "income-reweighed", "1", name="killed")["id"]
    runner = wait_running(service, request_id)
    assert runner.endswith(f":{first.pid}"), runner  # only the first worker was there
    second = workers.start("--concurrency", "2")
    wait_for(lambda: len(query(service, "SELECT id FROM procrastinate_workers")) >= 4 or None,
             "the second worker registering", 60)  # fmt: skip
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its check process
    first.wait()

    decided = service.wait_for_state(request_id, *DECIDED, timeout=180)
    assert decided["state"] == "awaiting_approval", decided
    status, claimed_by = job_of(service, request_id)
    assert status == "done" and claimed_by.endswith(f":{second.pid}"), (status, claimed_by)
    assert verdicts(service, request_id) == (1, 1)
    [(starts,)] = query(
        service,
        "SELECT count(*) FROM audit_event WHERE payload->>'request_id' = %s"
        " AND action = 'request.start_checks'",
        request_id,
    )
    assert starts == 1
    assert "queued again" in workers.log(1)
    audit_verifies(service)


def test_sigterm_lets_the_running_check_finish_then_exits(
    workers_service: Service, workers: Workers, demo_dir: Path
) -> None:
    service = workers_service
    register(service, "stopped")
    worker = workers.start()
    request_id = submit(service, demo_dir, "income-reweighed", "1", name="stopped")["id"]
    wait_running(service, request_id)
    os.kill(worker.pid, signal.SIGTERM)  # as Kubernetes does: the worker, not its group
    assert worker.wait(timeout=180) == 0, workers.log(0)
    assert service.wait_for_state(request_id, *DECIDED, timeout=5)["state"] == "awaiting_approval"
    assert job_of(service, request_id)[0] == "done"
    assert verdicts(service, request_id) == (1, 1)
    [(registered,)] = query(service, "SELECT count(*) FROM procrastinate_workers")
    assert registered == 0  # it said goodbye: no job waits for it to be taken for dead


def test_the_api_only_queues(workers_service: Service, demo_dir: Path) -> None:
    """No worker: the request waits, queued, however long; the server runs nothing."""
    service = workers_service
    register(service, "queued")
    request_id = submit(service, demo_dir, "income-reweighed", "1", name="queued")["id"]
    time.sleep(3)
    assert service.wait_for_state(request_id, "submitted", timeout=1)["state"] == "submitted"
    assert job_of(service, request_id) == ("queued", None)
    [(queue, lock, status)] = query(
        service,
        "SELECT queue_name, lock, status FROM procrastinate_jobs WHERE task_name ="
        " 'governance.checks' AND queueing_lock = %s",
        request_id,
    )
    assert (queue, lock, status) == ("checks", request_id, "todo")


def test_worker_check_says_whether_a_worker_is_alive(
    workers_service: Service, workers: Workers
) -> None:
    command = [sys.executable, "-m", "governance.cli", "worker", "--check"]
    env = {**workers_service.env(), **WORKERS_ENV}
    none = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert none.returncode == 1 and "no worker" in none.stderr, none.stdout + none.stderr
    workers.start("--queues", "light")
    wait_for(lambda: query(workers_service, "SELECT id FROM procrastinate_workers") or None,
             "the worker registering", 60)  # fmt: skip
    alive = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert alive.returncode == 0 and "1 worker(s) alive" in alive.stdout, alive.stdout


def test_a_worker_needs_the_workers_setting(workers_service: Service) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "governance.cli", "worker", "--queues", "checks,heavy"],
        env={**workers_service.env(), **WORKERS_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--queues" in done.stderr, done.stderr
    embedded = subprocess.run(
        [sys.executable, "-m", "governance.cli", "worker"],
        env={**workers_service.env(), "GOVERNANCE_TASKS": "embedded"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert embedded.returncode == 2 and "GOVERNANCE_TASKS" in embedded.stderr, embedded.stderr


def submit_many(service: Service, demo_dir: Path, name: str, count: int) -> list[str]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        answers = pool.map(
            lambda version: submit(service, demo_dir, "income-reweighed", str(version), name=name),
            range(1, count + 1),
        )
        return [answer["id"] for answer in answers]


def register_tier(service: Service, name: str, tier: str) -> None:
    with service.client("dana") as client:
        response = client.post("/api/v1/models", json={"name": name, "riskTier": tier})
    assert response.status_code == 201, response.text


def test_two_api_processes_and_three_workers_decide_sixty_submissions_once_each(
    postgres_database: str, tmp_path: Path, demo_dir: Path
) -> None:
    """60 submissions at once to 2 API processes, checked by 3 worker processes: 60
    verdicts, none twice, no job lost, and the audit trail verifies."""
    from tests.db_fixtures import new_postgres_schema

    url = new_postgres_schema(postgres_database)
    service = start_service(tmp_path / "home", url, workers=2, env=WORKERS_ENV)
    workers = Workers(service)
    try:
        register_tier(service, "fleet", "low")
        for _ in range(3):
            workers.start("--concurrency", "2")
        started = time.monotonic()
        request_ids = submit_many(service, demo_dir, "fleet", 60)
        assert len(set(request_ids)) == 60
        for request_id in request_ids:
            left = max(1.0, 600 - (time.monotonic() - started))
            assert service.wait_for_state(request_id, *DECIDED, timeout=left)["state"] in DECIDED
        elapsed = time.monotonic() - started
        rows = query(
            service,
            "SELECT effect_key, count(*) FROM gate_decision GROUP BY effect_key",
        )
        assert sorted(key for key, _ in rows) == sorted(f"checks:{r}" for r in request_ids)
        assert {count for _, count in rows} == {1}
        jobs = query(
            service,
            "SELECT status, count(*) FROM procrastinate_jobs WHERE task_name ="
            " 'governance.checks' GROUP BY status",
        )
        assert jobs == [("succeeded", 60)]
        runners = query(service, "SELECT DISTINCT split_part(claimed_by, ':', 2) FROM job")
        pids = {str(p.pid) for p in workers.processes}
        assert {pid for (pid,) in runners} <= pids and len(runners) >= 2, runners
        audit_verifies(service)
        print(f"60 checks on 3 workers in {elapsed:.1f} s")
    finally:
        workers.stop_all()
        stop_service(service)


class PrivateCluster:
    """A PostgreSQL cluster of the test's own (`initdb`, its own port and directory), so
    that restarting it disturbs no one else. As root it runs as the `postgres` user, as
    PostgreSQL requires."""

    def __init__(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not binaries:
            raise pytest.fail.Exception(
                "no initdb under /usr/lib/postgresql: install the postgresql package",
                pytrace=False,
            )
        self.bin = binaries[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="governance-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_owner, str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{tool}: {done.stdout}{done.stderr}"

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", action, "-D", str(self.data), "-w", "-l", log, "-o", options, *extra)

    def destroy(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def test_workers_and_api_ride_out_a_postgresql_restart(tmp_path: Path, demo_dir: Path) -> None:
    """PostgreSQL restarted while check jobs run: the workers and the API reconnect by
    themselves, and every request gets its one verdict."""
    cluster = PrivateCluster()
    service = None
    workers = None
    try:
        cluster.pg_ctl("start")
        service = start_service(tmp_path / "home", cluster.url, env=WORKERS_ENV)
        workers = Workers(service)
        register_tier(service, "restart", "low")
        for _ in range(2):
            workers.start()
        request_ids = submit_many(service, demo_dir, "restart", 12)
        wait_for(lambda: query(service, "SELECT 1 FROM job WHERE status = 'done'") or None,
                 "a first verdict", 120)  # fmt: skip
        cluster.pg_ctl("restart", "-m", "fast")  # drops every connection, mid-work
        for request_id in request_ids:
            assert service.wait_for_state(request_id, *DECIDED, timeout=240)["state"] in DECIDED
        after = submit(service, demo_dir, "income-reweighed", "13", name="restart")["id"]
        assert service.wait_for_state(after, *DECIDED, timeout=120)["state"] in DECIDED
        for request_id in [*request_ids, after]:
            assert verdicts(service, request_id) == (1, 1), request_id
        assert all(p.poll() is None for p in workers.processes), workers.log(0)
        assert all("stopped by itself; a new one" in workers.log(i) for i in (0, 1))
        audit_verifies(service)
    finally:
        if workers is not None:
            workers.stop_all()
        if service is not None:
            stop_service(service)
        cluster.destroy()


def restart_server(service: Service) -> Service:
    """`governance serve` again on the service's home and database (a new port)."""
    port = free_port()
    log = (service.home / "server-again.log").open("wb")
    env = {**service.env(), **WORKERS_ENV, "GOVERNANCE_POLICIES": str(service.home / "policies")}
    command = [sys.executable, "-m", "governance.cli", "serve", "--port", str(port)]
    process = start_group(command, env=env, log=log)
    again = Service(f"http://127.0.0.1:{port}", service.home, service.database_url, process,
                    service.tokens)  # fmt: skip
    wait_for(lambda: _ready(again) or None, "the server answering again", 60)
    return again


def _ready(service: Service) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"{service.url}/ready", timeout=2).status_code == 200
    return False


def test_an_api_process_killed_during_promotions_leaves_each_whole_or_undone(
    postgres_database: str, tmp_path: Path, demo_dir: Path
) -> None:
    """`kill -9` of the API while promotions are in flight: afterwards each request is
    promoted with its signed decision and its audit event, or still approved with neither;
    admission answers from that state."""
    from tests.db_fixtures import new_postgres_schema

    service = start_service(
        tmp_path / "home", new_postgres_schema(postgres_database), workers=2, env=WORKERS_ENV
    )
    workers = Workers(service)
    again = None
    try:
        register_tier(service, "promo", "low")
        workers.start("--concurrency", "2")
        request_ids = submit_many(service, demo_dir, "promo", 16)
        for request_id in request_ids:
            assert service.wait_for_state(request_id, *DECIDED)["state"] == "awaiting_approval"
            with service.client("bob") as client:
                body = {"meaning": "approve", "comment": "bob read it", "password": PASSWORD}
                signed = client.post(f"/api/v1/requests/{request_id}/signatures", json=body)
            assert signed.json()["state"] == "approved", signed.text

        def promote(request_id: str) -> int | None:
            with contextlib.suppress(httpx.TransportError), service.client("dana") as client:
                return client.post(f"/api/v1/requests/{request_id}/promote").status_code
            return None

        with ThreadPoolExecutor(len(request_ids)) as pool:
            answers = [pool.submit(promote, r) for r in request_ids]
            for answer in as_completed(answers):  # the first promotion through: kill
                if answer.result() == 200:
                    break
            os.killpg(service.process.pid, signal.SIGKILL)
            codes = [answer.result() for answer in answers]
        service.process.wait()
        assert None in codes, f"the kill came after every promotion: {codes}"

        again = restart_server(service)
        states = {}
        for request_id in request_ids:
            with again.client("audrey") as client:
                request = client.get(f"/api/v1/requests/{request_id}").json()
            states[request_id] = request["state"]
            assert request["state"] in ("approved", "promoted"), request
            promoted = [d for d in request["decisions"] if d["decision"] == "promoted"]
            [(events,)] = query(
                again,
                "SELECT count(*) FROM audit_event WHERE action = 'request.promote'"
                " AND payload->>'request_id' = %s",
                request_id,
            )
            assert len(promoted) == events == (request["state"] == "promoted"), request_id
            with again.client("serving") as client:
                answer = client.get(f"/api/v1/admission/promo/{request['version']}").json()
            assert (answer["decision"], answer["state"]) == ("allow", request["state"])
        assert "promoted" in states.values(), states
        audit_verifies(again)
    finally:
        workers.stop_all()
        stop_service(again or service)
        if again is not None:
            stop_service(service)
