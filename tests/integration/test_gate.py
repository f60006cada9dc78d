"""`governance gate` end to end: real models, real data, exit codes and output files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from governance.cli import app
from governance.store.database import make_engine, upgrade

pytest_plugins = ["tests.db_fixtures"]

POLICIES = Path(__file__).resolve().parents[2] / "policies"
runner = CliRunner()


def gate(
    demo_dir: Path, model: str, *extra: str, policy: str = "high", policies: Path = POLICIES
) -> tuple[int, str]:
    """`governance gate` in this process; pass `fast_policy_files` as `policies` where the
    samples' size is not the point (SHAP on 2,000 rows costs most of a minute)."""
    result = runner.invoke(
        app,
        [
            "gate",
            "--policy", str(policies / f"{policy}.yaml"),
            "--model", str(demo_dir / f"{model}.skops"),
            "--data", str(demo_dir / "test.parquet"),
            "--reference", str(demo_dir / "train.parquet"),
            "--target", "income",
            *extra,
        ],
    )  # fmt: skip
    return result.exit_code, result.output


def test_fair_model_passes_and_writes_three_outputs(
    demo_dir: Path, fast_policy_files: Path, tmp_path: Path
) -> None:
    code, output = gate(
        demo_dir,
        "income-reweighed",
        "--json", str(tmp_path / "out.json"),
        "--junit", str(tmp_path / "out.xml"),
        "--markdown", str(tmp_path / "out.md"),
        policies=fast_policy_files,
    )  # fmt: skip
    assert code == 0, output
    assert "PASS" in output
    manifest = json.loads((tmp_path / "out.json").read_text())
    assert manifest["decision"]["verdict"] == "pass"
    roles = {a["role"]: a for a in manifest["artifacts"]}
    assert set(roles) == {"model", "data", "reference"}
    assert all(len(a["sha256"]) == 64 for a in roles.values())
    assert manifest["policy"]["name"] == "high-risk" and len(manifest["policy"]["sha256"]) == 64
    assert {"fairlearn", "shap", "evidently", "scikit-learn"} <= set(manifest["libraries"])
    assert manifest["seeds"] == {"fairness": 7, "explainability": 7}
    assert {r["id"] for r in manifest["results"]} == {
        "fairness", "explainability", "drift", "data-quality", "performance"
    }  # fmt: skip
    suites = ET.parse(tmp_path / "out.xml").getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) == 10  # one per rule in policies/high.yaml
    assert not suites.findall(".//failure")
    markdown = (tmp_path / "out.md").read_text()
    assert markdown.startswith("## Governance gate: PASS")
    assert "| fairness | equalized_odds_difference ≤ 0.05 over sex |" in markdown


def test_model_using_sex_is_blocked_by_fairness(
    demo_dir: Path, fast_policy_files: Path, tmp_path: Path
) -> None:
    code, output = gate(
        demo_dir, "income-full", "--junit", str(tmp_path / "out.xml"), policies=fast_policy_files
    )
    assert code == 1, output
    assert "BLOCKED" in output
    failures = ET.parse(tmp_path / "out.xml").getroot().findall(".//failure")
    assert failures
    messages = " ".join(f.get("message", "") for f in failures)
    assert "observed" in messages and "required ≤ 0.05" in messages


