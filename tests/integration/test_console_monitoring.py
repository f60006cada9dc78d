"""Production on the console, on SQLite and on PostgreSQL, through the app in-process and
signed in through the console's own form: a promoted request's page shows its policy's
monitors, its runs and the predictions received, with "Run now" for a risk officer (not
for a business owner), which records a run and says what it found; the registry
connectors' admin page for an admin (with "Sync now", here on a folder connector) and an
auditor (without), refused to a data scientist.

The request is the demo's `income-reweighed` model, checked through the workflow under a
small high-tier policy of its own (a drift and a performance check only: seconds, not a
minute), signed and promoted; its predictions logged through the service."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, func, select

from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.connectors import files
from governance.connectors.adult import TARGET
from governance.services.people import SYSTEM
from governance.services.workflow import Candidate
from governance.store.tables import MonitoringRun, utcnow
from governance.web.app import create_app
from tests.homes import initialise_home

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

PASSWORD = "a-long-test-passphrase"
MODEL, VERSION = "income-reweighed", "1"
PEOPLE = {
    "dana": ("Dana Scientist", ["data_scientist"]),
    "maria": ("Maria Risk", ["model_risk_officer"]),
    "bob": ("Bob Owner", ["business_owner"]),
    "audrey": ("Audrey Auditor", ["auditor"]),
}
POLICY = """\
apiVersion: governance/v1
kind: PromotionPolicy
metadata: {name: monitored-high, version: 1}
appliesTo: {riskTier: high, targets: [production]}
checks:
  - id: drift
    type: drift
    reference: training
    rules:
      - driftShare: {max: 0.3}
  - id: performance
    type: performance
    rules:
      - metric: roc_auc
        min: 0.7
approvals: {quorum: 1, roles: [model_risk_officer], forbidSelfApproval: true, expiresAfterDays: 365}
waivers: {allowed: false}
monitoring:
  drift: {schedule: daily, onBreach: alert}
  performance: {schedule: weekly, onBreach: alert}
  windowDays: 14
  minRows: 100
"""
ROWS = 300


def settings_for(database_url: str, tmp_path: Path) -> Settings:
    """The service with its own policy and a folder connector on an empty folder."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "high.yaml").write_text(POLICY)
    (tmp_path / "drop").mkdir()
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(f"folders:\n  - name: drop\n    path: {tmp_path / 'drop'}\n")
    return replace(
        Settings.from_env(database_url, tmp_path / "home"),
        policies=policies,
        connectors=connectors,
    )


def add_people(governance: Governance) -> None:
    for username, (full_name, roles) in PEOPLE.items():
        governance.people.add_user(SYSTEM, username, full_name, PASSWORD, roles)


@dataclass
class Console:
    app: Litestar
    governance: Governance
    request_id: str = ""

    def browser(self, username: str) -> TestClient[Litestar]:
        """A browser of its own (its own cookies), signed in through the form."""
        client = TestClient(self.app)
        form = client.get("/login")
        login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert login_token, form.text
        answer = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "login_token": login_token[1]},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        return client

    def runs(self) -> int:
        with Session(self.governance.engine) as session:
            return int(session.exec(select(func.count()).select_from(MonitoringRun)).one())


@pytest.fixture
def promoted(database_url: str, tmp_path: Path, demo_dir: Path) -> Iterator[Console]:
    """The model checked, signed by maria, promoted by dana, 300 predictions logged an
    hour ago, and its drift monitor run once."""
    settings = settings_for(database_url, tmp_path)
    initialise_home(settings, PASSWORD)
    governance = open_governance(settings)
    try:
        add_people(governance)
        people = {
            u: governance.people.authenticate(governance.people.sign_in(u, PASSWORD, 1).token)
            for u in PEOPLE
        }
        workflow = governance.workflow
        workflow.register_model(people["dana"], MODEL, "high", "dana")
        candidate = Candidate(
            model=MODEL,
            version=VERSION,
            target="production",
            label=TARGET,
            artifact=demo_dir / f"{MODEL}.skops",
            data=demo_dir / "test.parquet",
            reference=demo_dir / "train.parquet",
        )
        request_id = workflow.submit(people["dana"], candidate).id
        for job in workflow.claimable_jobs():
            workflow.run_job(job)
        assert workflow.get_request(request_id).state == "awaiting_approval"
        workflow.sign(people["maria"], request_id, "approve", "reviewed", PASSWORD)
        workflow.promote(people["dana"], request_id)
        governance.monitoring.ingest("serving", MODEL, VERSION, "b-1", predictions(demo_dir))
        governance.monitoring.run_now(people["maria"], request_id, "drift")
    finally:
        governance.close()
    app = create_app(settings, run_jobs=False)
    with TestClient(app) as client:
        yield Console(app, client.app.state.governance, request_id)


