"""Benchmark: tasks in the server process against tasks on `governance worker` processes.

    apt-get install -y wrk          # the load generator (C); the script stops without it
    .venv/bin/python bench/workers.py [--database postgresql://postgres@127.0.0.1:5432/postgres]
        [--duration 2] [--repeat 8] [--checks 24] [--workers 1,2,3]

1. A fresh PostgreSQL database (dropped at the end) with `governance init`, people, and a
   promoted low-risk model that admission allows, made through the HTTP API of a first
   server, as a user would: a `serving` token asks admission about it.
2. Admission under check load, in two modes, each with `governance serve --workers 2`:
   - embedded (GOVERNANCE_TASKS=embedded): the server runs the check job itself;
   - workers (GOVERNANCE_TASKS=workers): the server only queues, and one
     `nice -n 19 governance worker` runs the check (the worker and its check processes
     carry that nice into their own sessions' autogroups: `isolation.keep_priority`).
   wrk (one thread, 32 connections, on the same 2 cores) drives the admission endpoint,
   idle `--repeat` times, then while a check job of the demo's full Adult model under the
   shipped high-risk policy runs (the runs that ended after the check did are dropped and
   made again with the next check).
3. Check throughput: `--checks` submissions at once of the demo's Adult model under the
   low-risk policy, checked by 1, 2 and 3 worker processes (concurrency 1 each), after a
   warm-up round: checks per minute from the first submission to the last verdict.

Prints the tables; writes the figures to bench/out/workers.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PASSWORD = "bench-people-passphrase"
WRK_THREADS, WRK_CONNECTIONS = 1, 32


@dataclass
class Run:
    mode: str
    load: str  # idle | check
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass
class Throughput:
    workers: int
    checks: int
    seconds: float  # from the first submission to the last verdict
    submit_seconds: float  # sending the submissions, one after another
    run_seconds: float  # from the first job taken to the last job finished (the job table)

    @property
    def per_minute(self) -> float:
        return self.checks / self.seconds * 60


@contextlib.contextmanager
def database(server: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"governance_bench_{secrets.token_hex(6)}"
    maintenance = make_url(server).set(drivername="postgresql")
    conninfo = maintenance.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield maintenance.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            connection.execute(drop)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """`governance serve --workers 2` and its worker processes, each in a session of its
    own, with the mode's settings."""

    def __init__(self, env: dict[str, str], work: Path, mode: str) -> None:
        self.env = {**env, "GOVERNANCE_TASKS": mode}
        self.work = work
        self.mode = mode
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []
        command = ["serve", "--port", str(self.port), "--workers", "2"]
        self.server = self._start(command, f"server-{mode}.log")
        deadline = time.monotonic() + 90
        while not self._ready():
            if time.monotonic() > deadline or self.server.poll() is not None:
                raise SystemExit((work / f"server-{mode}.log").read_text(errors="replace"))
            time.sleep(0.3)

    def _ready(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(self.url + "/ready", timeout=2).status_code == 200
        return False

    def _start(self, args: list[str], log: str, nice: int = 0) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "governance.cli", *args]
        if nice:
            command = ["nice", "-n", str(nice), *command]
        with (self.work / log).open("ab") as stream:
            process = subprocess.Popen(
                command, env=self.env, cwd=self.work, stdout=stream,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def worker(self, nice: int = 0) -> subprocess.Popen[bytes]:
        return self._start(["worker"], f"worker-{len(self.processes)}.log", nice)

    def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def prepare(database_url: str, work: Path) -> dict[str, Any]:
    """init, people and tokens in process; the demo's data and models as files."""
    import skops.io
    from sklearn.model_selection import train_test_split

    from governance.bootstrap import initialise, open_governance
    from governance.config import Settings
    from governance.connectors.adult import TARGET, load_adult
    from governance.demo import MODELS, SEED, train
    from governance.services.people import SYSTEM

    adult = load_adult()
    training, evaluation = train_test_split(
        adult, test_size=0.3, random_state=SEED, stratify=adult[TARGET]
    )
    training.to_parquet(work / "train.parquet", index=False)
    evaluation.to_parquet(work / "test.parquet", index=False)
    full = next(s for s in MODELS if s.name == "income-full")
    skops.io.dump(train(full, training), work / "income-full.skops")
    settings = Settings.from_env(database_url, work / "home")
    initialise(settings, PASSWORD)
    governance = open_governance(settings)
    try:
        people = governance.people
        people.add_user(SYSTEM, "dana", "Dana", PASSWORD, ["data_scientist"])
        people.add_user(SYSTEM, "bob", "Bob", PASSWORD, ["business_owner"])
        tokens = {name: people.sign_in(name, PASSWORD, 8).token for name in ("dana", "bob")}
        tokens["serving"] = people.create_token(SYSTEM, "serving", ["serving"], 1).token
    finally:
        governance.close()
    return {"tokens": tokens, "label": TARGET, "home": str(settings.home)}


def client(service: Service, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=service.url, headers=headers, timeout=120)


def register(service: Service, state: dict[str, Any], name: str, tier: str) -> None:
    with client(service, state["tokens"]["dana"]) as http:
        answer = http.post("/api/v1/models", json={"name": name, "riskTier": tier})
    assert answer.status_code == 201, answer.text


def submit(service: Service, state: dict[str, Any], work: Path, name: str, version: str) -> str:
    files = {
        "artifact": ("m.skops", (work / "income-full.skops").read_bytes()),
        "data": ("test.parquet", (work / "test.parquet").read_bytes()),
        "reference": ("train.parquet", (work / "train.parquet").read_bytes()),
    }
    form = {"model": name, "version": version, "label": state["label"], "target": "production"}
    with client(service, state["tokens"]["dana"]) as http:
        answer = http.post("/api/v1/requests", data=form, files=files)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def request_state(service: Service, state: dict[str, Any], request_id: str) -> str:
    with client(service, state["tokens"]["bob"]) as http:
        return str(http.get(f"/api/v1/requests/{request_id}").json()["state"])


def wait_state(
    service: Service, state: dict[str, Any], request_id: str, states: tuple[str, ...]
) -> str:
    deadline = time.monotonic() + 900
    while (now := request_state(service, state, request_id)) not in states:
        if time.monotonic() > deadline:
            raise SystemExit(f"request {request_id} stuck in {now}")
        time.sleep(0.2)
    return now


def promote_one(service: Service, state: dict[str, Any], work: Path) -> None:
    """The model admission is asked about: low risk, signed by the owner, promoted."""
    register(service, state, "served", "low")
    request_id = submit(service, state, work, "served", "1")
    assert wait_state(service, state, request_id, ("awaiting_approval", "blocked")) == (
        "awaiting_approval"
    )
    body = {"meaning": "approve", "comment": "bench", "password": PASSWORD}
    with client(service, state["tokens"]["bob"]) as http:
        assert http.post(f"/api/v1/requests/{request_id}/signatures", json=body).is_success
    with client(service, state["tokens"]["dana"]) as http:
        assert http.post(f"/api/v1/requests/{request_id}/promote").json()["state"] == "promoted"


def wrk(service: Service, token: str, seconds: float) -> tuple[float, float, float]:
    url = f"{service.url}/api/v1/admission/served/1?target=production"
    command = [
        "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds:g}s", "--latency",
        "-H", f"Authorization: Bearer {token}", url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in done.stdout:
        raise SystemExit(f"admission answered errors:\n{done.stdout}")
    return rps, _latency(done.stdout, "50%"), _latency(done.stdout, "99%")


def _latency(text: str, quantile: str) -> float:
    value, unit = re.search(rf"{quantile}\s+([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def admission_under_load(
    mode: str, env: dict[str, str], state: dict[str, Any], work: Path, args: argparse.Namespace
) -> list[Run]:
    service = Service(env, work, mode)
    runs: list[Run] = []
    try:
        if mode == "workers":
            service.worker(nice=19)
        token = state["tokens"]["serving"]
        wrk(service, token, 2)  # warm-up
        for _ in range(args.repeat):
            runs.append(Run(mode, "idle", *wrk(service, token, args.duration)))
        name = f"income-{mode}"
        register(service, state, name, "high")
        version, loaded = 0, 0
        while loaded < args.repeat and version < 4 * args.repeat:
            version += 1
            request_id = submit(service, state, work, name, str(version))
            wait_state(service, state, request_id, ("checking",))
            started = time.monotonic()
            while loaded < args.repeat:
                run = Run(mode, "check", *wrk(service, token, args.duration))
                if request_state(service, state, request_id) != "checking":
                    break  # the check ended during the run: not a loaded run
                runs.append(run)
                loaded += 1
            wait_state(service, state, request_id, ("awaiting_approval", "blocked"))
            print(f"  {mode}: a high-risk check of the full model took "
                  f"{time.monotonic() - started:.0f} s or more", flush=True)  # fmt: skip
    finally:
        service.stop()
    return runs


def throughput(
    count: int, env: dict[str, str], state: dict[str, Any], work: Path, checks: int
) -> Throughput:
    """`checks` at once on `count` workers, after a first round of one check per worker
    (each worker's first job waits for its warm check parent: about 3 s of one core)."""
    service = Service(env, work, "workers")
    try:
        for _ in range(count):
            service.worker()
        name = f"fleet-{count}"
        register(service, state, name, "low")
        warm = [submit(service, state, work, name, f"warm-{v}") for v in range(count)]
        for request_id in warm:
            wait_state(service, state, request_id, ("awaiting_approval", "blocked"))
        started = time.monotonic()
        ids = [submit(service, state, work, name, str(v)) for v in range(1, checks + 1)]
        submitted = time.monotonic() - started
        for request_id in ids:
            wait_state(service, state, request_id, ("awaiting_approval", "blocked"))
        return Throughput(count, checks, time.monotonic() - started, submitted, run_span(env, ids))
    finally:
        service.stop()


def run_span(env: dict[str, str], request_ids: list[str]) -> float:
    import psycopg

    from governance.workers import conninfo

    with psycopg.connect(conninfo(env["GOVERNANCE_DATABASE_URL"])) as connection:
        [(seconds,)] = connection.execute(
            "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(claimed_at)) FROM job"
            " WHERE request_id = ANY(%s)",
            (request_ids,),
        ).fetchall()
    return float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--duration", type=float, default=2.0)  # shorter than a check
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--checks", type=int, default=24)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--no-admission", action="store_true", help="only the throughput")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="governance-bench-workers-"))
    try:
        with database(args.database) as url:
            env = {**os.environ, "GOVERNANCE_DATABASE_URL": url,
                   "GOVERNANCE_HOME": str(work / "home")}  # fmt: skip
            state = prepare(url, work)
            first = Service(env, work, "embedded")
            try:
                promote_one(first, state, work)
            finally:
                first.stop()
            runs = [
                run
                for mode in ("embedded", "workers")
                if not args.no_admission
                for run in admission_under_load(mode, env, state, work, args)
            ]
            rates = [
                throughput(int(n), env, state, work, args.checks)
                for n in args.workers.split(",")
                if n
            ]
        report(runs, rates, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(runs: list[Run], rates: list[Throughput], args: argparse.Namespace) -> None:
    print(f"\nAdmission allow, wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.duration:g}s, "
          f"median of {args.repeat} (range)")  # fmt: skip
    if not runs:
        print("(admission not measured)")
    print("| tasks | load | req/s | p50 ms | p99 ms | p99 ÷ idle p99 |")
    print("|---|---|---:|---:|---:|---:|")
    for mode in sorted({r.mode for r in runs}):
        idle_p99 = statistics.median(r.p99_ms for r in runs if (r.mode, r.load) == (mode, "idle"))
        for load in ("idle", "check"):
            chosen = [r for r in runs if (r.mode, r.load) == (mode, load)]
            rps = sorted(r.rps for r in chosen)
            p99 = statistics.median(r.p99_ms for r in chosen)
            print(
                f"| {mode} | {load} | {statistics.median(rps):,.0f} ({rps[0]:,.0f}–{rps[-1]:,.0f})"
                f" | {statistics.median(r.p50_ms for r in chosen):.2f} | {p99:.1f} "
                f"| {p99 / idle_p99:.2f} |"
            )
    print(f"\nCheck throughput, {args.checks} low-risk checks of the full Adult model at once")
    print("| workers | submit → last verdict, s | checks/min | sending the submissions, s "
          "| first job taken → last done, s | checks/min while running |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for rate in rates:
        print(
            f"| {rate.workers} | {rate.seconds:.1f} | {rate.per_minute:.1f} "
            f"| {rate.submit_seconds:.1f} | {rate.run_seconds:.1f} "
            f"| {rate.checks / rate.run_seconds * 60:.1f} |"
        )
    OUT.mkdir(exist_ok=True)
    figures = {
        "runs": [asdict(r) for r in runs],
        "throughput": [{**asdict(r), "per_minute": r.per_minute} for r in rates],
    }
    (OUT / "workers.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
