"""A request's checks in a child process that holds none of the service's secrets.

Loading a model runs code (always for a pickle; for skops, whatever its trusted types
do), and the checks run third-party libraries on data a client sent. The service process
holds the signing key, the report key and the database, so none of that runs there.

Each check job is a fork of a *zygote*: a fresh interpreter (never a fork of the service,
which would inherit the key in memory), started with an environment stripped to what the
ML libraries need, that imports the check stack and then only waits for jobs. Each job
gets a copy of that warm process: in a session of its own, with a working directory of its
own, an address-space cap and a timeout, and it dies with the zygote. A fresh interpreter
per job spent about 7 s of CPU on imports and compiling before it judged anything
(bench/RESULTS.md); a fork takes milliseconds. The zygote never loads a model or reads a
client's file, so no job inherits anything another job touched.

shap's compiled loops (its permutation explainer's, about 4 s of CPU to compile or load)
serve only models without a tree, which Tree SHAP explains without them. So the zygote
does not make them up front: a job that had to make them says so in its answer, and the
service then orders the zygote to make them once, for the jobs after it.

A job is given the pinned policy document and the files' paths, runs the same pure `judge`
as `governance gate`, and answers the evidence manifest as JSON. A child that crashes, is
killed, runs out of memory or overruns its time fails that request's checks; the service
goes on, and a zygote that died is started again for the next job.

Two things a fork server must not get wrong. Only the zygote kills a child, on the
service's order, and only before it has reaped it: the service does not reap the child, so
the pid it was told could by then name another process. And forks share their zygote's
address-space layout, so a child that crashes (SIGSEGV and the like, which the request's
reason reports) retires its zygote: probing the layout job after job gains nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import resource
import select
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.domain.errors import InputError
from governance.domain.evidence import EvidenceManifest
from governance.services.ports import Execution

if TYPE_CHECKING:
    from governance.domain.policy import PromotionPolicy
    from governance.services.ports import GateRequest

MIB = 1024 * 1024
# What the child keeps of the service's environment: locale, time zone, paths to find
# programs and libraries, and the numeric libraries' thread settings. Everything else
# (GOVERNANCE_*, MLFLOW_*, cloud credentials, database passwords) stays behind.
KEPT = frozenset(
    {
        "PATH", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH", "VIRTUAL_ENV",
        "PYTHONHASHSEED", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    }
)  # fmt: skip
KEPT_PREFIXES = ("LC_", "DASK_")  # DASK_: the cluster's address and TLS settings
PATH_FIELDS = ("policy", "data", "model", "reference", "champion")
STDERR_TAIL = 2000  # characters of the child's stderr kept in a failure's reason
STDERR = "stderr.txt"  # in the job's (and the zygote's) working directory
START_SECONDS = 300.0  # how long a new zygote may take to import and compile
REAP_SECONDS = 10.0  # how long a killed child may take to be reaped and reported
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent ends
KILL = b"k"  # the service to the zygote, on a job's report channel: kill that child
COMPILE = b"\0compile"  # the service to the zygote: make shap's loops (no path starts with NUL)
# A child killed by one of these crashed: its zygote is retired, so that the next job has a
# new address-space layout (forks share one, and a crash is an attacker's probe of it).
CRASHES = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGABRT, signal.SIGFPE})


class ChecksCrashedError(Exception):
    """The child ended without an answer: killed, out of memory, out of time, or a fault.
    The request's checks fail with this as the reason; the service itself is unharmed."""