def test_config_file_gives_the_same_fields(demo_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "gate.yaml"
    config.write_text(
        f"policy: {POLICIES / 'medium.yaml'}\n"
        f"model: {demo_dir / 'income-full.skops'}\n"
        f"data: {demo_dir / 'test.csv'}\n"
        f"reference: {demo_dir / 'train.parquet'}\n"
        "target: income\n"
        "json: out.json\n"
    )
    result = runner.invoke(app, ["gate", "--config", str(config)])
    assert result.exit_code in (0, 1), result.output
    assert json.loads((tmp_path / "out.json").read_text())["policy"]["name"] == "medium-risk"


def test_predictions_in_the_data_instead_of_a_model(demo_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    data = pd.read_parquet(demo_dir / "test.parquet")
    data["approved"] = data["income"]  # a perfect, perfectly fair predictor
    data["score"] = data["income"].astype(float)
    path = tmp_path / "scored.parquet"
    data.to_parquet(path)
    result = runner.invoke(
        app,
        [
            "gate", "--policy", str(POLICIES / "medium.yaml"), "--data", str(path),
            "--reference", str(demo_dir / "train.parquet"), "--target", "income",
            "--prediction-col", "approved", "--score-col", "score",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_decision_is_recorded_when_a_database_is_configured(
    demo_dir: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        before = connection.execute(sa.text("select count(*) from gate_decision")).scalar_one()
    code, output = gate(demo_dir, "income-full", "--database", url, policy="medium")
    assert code in (0, 1), output
    assert "recorded decision" in output
    with engine.connect() as connection:
        after = connection.execute(sa.text("select count(*) from gate_decision")).scalar_one()
    assert after == before + 1


def test_database_without_schema_is_bad_input(demo_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    code, output = gate(demo_dir, "income-full", "--database", url, policy="medium")
    assert code == 2
    assert "governance db upgrade" in output


def test_labels_are_what_the_model_serves_not_argmax(demo_dir: Path) -> None:
    """income-reweighed carries a 0.4 decision threshold: the gate must judge predict()."""
    import numpy as np
    import pandas as pd

    from governance.connectors.files import load_model
    from governance.services.gate import predict

    model, _ = load_model(demo_dir / "income-reweighed.skops")
    data = pd.read_parquet(demo_dir / "test.parquet")
    features = list(model.feature_names_in_)
    labels, scores = predict(model, data, features, 1, "classification")
    assert np.array_equal(labels, model.predict(data[features]))
    assert scores is not None
    assert np.array_equal(labels, (scores >= 0.4).astype(int))
    assert not np.array_equal(labels, (scores >= 0.5).astype(int))


def test_lightgbm_labels_from_one_pass_equal_predict(adult_split) -> None:
    """For LGBMClassifier the gate predicts once and takes argmax: the same as predict()."""
    import lightgbm
    import numpy as np

    from governance.services.gate import predict

    train, test = adult_split
    features = ["age", "education_num", "hours_per_week", "capital_gain", "capital_loss"]
    model = lightgbm.LGBMClassifier(n_estimators=50, verbose=-1, random_state=0)
    model.fit(train[features], train["income"])
    labels, scores = predict(model, test, features, 1, "classification")
    assert np.array_equal(labels, model.predict(test[features]))
    assert scores is not None and np.allclose(scores, model.predict_proba(test[features])[:, 1])


def test_console_script_exit_codes(demo_dir: Path, fast_policy_files: Path, tmp_path: Path) -> None:
    """The installed `governance` command (not just the Typer app) keeps 0 / 1 / 2."""
    import subprocess
    import sys

    command = str(Path(sys.executable).parent / "governance")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Policy\n")

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([command, *arguments], capture_output=True, text=True, check=False)

    assert run("policy", "validate", str(POLICIES / "low.yaml")).returncode == 0
    invalid = run("policy", "validate", str(bad))
    assert invalid.returncode == 2 and "apiVersion: required field is missing" in invalid.stderr
    blocked = run(
        "gate", "--policy", str(fast_policy_files / "high.yaml"),
        "--model", str(demo_dir / "income-full.skops"),
        "--data", str(demo_dir / "test.parquet"),
        "--reference", str(demo_dir / "train.parquet"),
        "--target", "income", "--json", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert blocked.returncode == 1, blocked.stderr
    assert "BLOCKED" in blocked.stdout
    assert json.loads((tmp_path / "out.json").read_text())["decision"]["verdict"] == "blocked"


def test_attestation_and_report_sign_with_the_configured_key(
    demo_dir: Path, fast_policy_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOVERNANCE_SIGNING_KEY names the organisation's key, not the data directory's: both
    what `gate --attest` and what `gate --report` sign carry that key, never the other."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from governance.reports import pdf, pki
    from governance.signing import PUBLIC, create_key, key_name, load_public

    home, organisation = tmp_path / "home", tmp_path / "organisation"
    monkeypatch.setenv("GOVERNANCE_HOME", str(home))
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
    monkeypatch.delenv("GOVERNANCE_CONFIG", raising=False)
    monkeypatch.setenv("GOVERNANCE_ADMIN_PASSWORD", "a long enough password 1")
    create_key(organisation)
    assert runner.invoke(app, ["init"]).exit_code == 0  # the report CA, the data dir's key
    monkeypatch.setenv("GOVERNANCE_SIGNING_KEY", str(organisation / "signing-key.pem"))
    configured, other = load_public(organisation / PUBLIC), load_public(home / PUBLIC)
    assert key_name(configured) != key_name(other)

    attestation, report = tmp_path / "decision.dsse.json", tmp_path / "decision.pdf"
    code, output = gate(
        demo_dir,
        "income-reweighed",
        "--attest", str(attestation),
        "--report", str(report),
        policies=fast_policy_files,
    )  # fmt: skip
    assert code == 0, output
    signatures = json.loads(attestation.read_text())["signatures"]
    assert [s["keyid"] for s in signatures] == [key_name(configured)]
    verified = pdf.verify(report.read_bytes(), pki.load_certificates(home / pki.CA_CERT))
    assert verified.ok, verified.problems
    embedded = serialization.load_pem_public_key(verified.embedded[pdf.ATTESTATION_KEY])
    assert isinstance(embedded, Ed25519PublicKey)
    assert key_name(embedded) == key_name(configured)
    report_envelope = json.loads(verified.embedded[pdf.ATTESTATION])
    assert [s["keyid"] for s in report_envelope["signatures"]] == [key_name(configured)]
