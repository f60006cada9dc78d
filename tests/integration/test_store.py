"""The storage adapter on real databases: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel
from typer.testing import CliRunner

from governance.cli import app
from governance.domain.errors import InputError
from governance.domain.evidence import Artifact, EvidenceManifest, PolicyRef
from governance.domain.policy import PromotionPolicy, Severity, parse_policy
from governance.domain.results import CheckResult, judge_bounds, status_of
from governance.domain.verdict import decide
from governance.store.database import (
    MIGRATIONS,
    alembic_config,
    current_revision,
    make_engine,
    ours,
    upgrade,
)
from governance.store.repository import SqlDecisionRecorder, get_manifest, list_decisions
from governance.store.tables import CheckRun

pytest_plugins = ["tests.db_fixtures"]

REPO = Path(__file__).resolve().parents[2]

POLICY_YAML = """
apiVersion: governance/v1
kind: PromotionPolicy
metadata: {name: credit-high-risk, version: VERSION, regulations: [eu-ai-act]}
appliesTo: {riskTier: high, targets: [production]}
checks:
  - {id: perf, type: performance, rules: [{metric: roc_auc, min: 0.75}]}
  - {id: fairness, type: fairness, sensitiveFeatures: [sex],
     rules: [{metric: demographic_parity_ratio, min: 0.8,
              basis: "29 CFR 1607.4(D) four-fifths rule"}]}
approvals: {quorum: 1, roles: [model_risk_officer], expiresAfterDays: 365}
waivers: {allowed: false}
"""


BROKEN_MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "HEAD"


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    raise RuntimeError("broke halfway")
"""


def make_policy(version: int = 3) -> PromotionPolicy:
    return parse_policy(yaml.safe_load(POLICY_YAML.replace("VERSION", str(version))))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_results(fairness_check_id: str = "fairness") -> list[CheckResult]:
    auc = judge_bounds("roc_auc ≥ 0.75", 0.1 + 0.2 + 0.5, 0.75, None, Severity.BLOCKING)
    ratio = judge_bounds(
        "demographic_parity_ratio ≥ 0.8",
        0.61,
        0.8,
        None,
        Severity.BLOCKING,
        basis="29 CFR 1607.4(D) four-fifths rule",
        interval=(0.55, 0.67),
    )
    return [
        CheckResult(
            id="perf",
            type="performance",
            status=status_of([auc]),
            summary="roc_auc 0.8",
            rules=[auc],
            metrics={"roc_auc": 0.1 + 0.2 + 0.5, "n": 14653},
            library_versions={"scikit-learn": "1.9.0"},
            duration_seconds=0.25,
        ),
        CheckResult(
            id=fairness_check_id,
            type="fairness",
            status=status_of([ratio]),
            summary="selection rate of women is 61% of men's",
            rules=[ratio],
            metrics={"by_group": {"sex=Female": {"selection_rate": 0.11, "n": 4850}}},
            duration_seconds=1.5,
        ),
    ]


