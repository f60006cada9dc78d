"""Benchmark: the admission endpoint under load, against the framework's own floor.

    apt-get install -y wrk          # the load generator (C); the script stops without it
    .venv/bin/python bench/admission.py [--duration 10] [--connections 32] [--threads 1]
        [--repeat 3] [--sweep 1,4,8,16,64] [--database sqlite
        | --database postgresql://postgres@127.0.0.1:5432/postgres]

1. Builds a real service state in a temporary directory: `initialise`, a low-risk model
   (a small scikit-learn logistic regression saved with skops, 2,000 generated rows), one
   version submitted, checked, signed by a business owner and promoted through the service
   layer, and an API token of role `serving`. With a PostgreSQL URL the database is a
   fresh one, created on that server and dropped at the end.
2. Serves it as production does, `python -m governance.cli serve --workers 2`, and a bare
   Litestar app (bench/bare_app.py) with the same uvicorn and 2 workers on another port;
   also the same app three more times through bench/whatif_app.py: as served but probed
   (garbage-collector pauses, event-loop stalls), and with proposed changes swapped in.
   Counts the workers uvicorn killed and replaced while each server came up.
3. Drives both with wrk (one thread, 32 connections by default: wrk shares the 2 cores):
   a warm-up, then `--repeat` measured runs of every case, taken in turn; per case the run
   with the median req/s is shown. Cases: the bare route; the bare route with the admission
   route's shape; our /health (no auth); admission allow (cached); with a digest; an
   unknown version (deny, cached); and a new unknown version on every request (cache miss:
   the database path). Two what-ifs (bench/whatif_app.py) serve admission allow with
   proposed product changes swapped in. Then a concurrency sweep of admission allow, as
   served and with the changes. Server CPU per request is read from /proc for the
   server's processes during each run; a run that other processes disturbed (they took
   more than --max-busy of the cores) is made again, up to --retries times.
4. Where the time goes: the same requests driven in this process straight into the ASGI
   apps (no sockets, no HTTP parsing), the hot-path functions timed one by one, and a
   cProfile of the admission path, summed by package.

Prints the tables; writes the figures to bench/out/admission-<backend>.json and the
profile to bench/out/admission-<backend>.prof.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"

MODEL, VERSION, TARGET = "bench-model", "1", "production"
ADMIN_PASSWORD = "bench-admin-passphrase"
OWNER_PASSWORD = "bench-owner-passphrase"
ROWS, SEED = 2_000, 20_261_129
TARGET_RPS, TARGET_P99_MS = 5_000.0, 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKERS = 2
# Longer than uvicorn's worker health-check window (a ping every 0.5 s, 5 s to answer): a
# worker alive this long with /ready answering has passed the check.
STABLE_SECONDS = 8.0

# Server name → (how it is started, BENCH_WHATIF for bench/whatif_app.py). "governance" is
# the production command; the what-ifs are the same app with proposed changes swapped in.
SERVERS: dict[str, tuple[str, str | None]] = {
    "governance": ("governance.cli serve", None),
    "bare": ("bare_app:app", None),
    "probed": ("whatif_app:app_from_env", "probe={probe}"),
    "whatif_hops": ("whatif_app:app_from_env", "async-hooks,probe={probe}"),
    "whatif_fixed": (
        "whatif_app:app_from_env",
        "async-hooks,gc-freeze,principal-ttl=3600,probe={probe}",
    ),
}

SWEPT = ("allow", "fixed")  # the cases run again at each --sweep concurrency

WRK_LUA = """
wrk.method = "GET"
{auth}
{dynamic}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %.0f, "duration_us": %.0f, "connect": %.0f, "read": %.0f, ' ..
    '"write": %.0f, "status": %.0f, "timeout": %.0f, "mean_us": %.1f, "max_us": %.1f, ' ..
    '"p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, "p999_us": %.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""
# A new path on every request (the cache-miss case): a counter per wrk thread, the thread's
# number and a nonce per run keep every version unseen.
WRK_DYNAMIC = """
local made = 0
function setup(thread)
  made = made + 1
  thread:set("tid", made)
end
local counter = 0
function request()
  counter = counter + 1
  return wrk.format(nil, "{prefix}" .. tid .. "-" .. counter .. "{query}")
end
"""


# --- the service state ------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    home: Path
    database_url: str
    token: str
    digest: str
    request_id: str
    seconds: float


