"""Production monitoring on SQLite and on PostgreSQL, through the app in-process (Litestar's
TestClient): the demo's `income-reweighed` model, checked under the shipped high-risk
policy (smaller samples), signed and promoted through the workflow; its predictions on the
Adult test split logged through the API as JSON and as Parquet; then the policy's
monitors run on a clock moved past their slots."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from litestar.testing import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.connectors import files
from governance.connectors.adult import TARGET
from governance.connectors.serving import WatchedDirectory
from governance.services.monitoring import ProductionMonitoring
from governance.services.people import SYSTEM
from governance.services.workflow import Candidate
from governance.store.tables import (
    AuditEventRow,
    FinalDecision,
    MonitoringRun,
    PredictionBatch,
    utcnow,
)
from governance.web.app import create_app
from tests.homes import initialise_home
from tests.service_fixtures import PASSWORD, fast_policies

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

MODEL, VERSION = "income-reweighed", "1"
PREDICTIONS = f"/api/v1/models/{MODEL}/versions/{VERSION}/predictions"
PARQUET = "application/vnd.apache.parquet"
PEOPLE = {
    "dana": ("Dana Scientist", ["data_scientist"]),
    "maria": ("Maria Risk", ["model_risk_officer"]),
    "bob": ("Bob Owner", ["business_owner"]),
}


@dataclass
class World:
    client: TestClient[Any]
    governance: Governance
    request_id: str
    promoted_at: datetime
    logs: pd.DataFrame  # the model's predictions on the test split, with outcomes
    tokens: dict[str, str]

    def post(self, who: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        return self.client.post(PREDICTIONS, headers=headers, **kwargs)

    def get(self, who: str, url: str) -> Any:
        return self.client.get(url, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def send(self, batch_id: str, rows: pd.DataFrame, status: int = 201) -> dict[str, Any]:
        """Log rows as a JSON batch."""
        body = {"batchId": batch_id, "rows": json_rows(rows)}
        response = self.post("serving", json=body)
        assert response.status_code == status, response.text
        return dict(response.json())

    def stamped(self, rows: pd.DataFrame, after: timedelta) -> pd.DataFrame:
        """The rows, logged `after` the promotion."""
        return rows.assign(timestamp=self.promoted_at + after)

    def batches(self) -> int:
        with Session(self.governance.engine) as session:
            return session.exec(select(func.count()).select_from(PredictionBatch)).one()

    def actions(self, action: str) -> list[dict[str, Any]]:
        with Session(self.governance.engine) as session:
            rows = session.exec(select(AuditEventRow).filter_by(action=action)).all()
            return [r.payload for r in rows]

    def admission(self) -> str:
        return self.governance.workflow.admission(MODEL, VERSION, "production").as_dict()[
            "decision"
        ]


def json_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    stamps = rows["timestamp"].map(lambda t: t.isoformat() if isinstance(t, datetime) else t)
    frame = rows.assign(timestamp=stamps)
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def parquet(rows: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    rows.to_parquet(sink, index=False)
    return sink.getvalue()


@pytest.fixture
def world(database_url: str, tmp_path: Path, demo_dir: Path) -> Iterator[World]:
    """The model checked, signed by maria and bob, and promoted by dana."""
    home = tmp_path / "home"
    settings = replace(
        Settings.from_env(database_url, home),
        policies=fast_policies(tmp_path / "policies"),
        max_predictions_bytes=4 * 1024 * 1024,
    )
    initialise_home(settings, PASSWORD)
    governance = open_governance(settings)
    tokens = {}
    try:
        for username, (full_name, roles) in PEOPLE.items():
            governance.people.add_user(SYSTEM, username, full_name, PASSWORD, roles)
        people = {
            u: governance.people.authenticate(governance.people.sign_in(u, PASSWORD, 1).token)
            for u in PEOPLE
        }
        for name in ("serving", "ci"):
            tokens[name] = governance.people.create_token(SYSTEM, name, [name], 1).token
        tokens["maria"] = governance.people.sign_in("maria", PASSWORD, 1).token
        tokens["dana"] = governance.people.sign_in("dana", PASSWORD, 1).token
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
        for signer in ("maria", "bob"):
            workflow.sign(people[signer], request_id, "approve", "reviewed", PASSWORD)
        workflow.promote(people["dana"], request_id)
        with Session(governance.engine) as session:
            promoted_at = session.exec(
                select(FinalDecision.created_at).filter_by(
                    request_id=request_id, decision="promoted"
                )
            ).one()
    finally:
        governance.close()
    test = pd.read_parquet(demo_dir / "test.parquet")
    model, _ = files.load_model(demo_dir / f"{MODEL}.skops")
    features = test.drop(columns=[TARGET])
    logs = features.assign(
        prediction=model.predict(features[list(model.feature_names_in_)]),
        score=model.predict_proba(features[list(model.feature_names_in_)])[:, 1],
        outcome=test[TARGET],
    )
    with TestClient(app=create_app(settings, run_jobs=False)) as client:
        yield World(client, client.app.state.governance, request_id, promoted_at, logs, tokens)


def drifted(rows: pd.DataFrame) -> pd.DataFrame:
    """Older, longer-working people with another mix of sexes, races and work classes."""
    return rows.assign(
        age=rows["age"] + 25,
        hours_per_week=rows["hours_per_week"] + 20,
        education_num=(rows["education_num"] + 6).clip(upper=16),
        sex=rows["sex"].map({"Male": "Female", "Female": "Male"}),
        race="Black",
        workclass="Self-emp-inc",
    )


def runs(world: World) -> dict[str, MonitoringRun]:
    with Session(world.governance.engine) as session:
        return {r.monitor: r for r in session.exec(select(MonitoringRun)).all()}


# --- ingest ----------------------------------------------------------------------------


def test_json_and_parquet_batches_are_stored_once(world: World) -> None:
    first = world.stamped(world.logs.iloc[:300], timedelta(hours=1))
    stored = world.send("b-1", first)
    assert stored["rows"] == 300 and stored["outcomes"] == 300 and not stored["replayed"]
    again = world.send("b-1", first, status=200)  # a retry: the stored batch answers
    assert again["replayed"] and again["sha256"] == stored["sha256"]

    second = world.stamped(world.logs.iloc[300:700], timedelta(hours=2))
    response = world.post(
        "ci",
        content=parquet(second),
        params={"batchId": "b-2"},
        headers={"Content-Type": PARQUET},
    )
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 400
    listed = world.get("maria", PREDICTIONS)
    assert listed.status_code == 200
    assert [(b["batchId"], b["rows"]) for b in listed.json()] == [("b-2", 400), ("b-1", 300)]
    assert world.batches() == 2
    assert len(world.actions("predictions.ingested")) == 2
    # a person who may only read cannot log predictions
    refused = world.post("maria", json={"batchId": "b-3", "rows": json_rows(first)})
    assert refused.status_code == 403


def test_bad_batches_are_refused_and_store_nothing(world: World) -> None:
    rows = world.stamped(world.logs.iloc[:50], timedelta(hours=1))
    world.send("kept", rows)

    def refused(status: int, **kwargs: Any) -> dict[str, Any]:
        response = world.post("serving", **kwargs)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        return dict(response.json())

    body = {"batchId": "b", "rows": json_rows(rows.drop(columns=["age"]))}
    assert "missing age" in refused(422, json=body)["detail"]
    body = {"batchId": "b", "rows": json_rows(rows.assign(salary=1))}
    problem = refused(422, json=body)
    assert problem["field"] == "columns" and "unknown salary" in problem["detail"]
    body = {"batchId": "b", "rows": json_rows(rows.assign(age="old"))}
    assert "column 'age'" in refused(422, json=body)["detail"]
    body = {"batchId": "b", "rows": json_rows(rows.assign(timestamp="yesterday"))}
    assert "row 0 is 'yesterday'" in refused(422, json=body)["detail"]
    assert refused(422, json={"batchId": "b", "rows": []})["field"] == "rows"
    assert refused(422, json={"batchId": "no spaces", "rows": []})["field"] == "batchId"
    # the same batch id with other rows: refused, the stored batch stays as it was
    other = {"batchId": "kept", "rows": json_rows(rows.assign(age=rows["age"] + 1))}
    assert "batch id is taken once" in refused(409, json=other)["detail"]
    # malformed JSON, a non-finite number, and a body past the limit
    as_json = {"Content-Type": "application/json"}
    problem = refused(400, content=b'{"batchId": "b", "rows": [', headers=as_json)
    assert problem["field"] == "body" and "not valid JSON" in problem["detail"]
    text = '{"batchId": "b", "rows": [{"age": Infinity}]}'
    assert refused(400, content=text, headers=as_json)["field"] == "body"
    big = world.stamped(world.logs, timedelta(hours=1))
    problem = refused(413, json={"batchId": "big", "rows": json_rows(big)})
    assert "limit of 4 MiB" in problem["detail"] and problem["field"] == "body"
    problem = refused(400, content=b"PAR1 not parquet", params={"batchId": "p"},
                      headers={"Content-Type": PARQUET})  # fmt: skip
    assert "not a Parquet file" in problem["detail"]
    assert world.batches() == 1
    assert len(world.actions("predictions.ingested")) == 1


# --- scheduled monitoring ----------------------------------------------------------------


def test_drift_breach_revokes_once_and_survives_a_restart(world: World) -> None:
    assert world.admission() == "allow"
    logs = drifted(world.logs.iloc[:2000])
    world.send("drifted", world.stamped(logs, timedelta(hours=3)))
    monitoring = world.governance.monitoring
    assert monitoring.run_due(world.promoted_at + timedelta(hours=23)) == []  # no slot yet

    due = world.promoted_at + timedelta(days=1, minutes=1)
    done = monitoring.run_due(due)
    assert [(r.monitor, r.status, r.action) for r in done] == [("drift", "breach", "revoked")]
    drift = runs(world)["drift"]
    assert drift.due_at == world.promoted_at + timedelta(days=1)
    assert drift.rows == 2000 and "drifted" in drift.summary
    breach = world.actions("monitoring.breach")
    assert len(breach) == 1
    assert breach[0]["request_id"] == world.request_id and breach[0]["action"] == "revoked"
    assert world.governance.workflow.get_request(world.request_id).state == "revoked"
    assert world.admission() == "deny"
    listed = world.get("maria", f"/api/v1/requests/{world.request_id}/monitoring").json()
    assert [(r["monitor"], r["status"]) for r in listed] == [("drift", "breach")]

    # a restarted process over the same database finds the slot taken, and the request
    # no longer promoted: nothing runs twice
    restarted = ProductionMonitoring(
        world.governance.units, world.governance.workflow, world.governance.blobs, files
    )
    assert restarted.run_due(due) == []
    assert len(world.actions("monitoring.breach")) == 1
    again = world.client.post(
        f"/api/v1/requests/{world.request_id}/monitoring/drift",
        headers={"Authorization": f"Bearer {world.tokens['maria']}"},
    )
    assert again.status_code == 409 and again.json()["state"] == "revoked"


def test_a_window_too_big_to_keep_is_judged_from_bins(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the rows a window keeps, drift is judged from bins of the reference: the same
    breach, and the evidence says which figures were sketched and how far they may be off."""
    from governance.services.ports import Execution

    monitoring = world.governance.monitoring
    monkeypatch.setattr(monitoring, "_execution", Execution(exact_rows=500, batch_rows=300))
    logs = drifted(world.logs.iloc[:2000])
    world.send("drifted", world.stamped(logs, timedelta(hours=3)))
    done = world.governance.monitoring.run_due(world.promoted_at + timedelta(days=1, minutes=1))
    assert [(r.monitor, r.status) for r in done] == [("drift", "breach")]
    metrics = runs(world)["drift"].results[0]["metrics"]
    sketched = [s for s in metrics["statistics"] if s["method"] == "sketch"]
    assert sketched and all(0 < s["bound"] < 0.05 for s in sketched)
    assert any(column["sketched"] for column in metrics["columns"])