@dataclass(frozen=True)
class IsolatedChecks:
    """Runs `judge` in a fork of the zygote; `memory_mb` caps its address space, and
    `compiled_code` is where the zygote keeps numba's compiled loops between its lives
    (it compiles them again each time it starts when None)."""

    memory_mb: int = 4096
    timeout_seconds: float = 900.0
    compiled_code: Path | None = None
    execution: Execution = dataclasses.field(default_factory=Execution)

    def __call__(
        self, policy: PromotionPolicy, request: GateRequest, allow_pickle: bool = False
    ) -> EvidenceManifest:
        job = {
            "policy": json.loads(policy.canonical_json()),
            "request": _request_json(request),
            "allowPickle": allow_pickle,
            "memoryBytes": self.memory_mb * MIB,
            "execution": dataclasses.asdict(self.execution),
        }
        workdir = Path(tempfile.mkdtemp(prefix="governance-checks-"))
        zygote = _zygote_for(self.compiled_code)
        try:
            answer = self._run(zygote, json.dumps(job).encode(), workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if answer.get("madeLoops") is True:  # the child's word: at worst, one compile for nothing
            zygote.make_loops()
        if "inputError" in answer:
            problem = answer["inputError"]
            raise InputError(problem["subject"], problem["problem"], problem["fix"])
        if "error" in answer:
            raise ChecksCrashedError(answer["error"])
        manifest = EvidenceManifest.model_validate(answer["manifest"])
        if manifest.policy.sha256 != policy.content_hash:
            raise ChecksCrashedError("the check process judged under another policy")
        return manifest

    def _run(self, zygote: _Zygote, job: bytes, workdir: Path) -> dict[str, Any]:
        job_end, status_end, process = zygote.child(workdir)
        with job_end, status_end:
            deadline = time.monotonic() + self.timeout_seconds
            try:
                job_end.sendall(job)
                job_end.shutdown(socket.SHUT_WR)
                out = _read_all(job_end, deadline)
                code = _read_line(status_end, deadline)
            except TimeoutError:
                _kill_group(status_end)
                raise ChecksCrashedError(
                    f"the check process took longer than {self.timeout_seconds:g} s and was "
                    "stopped (GOVERNANCE_CHECK_TIMEOUT_SECONDS)"
                ) from None
            except BaseException:  # the server is stopping: leave no child behind
                _kill_group(status_end)
                raise
        if code is not None and -code in CRASHES:
            zygote.retire(process)
        if code == 0:
            with contextlib.suppress(ValueError):
                answer = json.loads(out)
                if isinstance(answer, dict):  # the child's word: the caller checks the rest
                    return answer
        return {"error": self._ended(code, workdir / STDERR)}

    def _ended(self, code: int | None, errors: Path) -> str:
        tail = _tail(errors)
        if code is None:
            why = "the check process ended with its zygote"
        elif code < 0:
            name = signal.Signals(-code).name
            why = f"the check process was killed by {name}"
            if -code == signal.SIGKILL:
                why += f" (out of memory, or stopped from outside; cap {self.memory_mb} MiB)"
        else:
            why = f"the check process ended with exit code {code} and no result"
        return why + (f": {tail.splitlines()[-1]}" if tail else "")


class _Zygote:
    """The warm parent of one service's check processes (see the module's docstring). It
    is started on the first job, and again when it has died; it ends when the service
    does, since it reads its orders from a socket that only the service holds."""

    def __init__(self, compiled_code: Path | None) -> None:
        self._compiled_code = compiled_code
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._orders: socket.socket | None = None
        self._home: Path | None = None
        self._loops_ordered = False  # has this zygote process been told to make shap's loops

    def child(self, workdir: Path) -> tuple[socket.socket, socket.socket, subprocess.Popen[bytes]]:
        """A new child for a job in `workdir`: the job's channel, the zygote's report
        channel, on which the child's exit code will come, and the zygote's process. A
        zygote found dead (it may die between two jobs, or while taking an order) is
        started again, once."""
        for attempt in (1, 2):
            job_end, status_end, process = self._order(workdir)
            try:  # the first job waits for the zygote's warm-up: that is not the job's time
                pid = _read_line(status_end, time.monotonic() + START_SECONDS)
            except TimeoutError:
                pid, why = None, f"the check process did not start within {START_SECONDS:g} s"
            else:
                if pid is not None:
                    return job_end, status_end, process
                why = self.failure()
            job_end.close()
            status_end.close()
            self.retire(process)
            if attempt == 2:
                raise ChecksCrashedError(why)
        raise AssertionError("unreachable")

    def retire(self, process: subprocess.Popen[bytes]) -> None:
        """Stop `process` if it is still this zygote's (not one another thread started
        since), so that the next job has a new one."""
        with self._lock:
            if self._process is process:
                self.stop()

    def _order(self, workdir: Path) -> tuple[socket.socket, socket.socket, subprocess.Popen[bytes]]:
        """Order a child for a job in `workdir`: (the job's channel, the zygote's reports on
        the child, its pid and then its exit code, one line each)."""
        job_end, child_end = socket.socketpair()
        status_end, zygote_end = socket.socketpair()
        with child_end, zygote_end, self._lock:
            try:
                self.start()
            except BaseException:  # no zygote (no process to be had): no channels either
                job_end.close()
                status_end.close()
                raise
            assert self._orders is not None and self._process is not None
            fds = [child_end.fileno(), zygote_end.fileno()]
            with contextlib.suppress(OSError):  # it died: status_end reads end-of-file
                socket.send_fds(self._orders, [os.fsencode(workdir)], fds)
            return job_end, status_end, self._process

    def make_loops(self) -> None:
        """Order the running zygote, once in its life, to make shap's compiled loops, so that
        its later children have them. It does so between two jobs; a zygote that has died
        is told again when a job needs the loops after it is started again."""
        with self._lock:
            if self._loops_ordered or self._orders is None:
                return
            self._loops_ordered = True
            with contextlib.suppress(OSError):  # it died: the next one is told when needed
                socket.send_fds(self._orders, [COMPILE], [])

    def failure(self) -> str:
        """Why the zygote made no child: the last line of what it wrote on its way out."""
        tail = "" if self._home is None else _tail(self._home / STDERR)
        why = "the check process could not be started"
        return why + (f": {tail.splitlines()[-1]}" if tail else "")

    def start(self) -> None:
        """Start a zygote unless one is running (it warms up on its own)."""
        with self._lock:
            if self._orders is None or self._process is None or self._process.poll() is not None:
                self._start()

    def _start(self) -> None:
        self.stop()
        self._home = Path(tempfile.mkdtemp(prefix="governance-zygote-"))
        # Packets, not a stream: each order is one message, its boundary kept by the kernel.
        orders, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs, (self._home / STDERR).open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=self._home,
                env=child_environment(self._home, self._compiled_code),
            )
        self._orders = orders
        self._loops_ordered = False

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._orders is not None:
            self._orders.close()  # the zygote reads end-of-file and ends
            self._orders = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=REAP_SECONDS)
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None


