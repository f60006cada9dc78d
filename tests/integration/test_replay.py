"""`governance replay`: a recorded decision re-run from its manifest reaches the same numbers,
bit for bit; other bytes are refused; a real difference is found and named."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sqlalchemy import Engine
from typer.testing import CliRunner

import governance.connectors.files as files
from governance.bootstrap import open_governance
from governance.cli import app
from governance.demo import Demo, DemoRun
from governance.domain.audit import verify_chain
from governance.domain.errors import InputError
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import PromotionPolicy
from governance.services.gate import judge
from governance.services.ports import GateRequest
from governance.services.replay import replay
from governance.store.blobs import BlobStore
from governance.store.database import make_engine
from governance.store.repository import SqlDecisionRecorder, audit_trail
from governance.store.uow import SqlUnits

pytest_plugins = ["tests.db_fixtures"]
runner = CliRunner()

SMALL_POLICY = """
apiVersion: governance/v1
kind: PromotionPolicy
metadata: {name: replay-test, version: 1}
appliesTo: {riskTier: medium, targets: [production]}
checks:
  - {id: perf, type: performance,
     rules: [{metric: roc_auc, min: 0.5}, {metric: accuracy, min: 0.5}]}
  - {id: fairness, type: fairness, sensitiveFeatures: [sex], minGroupSize: 10,
     rules: [{metric: demographic_parity_ratio, min: 0.1}]}
  - {id: drift, type: drift, rules: [{driftShare: {max: 0.5}}]}
approvals: {quorum: 1, roles: [model_risk_officer], expiresAfterDays: 365}
waivers: {allowed: false}
"""


def cli(*arguments: str) -> tuple[int, str]:
    """Exit code and output, with the table's lines and the spacing taken out."""
    result = runner.invoke(app, ["replay", *arguments])
    text = "".join(" " if "\u2500" <= c <= "\u257f" else c for c in result.output)
    return result.exit_code, " ".join(text.split())


def replay_events(engine: Engine) -> list[dict[str, object]]:
    return [e.event.payload for e in audit_trail(engine) if e.event.action == "decision.replayed"]


# --- the demo's decisions -----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(fast_demo: Demo) -> tuple[str, list[DemoRun]]:
    """The session's demo (conftest.fast_demo): smaller samples, the same checks and rules."""
    return fast_demo.settings.database_url, fast_demo.runs


def test_demo_decisions_replay_bit_for_bit(demo: tuple[str, list[DemoRun]]) -> None:
    url, runs = demo
    engine = make_engine(url)
    before = len(replay_events(engine))  # the demo is shared: other tests may replay it too
    for run in runs:
        decision_id = run.decision_id
        assert decision_id is not None
        outcome = replay(SqlUnits(engine), decision_id, files)
        assert outcome.reproduced, [row for row in outcome.rows if not row.equal]
        assert outcome.differences == []
        assert outcome.replayed_verdict is outcome.recorded_verdict
        assert run.manifest is not None
        assert outcome.recorded_verdict is run.manifest.decision.verdict
        assert outcome.library_differences == {}
        names = {(row.check_id, row.name) for row in outcome.rows}
        assert ("(decision)", "verdict") in names
        assert ("fairness", "equalized_odds_difference ≤ 0.05 over sex: observed") in names
        assert any(name.startswith("metrics.ranking[feature=") for _, name in names)
        assert len(outcome.rows) > 100  # every metric, not only the rules

    blocked = next(r for r in runs if r.model == "income-full")
    code, output = cli(str(blocked.decision_id), "--database", url)
    assert code == 0, output  # reproduced, though the decision itself was a block
    assert "reproduced bit for bit" in output
    assert "verdict: recorded blocked, replayed blocked" in output

    events = replay_events(engine)[before:]
    assert [e["decision_id"] for e in events] == [
        *(r.decision_id for r in runs),
        blocked.decision_id,
    ]
    assert all(e["reproduced"] is True and e["differences"] == 0 for e in events)
    assert events[-1]["replayed_verdict"] == "blocked"
    assert verify_chain(audit_trail(engine)) == []
    verified = runner.invoke(app, ["audit", "verify", "--database", url])
    assert verified.exit_code == 0, verified.output


# --- small generated decisions, on SQLite and PostgreSQL ----------------------------------