def make_manifest(
    policy: PromotionPolicy,
    *,
    model: str = "credit-scorer",
    version: str = "1.0.0",
    model_bytes: str = "model v1",
    data_bytes: str = "test data",
    results: list[CheckResult] | None = None,
) -> EvidenceManifest:
    results = make_results() if results is None else results
    columns = ["age", "sex", "income"]
    return EvidenceManifest(
        created_at=datetime(2025, 11, 28, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1))),
        model_name=model,
        model_version=version,
        target="income",
        task="classification",
        positive_label=">50K",
        policy=PolicyRef(
            name=policy.metadata.name,
            version=policy.metadata.version,
            risk_tier=policy.applies_to.risk_tier,
            sha256=policy.content_hash,
        ),
        artifacts=[
            Artifact(
                role="model", uri="models/credit.skops", sha256=sha(model_bytes), format="skops"
            ),
            Artifact(
                role="data",
                uri="data/test.parquet",
                sha256=sha(data_bytes),
                format="parquet",
                rows=14653,
                columns=columns,
            ),
            Artifact(
                role="reference",
                uri="data/train.parquet",
                sha256=sha("training data"),
                format="parquet",
                rows=34189,
                columns=columns,
            ),
        ],
        libraries={"scikit-learn": "1.9.0", "fairlearn": "0.15.0"},
        seeds={"bootstrap": 0},
        results=results,
        decision=decide(results),
    )


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table, leaving out the empty ones."""
    with engine.connect() as connection:
        counts = {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in SQLModel.metadata.sorted_tables
        }
    return {name: count for name, count in counts.items() if count}


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def test_upgrade_from_empty_creates_every_table_and_is_idempotent(empty_database_url: str) -> None:
    assert current_revision(empty_database_url) is None
    expected = {*SQLModel.metadata.tables, "alembic_version"}
    if empty_database_url.startswith("postgresql"):  # procrastinate's, for the workers
        expected |= {f"procrastinate_{t}" for t in ("jobs", "workers", "events", "periodic_defers")}

    for _ in range(2):
        upgrade(empty_database_url)
        assert current_revision(empty_database_url) == head_revision(empty_database_url) == "0010"
        engine = make_engine(empty_database_url)
        assert set(inspect(engine).get_table_names()) == expected
        engine.dispose()


def test_failed_upgrade_changes_nothing(empty_database_url: str, tmp_path: Path) -> None:
    """A migration that breaks halfway leaves the database as it was, on SQLite too."""
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_broken.py").write_text(
        BROKEN_MIGRATION.replace("HEAD", head_revision(empty_database_url) or "")
    )
    config = alembic_config(empty_database_url)
    config.set_main_option("script_location", str(scripts))

    with pytest.raises(RuntimeError, match="halfway"):
        command.upgrade(config, "head")

    assert current_revision(empty_database_url) is None
    engine = make_engine(empty_database_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_migration_matches_the_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": ours})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_alembic_command_runs_from_the_repo_root(empty_database_url: str) -> None:
    alembic = Path(sys.executable).parent / "alembic"
    subprocess.run(
        [alembic, "-x", f"url={empty_database_url}", "upgrade", "head"],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    assert current_revision(empty_database_url) == head_revision(empty_database_url)


def test_recorded_decision_reads_back_unchanged(engine: Engine) -> None:
    policy = make_policy()
    manifest = make_manifest(policy)

    decision_id = SqlDecisionRecorder(engine).record(manifest, policy)

    stored = get_manifest(engine, decision_id)
    assert stored == manifest
    assert stored.sha256 == manifest.sha256
    [listed] = list_decisions(engine)
    assert listed == {
        "id": decision_id,
        "model": "credit-scorer",
        "version": "1.0.0",
        "verdict": "blocked",
        "policy_name": "credit-high-risk",
        "policy_version": 3,
        "created_at": listed["created_at"],
    }
    assert listed["created_at"].tzinfo is UTC
    with Session(engine) as session:
        runs = session.query(CheckRun).filter_by(decision_id=decision_id).all()
    assert {run.check_id: run.status for run in runs} == {"perf": "pass", "fairness": "fail"}
    fairness = next(run for run in runs if run.check_id == "fairness")
    assert fairness.rules[0]["interval"] == [0.55, 0.67]
    assert fairness.metrics == manifest.results[1].metrics


def test_dataset_and_policy_shared_by_two_decisions_are_stored_once(engine: Engine) -> None:
    policy = make_policy()
    recorder = SqlDecisionRecorder(engine)

    first = recorder.record(make_manifest(policy, version="1.0.0"), policy)
    second = recorder.record(make_manifest(policy, version="1.1.0", model_bytes="v2"), policy)

    assert row_counts(engine) == {
        "model": 1,
        "dataset": 2,  # the data and the reference
        "policy": 1,
        "model_version": 2,
        "gate_decision": 2,
        "check_run": 4,
        "audit_event": 2,  # one per decision, chained
    }
    assert [row["id"] for row in list_decisions(engine)] == [second, first]
    assert [row["id"] for row in list_decisions(engine, limit=1)] == [second]


def test_same_version_judged_again_reuses_its_row(engine: Engine) -> None:
    policy = make_policy()
    recorder = SqlDecisionRecorder(engine)

    recorder.record(make_manifest(policy), policy)
    recorder.record(make_manifest(policy, data_bytes="fresh test data"), policy)

    counts = row_counts(engine)
    assert (counts["model_version"], counts["dataset"], counts["gate_decision"]) == (1, 3, 2)


def test_conflicting_model_version_is_refused_and_nothing_is_written(engine: Engine) -> None:
    recorder = SqlDecisionRecorder(engine)
    recorder.record(make_manifest(make_policy()), make_policy())
    before = row_counts(engine)
    other_policy = make_policy(version=4)
    rebuilt = make_manifest(
        other_policy, model_bytes="retrained, same version", data_bytes="new test data"
    )

    with pytest.raises(InputError) as raised:
        recorder.record(rebuilt, other_policy)

    assert "credit-scorer" in raised.value.subject
    assert "1.0.0" in raised.value.subject
    assert "bump the model version" in raised.value.fix
    assert row_counts(engine) == before


def test_failure_midway_leaves_nothing_half_written(engine: Engine) -> None:
    """Two results with one check id break the check_run unique key after the model, version,
    datasets, policy and decision rows are already in the transaction."""
    recorder = SqlDecisionRecorder(engine)
    recorder.record(make_manifest(make_policy()), make_policy())
    before = row_counts(engine)
    other_policy = make_policy(version=4)
    broken = make_manifest(
        other_policy,
        model="fraud-detector",
        data_bytes="other data",
        results=make_results(fairness_check_id="perf"),
    )

    with pytest.raises(IntegrityError):
        recorder.record(broken, other_policy)

    assert row_counts(engine) == before


def test_policy_other_than_the_manifests_is_refused(engine: Engine) -> None:
    manifest = make_manifest(make_policy(version=3))

    with pytest.raises(InputError, match="judged under"):
        SqlDecisionRecorder(engine).record(manifest, make_policy(version=4))

    assert row_counts(engine) == {}


def test_unknown_decision_is_an_input_error(engine: Engine) -> None:
    with pytest.raises(InputError, match="not recorded"):
        get_manifest(engine, "00000000-0000-0000-0000-000000000000")


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    orphan = CheckRun(
        decision_id="no-such-decision",
        check_id="perf",
        type="performance",
        status="pass",
        summary="",
        metrics={},
        rules=[],
        duration_seconds=0.0,
    )
    with Session(engine) as session, pytest.raises(IntegrityError):
        session.add(orphan)
        session.commit()


def test_concurrent_gates_store_shared_rows_once(engine: Engine) -> None:
    policy = make_policy()
    manifest = make_manifest(policy)
    recorder = SqlDecisionRecorder(engine)

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda _: recorder.record(manifest, policy), range(8)))

    assert len(set(ids)) == 8
    counts = row_counts(engine)
    assert (counts["model"], counts["model_version"], counts["dataset"], counts["policy"]) == (
        1,
        1,
        2,
        1,
    )
    assert counts["gate_decision"] == 8


def test_changed_policy_under_the_same_version_is_refused(engine: Engine) -> None:
    recorder = SqlDecisionRecorder(engine)
    recorder.record(make_manifest(make_policy()), make_policy())
    before = row_counts(engine)
    edited = parse_policy(
        yaml.safe_load(POLICY_YAML.replace("VERSION", "3").replace("min: 0.75", "min: 0.7"))
    )
    assert edited.content_hash != make_policy().content_hash

    with pytest.raises(InputError) as raised:
        recorder.record(make_manifest(edited, model="other-model"), edited)

    assert "v3" in raised.value.subject and "bump metadata.version" in raised.value.fix
    assert row_counts(engine) == before


def test_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'governance.db'}"
    first = CliRunner().invoke(app, ["db", "upgrade", "--database", url])
    assert first.exit_code == 0, first.output
    assert "at revision" in first.output
    again = CliRunner().invoke(app, ["db", "upgrade", "--database", url])
    assert again.exit_code == 0 and again.output.split()[-1] == first.output.split()[-1]