_zygotes: dict[Path | None, _Zygote] = {}
_zygotes_lock = threading.Lock()


def _tail(errors: Path) -> str:
    try:
        return errors.read_text(errors="replace")[-STDERR_TAIL:].strip()
    except OSError:
        return ""


def _zygote_for(compiled_code: Path | None) -> _Zygote:
    """One zygote per process and numba cache, shared by every `IsolatedChecks` on it."""
    with _zygotes_lock:
        return _zygotes.setdefault(compiled_code, _Zygote(compiled_code))


def _read_line(channel: socket.socket, deadline: float) -> int | None:
    """One report of the zygote (a number), or None when it closed the channel first."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = _receive(channel, deadline, 1)
        if not chunk:
            return None
        line += chunk
    return int(line)


def _read_all(channel: socket.socket, deadline: float) -> bytes:
    """What the child wrote, up to its end (it closes the channel when it ends)."""
    parts = []
    while chunk := _receive(channel, deadline, 1 << 16):
        parts.append(chunk)
    return b"".join(parts)


def _receive(channel: socket.socket, deadline: float, size: int) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    channel.settimeout(remaining)
    try:
        return channel.recv(size)
    except ConnectionResetError:
        return b""


def child_environment(workdir: Path, compiled_code: Path | None = None) -> dict[str, str]:
    """The service's environment less its secrets; home and temporary files in `workdir`;
    numba's cache in `compiled_code` when given. The child imports this very code,
    wherever it was imported from here."""
    kept = {k: v for k, v in os.environ.items() if k in KEPT or k.startswith(KEPT_PREFIXES)}
    # The folder this package was imported from, unless the child's interpreter has it as a
    # site directory already (an installed wheel): on PYTHONPATH it would come before the
    # standard library, and a package there that shadows a standard module would win.
    root = str(Path(__file__).resolve().parents[2])
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    site_directories = {str(Path(directory).resolve()) for directory in site.getsitepackages()}
    paths = inherited if root in site_directories else [root, *inherited]
    cache = {"NUMBA_CACHE_DIR": str(compiled_code)} if compiled_code is not None else {}
    return {
        **kept,
        **cache,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "MPLCONFIGDIR": str(workdir),
        "PYTHONDONTWRITEBYTECODE": "1",
        "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MiB per thread otherwise: keep AS honest
    }


def _kill_group(status_end: socket.socket) -> None:
    """Have the zygote kill the child and any helpers it started (its own session and
    group), and wait until it has reaped it. The zygote kills only a child it has not
    reaped yet, whose pid, and so its group's id, cannot have been given to another
    process; the service, which does not reap the child, could not know that."""
    with contextlib.suppress(OSError):
        status_end.sendall(KILL)
    with contextlib.suppress(TimeoutError, OSError, ValueError):
        _read_line(status_end, time.monotonic() + REAP_SECONDS)


def _request_json(request: GateRequest) -> dict[str, Any]:
    """The request with absolute paths: the child works in a directory of its own."""
    fields = dataclasses.asdict(request)
    for name in PATH_FIELDS:
        if fields[name] is not None:
            fields[name] = str(Path(fields[name]).absolute())
    return fields


# --- the zygote and its children ------------------------------------------------------


def _zygote(orders: socket.socket) -> None:
    """Warm up, then fork a child for each order until the service closes the socket;
    report each child's pid when it starts and its exit code when it ends, and kill a
    child when the service asks (or stops listening) while it is still unreaped. Make
    shap's loops when the service orders it."""
    reports: dict[int, socket.socket] = {}  # the unreaped children

    def terminated(signum: int, frame: object) -> None:
        # Stopped with its service's whole process group (systemd's default, a test's stop):
        # end as on end-of-file, or the home would be left behind.
        _end(reports)
        os._exit(0)

    signal.signal(signal.SIGTERM, terminated)
    _warm_up()
    me = os.getpid()
    listening: dict[socket.socket, int] = {}  # their channels, until a kill order
    while True:
        ready, _, _ = select.select([orders, *listening], [], [], 0.1)
        for channel in ready:
            if channel is not orders:
                pid = listening.pop(channel)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)  # unreaped: the pid is still the child's
                continue
            message, fds, _, _ = socket.recv_fds(orders, 4096, 2)
            if not message:
                _end(reports)  # the service is gone: so are we, and our children with us
                return
            if message == COMPILE or len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                if message == COMPILE:
                    _make_loops()
                continue
            job, report = (socket.socket(fileno=fd) for fd in fds)
            try:
                pid = os.fork()
            except OSError:  # no process to be had: the service reads end-of-file
                job.close()
                report.close()
                continue
            if pid == 0:
                orders.close()
                report.close()
                for other in reports.values():
                    other.close()
                _forked_child(job, Path(os.fsdecode(message)), me)
            job.close()
            _report(report, pid, keep=True)
            reports[pid], listening[report] = report, pid
        while reports:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            report = reports.pop(pid)
            listening.pop(report, None)
            _report(report, os.waitstatus_to_exitcode(status), keep=False)


