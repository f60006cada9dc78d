"""Code execution by upload (issue 13, item 1): the service never unpickles what a client
sent, and a request's checks run in a child process that holds none of the service's
secrets; a child that crashes or runs out of memory blocks its request, not the service.

The payloads are real pickles whose `__reduce__` runs code when they are loaded."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import joblib
import pytest
from cryptography.hazmat.primitives import serialization
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from governance.bootstrap import Governance, open_governance
from governance.cli import app as cli
from governance.config import Settings
from governance.connectors import files
from governance.connectors.adult import TARGET
from governance.domain.errors import InputError
from governance.domain.policy import PromotionPolicy
from governance.services.gate import judge
from governance.services.isolation import ChecksCrashedError, IsolatedChecks
from governance.services.people import SYSTEM
from governance.services.ports import GateRequest
from governance.services.workflow import Candidate
from governance.store.tables import AuditEventRow, Job, PromotionRequest
from governance.web.app import create_app
from tests.homes import initialise_home
from tests.service_fixtures import PASSWORD, fast_policies, wait_for

pytest_plugins = ["tests.db_fixtures"]

SECRETS = {
    "GOVERNANCE_DATABASE_URL": "postgresql://governance:db-secret-7f3a@127.0.0.1/governance",
    "GOVERNANCE_REPORT_PKCS12_PASSWORD": "pkcs12-secret-91c2",
    "GOVERNANCE_ADMIN_PASSWORD": "admin-secret-5d0e",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-secret-44ab",
    "MLFLOW_TRACKING_TOKEN": "mlflow-token-0c9d",
}


class Payload:
    """Unpickling this runs `code` (what an attacker uploads as a model)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (self.code,))