@pytest.fixture
def console(database_url: str, tmp_path: Path) -> Iterator[Console]:
    """The service with its people and the folder connector, and no request."""
    settings = settings_for(database_url, tmp_path)
    initialise_home(settings, PASSWORD)
    governance = open_governance(settings)
    try:
        add_people(governance)
    finally:
        governance.close()
    app = create_app(settings, run_jobs=False)
    with TestClient(app) as client:
        yield Console(app, client.app.state.governance)


def predictions(demo_dir: Path) -> pd.DataFrame:
    """The model's predictions on the first rows of the test split, logged an hour ago."""
    test = pd.read_parquet(demo_dir / "test.parquet").iloc[:ROWS]
    model, _ = files.load_model(demo_dir / f"{MODEL}.skops")
    features = test.drop(columns=[TARGET])
    used = features[list(model.feature_names_in_)]
    return features.assign(
        prediction=model.predict(used),
        score=model.predict_proba(used)[:, 1],
        outcome=test[TARGET],
        timestamp=utcnow() - timedelta(hours=1),
    )


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found[1]


def flash(page: str) -> str:
    found = re.search(r'<div class="flash (ok|error)"[^>]*>(.*?)</div>', page, re.S)
    assert found, page
    return found[1] + ": " + html.unescape(re.sub(r"<[^>]+>", "", found[2])).strip()


def section(page: str) -> str:
    """The text of the request page's production monitoring section, tags taken out."""
    found = re.search(r'<section id="monitoring".*?</section>', page, re.S)
    assert found, "no monitoring section"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found[0])).split())


def run_rows(page: str) -> list[str]:
    table = re.search(r'<table data-testid="monitoring-runs">.*?</table>', page, re.S)
    assert table
    body = table[0].split("<tbody>")[1]
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


RUN_NOW = re.compile(r'action="/requests/[^"]+/monitoring/(\w+)/run"')


def test_a_promoted_request_shows_its_monitoring_and_a_risk_officer_runs_it_now(
    promoted: Console,
) -> None:
    url = f"/requests/{promoted.request_id}"
    maria = promoted.browser("maria")
    page = maria.get(url)
    assert page.status_code == 200, page.text
    text = section(page.text)
    assert "last 14 days" in text and "at least 100 rows" in text
    assert "drift daily ! alert" in text and "performance weekly ! alert" in text
    assert "Predictions received for this version: 1 batch, 300 rows (300 with an outcome)" in text
    [drift] = run_rows(page.text)
    assert re.search(r" UTC drift ✓ passed 300 \d+ of \d+ columns drifted .* —$", drift), drift
    assert RUN_NOW.findall(page.text) == ["drift", "performance"]

    # a business owner reads the same section, without the buttons, and is refused anyway
    bob = promoted.browser("bob")
    seen = bob.get(url)
    assert seen.status_code == 200 and "1 batch, 300 rows" in section(seen.text)
    assert RUN_NOW.findall(seen.text) == [] and "Run now" not in seen.text
    refused = bob.post(f"{url}/monitoring/drift/run", data={"csrf_token": csrf(seen.text)})
    assert refused.status_code == 403 and "may not run monitoring" in html.unescape(refused.text)
    assert promoted.runs() == 1

    # without the form's CSRF token nothing runs
    assert maria.post(f"{url}/monitoring/performance/run").status_code == 403
    assert promoted.runs() == 1

    # "Run now" through the page: a run is recorded, the flash says what it found
    done = maria.post(f"{url}/monitoring/performance/run", data={"csrf_token": csrf(page.text)})
    assert done.status_code == 200 and done.url.path == url
    said = flash(done.text)
    assert said.startswith(
        "ok: Done: The performance check ran on 300 production rows: passed. "
    ), said
    assert "The model meets its performance rule on 300 rows (roc_auc 0." in said
    assert promoted.runs() == 2
    newest, older = run_rows(done.text)
    assert " UTC performance ✓ passed 300 The model meets" in newest and " UTC drift " in older
    listed = promoted.governance.monitoring.runs(promoted.request_id)
    assert [(r.monitor, r.status, r.rows) for r in listed] == [
        ("performance", "pass", ROWS),
        ("drift", "pass", ROWS),
    ]

    # a monitor the policy does not set: refused, naming the fix, nothing recorded
    wrong = maria.post(f"{url}/monitoring/fairness/run", data={"csrf_token": csrf(page.text)})
    said = flash(wrong.text)
    assert said.startswith("error:") and "name one of the policy's monitors" in said
    assert promoted.runs() == 2

    # once revoked, the runs stay on the page and nothing more runs from it
    form = {"reason": "retired", "csrf_token": csrf(page.text)}
    revoked = maria.post(f"{url}/revoke", data=form)
    assert flash(revoked.text).startswith("ok:") and len(run_rows(revoked.text)) == 2
    assert RUN_NOW.findall(revoked.text) == []
    late = maria.post(f"{url}/monitoring/drift/run", data={"csrf_token": csrf(page.text)})
    said = flash(late.text)
    assert said.startswith("error:") and "only a promoted version is monitored" in said
    assert promoted.runs() == 2