def _end(reports: dict[int, socket.socket]) -> None:
    """Kill the children still running (and their groups), and remove the zygote's home."""
    for pid in reports:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    shutil.rmtree(Path.cwd(), ignore_errors=True)


def _report(channel: socket.socket, number: int, keep: bool) -> None:
    with contextlib.suppress(OSError):  # the service stopped waiting: nobody to tell
        channel.sendall(f"{number}\n".encode())
    if not keep:
        channel.close()


def _warm_up() -> None:
    """Import what every job needs. No model is loaded and nothing runs in threads, so each
    fork starts from a clean, quiet process."""
    import joblib  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import skops.io  # noqa: F401

    from governance.checks import (  # noqa: F401  # explainability turns numba's cache on
        data_quality,
        drift,
        explainability,
        fairness,
        performance,
    )
    from governance.connectors import files  # noqa: F401
    from governance.domain.policy import parse_policy  # noqa: F401
    from governance.services.gate import judge  # noqa: F401


def _make_loops() -> None:
    """Compile (or load) shap's loops on a tiny table of numbers, through the same calls
    with the same types a job makes."""
    import numpy as np
    import shap

    background = np.zeros((2, 3))
    explainer = shap.PermutationExplainer(
        lambda rows: rows.sum(axis=1), shap.maskers.Independent(background, max_samples=2)
    )
    explainer(np.ones((1, 3)), max_evals=7, silent=True)