def make_candidate(directory: Path) -> tuple[Path, Path]:
    """A small logistic regression saved with skops, and the rows it is judged on."""
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(SEED)
    features = rng.normal(size=(ROWS, 4))
    noise = rng.normal(scale=0.5, size=ROWS)
    labels = (features[:, 0] + 0.5 * features[:, 1] + noise > 0).astype(int)
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(4)])
    model = LogisticRegression().fit(frame, labels)
    frame["label"] = labels
    artifact, data = directory / "model.skops", directory / "data.parquet"
    skops.io.dump(model, artifact)
    frame.to_parquet(data)
    return artifact, data


def prepare(home: Path, database_url: str) -> Prepared:
    """initialise → register → submit → checks → sign → promote, in process; a serving token."""
    from governance.bootstrap import initialise, open_governance
    from governance.config import Settings
    from governance.connectors.files import sha256_file
    from governance.services.people import SYSTEM
    from governance.services.workflow import Candidate

    started = time.perf_counter()
    artifact, data = make_candidate(home)
    settings = Settings.from_env(database_url, home / "governance")
    initialise(settings, ADMIN_PASSWORD)
    governance = open_governance(settings)
    try:
        people, workflow = governance.people, governance.workflow
        people.add_user(SYSTEM, "olive", "Olive Owner", OWNER_PASSWORD, ["business_owner"])
        workflow.register_model(SYSTEM, MODEL, "low", None)  # low.yaml: one owner signs
        candidate = Candidate(MODEL, VERSION, TARGET, "label", artifact, data)
        request_id = workflow.submit(SYSTEM, candidate)["id"]
        for job_id in workflow.claimable_jobs():
            workflow.run_job(job_id)
        checked = workflow.get_request(request_id)
        if checked["state"] != "awaiting_approval":
            raise SystemExit(f"checks did not pass: {checked['state']}: {checked['stateReason']}")
        owner = people.authenticate(people.sign_in("olive", OWNER_PASSWORD, 1)["token"])
        workflow.sign(owner, request_id, "approve", "bench: evidence reviewed", OWNER_PASSWORD)
        state = workflow.promote(SYSTEM, request_id)["state"]
        if state != "promoted":
            raise SystemExit(f"the request is {state} after promote")
        token = people.create_token(SYSTEM, "bench", ["serving"], 1)["token"]
    finally:
        governance.close()
    return Prepared(
        home=settings.home,
        database_url=settings.database_url,
        token=token,
        digest=f"sha256:{sha256_file(artifact)}",
        request_id=request_id,
        seconds=time.perf_counter() - started,
    )


@contextlib.contextmanager
def database(spec: str, home: Path) -> Iterator[str]:
    """A SQLite file in `home`, or a fresh PostgreSQL database on the server `spec` names
    (its database part is the maintenance database to connect to), dropped at the end."""
    if spec == "sqlite":
        yield f"sqlite:///{home / 'governance' / 'governance.db'}"
        return
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    server = make_url(spec)
    name = f"governance_bench_{secrets.token_hex(6)}"
    maintenance = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
            connection.execute(drop)


# --- processes and CPU ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid` (uvicorn's workers, multiprocessing's helpers), from /proc."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(stat.rpartition(")")[2].split()[1])].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    workers: list[int] = field(default_factory=list)
    restarts: int = 0
    start_seconds: float = 0.0

    def pids(self) -> list[int]:
        return [self.process.pid, *children_of(self.process.pid)]


def start_server(
    name: str, command: list[str], env: dict[str, str], port: int, log: Path, timeout: float
) -> Server:
    """Start `command` in its own session; wait until /ready (/bare) answers and the same
    workers have run for `STABLE_SECONDS`. uvicorn's supervisor kills a worker that does
    not answer its health check within 5 s of starting, and starts another: count those."""
    with log.open("wb") as stream:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    ready = "/bare" if name == "bare" else "/ready"
    started = time.monotonic()
    seen: set[int] = set()
    stable_since: tuple[float, list[int]] | None = None
    while True:
        workers = sorted(p for p in children_of(process.pid) if "spawn_main" in cmdline(p))
        seen.update(workers)
        answered = False
        with contextlib.suppress(httpx.TransportError):
            answered = httpx.get(server.url + ready, timeout=2).status_code == 200
        if not answered or len(workers) < WORKERS:
            stable_since = None
        elif stable_since is None or stable_since[1] != workers:
            stable_since = (time.monotonic(), workers)
        elif time.monotonic() - stable_since[0] >= STABLE_SECONDS:
            server.workers = workers
            server.restarts = len(seen) - len(workers)
            server.start_seconds = time.monotonic() - started
            return server
        if process.poll() is not None or time.monotonic() - started > timeout:
            stop_server(server)
            raise SystemExit(
                f"{name} did not come up in {timeout:g} s ({len(seen)} workers started, "
                f"{len(workers)} alive):\n{log.read_text(errors='replace')}"
            )
        time.sleep(0.2)