def test_the_connectors_page_for_admin_and_auditor_and_sync_now(
    console: Console, tmp_path: Path
) -> None:
    admin = console.browser("admin")
    page = admin.get("/admin/connectors")
    assert page.status_code == 200, page.text
    row = re.search(r'<tr id="connector-drop">.*?</tr>', page.text, re.S)
    assert row and "folder" in row[0] and "not yet" in row[0] and "Sync now" in row[0]
    assert 'href="/admin/connectors"' in admin.get("/admin/users").text  # the admin links
    assert 'href="/admin/connectors"' in admin.get("/admin/webhooks").text

    # the auditor reads the page, without the button, and may not sync
    audrey = console.browser("audrey")
    seen = audrey.get("/admin/connectors")
    assert seen.status_code == 200 and "connector-drop" in seen.text
    assert "Sync now" not in seen.text
    token = csrf(seen.text)
    assert audrey.post("/admin/connectors/drop/sync", data={"csrf_token": token}).status_code == 403
    assert 'href="/admin/connectors"' in audrey.get("/admin/tokens").text

    # a data scientist may not read connectors: no page, no link
    dana = console.browser("dana")
    assert dana.get("/admin/connectors").status_code == 403
    assert 'href="/admin/connectors"' not in dana.get("/").text

    # without the CSRF token nothing syncs
    assert admin.post("/admin/connectors/drop/sync").status_code == 403
    assert console.governance.registries.status()[0].last_sync is None

    synced = admin.post("/admin/connectors/drop/sync", data={"csrf_token": csrf(page.text)})
    assert synced.status_code == 200 and synced.url.path == "/admin/connectors"
    assert flash(synced.text) == "ok: Done: Connector drop synced: 0 requests opened."
    [status] = console.governance.registries.status()
    assert status.last_sync is not None and status.last_error is None
    cell = re.search(r'<td data-testid="last-sync">(.*?)</td>', synced.text, re.S)
    assert cell and "<time datetime=" in cell[0] and "not yet" not in cell[0]
    assert status.last_sync.strftime("%Y-%m-%d %H:%M") in cell[0]
    assert "✓ none" in synced.text

    unknown = admin.post("/admin/connectors/nope/sync", data={"csrf_token": csrf(page.text)})
    said = flash(unknown.text)
    assert said.startswith("error:") and "connector nope does not exist" in said
    assert "configure it in the connectors file" in said

    # a version whose tags are incomplete is refused, and the page says why
    offered = tmp_path / "drop" / "credit" / "3"
    offered.mkdir(parents=True)
    (offered / "candidate.yaml").write_text("tier: extreme\nlabel: income\n")
    again = admin.post("/admin/connectors/drop/sync", data={"csrf_token": csrf(page.text)})
    said = flash(again.text)
    assert (
        said
        == "ok: Done: Connector drop synced: 0 requests opened, 1 version refused (listed below)."
    )
    refused = re.search(r'<table data-testid="refused-drop">.*?</table>', again.text, re.S)
    assert refused and "credit@3" in refused[0]
    assert "tier is &#39;extreme&#39;: set it to low, medium or high" in refused[0]

    # a registry that cannot be read: the flash names the fix, the page shows the error
    shutil.rmtree(tmp_path / "drop")
    failed = admin.post("/admin/connectors/drop/sync", data={"csrf_token": csrf(page.text)})
    said = flash(failed.text)
    assert said.startswith("error: Refused: folder connector drop:") and "Fix: create it" in said
    row = re.search(r'<tr id="connector-drop">.*?</tr>', failed.text, re.S)
    assert row and "✗ error" in row[0] and "is not a folder" in row[0]
    mine = {"csrf_token": csrf(dana.get("/").text)}
    assert dana.post("/admin/connectors/drop/sync", data=mine).status_code == 403