@dataclass
class Small:
    engine: Engine
    url: str
    policy: PromotionPolicy
    request: GateRequest
    manifest: EvidenceManifest

    def record(self, manifest: EvidenceManifest | None = None) -> str:
        recorder = SqlDecisionRecorder(self.engine, actor="test")
        return recorder.record(manifest or self.manifest, self.policy)


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "x": rng.normal(size=rows).round(6),
            "sex": rng.choice(["F", "M"], rows),
        }
    )
    frame["label"] = (frame["x"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return frame


@pytest.fixture
def small(engine: Engine, database_url: str, tmp_path: Path) -> Small:
    """A logistic regression judged on 300 generated rows; its manifest, not yet recorded."""
    train, test = _frame(400, 1), _frame(300, 2)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    model = LogisticRegression().fit(train[["age", "x"]], train["label"])
    skops.io.dump(model, tmp_path / "model.skops")
    (tmp_path / "policy.yaml").write_text(SMALL_POLICY)
    policy = files.load_policy(tmp_path / "policy.yaml")
    request = GateRequest(
        policy=tmp_path / "policy.yaml",
        data=tmp_path / "test.csv",
        reference=tmp_path / "train.csv",
        model=tmp_path / "model.skops",
        target="label",
        model_name="small",
        model_version="1",
    )
    return Small(engine, database_url, policy, request, judge(policy, request, files))


def test_data_changed_by_one_byte_is_refused_and_nothing_recorded(small: Small) -> None:
    decision_id = small.record()
    recorded = small.manifest.artifact("data")
    assert recorded is not None
    content = bytearray(small.request.data.read_bytes())
    content[-2] = ord("1") if content[-2] == ord("0") else ord("0")  # the last row's label
    small.request.data.write_bytes(bytes(content))
    changed = files.sha256_file(small.request.data)
    events_before = len(audit_trail(small.engine))

    code, output = cli(decision_id, "--database", small.url)
    assert code == 2, output
    assert f"data artifact {small.request.data}: has sha256 {changed}" in output
    assert f"the decision recorded sha256 {recorded.sha256}" in output
    assert "Fix: restore the exact file" in output
    assert "Traceback" not in output
    assert len(audit_trail(small.engine)) == events_before

    small.request.data.unlink()
    code, output = cli(decision_id, "--database", small.url)
    assert code == 2, output
    assert f"data artifact: not found at {small.request.data}" in output
    assert recorded.sha256 in output
    assert len(audit_trail(small.engine)) == events_before


def test_a_real_difference_is_found_row_by_row(small: Small) -> None:
    perf = small.manifest.results[0]
    rule = perf.rules[0]
    assert isinstance(rule.observed, float)
    one_ulp_off = math.nextafter(rule.observed, math.inf)  # the smallest possible change
    altered = small.manifest.model_copy(
        update={
            "results": [
                perf.model_copy(
                    update={
                        "rules": [
                            rule.model_copy(update={"observed": one_ulp_off}),
                            *perf.rules[1:],
                        ]
                    }
                ),
                *small.manifest.results[1:],
            ],
            "libraries": {**small.manifest.libraries, "numpy": "0.0.1"},
        }
    )
    decision_id = small.record(altered)

    outcome = replay(SqlUnits(small.engine), decision_id, files)
    assert not outcome.reproduced
    assert outcome.replayed_verdict is outcome.recorded_verdict
    [difference] = outcome.differences
    assert (difference.check_id, difference.name) == ("perf", f"{rule.rule}: observed")
    assert (difference.recorded, difference.replayed) == (one_ulp_off, rule.observed)
    assert outcome.library_differences == {"numpy": ("0.0.1", np.__version__)}
    assert replay_events(small.engine)[-1] == {
        "decision_id": decision_id,
        "reproduced": False,
        "differences": 1,
        "compared": len(outcome.rows),
        "recorded_verdict": outcome.recorded_verdict.value,
        "replayed_verdict": outcome.replayed_verdict.value,
        "manifest_sha256": altered.sha256,
        "library_differences": {"numpy": {"recorded": "0.0.1", "running": np.__version__}},
    }

    code, output = cli(decision_id, "--database", small.url)
    assert code == 1, output
    assert f"perf {rule.rule}: observed {one_ulp_off!r} {rule.observed!r} ≠" in output
    assert f"library numpy: recorded 0.0.1, running {np.__version__}" in output
    assert "NOT reproduced: 1 differences" in output
    assert verify_chain(audit_trail(small.engine)) == []


def test_artifacts_are_fetched_from_the_blob_store_by_hash(small: Small, tmp_path: Path) -> None:
    decision_id = small.record()
    blobs = BlobStore(tmp_path / "blobs")
    for role in ("data", "model"):
        artifact = small.manifest.artifact(role)
        assert artifact is not None
        stored = blobs.path_of(artifact.sha256, Path(artifact.uri).suffix)
        stored.parent.mkdir(parents=True, exist_ok=True)
        Path(artifact.uri).rename(stored)  # gone from where it was recorded

    outcome = replay(SqlUnits(small.engine), decision_id, files, blobs=blobs)
    assert outcome.reproduced, outcome.differences
    assert outcome.sources["data"].parent.parent.parent == blobs.root
    code, output = cli(decision_id, "--database", small.url, "--blobs", str(blobs.root), "--all")
    assert code == 0 and "reproduced bit for bit" in output
    assert "perf roc_auc ≥ 0.5: observed" in output  # --all lists the equal rows too


def test_seeds_other_than_the_policy_s_are_refused(small: Small) -> None:
    decision_id = small.record(small.manifest.model_copy(update={"seeds": {"fairness": 3}}))
    with pytest.raises(InputError, match="seeds: the manifest recorded"):
        replay(SqlUnits(small.engine), decision_id, files)
    assert replay_events(small.engine) == []


def test_unknown_decision_id_is_bad_input(engine: Engine, database_url: str) -> None:
    code, output = cli("no-such-decision", "--database", database_url)
    assert code == 2
    assert "decision no-such-decision: is not recorded in this database" in output
    assert "Traceback" not in output
    assert replay_events(engine) == []


def test_the_demo_submits_a_model_an_earlier_run_trained(fast_demo: Demo, demo_dir: Path) -> None:
    """A model file the demo finds in its directory, left by a run that stopped before it
    submitted (here `demo_dir`'s, put there by the fixture), is submitted as it is rather
    than trained again; version 2, which was not there, is trained."""
    governance = open_governance(fast_demo.settings)
    try:
        artifacts = {
            (run.model, run.version): governance.workflow.get_request(run.request_id)
            for run in fast_demo.runs
        }
    finally:
        governance.close()
    for model in ("income-full", "income-reweighed"):
        given = hashlib.sha256((demo_dir / f"{model}.skops").read_bytes()).hexdigest()
        assert artifacts[(model, "1")].artifact_sha256 == given
    assert artifacts[("income-reweighed", "2")].artifact_sha256 != given


@pytest.mark.parametrize("exact_rows", [10**9, 100], ids=["exact", "sketched"])
def test_a_decision_on_a_data_set_replays_bit_for_bit(
    small: Small, tmp_path: Path, exact_rows: int
) -> None:
    """Judged streamed over a directory of Parquet files, with its rank statistics kept or
    sketched: the replay reads the files where they were recorded, pins them again and
    reads the rows as the decision did (the manifest's `reading`)."""
    from dataclasses import replace

    from governance.services.ports import Execution

    parts = tmp_path / "parts"
    parts.mkdir()
    test = pd.read_csv(small.request.data)
    for index, rows in enumerate(np.array_split(np.arange(len(test)), 3)):
        test.iloc[rows].to_parquet(parts / f"part-{index}.parquet")
    pd.read_csv(small.request.reference).to_parquet(tmp_path / "train.parquet")
    request = replace(small.request, data=parts, reference=tmp_path / "train.parquet")
    execution = Execution(kind="streamed", batch_rows=70, exact_rows=exact_rows)
    manifest = judge(small.policy, request, files, execution=execution)
    assert manifest.reading is not None and manifest.reading.exact is (exact_rows > 300)
    assert manifest.artifact("data").files  # type: ignore[union-attr]
    decision_id = small.record(manifest)

    code, output = cli(decision_id, "--database", small.url)
    assert code == 0, output

    (parts / "part-1.parquet").write_bytes((parts / "part-0.parquet").read_bytes())
    code, output = cli(decision_id, "--database", small.url)
    assert code == 2, output