def _forked_child(channel: socket.socket, workdir: Path, zygote: int) -> None:
    """A job in a fork of the zygote: its own session, its own directory and files, the
    memory cap before anything large is loaded; the answer on `channel`. Never returns."""
    code = 1
    try:
        os.setsid()
        keep_priority()
        _end_with_parent(zygote)
        os.chdir(workdir)
        os.environ.update(HOME=str(workdir), TMPDIR=str(workdir), MPLCONFIGDIR=str(workdir))
        tempfile.tempdir = None
        errors = os.open(workdir / STDERR, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(errors, 2)
        os.dup2(errors, 1)  # anything a library prints goes with the errors
        job = json.loads(_read_all(channel, time.monotonic() + 60))
        answer = _answer(job)
        channel.sendall(json.dumps(answer).encode())
        channel.close()
        code = 0
    except BaseException:  # noqa: BLE001 - whatever happens, this process ends here
        with contextlib.suppress(Exception):
            import traceback

            traceback.print_exc()
    finally:
        os._exit(code)


def keep_priority() -> None:
    """Keep this process's `nice` in effect although it leads a session of its own. With
    Linux's autogroups (on by default) the scheduler shares the CPU between sessions
    first, and a nice value only counts within one: a check process, which leads its
    session, would otherwise take an equal share with the API beside it, however nice its
    worker was started. So the session's group gets the process's nice value."""
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > 0 and os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(niceness))


def _end_with_parent(zygote: int) -> None:
    """Have the kernel kill this process when the zygote ends, so no job outlives the
    service that ordered it (Linux's prctl; elsewhere the timeout still holds)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote:  # the zygote ended before the line above
        os._exit(1)


def _answer(job: dict[str, Any]) -> dict[str, Any]:
    """Cap memory, judge, and turn every failure into the request's reason."""
    limit = int(job["memoryBytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from governance.checks.explainability import compiled_loops

    before = compiled_loops()
    try:
        return {"manifest": _judge(job), "madeLoops": compiled_loops() > before}
    except InputError as exc:
        return {"inputError": {"subject": exc.subject, "problem": exc.problem, "fix": exc.fix}}
    except MemoryError:
        return {"error": f"the checks ran out of memory (cap {limit // MIB} MiB)"}
    except Exception as exc:  # noqa: BLE001 - every failure becomes the request's reason
        return {"error": f"the checks failed ({type(exc).__name__}: {exc})"}


def _judge(job: dict[str, Any]) -> dict[str, Any]:
    from governance.connectors import files
    from governance.domain.policy import parse_policy
    from governance.services.gate import judge
    from governance.services.ports import GateRequest

    fields = {
        k: (Path(v) if k in PATH_FIELDS and v is not None else v) for k, v in job["request"].items()
    }
    source = files if job["allowPickle"] else files.SKOPS_ONLY
    request = GateRequest(**fields)  # type: ignore[arg-type]  # the fields asdict gave
    execution = Execution(**job.get("execution", {}))
    if job["allowPickle"] and execution.kind == "dask":
        # A pickled model runs code as it loads: next to a client of a shared cluster, it
        # could change every later job's figures there. Its checks stream here instead.
        execution = dataclasses.replace(execution, kind="streamed", dask=None)
    manifest = judge(parse_policy(job["policy"]), request, source, execution=execution)
    result: dict[str, Any] = manifest.model_dump(mode="json")
    return result


if __name__ == "__main__":
    _zygote(socket.socket(fileno=int(sys.argv[1])))