def wait_for_quiet(max_busy: float, max_wait: float) -> float:
    """Wait until the machine's cores are mostly idle (other people's work shares them);
    returns the busy share of all cores over the last second sampled."""
    deadline = time.monotonic() + max_wait
    while True:
        busy_before, total_before = machine_cpu()
        time.sleep(1.0)
        busy_after, total_after = machine_cpu()
        share = (busy_after - busy_before) / max(total_after - total_before, 1e-9)
        if share <= max_busy or time.monotonic() > deadline:
            return share


def stop_server(server: Server) -> None:
    """SIGTERM to the server's own process group (uvicorn stops its workers), then wait."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


# --- wrk ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    server: str  # a key of SERVERS
    path: str
    auth: bool = False
    miss: bool = False  # a new unknown version on every request


@dataclass
class Run:
    case: str
    connections: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    requests: int
    errors: int  # socket errors and timeouts
    non_2xx: int
    server_cpu_s: float
    worker_cpu_s: list[float]
    processes_gone: int  # server processes that died during the run (uvicorn replaced them)
    wrk_cpu_s: float
    machine_busy_s: float
    machine_total_s: float
    seconds: float
    busy_before: float = float("nan")  # share of the cores busy just before the run
    attempts: int = 1  # runs made to get one that other processes did not disturb

    @property
    def server_us_per_request(self) -> float:
        return 1e6 * self.server_cpu_s / max(self.requests, 1)

    @property
    def others_share(self) -> float:
        """The machine's CPU used by neither the server nor wrk, as a share of all cores."""
        others = self.machine_busy_s - self.server_cpu_s - self.wrk_cpu_s
        return max(others, 0.0) / max(self.machine_total_s, 1e-9)


def cases(prepared: Prepared) -> list[Case]:
    admission = f"/api/v1/admission/{MODEL}"
    return [
        Case("bare", "bare Litestar: GET /bare", "bare", "/bare"),
        Case(
            "bare_shaped",
            "bare Litestar, admission's route shape",
            "bare",
            f"/bare/{MODEL}/{VERSION}?target={TARGET}",
        ),
        Case("health", "our /health (no auth)", "governance", "/health"),
        Case(
            "allow",
            "admission allow (cached)",
            "governance",
            f"{admission}/{VERSION}?target={TARGET}",
            auth=True,
        ),
        Case(
            "digest",
            "admission allow + digest",
            "governance",
            f"{admission}/{VERSION}?target={TARGET}&digest={prepared.digest}",
            auth=True,
        ),
        Case(
            "deny",
            "admission deny, unknown version (cached)",
            "governance",
            f"{admission}/999?target={TARGET}",
            auth=True,
        ),
        Case(
            "probed",
            "admission allow, as served, probed (GC, loop stalls)",
            "probed",
            f"{admission}/{VERSION}?target={TARGET}",
            auth=True,
        ),
        Case(
            "hops",
            "what-if: allow, guard + before-request hook async",
            "whatif_hops",
            f"{admission}/{VERSION}?target={TARGET}",
            auth=True,
        ),
        Case(
            "fixed",
            "what-if: allow, + gc.freeze + no token-lookup herd",
            "whatif_fixed",
            f"{admission}/{VERSION}?target={TARGET}",
            auth=True,
        ),
        Case(
            "miss",
            "admission deny, new version each request (cache miss)",
            "governance",
            f"{admission}/miss-",
            auth=True,
            miss=True,
        ),
    ]


def lua_script(case: Case, token: str, directory: Path) -> Path:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if case.auth else ""
    dynamic = ""
    if case.miss:
        nonce = secrets.token_hex(4)
        dynamic = WRK_DYNAMIC.format(prefix=f"{case.path}{nonce}-", query=f"?target={TARGET}")
    path = directory / f"{case.key}.lua"
    path.write_text(WRK_LUA.format(auth=auth, dynamic=dynamic))
    return path


