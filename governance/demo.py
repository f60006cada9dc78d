"""`governance demo`: two real models on the UCI Adult data, judged by the high-risk policy.

`income-full` uses every column, sex and race included; `income-reweighed` leaves out the
protected attributes and their closest proxies (relationship, marital status) and is
trained with Kamiran–Calders reweighing so that sex and income are independent in the
training weights. The first is blocked by the fairness rule, the second passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

import connectors.files as files
from connectors.adult import COLUMNS, SOURCE, TARGET, load_adult
from governance import config
from governance.domain.model_card import ModelCard
from governance.services.gate import GateOutcome, GateRequest, Progress, run_gate
from reports import ci

POLICIES = Path(__file__).resolve().parents[1] / "policies"
PROXIES = ["sex", "race", "relationship", "marital_status"]
SEED = 0


@dataclass(frozen=True)
class DemoModel:
    name: str
    version: str
    features: list[str]
    reweigh: bool
    threshold: float
    limitations: str


MODELS = [
    DemoModel(
        "income-full",
        "1",
        [c for c in COLUMNS if c != TARGET],
        False,
        0.5,
        "Uses sex, race, relationship and marital status as inputs: it can treat people "
        "differently by a protected attribute.",
    ),
    DemoModel(
        "income-reweighed",
        "2",
        [c for c in COLUMNS if c not in (TARGET, *PROXIES)],
        True,
        0.4,
        "Leaves out sex, race and their closest proxies, and is trained with reweighing; "
        "other columns (occupation, hours) still carry some of their signal.",
    ),
]


def model_card(spec: DemoModel) -> ModelCard:
    return ModelCard(
        purpose="Pre-screen applicants by predicting whether annual income exceeds $50,000.",
        intended_use="A demonstration of the gate on public census data; a person reviews "
        "every refusal.",
        out_of_scope_use="Real credit, employment or housing decisions.",
        training_data=f"{SOURCE}: 70% of the 48,842 records, stratified by income.",
        limitations=spec.limitations + " Census data of 1994; US population only.",
        ethical_considerations="Income correlates with sex and race in the data (11% vs 30% "
        "base rates by sex), so an accurate model can still disadvantage a group.",
        contact="model-risk@example.org",
    )


def reweighing(train: pd.DataFrame) -> np.ndarray:
    """Kamiran & Calders (2012): weight = P(sex) P(y) / P(sex, y), so that sex and the
    label are independent in the weighted training data."""
    joint = train.groupby(["sex", TARGET]).size() / len(train)
    p_sex = train["sex"].value_counts(normalize=True)
    p_y = train[TARGET].value_counts(normalize=True)
    keys = pd.MultiIndex.from_frame(train[["sex", TARGET]])
    expected = (
        p_sex.reindex(keys.get_level_values(0)).to_numpy()
        * p_y.reindex(keys.get_level_values(1)).to_numpy()
    )
    return expected / joint.reindex(keys).to_numpy()


def train(spec: DemoModel, data: pd.DataFrame) -> FixedThresholdClassifier:
    categorical = [c for c in spec.features if data[c].dtype == object]
    pipeline: Pipeline = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
            remainder="passthrough",
        ),
        HistGradientBoostingClassifier(random_state=SEED),
    )
    weights = reweighing(data) if spec.reweigh else None
    pipeline.fit(
        data[spec.features], data[TARGET], histgradientboostingclassifier__sample_weight=weights
    )
    # The decision threshold is part of the model: predict() is what gets served.
    model = FixedThresholdClassifier(FrozenEstimator(pipeline), threshold=spec.threshold)
    return model.fit(data[spec.features], data[TARGET])


@dataclass(frozen=True)
class DemoRun:
    outcome: GateOutcome
    evidence: Path
    reports: list[Path]


def run_demo(directory: Path, progress: Progress) -> tuple[str, list[DemoRun]]:
    """Prepare the data and models, gate both, record the decisions. Returns the database
    URL and, per model, its gate outcome and the folder of its evidence files."""
    from governance.store.database import make_engine, upgrade
    from governance.store.repository import SqlDecisionRecorder

    work = directory / "demo"
    work.mkdir(parents=True, exist_ok=True)
    progress(f"Loading the Adult census data ({SOURCE})")
    adult = load_adult()
    training, evaluation = train_test_split(
        adult, test_size=0.3, random_state=SEED, stratify=adult[TARGET]
    )
    training.to_parquet(work / "train.parquet", index=False)
    evaluation.to_parquet(work / "test.parquet", index=False)

    url = config.database_url() or f"sqlite:///{(directory / 'governance.db').resolve()}"
    upgrade(url)
    recorder = SqlDecisionRecorder(make_engine(url))

    runs = []
    for spec in MODELS:
        progress(f"Training {spec.name} v{spec.version}")
        model_path = work / f"{spec.name}-v{spec.version}.skops"
        skops.io.dump(train(spec, training), model_path)
        request = GateRequest(
            policy=POLICIES / "high.yaml",
            model=model_path,
            data=work / "test.parquet",
            reference=work / "train.parquet",
            target=TARGET,
            model_name=spec.name,
            model_version=spec.version,
        )
        outcome = run_gate(
            request,
            files,
            recorder,
            progress=_labelled(progress, spec.name),
        )
        evidence = work / "evidence" / f"{spec.name}-v{spec.version}"
        evidence.mkdir(parents=True, exist_ok=True)
        for name, render in (
            ("manifest.json", ci.to_json),
            ("junit.xml", ci.to_junit),
            ("summary.md", ci.to_markdown),
        ):
            (evidence / name).write_text(render(outcome.manifest), encoding="utf-8")
        runs.append(DemoRun(outcome, evidence, []))
    return url, _signed_reports(directory, url, runs, progress)


def _signed_reports(
    directory: Path, url: str, runs: list[DemoRun], progress: Progress
) -> list[DemoRun]:
    """Make the service's keys if missing, then a signed decision report and an LL144 bias
    audit for each model, next to its evidence."""
    from governance.config import Settings
    from governance.services.container import initialise, open_governance

    settings = Settings.from_env(url, directory)
    progress("Preparing the signing keys and certificates")
    initialise(settings, None)
    governance = open_governance(settings)
    done = []
    try:
        for run, spec in zip(runs, MODELS, strict=True):
            assert run.outcome.decision_id is not None
            progress(f"{spec.name}: signed decision report and bias audit")
            decision = governance.reports.decision(
                "governance demo", decision_id=run.outcome.decision_id, model_card=model_card(spec)
            )
            audit = governance.reports.bias_audit(
                "governance demo",
                run.outcome.decision_id,
                source=f"{SOURCE}, the 30% held-out evaluation split",
            )
            paths = []
            for report in (decision, audit):
                path = run.evidence / report.filename
                path.write_bytes(report.pdf)
                paths.append(path)
            done.append(DemoRun(run.outcome, run.evidence, paths))
    finally:
        governance.close()
    return done


def _labelled(progress: Progress, name: str) -> Progress:
    return lambda step: progress(f"{name}: {step}")