@dataclass
class Api:
    client: TestClient[Litestar]
    governance: Governance
    tokens: dict[str, str]

    def post(self, who: str, name: str, artifact: bytes, demo_dir: Path, version: str = "1"):
        return self.client.post(
            "/api/v1/requests",
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            data={"model": "income", "version": version, "label": TARGET, "target": "production"},
            files={
                "artifact": (name, artifact),
                "data": ("test.parquet", (demo_dir / "test.parquet").read_bytes()),
                "reference": ("train.parquet", (demo_dir / "train.parquet").read_bytes()),
            },
        )

    def counts(self) -> tuple[int, int]:
        with Session(self.governance.engine) as session:
            requests = session.exec(select(func.count()).select_from(PromotionRequest)).one()
            events = session.exec(select(func.count()).select_from(AuditEventRow)).one()
        return int(requests), int(events)

    def run_jobs(self) -> None:
        workflow = self.governance.workflow
        for job in workflow.claimable_jobs():
            workflow.run_job(job)


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The HTTP app in-process (no job thread: the test runs jobs), dana as a signed-in
    data scientist, a `ci` token, and the model `income` registered at high risk."""
    settings = replace(
        Settings.from_env(database_url, tmp_path / "home"),
        policies=fast_policies(tmp_path / "policies"),
    )
    initialise_home(settings, PASSWORD)
    governance = open_governance(settings)
    try:
        governance.people.add_user(SYSTEM, "dana", "Dana Scientist", PASSWORD, ["data_scientist"])
        tokens = {
            "dana": governance.people.sign_in("dana", PASSWORD, 1).token,
            "ci": governance.people.create_token(SYSTEM, "ci", ["ci"], 30).token,
        }
        governance.workflow.register_model(SYSTEM, "income", "high", "dana")
    finally:
        governance.close()
    application = create_app(settings, run_jobs=False)
    with TestClient(application) as client:
        yield Api(client, client.app.state.governance, tokens)


@pytest.mark.parametrize("who", ["dana", "ci"])
@pytest.mark.parametrize("name", ["model.joblib", "model.skops"])
def test_a_pickle_upload_is_refused_and_never_loaded(
    api: Api, demo_dir: Path, tmp_path: Path, who: str, name: str
) -> None:
    marker = tmp_path / "pwned"
    payload = tmp_path / "payload.joblib"
    joblib.dump(Payload(f"open({str(marker)!r}, 'w').close()"), payload)
    before = api.counts()

    answer = api.post(who, name, payload.read_bytes(), demo_dir)

    assert answer.status_code in (415, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["field"] == "artifact"
    assert "skops" in problem["fix"]
    assert api.counts() == before  # no request row, no audit event
    api.run_jobs()  # had anything been queued, its checks would load the upload now
    assert not marker.exists()


def test_a_skops_upload_is_still_judged(api: Api, demo_dir: Path) -> None:
    model = (demo_dir / "income-reweighed.skops").read_bytes()
    answer = api.post("ci", "income.skops", model, demo_dir)
    assert answer.status_code == 202, answer.text
    api.run_jobs()
    request = api.governance.workflow.get_request(answer.json()["id"])
    assert request.state == "awaiting_approval", request.state_reason


def allowed_pickle(api: Api, demo_dir: Path, tmp_path: Path, model: object, version: str) -> str:
    """A request whose model is a pickle, as a registry connector with allowPickle offers
    one; its id."""
    path = tmp_path / f"model-{version}.joblib"
    joblib.dump(model, path)
    candidate = Candidate(
        model="income",
        version=version,
        target="production",
        label=TARGET,
        artifact=api.governance.blobs.adopt(path),  # where a connector puts what it fetched
        data=demo_dir / "test.parquet",
        reference=demo_dir / "train.parquet",
        pickle_allowed=True,
    )
    return str(api.governance.workflow.submit(SYSTEM, candidate).id)


def blocked_reason(api: Api, request_id: str) -> str:
    answer = api.client.get(
        f"/api/v1/requests/{request_id}",
        headers={"Authorization": f"Bearer {api.tokens['dana']}"},
    )
    assert answer.status_code == 200, answer.text  # the service still answers
    request = answer.json()
    assert request["state"] == "blocked", request
    with Session(api.governance.engine) as session:
        job = session.exec(select(Job).filter_by(request_id=request_id)).one()
    assert job.status == "failed"
    return str(request["stateReason"])


def test_a_connector_pickle_is_judged_in_the_child(
    api: Api, demo_dir: Path, tmp_path: Path
) -> None:
    model, _ = files.load_model(demo_dir / "income-reweighed.skops")
    request_id = allowed_pickle(api, demo_dir, tmp_path, model, "2")
    api.run_jobs()
    request = api.governance.workflow.get_request(request_id)
    assert request.state == "awaiting_approval", request.state_reason
    # The bias audit predicts again in the server process, which holds the report key:
    # there a pickle is refused even from a connector that allows them.
    with pytest.raises(InputError) as refused:
        api.governance.reports.bias_audit("audrey", request.gate_decision_id)
    assert refused.value.subject == "model" and "skops" in refused.value.fix


def check_jobs(service: int) -> list[int]:
    """The pids of the check jobs of `service`: the children of its zygotes."""
    parents = zygotes(service)
    return [pid for pid, ppid in isolation_processes().items() if ppid in parents]


def zygotes(service: int) -> list[int]:
    """The pids of the warm parents of `service`'s check jobs (one per numba cache)."""
    return [pid for pid, ppid in isolation_processes().items() if ppid == service]