def run_wrk(
    case: Case,
    server: Server,
    script: Path,
    threads: int,
    connections: int,
    seconds: float,
    log: Path,
) -> Run:
    url = server.url + case.path
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
        "--timeout", "5s", "-s", str(script), url,
    ]  # fmt: skip
    pids = server.pids()
    workers = [pid for pid in pids if "spawn_main" in cmdline(pid)]
    before_pids = {pid: cpu_seconds(pid) for pid in pids}
    before_machine = machine_cpu()
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_machine = machine_cpu()
    gone = [pid for pid in pids if not Path(f"/proc/{pid}").exists()]
    used = {pid: max(cpu_seconds(pid) - before, 0.0) for pid, before in before_pids.items()}
    with log.open("a") as stream:
        stream.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\n")
    match = re.search(r"^WRKJSON (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    figures = json.loads(match.group(1))
    wrk_cpu = (after_children.ru_utime - before_children.ru_utime) + (
        after_children.ru_stime - before_children.ru_stime
    )
    duration = figures["duration_us"] / 1e6
    return Run(
        case=case.key,
        connections=connections,
        rps=figures["requests"] / duration,
        p50_ms=figures["p50_us"] / 1e3,
        p90_ms=figures["p90_us"] / 1e3,
        p99_ms=figures["p99_us"] / 1e3,
        p999_ms=figures["p999_us"] / 1e3,
        max_ms=figures["max_us"] / 1e3,
        requests=int(figures["requests"]),
        errors=int(sum(figures[k] for k in ("connect", "read", "write", "timeout"))),
        non_2xx=int(figures["status"]),
        server_cpu_s=sum(used.values()),
        worker_cpu_s=[used.get(pid, 0.0) for pid in workers],
        processes_gone=len(gone),
        wrk_cpu_s=wrk_cpu,
        machine_busy_s=after_machine[0] - before_machine[0],
        machine_total_s=after_machine[1] - before_machine[1],
        seconds=wall,
    )


def check_answers(server: Server, prepared: Prepared) -> None:
    """The endpoint answers what the cases claim before any of them is timed."""
    headers = {"Authorization": f"Bearer {prepared.token}"}
    base = f"{server.url}/api/v1/admission/{MODEL}"
    expected = [
        (f"{base}/{VERSION}", {"target": TARGET}, "allow"),
        (f"{base}/{VERSION}", {"target": TARGET, "digest": prepared.digest}, "allow"),
        (f"{base}/{VERSION}", {"target": TARGET, "digest": "sha256:" + "0" * 64}, "deny"),
        (f"{base}/999", {"target": TARGET}, "deny"),
    ]
    with httpx.Client(headers=headers, timeout=10) as client:
        for url, params, decision in expected:
            body = client.get(url, params=params).json()
            if body.get("decision") != decision:
                raise SystemExit(f"{url} {params}: expected {decision}, got {body}")
        refused = httpx.get(f"{base}/{VERSION}", timeout=10)
        if refused.status_code != 401:
            raise SystemExit(f"admission without a token answered {refused.status_code}")


# --- in process: the ASGI apps without sockets -------------------------------------------


class AsgiDriver:
    """Calls an ASGI app directly, as uvicorn would after parsing the request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lifespan: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.create_task(
            self.app(scope, self._inbox.get, self._outbox.put)  # type: ignore[arg-type]
        )
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._outbox.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"app startup failed: {message}")

    async def stop(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        if self._lifespan is not None:
            await self._lifespan

    async def get(self, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        route, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": route,
            "raw_path": route.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        status, body = 0, b""

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                body += message.get("body", b"")

        await self.app(scope, receive, send)
        return status, body


@dataclass
class InProcess:
    asgi_us: dict[str, float]
    parts_us: dict[str, float]
    profile_by_package: list[tuple[str, float]]
    profile_top: list[tuple[str, float, float, int]]
    profile_requests: int


def per_call_us(call: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """The fastest of `rounds` loops of `n` calls, in µs per call."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / n


def in_process(prepared: Prepared, case_list: list[Case], n: int, profile_out: Path) -> InProcess:
    """Per-request time of every case with the ASGI app called directly, the hot-path
    functions one by one, and a cProfile of admission allow."""
    import uvloop

    sys.path.insert(0, str(BENCH))
    import bare_app
    from whatif_app import create_whatif_app

    from governance.bootstrap import Governance
    from governance.config import Settings
    from governance.web.app import create_app

    os.environ["GOVERNANCE_HOME"] = str(prepared.home)
    settings = Settings.from_env(prepared.database_url, prepared.home)
    app = create_app(settings, run_jobs=False)
    whatif_app = create_whatif_app(settings, run_jobs=False, spec="async-hooks")
    governance: Governance = app.state.governance
    auth = [(b"authorization", f"Bearer {prepared.token}".encode())]

    async def drive() -> InProcess:
        ours = AsgiDriver(app)
        drivers = {
            "governance": ours,
            "bare": AsgiDriver(bare_app.app),
            "whatif_hops": AsgiDriver(whatif_app),
        }
        for driver in drivers.values():
            await driver.start()
        asgi_us: dict[str, float] = {}
        for case in case_list:
            if case.server not in drivers:  # the other what-ifs act on threads and GC
                continue
            driver = drivers[case.server]
            headers = auth if case.auth else []
            counter = iter(range(10**9))
            nonce = secrets.token_hex(4)

            def path(
                case: Case = case, counter: Iterator[int] = counter, nonce: str = nonce
            ) -> str:
                if case.miss:
                    return f"{case.path}{nonce}-{next(counter)}?target={TARGET}"
                return case.path

            status, body = await driver.get(path(), headers)
            if status != 200:
                raise SystemExit(f"in process, {case.path}: {status} {body!r}")
            count = n // 10 if case.miss else n
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(count):
                    await driver.get(path(), headers)
                best = min(best, time.perf_counter() - started)
            asgi_us[case.key] = 1e6 * best / count

        allow = next(c for c in case_list if c.key == "allow")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await ours.get(allow.path, auth)
        profiler.disable()
        for driver in drivers.values():
            await driver.stop()
        return summarise_profile(profiler, asgi_us, n, profile_out)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(drive())

    people, access, workflow = governance.people, governance.access, governance.workflow
    people.authenticate(prepared.token)
    principal = people.cached_principal(prepared.token)
    assert principal is not None
    answer = workflow.admission(MODEL, VERSION, TARGET)

    def uncached() -> None:
        workflow.admission_cache_clear()
        workflow.admission(MODEL, VERSION, TARGET)

    result.parts_us = {
        "People.cached_principal (HMAC-SHA256 of the token + dict)": per_call_us(
            lambda: people.cached_principal(prepared.token), n
        ),
        "AccessControl.allowed (casbin answer cache)": per_call_us(
            lambda: access.allowed(principal.subjects, "admission", "check"), n
        ),
        "Workflow.admission, cached": per_call_us(
            lambda: workflow.admission(MODEL, VERSION, TARGET), n
        ),
        "Workflow.admission, cached, with digest": per_call_us(
            lambda: workflow.admission(MODEL, VERSION, TARGET, prepared.digest), n
        ),
        "Admission.as_dict": per_call_us(answer.as_dict, n),
        "Workflow.admission, uncached (audit head + 2 queries)": per_call_us(
            uncached, max(n // 20, 50), rounds=3
        ),
        "AdmissionCache._audit_head (every 0.1 s, on the event loop)": per_call_us(
            workflow._admissions._audit_head, max(n // 20, 50), rounds=3
        ),
        "People.authenticate (the token looked up; every 2 s per request in flight)": (
            per_call_us(lambda: people.authenticate(prepared.token), max(n // 20, 50), rounds=3)
        ),
        **gc_pauses(),
    }
    governance.close()
    whatif_app.state.governance.close()
    return result


def gc_pauses() -> dict[str, float]:
    """A full collection over this process's heap (it has imported what a server worker
    imports), then the same after `gc.freeze()`: in µs."""
    tracked = len(gc.get_objects())
    full = per_call_us(gc.collect, 1, rounds=3)
    gc.freeze()
    try:
        frozen = per_call_us(gc.collect, 1, rounds=3)
    finally:
        gc.unfreeze()
    return {
        f"gc.collect(), full, {tracked:,} tracked objects": full,
        "gc.collect(), full, after gc.freeze()": frozen,
    }


def package_of(filename: str) -> str:
    """Which library a profiled function belongs to: the folder under site-packages, the
    project's own package, or the standard library."""
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C calls)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    for own in ("governance", "connectors", "bench"):
        if str(ROOT / own) in filename:
            return own
    return "python stdlib"


def summarise_profile(
    profiler: cProfile.Profile, asgi_us: dict[str, float], n: int, out: Path
) -> InProcess:
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(40)
    out.write_text(text.getvalue())
    by_package: dict[str, float] = defaultdict(float)
    top: list[tuple[str, float, float, int]] = []
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    for (filename, line, function), (_, calls, tottime, cumtime, _) in raw.items():
        by_package[package_of(filename)] += tottime
        where = f"{Path(filename).name}:{line}" if line else filename
        top.append((f"{where} {function}", tottime, cumtime, calls))
    top.sort(key=lambda entry: -entry[1])
    shares = sorted(((k, v / total) for k, v in by_package.items()), key=lambda kv: -kv[1])
    return InProcess(asgi_us, {}, shares, top[:15], n)


# --- report -------------------------------------------------------------------------------


def median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda run: run.rps)
    return ordered[(len(ordered) - 1) // 2]


def fingerprints() -> dict[str, str]:
    """The measured product files' sha256 (first 12 hex digits): others edit them too."""
    names = [
        "governance/web/api/router.py", "governance/web/api/admission.py",
        "governance/web/guards.py", "governance/web/auth.py", "governance/web/app.py",
        "governance/services/workflow.py", "governance/services/people.py",
        "governance/auth/access.py", "governance/cli/server.py",
    ]  # fmt: skip
    return {name: hashlib.sha256((ROOT / name).read_bytes()).hexdigest()[:12] for name in names}


def machine_line() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return f"{os.cpu_count()} cores ({cpu}), {int(memory) / 2**20:.1f} GiB RAM"


def versions_line() -> str:
    names = ["litestar", "uvicorn", "uvloop", "httptools", "msgspec", "sqlalchemy", "pycasbin"]
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout + wrk.stderr).split()[1] if (wrk.stdout + wrk.stderr) else "?"
    found = ", ".join(f"{name} {version(name)}" for name in names)
    return f"python {platform.python_version()}, {found}, wrk {wrk_version}"


def print_report(
    backend: str,
    measured: Measured,
    best: dict[str, Run],
    local: InProcess,
    args: argparse.Namespace,
) -> list[str]:
    labels, all_runs, sweep = measured.labels, measured.runs, measured.sweep
    bare = best["bare"]
    lines = [
        f"| case ({backend}, wrk -t{args.threads} -c{args.connections}) | req/s | p50 ms | "
        "p99 ms | p99.9 ms | req/s ÷ bare | server CPU µs/req | in-process µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, run in best.items():
        spread = [r.rps for r in all_runs[key]]
        problems = [
            f"{count} {what}"
            for count, what in (
                (run.non_2xx, "non-2xx"),
                (run.errors, "socket errors"),
                (run.processes_gone, "server processes died"),
            )
            if count
        ]
        bad = f" ⚠ {', '.join(problems)}" if problems else ""
        local_us = f"{local.asgi_us[key]:.0f}" if key in local.asgi_us else "—"
        lines.append(
            f"| {labels[key]}{bad} | {run.rps:,.0f} ({min(spread):,.0f}–{max(spread):,.0f}) | "
            f"{run.p50_ms:.2f} | {run.p99_ms:.2f} | {run.p999_ms:.2f} | "
            f"{run.rps / bare.rps:.2f}× | {run.server_us_per_request:.0f} | {local_us} |"
        )
    lines += [
        "",
        f"| concurrency sweep ({backend}) | connections | req/s | p50 ms | p90 ms | p99 ms | "
        "p99.9 ms | both targets |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    swept = [*sweep, *(best[key] for key in SWEPT)]
    for run in sorted(swept, key=lambda run: (SWEPT.index(run.case), run.connections)):
        met = run.rps >= TARGET_RPS and run.p99_ms < TARGET_P99_MS
        lines.append(
            f"| {labels[run.case]} | {run.connections} | {run.rps:,.0f} | {run.p50_ms:.2f} | "
            f"{run.p90_ms:.2f} | {run.p99_ms:.2f} | {run.p999_ms:.2f} | "
            f"{'yes' if met else 'no'} |"
        )
    lines += [""]
    for name, (seconds, restarts) in measured.starts.items():
        lines.append(
            f"{name} server: up in {seconds:.1f} s; uvicorn killed and replaced {restarts} "
            "workers on the way"
        )
    for name, probe in measured.probes.items():
        lines.append(
            f"{name} workers (probe, whole life): {probe['full_collections']:.0f} full GC passes, "
            f"longest {probe['full_collection_max_ms']:.0f} ms, "
            f"{probe['full_collection_total_ms']:.0f} ms in all; "
            f"{probe['young_collections']:.0f} young passes, "
            f"{probe['young_collection_total_ms']:.0f} ms; event loop stalled > 50 ms "
            f"{probe['loop_stalls_over_50ms']:.0f} times, "
            f"longest {probe['loop_stall_max_ms']:.0f} ms"
        )
    lines += ["", "CPU during the median runs (share of the 2 cores):"]
    for key, run in best.items():
        workers = " + ".join(f"{s / run.seconds:.0%}" for s in run.worker_cpu_s)
        lines.append(
            f"  {labels[key]}: server {run.server_cpu_s / run.machine_total_s:.0%} "
            f"(workers {workers} of one core each), wrk {run.wrk_cpu_s / run.machine_total_s:.0%}, "
            f"other processes {run.others_share:.0%} (busy before: {run.busy_before:.0%})"
        )
    lines += ["", "In process (ASGI app called directly; best of 3 × N requests):"]
    for key, micros in local.asgi_us.items():
        lines.append(f"  {labels[key]}: {micros:.1f} µs/request")
    lines += ["", "Hot-path functions, called directly:"]
    for name, micros in local.parts_us.items():
        shown = f"{micros / 1000:.1f} ms" if micros >= 1000 else f"{micros:.2f} µs"
        lines.append(f"  {name}: {shown}")
    lines += [
        "",
        f"cProfile of {local.profile_requests:,} admission-allow requests (ASGI, in process), "
        "own time by package:",
    ]
    lines += [f"  {name}: {share:.1%}" for name, share in local.profile_by_package if share > 0.005]
    lines += ["", "  top functions by own time (s own, s cumulative, calls):"]
    lines += [
        f"    {tottime:.3f} {cumtime:.3f} {calls:>8} {name}"
        for name, tottime, cumtime, calls in local.profile_top
    ]
    at_c = best["allow"]
    lines += [
        "",
        "targets (admission allow, as served today):",
        f"  [{'met' if at_c.rps >= TARGET_RPS else 'MISSED'}] ≥ {TARGET_RPS:,.0f} req/s at "
        f"-c{args.connections}: {at_c.rps:,.0f}",
        f"  [{'met' if at_c.p99_ms < TARGET_P99_MS else 'MISSED'}] p99 < {TARGET_P99_MS:g} ms at "
        f"-c{args.connections}: {at_c.p99_ms:.2f} ms",
    ]
    for key in SWEPT:
        both = [
            run.connections
            for run in swept
            if run.case == key and run.rps >= TARGET_RPS and run.p99_ms < TARGET_P99_MS
        ]
        where = ", ".join(f"-c{c}" for c in sorted(both)) if both else "at no concurrency measured"
        lines.append(f"  [{'met' if both else 'MISSED'}] both at once, {labels[key]}: {where}")
    return lines


# --- main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per case")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per case")
    parser.add_argument(
        "--sweep",
        default="1,4,8,16,64",
        help="connection counts for the sweep of admission allow ('' for none)",
    )
    parser.add_argument(
        "--database",
        default="sqlite",
        help="'sqlite' (a file in the temp dir), or a PostgreSQL server URL such as "
        "postgresql://postgres@127.0.0.1:5432/postgres: a fresh database is created there "
        "and dropped at the end",
    )
    parser.add_argument(
        "--inprocess-requests", type=int, default=20_000, help="requests per in-process case"
    )
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.15,
        help="before each run, wait until at most this share of the cores is busy",
    )
    parser.add_argument(
        "--max-wait", type=float, default=120.0, help="seconds to wait for quiet cores per run"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="runs again when other processes used more than --max-busy during a run",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=300.0, help="seconds for a server to come up"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args()


@dataclass
class Measured:
    labels: dict[str, str]
    runs: dict[str, list[Run]]
    sweep: list[Run]
    starts: dict[str, tuple[float, int]]  # server → (seconds to come up, workers replaced)
    probes: dict[str, dict[str, float]]  # what-if server → GC and event-loop figures


def server_command(name: str, port: int) -> tuple[list[str], str | None]:
    """The command line of one of SERVERS, and its BENCH_WHATIF."""
    target, whatif = SERVERS[name]
    if name == "governance":  # as production starts it
        command = [
            sys.executable, "-m", "governance.cli", "serve",
            "--port", str(port), "--workers", str(WORKERS),
        ]  # fmt: skip
        return command, None
    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH), "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(WORKERS), "--log-level", "warning",
    ]  # fmt: skip
    if target.endswith(":app_from_env"):
        command.append("--factory")
    return [*command, target], whatif


def serve_and_measure(
    args: argparse.Namespace, prepared: Prepared, work: Path, wrk_log: Path
) -> Measured:
    """Both servers up, the answers checked, then warm-up, the rounds and the sweep."""
    env = {
        **os.environ,
        "GOVERNANCE_HOME": str(prepared.home),
        "GOVERNANCE_DATABASE_URL": prepared.database_url,
    }
    servers: list[Server] = []
    try:
        for name in SERVERS:
            command, whatif = server_command(name, port := free_port())
            server_env = env
            if whatif is not None:
                server_env = {**env, "BENCH_WHATIF": whatif.format(probe=work / f"probe-{name}")}
            wait_for_quiet(args.max_busy, args.max_wait)
            log = work / f"{name}.log"
            server = start_server(name, command, server_env, port, log, args.start_timeout)
            servers.append(server)
            print(
                f"{name}: up in {server.start_seconds:.1f} s, {server.restarts} workers "
                "killed and replaced by uvicorn on the way"
            )
        by_name = {server.name: server for server in servers}
        check_answers(by_name["governance"], prepared)
        case_list = cases(prepared)
        scripts = {case.key: lua_script(case, prepared.token, work) for case in case_list}

        def measure(case: Case, connections: int, seconds: float, quiet: bool = True) -> Run:
            """One wrk run; again (up to --retries times) while other processes took more
            than --max-busy of the cores during it. Keeps the least disturbed attempt."""
            attempts: list[Run] = []
            for _ in range(1 + (args.retries if quiet else 0)):
                busy = wait_for_quiet(args.max_busy, args.max_wait) if quiet else float("nan")
                run = run_wrk(
                    case, by_name[case.server], scripts[case.key], args.threads,
                    connections, seconds, wrk_log,
                )  # fmt: skip
                run.busy_before, run.attempts = busy, len(attempts) + 1
                attempts.append(run)
                if run.others_share <= args.max_busy:
                    break
            return min(attempts, key=lambda attempt: attempt.others_share)

        print(f"warm-up: {args.warmup:g} s per case")
        for case in case_list:
            measure(case, args.connections, args.warmup, quiet=False)
        runs: dict[str, list[Run]] = {case.key: [] for case in case_list}
        for round_number in range(args.repeat):
            for case in case_list:
                run = measure(case, args.connections, args.duration)
                runs[case.key].append(run)
                print(
                    f"  round {round_number + 1} {case.key}: {run.rps:,.0f} req/s, "
                    f"p99 {run.p99_ms:.2f} ms; cores busy before {run.busy_before:.0%}, "
                    f"other processes during {run.others_share:.0%}"
                )
        sweep = []
        for connections in [int(c) for c in args.sweep.split(",") if c.strip()]:
            for case in case_list:
                if case.key in SWEPT:
                    sweep.append(measure(case, connections, args.duration))
                    print(
                        f"  sweep {case.key} -c{connections}: {sweep[-1].rps:,.0f} req/s, "
                        f"p99 {sweep[-1].p99_ms:.2f} ms"
                    )
        starts = {server.name: (server.start_seconds, server.restarts) for server in servers}
    finally:
        for server in servers:
            stop_server(server)
    probes = {name: read_probe(work / f"probe-{name}") for name in SERVERS if SERVERS[name][1]}
    labels = {case.key: case.label for case in case_list}
    return Measured(labels, runs, sweep, starts, probes)


def read_probe(directory: Path) -> dict[str, float]:
    """The what-if workers' probe files, summed: full collections and event-loop stalls."""
    full: list[float] = []
    young: list[float] = []
    lags: list[float] = []
    for file in directory.glob("*.json"):
        found = json.loads(file.read_text())
        full += found["gc_pauses"]["2"]
        young += found["gc_pauses"]["0"] + found["gc_pauses"]["1"]
        lags += found["loop_lags"]
    return {
        "workers": len(list(directory.glob("*.json"))),
        "full_collections": len(full),
        "full_collection_max_ms": 1e3 * max(full, default=0.0),
        "full_collection_total_ms": 1e3 * sum(full),
        "young_collections": len(young),
        "young_collection_total_ms": 1e3 * sum(young),
        "loop_stalls_over_50ms": sum(lag > 0.05 for lag in lags),
        "loop_stall_max_ms": 1e3 * max(lags, default=0.0),
    }


def main() -> None:
    args = parse_args()
    # A plain SIGTERM would skip the cleanup below: the servers run in their own sessions.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu)")
    backend = "sqlite" if args.database == "sqlite" else "postgresql"
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="admission-bench-"))
    wrk_log = OUT / f"admission-{backend}.wrk.log"
    wrk_log.write_text("")
    profile_out = OUT / f"admission-{backend}.prof.txt"
    print(f"machine: {machine_line()}; load average {os.getloadavg()[0]:.2f}")
    print(f"versions: {versions_line()}")
    print(f"code: {fingerprints()}")
    try:
        with database(args.database, work) as url:
            prepared = prepare(work, url)
            print(
                f"state: {backend}, request {prepared.request_id} promoted in "
                f"{prepared.seconds:.1f} s; data dir {prepared.home}"
            )
            measured = serve_and_measure(args, prepared, work, wrk_log)
            print(f"in process: {args.inprocess_requests:,} requests per case, and cProfile")
            wait_for_quiet(args.max_busy, args.max_wait)
            case_list = cases(prepared)
            local = in_process(prepared, case_list, args.inprocess_requests, profile_out)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    best = {key: median_run(found) for key, found in measured.runs.items()}
    report = print_report(backend, measured, best, local, args)
    print()
    print("\n".join(report))
    print(f"\ncProfile: {profile_out}\nwrk output: {wrk_log}")
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "machine": machine_line(),
        "versions": versions_line(),
        "args": vars(args),
        "server_starts": measured.starts,
        "probes": measured.probes,
        "code": fingerprints(),
        "runs": {key: [asdict(run) for run in found] for key, found in measured.runs.items()},
        "sweep": [asdict(run) for run in measured.sweep],
        "in_process_us": local.asgi_us,
        "parts_us": local.parts_us,
        "profile_by_package": local.profile_by_package,
    }
    (OUT / f"admission-{backend}.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
