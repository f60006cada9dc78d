"""The README's first command: the service seeded with a person for every role and three
real candidates taken through the workflow to three states; a second run finds them and
changes nothing; `governance demo` prints them and serves the service."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from governance.bootstrap import Governance, open_governance
from governance.cli import app
from governance.demo import Demo, DemoRun, run_demo
from governance.domain.roles import HUMAN_ROLES
from governance.domain.verdict import Verdict
from governance.store.database import make_engine
from governance.store.repository import audit_trail, list_decisions
from tests.processes import start_group
from tests.service_fixtures import Service, free_port, stop_service

runner = CliRunner()
EXPECTED_STATES = {
    ("income-full", "1"): "blocked",
    ("income-reweighed", "1"): "promoted",
    ("income-reweighed", "2"): "awaiting_approval",
}


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Demo, list[str]]:
    """The demo at full size, under the shipped policies, as `scripts/demo` runs it."""
    directory = tmp_path_factory.mktemp("demo")
    steps: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
        return run_demo(directory, progress=steps.append), steps


@pytest.fixture
def governance(full_demo: tuple[Demo, list[str]]):
    opened = open_governance(full_demo[0].settings)
    yield opened
    opened.close()


def by_candidate(runs: list[DemoRun]) -> dict[tuple[str, str], DemoRun]:
    return {(run.model, run.version): run for run in runs}


def test_the_candidates_reach_blocked_promoted_and_awaiting_approval(
    full_demo: tuple[Demo, list[str]], governance: Governance
) -> None:
    demo, steps = full_demo
    runs = by_candidate(demo.runs)
    assert {key: run.state for key, run in runs.items()} == EXPECTED_STATES
    verdicts = {key: run.manifest.decision for key, run in runs.items() if run.manifest}
    assert verdicts[("income-full", "1")].verdict is Verdict.BLOCKED
    assert [b.check_id for b in verdicts[("income-full", "1")].blocking] == ["fairness"]
    assert verdicts[("income-reweighed", "1")].verdict is Verdict.PASS
    assert verdicts[("income-reweighed", "2")].verdict is Verdict.PASS
    for run in demo.runs:
        name = f"{run.model}-v{run.version}"
        assert run.evidence == demo.settings.home / "demo" / "evidence" / name
        assert {p.name for p in run.evidence.iterdir()} == {
            "manifest.json", "junit.xml", "summary.md",
            f"decision-{name}.pdf", f"bias-audit-{name}.pdf",
        }  # fmt: skip
        assert {p.name for p in run.reports} == {f"decision-{name}.pdf", f"bias-audit-{name}.pdf"}
        assert all(p.read_bytes().startswith(b"%PDF-1.7") for p in run.reports)
    url = demo.settings.database_url
    assert url == f"sqlite:///{(demo.settings.home / 'governance.db').resolve()}"
    recorded = list_decisions(make_engine(url))
    assert sorted((d["model"], d["version"], d["verdict"]) for d in recorded) == [
        ("income-full", "1", "blocked"),
        ("income-reweighed", "1", "pass"),
        ("income-reweighed", "2", "pass"),
    ]
    assert any(step.startswith("Training income-full v1") for step in steps)

    # through the service: who submitted, who signed, what admission answers
    workflow = governance.workflow
    promoted = workflow.get_request(runs[("income-reweighed", "1")].request_id)
    assert promoted.submitter == "dana" and promoted.owner == "dana"
    assert sorted((s.username, s.role, s.meaning) for s in promoted.signatures) == [
        ("bob", "business_owner", "approve"),
        ("maria", "model_risk_officer", "approve"),
    ]
    assert all(s.reauthenticated for s in promoted.signatures)
    waiting = workflow.get_request(runs[("income-reweighed", "2")].request_id)
    assert waiting.signatures == () and waiting.submitter == "dana"
    assert workflow.admission("income-reweighed", "1", "production").allowed
    assert not workflow.admission("income-reweighed", "2", "production").allowed
    assert not workflow.admission("income-full", "1", "production").allowed
    # v2 was judged against the model in production
    v1, v2 = runs[("income-reweighed", "1")].manifest, runs[("income-reweighed", "2")].manifest
    assert v1 is not None and v2 is not None
    champion, model = v2.artifact("champion"), v1.artifact("model")
    assert champion is not None and model is not None and champion.sha256 == model.sha256
    # the files were stored where the service keeps uploads, as the API stores them
    blobs = demo.settings.blobs.resolve()
    for artifact in v2.artifacts:
        assert blobs in Path(artifact.uri).resolve().parents, artifact


def test_people_json_holds_a_password_that_signs_in_for_each_role(
    full_demo: tuple[Demo, list[str]], governance: Governance
) -> None:
    demo, _ = full_demo
    path = demo.settings.home / "demo" / "people.json"
    assert path.stat().st_mode & 0o777 == 0o600
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(person.role for person, _ in demo.people) == sorted(HUMAN_ROLES)
    for person, password in demo.people:
        assert password is not None and saved[person.username] == password
        session = governance.people.sign_in(person.username, password, 1)
        principal = governance.people.authenticate(session.token)
        assert (principal.name, principal.full_name) == (person.username, person.full_name)
        assert principal.roles == {person.role}


def test_a_second_run_finds_everything_and_records_nothing(
    full_demo: tuple[Demo, list[str]],
) -> None:
    demo, _ = full_demo
    engine = make_engine(demo.settings.database_url)
    events = audit_trail(engine)
    reports = {p: p.stat().st_mtime_ns for run in demo.runs for p in run.reports}
    steps: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
        again = run_demo(demo.settings.home, progress=steps.append)
    assert [(r.model, r.version, r.request_id, r.state) for r in again.runs] == [
        (r.model, r.version, r.request_id, r.state) for r in demo.runs
    ]
    assert [(r.decision_id, r.reports) for r in again.runs] == [
        (r.decision_id, r.reports) for r in demo.runs
    ]
    assert again.people == demo.people
    assert [e.event for e in audit_trail(engine)] == [e.event for e in events]
    assert {p: p.stat().st_mtime_ns for p in reports} == reports  # not signed again
    assert not [s for s in steps if s.startswith("Training") or "checks" in s]


def test_the_cli_prints_candidates_people_and_how_to_verify(
    full_demo: tuple[Demo, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    demo, _ = full_demo
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
    directory = demo.settings.home
    result = runner.invoke(app, ["demo", "--data-dir", str(directory), "--no-serve"])
    assert result.exit_code == 0, result.output
    output = result.output
    for (model, version), state in EXPECTED_STATES.items():
        assert f"{model} v{version}: {state}" in output
    for run in demo.runs:
        assert run.request_id in output
        for report in run.reports:
            assert str(report) in output
    for person, password in demo.people:
        assert person.username in output and person.role in output
        assert password is not None and password in output
    assert f"governance report verify FILE.pdf --trust {directory / 'report-ca.pem'}" in output
    assert "serving" not in output


def test_the_demo_serves_the_service_it_seeded(full_demo: tuple[Demo, list[str]]) -> None:
    demo, _ = full_demo
    port = free_port()
    log_path = demo.settings.home / "demo-serve.log"
    env = {k: v for k, v in os.environ.items() if k != "GOVERNANCE_DATABASE_URL"}
    command = [sys.executable, "-m", "governance.cli", "demo",
               "--data-dir", str(demo.settings.home), "--port", str(port)]  # fmt: skip
    with log_path.open("wb") as log:
        process = start_group(command, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    service = Service(url, demo.settings.home, demo.settings.database_url, process)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.3)
        passwords = {person.username: password for person, password in demo.people}
        signed_in = httpx.post(
            f"{url}/api/v1/sessions",
            json={"username": "maria", "password": passwords["maria"]},
            timeout=30,
        )
        assert signed_in.status_code == 201, signed_in.text
        waiting = httpx.get(
            f"{url}/api/v1/requests",
            params={"state": "awaiting_approval"},
            headers={"Authorization": f"Bearer {signed_in.json()['token']}"},
            timeout=30,
        )
        assert waiting.status_code == 200, waiting.text
        assert [(r["model"], r["version"]) for r in waiting.json()["items"]] == [
            ("income-reweighed", "2")
        ]
    finally:
        stop_service(service)
    output = log_path.read_text(errors="replace")
    assert "income-reweighed v2: awaiting_approval" in output
    assert f"serving http://127.0.0.1:{port}/" in output