def isolation_processes() -> dict[int, int]:
    """Every process that runs governance.services.isolation, with its parent's pid."""
    processes = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"governance.services.isolation" in command:
            processes[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return processes


def memory_holds(pid: int, needles: list[bytes]) -> list[bool]:
    """Whether each needle occurs anywhere in the process's readable memory."""
    seen = [False] * len(needles)
    regions = (Path(f"/proc/{pid}/maps")).read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
        for line in regions:
            span, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                memory.seek(start)
                chunk = memory.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            for index, needle in enumerate(needles):
                seen[index] = seen[index] or needle in chunk
    return seen


def test_the_check_process_holds_no_secret_and_its_crash_blocks_only_its_request(
    api: Api, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = api.governance.signing_key
    raw_key = key.private_bytes_raw()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_body = re.sub(rb"-----[A-Z ]+-----|\s", b"", pem)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOVERNANCE_SIGNING_KEY", str(api.governance.settings.signing_key))
    ready = tmp_path / "payload-running"
    code = f"open({str(ready)!r}, 'w').close()\nimport time\ntime.sleep(300)"
    request_id = allowed_pickle(api, demo_dir, tmp_path, Payload(code), "3")
    runner = threading.Thread(target=api.run_jobs)
    runner.start()
    try:
        wait_for(lambda: ready.exists() or None, "the payload runs in the child", 120)
        [pid] = check_jobs(os.getpid())
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes()
        names = [entry.split(b"=", 1)[0] for entry in environ.split(b"\0") if entry]
        assert not [n for n in names if n.startswith((b"GOVERNANCE_", b"MLFLOW_"))], names
        for text in (environ, arguments):
            for value in [*SECRETS.values(), str(api.governance.settings.signing_key)]:
                assert value.encode() not in text
        # The payload's own code is in the child's memory (the reader works); the key is not.
        assert memory_holds(pid, [str(ready).encode(), raw_key, pem_body]) == [True, False, False]
        os.kill(pid, signal.SIGKILL)
        runner.join(60)
        assert not runner.is_alive()
    finally:
        for child in check_jobs(os.getpid()):
            os.kill(child, signal.SIGKILL)
        runner.join(60)
    reason = blocked_reason(api, request_id)
    assert reason.startswith("the checks could not run: ")
    assert "killed by SIGKILL" in reason


def test_a_check_process_cannot_answer_for_bytes_it_was_not_given(
    api: Api, demo_dir: Path, tmp_path: Path
) -> None:
    """Code that runs in the check process judges a good model instead and answers that
    honest manifest as its own: the service hashes the request's files again, and the
    request is blocked rather than decided (and later attested) for other bytes."""
    good = demo_dir / "income-reweighed.skops"
    forger = Payload(
        "import gc, json, os, socket\n"
        "from governance.services.isolation import _judge\n"
        "for found in gc.get_objects():  # the job, as the child read it\n"
        "    if isinstance(found, dict) and 'allowPickle' in found:\n"
        "        job = found\n"
        "    if isinstance(found, socket.socket) and found.fileno() >= 0:\n"
        "        channel = found  # the service's end of it is waiting for the answer\n"
        f"job['request']['model'] = {str(good)!r}\n"
        "job['allowPickle'] = False\n"
        "channel.sendall(json.dumps({'manifest': _judge(job)}).encode())\n"
        "channel.close()\n"
        "os._exit(0)\n"
    )
    request_id = allowed_pickle(api, demo_dir, tmp_path, forger, "5")
    api.run_jobs()
    reason = blocked_reason(api, request_id)
    assert reason == "the checks could not run: the check process answered for another model file"


def test_a_check_process_out_of_memory_blocks_its_request(
    api: Api, demo_dir: Path, tmp_path: Path
) -> None:
    """8 GiB asked for, over the default 4 GiB cap: the child's allocation fails, not the
    server's."""
    greedy = Payload("bytearray(8 * 1024 ** 3)")
    request_id = allowed_pickle(api, demo_dir, tmp_path, greedy, "4")
    api.run_jobs()
    reason = blocked_reason(api, request_id)
    assert reason.startswith("the checks could not run: ")
    assert "ran out of memory (cap 4096 MiB)" in reason


def test_the_cli_gate_warns_that_a_joblib_file_runs_code(demo_dir: Path, tmp_path: Path) -> None:
    model, _ = files.load_model(demo_dir / "income-reweighed.skops")
    path = tmp_path / "income.joblib"
    joblib.dump(model, path)
    result = CliRunner().invoke(
        cli,
        [
            "gate",
            "--policy", str(fast_policies(tmp_path / "policies") / "low.yaml"),
            "--model", str(path),
            "--data", str(demo_dir / "test.parquet"),
            "--target", TARGET,
        ],
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    assert "income.joblib is a joblib/pickle file: loading it runs any code it holds" in (
        result.stderr
    )


def demo_job(demo_dir: Path, tmp_path: Path) -> tuple[PromotionPolicy, GateRequest]:
    """The demo's good model under the low-risk policy with the tests' smaller samples."""
    policy = files.load_policy(fast_policies(tmp_path) / "low.yaml")
    request = GateRequest(
        policy=Path(), data=demo_dir / "test.parquet", target=TARGET,
        model=demo_dir / "income-reweighed.skops",
    )  # fmt: skip
    return policy, request


def test_a_check_process_over_its_time_is_stopped(demo_dir: Path, tmp_path: Path) -> None:
    policy, request = demo_job(demo_dir, tmp_path)
    # 50 ms: a warm zygote judges this small job in well under a second, and the gate
    # cannot read the data and load the model in 50 ms
    with pytest.raises(ChecksCrashedError, match=r"took longer than 0\.05 s"):
        IsolatedChecks(timeout_seconds=0.05)(policy, request)
    assert not check_jobs(os.getpid())


def test_a_timed_out_job_never_kills_a_process_that_took_its_pid(
    demo_dir: Path, tmp_path: Path
) -> None:
    """A job's child leaves a helper in a session of its own holding the job's channel, and
    ends. Its pid is free again and another process (here a stand-in, given that pid with
    the kernel's ns_last_pid) takes it. At the job's timeout, the kill must not reach that
    process: only the zygote, which has not reaped a child it kills, can kill safely."""
    started = tmp_path / "child.pid"
    helper = tmp_path / "helper.pid"
    payload = Payload(
        "import os, time\n"
        f"open({str(started)!r}, 'w').write(str(os.getpid()))\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    open({str(helper)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "os._exit(0)\n"
    )
    model = tmp_path / "model.joblib"
    joblib.dump(payload, model)
    policy = files.load_policy(fast_policies(tmp_path) / "low.yaml")
    request = GateRequest(
        policy=Path(), data=demo_dir / "test.parquet", target=TARGET, model=model,
    )  # fmt: skip
    checks = IsolatedChecks(timeout_seconds=8)
    outcome: list[BaseException] = []

    def job() -> None:
        try:
            checks(policy, request, allow_pickle=True)
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test's subject
            outcome.append(exc)

    runner = threading.Thread(target=job)
    runner.start()
    victim = None
    try:
        wait_for(lambda: helper.exists() or None, "the payload's helper started", 120)
        child = int(started.read_text())
        wait_for(lambda: not Path(f"/proc/{child}").exists() or None, "the child reaped", 30)
        for _ in range(20):  # another process may take the pid first: try again
            try:
                Path("/proc/sys/kernel/ns_last_pid").write_text(str(child - 1))
            except OSError as exc:
                pytest.fail(f"giving a pid away needs root (ns_last_pid): {exc}", pytrace=False)
            victim = subprocess.Popen(["sleep", "120"], start_new_session=True)
            if victim.pid == child:
                break
            victim.kill()
            victim.wait()
        assert victim is not None and victim.pid == child, "could not give the pid away"
        runner.join(60)
        assert not runner.is_alive()
        assert isinstance(outcome[0], ChecksCrashedError), outcome
        assert "took longer than 8 s" in str(outcome[0])
        with pytest.raises(subprocess.TimeoutExpired):  # a kill takes a moment to land
            victim.wait(timeout=2)  # still running: the timeout's kill did not reach it
    finally:
        if victim is not None:
            victim.kill()
            victim.wait()
        if helper.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(helper.read_text()), signal.SIGKILL)
        runner.join(60)


def test_a_job_that_crashes_retires_its_zygote(demo_dir: Path, tmp_path: Path) -> None:
    """Forks share their zygote's address-space layout, and a crash tells the client it
    hit something: after a child dies of SIGSEGV, the next job forks from a new zygote."""
    model = tmp_path / "model.joblib"
    joblib.dump(Payload("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"), model)
    policy, request = demo_job(demo_dir, tmp_path)
    checks = IsolatedChecks(compiled_code=tmp_path / "numba")  # a zygote of its own
    others = set(zygotes(os.getpid()))
    checks(policy, request)
    [zygote] = set(zygotes(os.getpid())) - others
    with pytest.raises(ChecksCrashedError, match="killed by SIGSEGV"):
        checks(policy, replace(request, model=model), allow_pickle=True)
    assert zygote not in zygotes(os.getpid())
    checks(policy, request)
    assert len(set(zygotes(os.getpid())) - others) == 1


def test_a_zygote_killed_is_started_again_for_the_next_job(demo_dir: Path, tmp_path: Path) -> None:
    """kill -9 of the warm parent of the check jobs costs the next job a start, not its
    answer: the service notices the zygote is gone and starts another."""
    policy, request = demo_job(demo_dir, tmp_path)
    checks = IsolatedChecks(compiled_code=tmp_path / "numba")  # a zygote of its own
    others = set(zygotes(os.getpid()))
    first = checks(policy, request)
    [zygote] = set(zygotes(os.getpid())) - others
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: zygote not in zygotes(os.getpid()) or None, "the zygote reaped", 30)

    second = checks(policy, request)
    assert len(set(zygotes(os.getpid())) - others - {zygote}) == 1
    figures = [[r.model_dump(exclude={"duration_seconds"}) for r in m.results] for m in
               (first, second)]  # fmt: skip
    assert figures[0] == figures[1]
    assert not check_jobs(os.getpid())


def linear_model(demo_dir: Path, directory: Path) -> Path:
    """A model without a tree (a logistic regression on the demo's data), saved with skops:
    shap explains it with the permutation explainer and its compiled loops."""
    import pandas as pd
    import skops.io
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = pd.read_parquet(demo_dir / "train.parquet")
    features = [c for c in train.columns if c != TARGET]
    text = [c for c in features if train[c].dtype == object]
    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore"), text)], remainder=StandardScaler()
    )
    model = Pipeline([("encode", encode), ("logistic", LogisticRegression(max_iter=300))])
    model.fit(train[features], train[TARGET])
    path = directory / "linear.skops"
    skops.io.dump(model, path)
    return path


