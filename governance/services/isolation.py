"""A request's checks in a child process that holds none of the service's secrets.

Loading a model runs code (always for a pickle; for skops, whatever its trusted types
do), and the checks run third-party libraries on data a client sent. The service process
holds the signing key, the report key and the database, so none of that runs there: each
check job starts a fresh interpreter (not a fork, which would inherit the key in memory)
with an environment stripped to what the ML libraries need, a working directory of its
own, an address-space cap and a timeout. It is given the pinned policy document and the
files' paths on stdin, runs the same pure `judge` as `governance gate`, and answers the
evidence manifest as JSON on stdout. A child that crashes, is killed, runs out of memory
or overruns its time fails that request's checks; the service goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.domain.errors import InputError
from governance.domain.evidence import EvidenceManifest

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
KEPT_PREFIXES = ("LC_",)
PATH_FIELDS = ("policy", "data", "model", "reference", "champion")
STDERR_TAIL = 2000  # characters of the child's stderr kept in a failure's reason


class ChecksCrashedError(Exception):
    """The child ended without an answer: killed, out of memory, out of time, or a fault.
    The request's checks fail with this as the reason; the service itself is unharmed."""


@dataclass(frozen=True)
class IsolatedChecks:
    """Runs `judge` in a child process; `memory_mb` caps its address space, and
    `compiled_code` is where the children keep numba's compiled loops between jobs (each
    child compiles them again when None)."""

    memory_mb: int = 4096
    timeout_seconds: float = 900.0
    compiled_code: Path | None = None

    def __call__(
        self, policy: PromotionPolicy, request: GateRequest, allow_pickle: bool = False
    ) -> EvidenceManifest:
        job = {
            "policy": json.loads(policy.canonical_json()),
            "request": _request_json(request),
            "allowPickle": allow_pickle,
            "memoryBytes": self.memory_mb * MIB,
        }
        workdir = Path(tempfile.mkdtemp(prefix="governance-checks-"))
        try:
            answer = self._run(json.dumps(job).encode(), workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if "inputError" in answer:
            problem = answer["inputError"]
            raise InputError(problem["subject"], problem["problem"], problem["fix"])
        if "error" in answer:
            raise ChecksCrashedError(answer["error"])
        manifest = EvidenceManifest.model_validate(answer["manifest"])
        if manifest.policy.sha256 != policy.content_hash:
            raise ChecksCrashedError("the check process judged under another policy")
        return manifest

    def _run(self, job: bytes, workdir: Path) -> dict[str, Any]:
        errors = workdir / "stderr.txt"
        with errors.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=workdir,
                env=child_environment(workdir, self.compiled_code),
                start_new_session=True,  # its own group: a timeout ends its helpers too
            )
            try:
                out, _ = child.communicate(job, timeout=self.timeout_seconds)
            except subprocess.TimeoutExpired:
                _kill_group(child)
                raise ChecksCrashedError(
                    f"the check process took longer than {self.timeout_seconds:g} s and was "
                    "stopped (GOVERNANCE_CHECK_TIMEOUT_SECONDS)"
                ) from None
            except BaseException:  # the server is stopping: leave no child behind
                _kill_group(child)
                raise
        if child.returncode == 0:
            try:
                answer: dict[str, Any] = json.loads(out)
                return answer
            except ValueError:
                pass
        return {"error": self._ended(child.returncode, errors)}

    def _ended(self, code: int, errors: Path) -> str:
        tail = errors.read_text(errors="replace")[-STDERR_TAIL:].strip()
        if code < 0:
            name = signal.Signals(-code).name
            why = f"the check process was killed by {name}"
            if -code == signal.SIGKILL:
                why += f" (out of memory, or stopped from outside; cap {self.memory_mb} MiB)"
        else:
            why = f"the check process ended with exit code {code} and no result"
        return why + (f": {tail.splitlines()[-1]}" if tail else "")


def child_environment(workdir: Path, compiled_code: Path | None = None) -> dict[str, str]:
    """The service's environment less its secrets; home and temporary files in `workdir`;
    numba's cache in `compiled_code` when given. The child imports this very code,
    wherever it was imported from here."""
    kept = {k: v for k, v in os.environ.items() if k in KEPT or k.startswith(KEPT_PREFIXES)}
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
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


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """Kill the child and any helpers it started (its own process group), while it is not
    yet reaped, so the group id still names it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _request_json(request: GateRequest) -> dict[str, Any]:
    """The request with absolute paths: the child works in a directory of its own."""
    fields = dataclasses.asdict(request)
    for name in PATH_FIELDS:
        if fields[name] is not None:
            fields[name] = str(Path(fields[name]).absolute())
    return fields


# --- the child -------------------------------------------------------------------------


def _child() -> int:
    """Read the job, cap memory before anything large is loaded, judge, answer on the
    original stdout; anything a library prints goes to stderr instead."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    job = json.loads(sys.stdin.buffer.read())
    limit = int(job["memoryBytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    answer: dict[str, Any]
    try:
        answer = {"manifest": _judge(job)}
    except InputError as exc:
        answer = {"inputError": {"subject": exc.subject, "problem": exc.problem, "fix": exc.fix}}
    except MemoryError:
        answer = {"error": f"the checks ran out of memory (cap {limit // MIB} MiB)"}
    except Exception as exc:  # noqa: BLE001 - every failure becomes the request's reason
        answer = {"error": f"the checks failed ({type(exc).__name__}: {exc})"}
    with os.fdopen(answer_fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(answer))
    return 0


def _judge(job: dict[str, Any]) -> dict[str, Any]:
    from connectors import files
    from governance.domain.policy import parse_policy
    from governance.services.gate import judge
    from governance.services.ports import GateRequest

    fields = {
        k: (Path(v) if k in PATH_FIELDS and v is not None else v) for k, v in job["request"].items()
    }
    source = files if job["allowPickle"] else files.SKOPS_ONLY
    request = GateRequest(**fields)  # type: ignore[arg-type]  # the fields asdict gave
    manifest = judge(parse_policy(job["policy"]), request, source)
    result: dict[str, Any] = manifest.model_dump(mode="json")
    return result


if __name__ == "__main__":
    sys.exit(_child())