def test_clean_production_passes_and_too_few_rows_wait(world: World) -> None:
    monitoring = world.governance.monitoring
    world.send("few", world.stamped(world.logs.iloc[:100], timedelta(hours=1)))
    first = world.promoted_at + timedelta(days=1, minutes=1)
    [run] = monitoring.run_due(first)
    assert run.status == "insufficient" and run.rows == 100
    assert "asks for 500" in run.summary

    world.send("clean", world.stamped(world.logs.iloc[100:3100], timedelta(days=1, hours=2)))
    # the process was down for two days: only the latest slot runs
    [run] = monitoring.run_due(world.promoted_at + timedelta(days=3, hours=1))
    assert run.monitor == "drift" and run.status == "pass", run.summary
    assert run.rows == 3100 and run.action is None
    assert run.due_at == world.promoted_at + timedelta(days=3)
    assert world.admission() == "allow"
    restarted = ProductionMonitoring(
        world.governance.units, world.governance.workflow, world.governance.blobs, files
    )
    assert restarted.run_due(world.promoted_at + timedelta(days=3, hours=2)) == []
    assert len(world.actions("monitoring.checked")) == 2 and not world.actions("monitoring.breach")


def test_performance_monitor_judges_outcomes(world: World) -> None:
    logs = world.logs.iloc[:3000]
    world.send("good", world.stamped(logs, timedelta(hours=1)))
    week = world.promoted_at + timedelta(days=7, minutes=1)
    done = {r.monitor: r for r in world.governance.monitoring.run_due(week)}
    assert set(done) == {"drift", "performance", "fairness"}
    performance = done["performance"]
    assert performance.status == "pass", performance.summary
    assert "no champion is scored in production" in performance.summary
    assert performance.results[0]["metrics"]["roc_auc"] > 0.85

    # outcomes that contradict the predictions, logged a minute ago, checked now on demand:
    # a breach, which the policy only alerts on
    wrong = logs.assign(outcome=1 - logs["outcome"], timestamp=utcnow() - timedelta(minutes=1))
    world.send("wrong", wrong)
    response = world.client.post(
        f"/api/v1/requests/{world.request_id}/monitoring/performance",
        headers={"Authorization": f"Bearer {world.tokens['maria']}"},
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "breach" and run["action"] == "alerted", run["summary"]
    assert [b["monitor"] for b in world.actions("monitoring.breach")] == ["performance"]
    assert world.admission() == "allow"
    refused = world.client.post(
        f"/api/v1/requests/{world.request_id}/monitoring/explainability",
        headers={"Authorization": f"Bearer {world.tokens['maria']}"},
    )
    assert refused.status_code == 422 and refused.json()["field"] == "monitor"


# --- the watched directory -----------------------------------------------------------------


def test_a_watched_directory_ingests_each_file_once(world: World, tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    folder = root / MODEL / VERSION
    folder.mkdir(parents=True)
    rows = world.stamped(world.logs.iloc[:200], timedelta(hours=1))
    (folder / "f-1.parquet").write_bytes(parquet(rows))
    (folder / "f-2.parquet").write_bytes(parquet(rows.drop(columns=["prediction"])))
    (folder / "f-3.parquet").write_bytes(b"not parquet")
    (root / "unknown-model" / "1").mkdir(parents=True)
    (root / "unknown-model" / "1" / "f-4.parquet").write_bytes(parquet(rows))
    (folder / ".f-5.parquet").write_bytes(b"still being written")
    past = time.time() - 60
    for path in root.rglob("*.parquet"):
        os.utime(path, (past, past))
    directory = WatchedDirectory(root, world.governance.monitoring.ingest, 1 << 20)

    outcomes = {path.name: outcome for path, outcome in directory.scan()}
    assert outcomes["f-1.parquet"] == "done"
    assert "missing prediction" in outcomes["f-2.parquet"]
    assert "not a Parquet file" in outcomes["f-3.parquet"]
    assert "unknown-model 1 does not exist" in outcomes["f-4.parquet"]
    assert set(outcomes) == {"f-1.parquet", "f-2.parquet", "f-3.parquet", "f-4.parquet"}
    assert (root / "done" / MODEL / VERSION / "f-1.parquet").exists()
    note = root / "rejected" / MODEL / VERSION / "f-2.parquet.error.txt"
    assert "missing prediction" in note.read_text()
    assert (folder / ".f-5.parquet").exists()
    assert directory.scan() == []  # nothing left to take

    # the same file dropped again replays the stored batch; other rows under its name are
    # refused
    (folder / "f-1.parquet").write_bytes(parquet(rows))
    (folder / "f-6.parquet").write_bytes(parquet(rows))
    os.utime(folder / "f-1.parquet", (past, past))
    assert [outcome for _, outcome in directory.scan()] == ["done"]  # f-6 is too fresh
    (folder / "f-1.parquet").write_bytes(parquet(rows.iloc[:10]))
    os.utime(folder / "f-1.parquet", (past, past))
    [(_, outcome)] = directory.scan()
    assert "a batch id is taken once" in outcome
    batches = world.get("maria", PREDICTIONS).json()
    assert [(b["batchId"], b["source"], b["rows"]) for b in batches] == [("f-1", "directory", 200)]