def test_check_processes_keep_the_compiled_loops_and_judge_to_the_same_bit(
    demo_dir: Path, tmp_path: Path
) -> None:
    """The first check process that explains a model without a tree compiles shap's loops
    and leaves the machine code in the service's cache; the zygote is then told to make
    them and the next process has them. All judge exactly as an in-process judge (which may
    have compiled its own); a tree model's job, before and after, judges the same too."""
    policy = files.load_policy(fast_policies(tmp_path / "policies") / "high.yaml")
    trees = GateRequest(
        policy=Path(), data=demo_dir / "test.parquet", target=TARGET,
        model=demo_dir / "income-reweighed.skops", reference=demo_dir / "train.parquet",
    )  # fmt: skip
    linear = replace(trees, model=linear_model(demo_dir, tmp_path))
    checks = IsolatedChecks(compiled_code=tmp_path / "numba")

    before = checks(policy, trees)
    first = checks(policy, linear)
    kept = sorted(p.name for p in (tmp_path / "numba").rglob("*.nbi"))
    second = checks(policy, linear)
    after = checks(policy, trees)

    assert any(name.startswith("_tabular._delta_masking") for name in kept), kept
    explainers = [next(r.metrics["explainer"] for r in m.results if r.id == "explainability")
                  for m in (before, first)]  # fmt: skip
    assert explainers == ["TreeExplainer", "PermutationExplainer"]
    figures = [[r.model_dump(exclude={"duration_seconds"}) for r in m.results] for m in
               (first, second, judge(policy, linear, files))]  # fmt: skip
    assert figures[0] == figures[1] == figures[2]
    figures = [[r.model_dump(exclude={"duration_seconds"}) for r in m.results] for m in
               (before, after, judge(policy, trees, files))]  # fmt: skip
    assert figures[0] == figures[1] == figures[2]


def test_a_service_stopped_with_its_process_group_leaves_no_zygote_directory(
    demo_dir: Path, tmp_path: Path
) -> None:
    """A process that ran a job is stopped as systemd stops a service, SIGTERM to its whole
    process group: the zygote, which got it too, still removes its directory (its log)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    policy = fast_policies(tmp_path / "policies") / "low.yaml"
    job = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from governance.connectors import files\n"
        "from governance.services.isolation import IsolatedChecks\n"
        "from governance.services.ports import GateRequest\n"
        "policy, data, model, target = sys.argv[1:]\n"
        "request = GateRequest(policy=Path(), data=Path(data), target=target, model=Path(model))\n"
        "IsolatedChecks()(files.load_policy(Path(policy)), request)\n"
        "print('judged', flush=True)\n"
        "time.sleep(120)\n"
    )
    model = demo_dir / "income-reweighed.skops"
    command = [sys.executable, "-c", job, str(policy), str(demo_dir / "test.parquet"), str(model)]
    service = subprocess.Popen(
        [*command, TARGET],
        env={**os.environ, "TMPDIR": str(temporary)},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert service.stdout is not None and service.stdout.readline() == b"judged\n"
        assert list(temporary.glob("governance-zygote-*"))  # the zygote is there
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=30)
        wait_for(lambda: not list(temporary.glob("governance-*")) or None, "no directory", 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGKILL)
        service.wait()
