"""Benchmark: the whole governance gate on 1M rows against the naive library calls.

    .venv/bin/python bench/gate_1m.py [--rows N] [--out DIR]

1. Generates (seeded) an evaluation set and a reference set of N rows each: 20 numeric
   features, 5 categorical ones (one is the 4-group sensitive attribute `group`) and a
   binary `label`; trains a 200-tree LightGBM classifier on 200k reference rows; saves
   the model with skops and writes a policy with all five check types.
2. Runs `governance gate` as a user does (a child process) and measures its wall time and
   peak RSS; reads every check's duration from the evidence JSON and times the other
   phases (reading, loading, predicting) in-process with the gate's own functions.
3. Runs the naive library calls on the same data (fairlearn, evidently, shap, sklearn) and
   numpy/scipy lower bounds, and asserts that the gate's figures equal the libraries' own.
4. Prints the table and writes it, with the machine and versions, to bench/RESULTS.md.

Exits 1 if any cross-check between the gate and the libraries disagrees.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
NOTES_MARKER = "<!-- Everything below this line is kept when gate_1m.py rewrites this file. -->"

SEED = 20_260_611
TRAIN_ROWS = 200_000
TREES = 200
SHAP_ROWS = 10_000  # shap is timed on this many rows and extrapolated
SAMPLE_SIZE = 2_000  # the policy's explainability sample
SAMPLE_SEED = 7
EVIDENTLY_TIMEOUT = 180.0  # seconds; beyond this evidently is rerun on half the rows
TOLERANCE = 1e-9
TARGET_SECONDS, TARGET_GIB, TARGET_SPEEDUP = 10.0, 4.0, 10.0

NUMERIC = [f"x{i:02d}" for i in range(20)]
LEVELS: dict[str, list[str]] = {
    "group": ["A", "B", "C", "D"],
    "region": ["north", "south", "east", "west", "centre", "islands", "coast", "inland"],
    "channel": ["branch", "online", "phone"],
    "product": [f"p{i:02d}" for i in range(12)],
    "tenure": ["<1y", "1-2y", "2-5y", "5-10y", ">10y"],
}
CATEGORICAL = list(LEVELS)
FEATURES = NUMERIC + CATEGORICAL
PROBABILITIES: dict[str, list[float]] = {
    "group": [0.4, 0.3, 0.2, 0.1],
    "region": [0.2, 0.15, 0.15, 0.15, 0.1, 0.05, 0.1, 0.1],
    "channel": [0.3, 0.5, 0.2],
    "product": [1 / 12] * 12,
    "tenure": [0.15, 0.2, 0.3, 0.2, 0.15],
}
# mild drift in the evaluation set: region's mix; x00 shifted, x05 wider (below)
CURRENT_PROBABILITIES = {**PROBABILITIES, "region": [0.1, 0.12, 0.15, 0.15, 0.1, 0.18, 0.1, 0.1]}
GROUP_EFFECT = np.array([0.25, 0.0, -0.15, -0.35])  # mild dependence of the label on group

T = TypeVar("T")


def timed(function: Callable[[], T]) -> tuple[T, float]:
    """The function's result and its wall time in seconds."""
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


# --------------------------------------------------------------------------- data & model


def make_frame(rows: int, current: bool) -> pd.DataFrame:
    """One seeded data set; `current` is the evaluation set, with mild drift."""
    rng = np.random.default_rng([SEED, rows, int(current)])
    probabilities = CURRENT_PROBABILITIES if current else PROBABILITIES
    codes = {
        name: rng.choice(len(levels), size=rows, p=probabilities[name])
        for name, levels in LEVELS.items()
    }
    x = rng.standard_normal((rows, len(NUMERIC)))
    x[:, 3] = np.exp(0.5 * x[:, 3])  # skewed
    x[:, 7] += 0.4 * codes["group"]  # a proxy of the sensitive attribute
    if current:
        x[:, 0] += 0.25
        x[:, 5] *= 1.25
    logit = (
        -0.4
        + 0.9 * x[:, 0]
        - 0.7 * x[:, 1]
        + 0.5 * x[:, 2] * x[:, 3]
        + 0.6 * np.tanh(x[:, 4])
        + 0.3 * x[:, 5]
        - 0.3 * x[:, 6]
        + 0.2 * x[:, 7]
        + 0.3 * x[:, 10]
        + 0.25 * codes["tenure"]
        + np.linspace(-0.4, 0.4, 12)[codes["product"]]
        + np.array([0.2, -0.1, 0.0])[codes["channel"]]
        + GROUP_EFFECT[codes["group"]]
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    x[rng.random(rows) < 0.01, 10] = np.nan  # some holes for the data-quality check
    x[rng.random(rows) < 0.002, 11] = np.nan
    columns: dict[str, Any] = {name: x[:, i] for i, name in enumerate(NUMERIC)}
    for name, levels in LEVELS.items():
        columns[name] = pd.Categorical.from_codes(codes[name], categories=levels)
    columns["label"] = label
    return pd.DataFrame(columns)


@dataclass(frozen=True)
class Inputs:
    """The files the gate is run on."""

    current: Path
    reference: Path
    model: Path
    policy: Path
    model_format: str
    train_seconds: float


def prepare(out: Path, rows: int, regenerate: bool) -> Inputs:
    """Write the data, model and policy, or reuse them if this size was written before."""
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / f"inputs_{rows}.json"
    inputs = Inputs(
        current=out / f"current_{rows}.parquet",
        reference=out / f"reference_{rows}.parquet",
        model=out / f"model_{rows}.skops",
        policy=out / "policy_bench.yaml",
        model_format="skops",
        train_seconds=float("nan"),
    )
    write_policy(inputs.policy)
    if meta_path.exists() and not regenerate:
        meta = json.loads(meta_path.read_text())
        if meta.get("seed") == SEED and all(
            Path(p).exists() for p in (inputs.current, inputs.reference, inputs.model)
        ):
            print(f"reusing data and model from {out} (pass --regenerate to rebuild)")
            return Inputs(**{**inputs.__dict__, "train_seconds": meta["train_seconds"]})

    print(f"generating {rows:,} + {rows:,} rows (seed {SEED}) ...", flush=True)
    reference = make_frame(rows, current=False)
    reference.to_parquet(inputs.reference, index=False)
    make_frame(rows, current=True).to_parquet(inputs.current, index=False)
    train = reference.sample(n=min(TRAIN_ROWS, rows), random_state=SEED)
    print(f"training LightGBM ({TREES} trees) on {len(train):,} rows ...", flush=True)
    model, seconds = timed(lambda: train_model(train))
    save_model(model, inputs.model)
    meta_path.write_text(json.dumps({"seed": SEED, "rows": rows, "train_seconds": seconds}))
    return Inputs(**{**inputs.__dict__, "train_seconds": seconds})


def train_model(train: pd.DataFrame) -> Any:
    """A 200-tree gradient-boosted classifier; categoricals via the pandas category dtype."""
    import lightgbm

    model = lightgbm.LGBMClassifier(
        n_estimators=TREES,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=50,
        random_state=SEED,
        verbose=-1,
    )
    return model.fit(train[FEATURES], train["label"])


def save_model(model: Any, path: Path) -> None:
    """skops: the safe format; the gate's loader accepts LightGBM's types (files.py)."""
    import skops.io

    skops.io.dump(model, path)


def write_policy(path: Path) -> None:
    """A policy with all five check types, in the schema of policies/high.yaml."""
    path.write_text(
        """\
# Benchmark policy for bench/gate_1m.py: all five check types on the synthetic data.
apiVersion: governance/v1
kind: PromotionPolicy
metadata:
  name: bench-1m
  version: 1
  description: The 1M-row benchmark of the gate.
appliesTo: {riskTier: high, targets: [production]}
checks:
  - id: fairness
    type: fairness
    sensitiveFeatures: [group]
    minGroupSize: 30
    bootstrap: {samples: 200, confidence: 0.95, seed: 7}
    rules:
      - metric: equalized_odds_difference
        max: 0.15
      - metric: demographic_parity_ratio
        min: 0.8
        severity: warning
  - id: explainability
    type: explainability
    sampleSize: 2000
    seed: 7
    rules:
      - prohibitedInTopK: {features: [group], k: 5}
  - id: drift
    type: drift
    reference: training
    rules:
      - driftShare: {max: 0.3}
  - id: data-quality
    type: data_quality
    rules:
      - schemaMatch: {allowExtraColumns: true, allowDtypeChanges: false}
      - metric: missing_share
        max: 0.05
      - metric: out_of_range_share
        max: 0.01
  - id: performance
    type: performance
    rules:
      - metric: roc_auc
        min: 0.75
      - metric: accuracy
        min: 0.65
approvals:
  quorum: 2
  roles: [model_risk_officer, business_owner]
  distinctRoles: true
  forbidSelfApproval: true
  expiresAfterDays: 365
waivers: {allowed: false}
""",
        encoding="utf-8",
    )


# --------------------------------------------------------------------------- the gate


@dataclass
class GateRun:
    """The gate as a user runs it: one child process."""

    command: list[str]
    exit_code: int
    wall: float
    peak_rss_bytes: int
    manifest: dict[str, Any]
    stderr: str


def run_gate(inputs: Inputs, out: Path) -> GateRun:
    """Run `governance gate` in a child process; wall time and that child's peak RSS."""
    json_path = out / "gate.json"
    json_path.unlink(missing_ok=True)
    command = [
        str(BIN / "governance"), "gate",
        "--policy", str(inputs.policy),
        "--model", str(inputs.model),
        "--data", str(inputs.current),
        "--reference", str(inputs.reference),
        "--target", "label",
        "--json", str(json_path),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "GOVERNANCE_DATABASE_URL"}
    with (out / "gate.stdout").open("w") as stdout, (out / "gate.stderr").open("w") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)  # rusage of this child alone
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    manifest = json.loads(json_path.read_text()) if json_path.exists() else {}
    return GateRun(
        command=command,
        exit_code=process.returncode,
        wall=wall,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
        manifest=manifest,
        stderr=(out / "gate.stderr").read_text(),
    )


def startup_seconds() -> float:
    """Interpreter start and every import the gate makes (CLI, checks, LightGBM, skops)."""
    code = (
        "import governance.cli, lightgbm, skops.io\n"
        "from governance.checks import data_quality, drift, explainability, fairness, performance"
    )
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(BIN / "python"), "-c", code], check=True, cwd=ROOT)
        runs.append(time.perf_counter() - started)
    return min(runs)


@dataclass
class Phases:
    """The gate's phases before the checks, timed in-process with the gate's functions."""

    seconds: dict[str, float]
    data: pd.DataFrame
    reference: pd.DataFrame
    model: Any
    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray
    features: list[str]


def time_phases(inputs: Inputs) -> Phases:
    """Repeat the gate's steps up to the checks (governance/services/gate.py)."""
    import connectors.files as files
    from governance.services import gate

    seconds: dict[str, float] = {}
    _, seconds["load policy"] = timed(lambda: files.load_policy(inputs.policy))
    (data, _), seconds["read data"] = timed(lambda: files.read_table(inputs.current, "data"))
    (reference, _), seconds["read reference"] = timed(
        lambda: files.read_table(inputs.reference, "reference")
    )
    _, seconds["sha256 of both files"] = timed(
        lambda: [files.sha256_file(p) for p in (inputs.current, inputs.reference)]
    )
    (model, _), seconds["load model"] = timed(lambda: files.load_model(inputs.model))
    request = gate.GateRequest(policy=inputs.policy, data=inputs.current, target="label")

    def validate() -> tuple[list[str], Any, np.ndarray]:
        target = gate._require_column(data, "label", "target column", "--target")
        features = gate._features(model, data, request)
        gate._reject_infinite(data, features)
        task = gate._task(model, data[target])
        positive = gate._positive_label(model, data[target], None)
        y_true = (data[target] == positive).to_numpy().astype(np.int64)
        assert task == "classification"
        return features, positive, y_true

    (features, positive, y_true), seconds["validate inputs"] = timed(validate)
    (y_pred, y_score), seconds["predict"] = timed(
        lambda: gate.predict(model, data, features, positive, "classification")
    )
    assert y_score is not None
    return Phases(seconds, data, reference, model, y_true, y_pred, y_score, features)


# --------------------------------------------------------------------------- baselines


@dataclass
class Comparison:
    """One cross-check between the gate and a library's own result."""

    what: str
    agreed: bool
    detail: str


@dataclass
class Baselines:
    """Naive library calls and lower bounds, in seconds, with notes."""

    naive: dict[str, float] = field(default_factory=dict)
    lower: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def fairness_baselines(phases: Phases, manifest: dict[str, Any], base: Baselines) -> None:
    """fairlearn on the raw rows, and the numpy confusion counts."""
    from fairlearn import metrics as flm
    from sklearn.metrics import accuracy_score

    group = phases.data["group"]
    y_true, y_pred = phases.y_true, phases.y_pred

    def naive() -> dict[str, Any]:
        frame = flm.MetricFrame(
            metrics={
                "selection_rate": flm.selection_rate,
                "accuracy": accuracy_score,
                "true_positive_rate": flm.true_positive_rate,
                "false_positive_rate": flm.false_positive_rate,
            },
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=group,
        )
        disparities = {
            name: getattr(flm, name)(y_true, y_pred, sensitive_features=group)
            for name in (
                "demographic_parity_difference",
                "demographic_parity_ratio",
                "equalized_odds_difference",
                "equalized_odds_ratio",
            )
        }
        return {"by_group": frame.by_group, **disparities}

    result, base.naive["fairness"] = timed(naive)
    base.notes["fairness"] = (
        "fairlearn MetricFrame(selection_rate, accuracy, TPR, FPR) + demographic parity "
        "+ equalized odds (difference, ratio) on the raw rows"
    )
    codes = group.cat.codes.to_numpy()
    _, base.lower["fairness"] = timed(
        lambda: np.bincount(4 * codes + 2 * y_true + y_pred, minlength=16).reshape(-1, 4)
    )
    base.notes["fairness lower"] = "np.bincount of the 16 (group, truth, prediction) counts"

    report = _check(manifest, "fairness")["metrics"]["groupings"][0]
    worst = 0.0
    for row in report["groups"]:
        for metric in ("selection_rate", "accuracy", "true_positive_rate", "false_positive_rate"):
            expected = float(result["by_group"].loc[row["group"]["group"], metric])
            worst = max(worst, abs(row[metric] - expected))
    for name in (
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equalized_odds_ratio",
    ):
        worst = max(worst, abs(report[name] - float(result[name])))
    base.comparisons.append(
        Comparison(
            "fairness: gate's group metrics and disparities = fairlearn on the raw rows",
            worst <= TOLERANCE,
            f"largest difference {worst:.2e} (tolerance {TOLERANCE:g})",
        )
    )
    base.extra["fairness"] = {
        name: float(result[name])
        for name in ("demographic_parity_ratio", "equalized_odds_difference")
    }

    # what a naive user's bootstrap would cost: one row-resampled replicate, times 200
    rng = np.random.default_rng(0)

    def replicate() -> float:
        rows = rng.integers(0, len(y_true), len(y_true))
        return flm.equalized_odds_difference(
            y_true[rows], y_pred[rows], sensitive_features=group.to_numpy()[rows]
        )

    _, one = timed(replicate)
    base.extra["naive bootstrap seconds (extrapolated)"] = 200 * one


def explainability_baselines(phases: Phases, manifest: dict[str, Any], base: Baselines) -> None:
    """shap TreeExplainer: timed on 10k rows, extrapolated; and on the gate's own sample."""
    import shap

    frame = phases.data[phases.features]
    rows = min(SHAP_ROWS, len(frame))
    batch = frame.sample(n=rows, random_state=0)
    explainer = shap.TreeExplainer(phases.model)
    _, seconds = timed(lambda: explainer(batch))
    per_row = seconds / rows
    base.naive["explainability"] = per_row * len(frame)
    base.notes["explainability"] = (
        f"shap TreeExplainer over all {len(frame):,} rows: EXTRAPOLATED from "
        f"{seconds:.2f} s measured on {rows:,} rows"
    )
    base.extra["shap seconds per 10k rows"] = per_row * 10_000

    sample = frame.sample(n=min(SAMPLE_SIZE, len(frame)), random_state=SAMPLE_SEED)
    values, base.naive["explainability (same sample)"] = timed(
        lambda: shap.TreeExplainer(phases.model)(sample).values
    )
    base.notes["explainability (same sample)"] = (
        f"shap TreeExplainer on the policy's {len(sample):,}-row sample (like for like)"
    )
    booster = phases.model.booster_
    _, base.lower["explainability (same sample)"] = timed(
        lambda: booster.predict(sample, pred_contrib=True)
    )
    base.notes["explainability lower"] = "LightGBM's own pred_contrib on the sample"
    base.lower["explainability"] = base.lower["explainability (same sample)"]

    mean_abs = dict(zip(phases.features, np.abs(values).mean(axis=0), strict=True))
    ranking = _check(manifest, "explainability")["metrics"]["ranking"]
    worst = max(abs(entry["mean_abs_shap"] - mean_abs[entry["feature"]]) for entry in ranking)
    base.comparisons.append(
        Comparison(
            "explainability: gate's mean |SHAP| = shap TreeExplainer on the same sample",
            worst <= TOLERANCE,
            f"largest difference {worst:.2e}",
        )
    )


def drift_baselines(
    phases: Phases, manifest: dict[str, Any], inputs: Inputs, out: Path, forced: int | None
) -> Baselines:
    """evidently's DataDriftPreset (child process), scipy KS/chi², and np.sort."""
    from scipy import stats

    base = Baselines()
    rows = len(phases.data)
    evidently_rows = forced or rows
    result = _run_evidently(inputs, out, evidently_rows, EVIDENTLY_TIMEOUT if not forced else None)
    if result is None:
        print(
            f"evidently took more than {EVIDENTLY_TIMEOUT:.0f} s on {rows:,} rows: "
            f"rerunning it on {rows // 2:,} vs {rows // 2:,}",
            flush=True,
        )
        evidently_rows = rows // 2
        result = _run_evidently(inputs, out, evidently_rows, None)
        assert result is not None
    base.naive["drift"] = result["seconds"]
    base.extra["evidently rows"] = evidently_rows
    base.extra["evidently peak RSS bytes"] = result["peak_rss_bytes"]
    size = f"{evidently_rows:,} vs {evidently_rows:,} rows"
    if evidently_rows < rows:
        size += f" (NOT the full {rows:,}: it took over {EVIDENTLY_TIMEOUT:.0f} s there)"
    base.notes["drift"] = f"evidently Report([DataDriftPreset()]) on {size}"

    current, reference = phases.data, phases.reference

    def scipy_tests() -> None:
        for column in NUMERIC:
            a, b = reference[column].to_numpy(), current[column].to_numpy()
            stats.ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)])
        for column in CATEGORICAL:
            observed = current[column].value_counts(sort=False)
            expected = reference[column].value_counts(sort=False)
            stats.chisquare(observed, expected * (observed.sum() / expected.sum()))

    _, base.lower["drift (scipy KS/chi²)"] = timed(scipy_tests)
    base.notes["drift (scipy KS/chi²)"] = (
        "scipy ks_2samp per numeric column, chisquare per categorical column (full rows)"
    )

    def sorts() -> None:
        for column in NUMERIC:
            np.sort(reference[column].to_numpy())
            np.sort(current[column].to_numpy())
        for column in CATEGORICAL:
            np.bincount(reference[column].cat.codes.to_numpy())
            np.bincount(current[column].cat.codes.to_numpy())

    _, base.lower["drift"] = timed(sorts)
    base.notes["drift lower"] = "np.sort per numeric column, np.bincount per categorical"
    base.comparisons.extend(_compare_drift(phases, manifest, result, evidently_rows))
    return base


def _run_evidently(
    inputs: Inputs, out: Path, rows: int, timeout: float | None
) -> dict[str, Any] | None:
    """evidently in a child process; None if it ran past the timeout."""
    columns = out / "evidently_columns.json"
    columns.write_text(json.dumps({"numerical": NUMERIC, "categorical": CATEGORICAL}))
    result_path = out / f"evidently_{rows}.json"
    command = [
        str(BIN / "python"), str(ROOT / "bench" / "naive_evidently.py"),
        "--current", str(inputs.current), "--reference", str(inputs.reference),
        "--rows", str(rows), "--columns-json", str(columns), "--out", str(result_path),
    ]  # fmt: skip
    print(f"running evidently DataDriftPreset on {rows:,} vs {rows:,} rows ...", flush=True)
    process = subprocess.Popen(command, cwd=ROOT)
    deadline = None if timeout is None else time.monotonic() + timeout + 60  # + reading
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            process.returncode = -9
            return None
        time.sleep(0.5)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"evidently failed with exit code {process.returncode}")
    result = json.loads(result_path.read_text())
    if timeout is not None and result["seconds"] > timeout:
        return None
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024
    return result


def _compare_drift(
    phases: Phases, manifest: dict[str, Any], evidently: dict[str, Any], rows: int
) -> list[Comparison]:
    """The gate's per-column verdicts and statistics against evidently's own, on the same
    rows. On a subsample the gate's drift check is rerun in-process on those rows."""
    from governance.checks import CheckInputs, run_check
    from governance.domain.policy import DriftCheck

    if rows == len(phases.data):
        columns = _check(manifest, "drift")["metrics"]["columns"]
        source = "the gate's evidence JSON"
    else:
        spec = DriftCheck.model_validate({"id": "drift", "type": "drift", "rules": [
            {"driftShare": {"max": 0.3}}
        ]})  # fmt: skip
        data = phases.data.head(rows)
        inputs = CheckInputs(
            data=data,
            features=phases.features,
            target="label",
            y_true=phases.y_true[:rows],
            y_pred=phases.y_pred[:rows],
            task="classification",
            reference=phases.reference.head(rows),
        )
        columns = run_check(spec, inputs).metrics["columns"]
        source = f"the gate's drift check rerun on the same {rows:,} rows"
    theirs = evidently["columns"]
    verdicts = [c["column"] for c in columns if c["drifted"] != theirs[c["column"]]["drifted"]]
    worst = max(
        abs((c["statistic"] if c["statistic"] is not None else np.nan) - theirs[c["column"]]["score"])
        for c in columns
    )
    drifted = [c["column"] for c in columns if c["drifted"]]
    missing = sorted(set(theirs) - {c["column"] for c in columns})
    return [
        Comparison(
            f"drift: per-column verdicts = evidently's own ({source})",
            not verdicts and not missing,
            f"drifted per both: {', '.join(drifted) or 'none'}"
            if not verdicts and not missing
            else f"DISAGREE on {', '.join(verdicts)}; untested by the gate: {missing}",
        ),
        Comparison(
            "drift: per-column statistics = evidently's drift scores",
            bool(worst <= TOLERANCE),
            f"largest difference {worst:.2e} (tolerance {TOLERANCE:g})",
        ),
    ]


def quality_and_performance_baselines(
    phases: Phases, manifest: dict[str, Any], base: Baselines
) -> None:
    """sklearn's metrics for performance; numpy lower bounds for both checks."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    y_true, y_pred, y_score = phases.y_true, phases.y_pred, phases.y_score
    (auc, accuracy), base.naive["performance"] = timed(
        lambda: (roc_auc_score(y_true, y_score), accuracy_score(y_true, y_pred))
    )
    base.notes["performance"] = "sklearn roc_auc_score + accuracy_score"
    _, base.lower["performance"] = timed(lambda: np.argsort(y_score))
    base.notes["performance lower"] = "np.argsort of the scores (AUC needs a sort)"
    metrics = _check(manifest, "performance")["metrics"]
    worst = max(abs(metrics["roc_auc"] - auc), abs(metrics["accuracy"] - accuracy))
    base.comparisons.append(
        Comparison(
            "performance: gate's roc_auc and accuracy = sklearn",
            worst <= TOLERANCE,
            f"roc_auc {auc:.4f}, accuracy {accuracy:.4f}; largest difference {worst:.2e}",
        )
    )

    current, reference = phases.data, phases.reference

    def quality() -> None:
        for column in NUMERIC:
            a, b = current[column].to_numpy(), reference[column].to_numpy()
            low, high = np.nanmin(b), np.nanmax(b)
            np.count_nonzero(np.isnan(a))
            np.count_nonzero((a >= low) & (a <= high))
        for column in CATEGORICAL:
            np.count_nonzero(current[column].cat.codes.to_numpy() < 0)

    _, base.lower["data_quality"] = timed(quality)
    base.notes["data_quality lower"] = "numpy: NaN count, reference min/max, in-range count"
    base.notes["data_quality"] = "(no library baseline named in the issue)"


def _check(manifest: dict[str, Any], check_type: str) -> dict[str, Any]:
    return next(r for r in manifest["results"] if r["type"] == check_type)


# --------------------------------------------------------------------------- report


@dataclass
class Row:
    name: str
    gate: float | None
    naive: float | None = None
    lower: float | None = None


def build_rows(gate: GateRun, phases: Phases, startup: float, base: Baselines) -> list[Row]:
    """The table: phases, checks and the unaccounted remainder add up to the gate's wall."""
    s = phases.seconds
    reading = s["read data"] + s["read reference"]
    rows = [
        Row("startup + imports (separate process)", startup),
        Row("load policy", s["load policy"]),
        Row("read data + reference (incl. sha256)", reading, lower=base.lower.get("read")),
        Row("load model (skops)", s["load model"]),
        Row("validate inputs", s["validate inputs"]),
        Row("predict (1 × predict_proba)", s["predict"]),
    ]
    durations = {r["type"]: r["duration_seconds"] for r in gate.manifest["results"]}
    for check in ("fairness", "explainability", "drift", "data_quality", "performance"):
        rows.append(Row(check, durations.get(check), base.naive.get(check), base.lower.get(check)))
    accounted = sum(r.gate or 0.0 for r in rows)
    rows.append(Row("other: manifest, table, JSON, exit (remainder)", gate.wall - accounted))
    return rows


def fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.3f}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b <= 0 else f"{a / b:,.1f}×"


def render_table(rows: list[Row], gate: GateRun, base: Baselines) -> str:
    """The per-phase table as Markdown (it also reads well in a terminal)."""
    lines = [
        "| phase / check | gate s | naive library s | lower bound s | naive ÷ gate "
        "| gate ÷ lower bound |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {fmt(row.gate)} | {fmt(row.naive)} | {fmt(row.lower)} "
            f"| {ratio(row.naive, row.gate)} | {ratio(row.gate, row.lower)} |"
        )
    naive_checks = like_for_like_naive(base)
    lines.append(
        f"| **whole gate (wall, child process)** | **{gate.wall:.3f}** "
        f"| {fmt(naive_checks)} | — | {ratio(naive_checks, gate.wall)} | — |"
    )
    return "\n".join(lines)


def like_for_like_naive(base: Baselines) -> float:
    """The naive library calls for the same work as the gate's checks: fairlearn, evidently
    (as measured, possibly on fewer rows), shap on the same sample, sklearn."""
    return (
        base.naive["fairness"]
        + base.naive["drift"]
        + base.naive["explainability (same sample)"]
        + base.naive["performance"]
    )


def machine() -> dict[str, str]:
    """nproc, CPU model and RAM of this machine."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": f"{kib / 1024**2:.1f} GiB",
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
    }


def versions() -> dict[str, str]:
    names = ("numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "lightgbm", "fairlearn")
    names += ("shap", "evidently", "skops")
    return {"python": sys.version.split()[0], **{name: version(name) for name in names}}


def main() -> int:
    parser = argparse.ArgumentParser(description="The governance gate on N rows vs naive calls.")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--regenerate", action="store_true", help="rebuild data and model")
    parser.add_argument(
        "--evidently-rows",
        type=int,
        default=None,
        help="run evidently on this many rows per side instead of trying the full size first",
    )
    parser.add_argument("--no-results-md", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    out = args.out.resolve()

    inputs = prepare(out, args.rows, args.regenerate)
    print("running the gate ...", flush=True)
    gate = run_gate(inputs, out)
    if gate.exit_code not in (0, 1) or not gate.manifest:
        print(gate.stderr, file=sys.stderr)
        print(f"the gate exited {gate.exit_code}: no measurement", file=sys.stderr)
        return 2
    errored = [r["id"] for r in gate.manifest["results"] if r["status"] == "error"]
    if errored:
        for r in gate.manifest["results"]:
            if r["status"] == "error":
                print(f"check {r['id']} errored: {r['summary']}", file=sys.stderr)
        return 2

    print("timing the phases in-process ...", flush=True)
    startup = startup_seconds()
    phases = time_phases(inputs)
    import pyarrow.parquet as pq

    print("naive baselines: fairlearn, shap, evidently, sklearn ...", flush=True)
    base = drift_baselines(phases, gate.manifest, inputs, out, args.evidently_rows)
    _, base.lower["read"] = timed(lambda: [pq.read_table(inputs.current), pq.read_table(inputs.reference)])
    fairness_baselines(phases, gate.manifest, base)
    explainability_baselines(phases, gate.manifest, base)
    quality_and_performance_baselines(phases, gate.manifest, base)

    rows = build_rows(gate, phases, startup, base)
    report = Report(args, inputs, gate, phases, startup, base, rows)
    print()
    print(report.text())
    (out / "results.json").write_text(json.dumps(report.data(), indent=2, default=str))
    if not args.no_results_md:
        report.write_markdown(RESULTS_MD)
        print(f"\nwrote {RESULTS_MD.relative_to(ROOT)} and {out / 'results.json'}")
    return 0 if all(c.agreed for c in base.comparisons) else 1


@dataclass
class Report:
    """Everything measured in one run, rendered for the terminal and for RESULTS.md."""

    args: argparse.Namespace
    inputs: Inputs
    gate: GateRun
    phases: Phases
    startup: float
    base: Baselines
    rows: list[Row]

    @property
    def peak_gib(self) -> float:
        return self.gate.peak_rss_bytes / 1024**3

    def targets(self) -> list[tuple[str, bool, str]]:
        naive = like_for_like_naive(self.base)
        return [
            (f"whole gate ≤ {TARGET_SECONDS:g} s wall", self.gate.wall <= TARGET_SECONDS,
             f"{self.gate.wall:.2f} s"),
            (f"peak RSS ≤ {TARGET_GIB:g} GiB", self.peak_gib <= TARGET_GIB,
             f"{self.peak_gib:.2f} GiB"),
            (f"≥ {TARGET_SPEEDUP:g}× faster than the naive library calls (like for like)",
             naive / self.gate.wall >= TARGET_SPEEDUP,
             f"{naive:.1f} s naive ÷ {self.gate.wall:.2f} s gate = {naive / self.gate.wall:.1f}×"),
        ]  # fmt: skip

    def text(self) -> str:
        gate, base = self.gate, self.base
        verdict = gate.manifest["decision"]["verdict"]
        lines = [
            f"rows: {self.args.rows:,} evaluation + {self.args.rows:,} reference; "
            f"{len(FEATURES)} features; LightGBM {TREES} trees; model {self.inputs.model_format}",
            f"gate exit code {gate.exit_code} (verdict {verdict}); "
            f"checks: {self._check_statuses()}",
            "",
            render_table(self.rows, gate, base),
            "",
            f"extra lower bound: drift with scipy KS/chi² per column: "
            f"{base.lower['drift (scipy KS/chi²)']:.3f} s",
            f"extra: explainability like for like — gate {self._duration('explainability'):.3f} s"
            f" vs shap on the same {SAMPLE_SIZE:,}-row sample "
            f"{base.naive['explainability (same sample)']:.3f} s; LightGBM pred_contrib "
            f"{base.lower['explainability (same sample)']:.3f} s",
            f"extra: shap TreeExplainer costs {base.extra['shap seconds per 10k rows']:.2f} s "
            "per 10k rows here",
            f"extra: a naive 200-replicate row bootstrap of equalized_odds_difference with "
            f"fairlearn would take ≈ {base.extra['naive bootstrap seconds (extrapolated)']:.0f} s"
            " (extrapolated from one replicate; the gate draws multinomial counts instead)",
            f"extra: evidently's own peak RSS {base.extra['evidently peak RSS bytes'] / 1024**3:.2f}"
            f" GiB on {base.extra['evidently rows']:,} rows per side",
            "",
            "naive calls:",
            *(f"  {k}: {v}" for k, v in base.notes.items()),
            "",
            f"peak RSS of the gate process: {self.peak_gib:.2f} GiB",
            "targets:",
            *(f"  [{'met' if ok else 'MISSED'}] {name}: {value}" for name, ok, value in self.targets()),
            "",
            "cross-checks against the libraries:",
        ]
        for c in base.comparisons:
            mark = "ok" if c.agreed else "!!! DISAGREEMENT !!!"
            lines.append(f"  [{mark}] {c.what}: {c.detail}")
        return "\n".join(lines)

    def _duration(self, check_type: str) -> float:
        return float(_check(self.gate.manifest, check_type)["duration_seconds"])

    def _check_statuses(self) -> str:
        return ", ".join(f"{r['id']} {r['status']}" for r in self.gate.manifest["results"])

    def data(self) -> dict[str, Any]:
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "versions": versions(),
            "rows": self.args.rows,
            "gate": {
                "command": self.gate.command,
                "exit_code": self.gate.exit_code,
                "wall_seconds": self.gate.wall,
                "peak_rss_bytes": self.gate.peak_rss_bytes,
                "check_seconds": {
                    r["id"]: r["duration_seconds"] for r in self.gate.manifest["results"]
                },
            },
            "phases_in_process": self.phases.seconds,
            "startup_seconds": self.startup,
            "naive": self.base.naive,
            "lower_bounds": self.base.lower,
            "notes": self.base.notes,
            "extra": self.base.extra,
            "comparisons": [c.__dict__ for c in self.base.comparisons],
            "targets": [{"target": n, "met": ok, "value": v} for n, ok, v in self.targets()],
        }

    def write_markdown(self, path: Path) -> None:
        """Rewrite the generated part of RESULTS.md; keep the notes below the marker."""
        kept = ""
        if path.exists() and NOTES_MARKER in path.read_text():
            kept = path.read_text().split(NOTES_MARKER, 1)[1]
        info, libs = machine(), versions()
        command = ".venv/bin/python bench/gate_1m.py " + shlex.join(sys.argv[1:])
        text = [
            "# Benchmark: the gate on 1M rows",
            "",
            "Generated by `bench/gate_1m.py`; the notes at the end are written by hand.",
            "",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- command: `{command.strip()}`",
            f"- machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM, "
            f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in libs.items()),
            f"- data: {self.args.rows:,} evaluation + {self.args.rows:,} reference rows, "
            f"{len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical features (`group` has 4 "
            f"groups), seed {SEED}; Parquet, categoricals stored as dictionary-encoded strings "
            "(read back as pandas `category`)",
            f"- model: LightGBM `LGBMClassifier`, {TREES} trees, trained on "
            f"{TRAIN_ROWS:,} reference rows, saved with skops (the safe format)",
            "- gate command: `" + shlex.join(self._short_command()) + "`",
            "",
            "## Results",
            "",
            "```",
            self.text(),
            "```",
            "",
            "Gate times of the checks are the `duration_seconds` the gate wrote in its evidence "
            "JSON; the phases before the checks were timed in-process with the gate's own "
            "functions (`connectors.files`, `governance.services.gate`), and startup + imports "
            "in a separate interpreter, so the remainder row absorbs the difference.",
            "",
            "## Where the time goes (generated)",
            "",
            self._where_the_time_goes(),
            "",
            NOTES_MARKER,
        ]
        path.write_text("\n".join(text) + (kept or "\n"), encoding="utf-8")

    def _short_command(self) -> list[str]:
        return [
            str(Path(part).relative_to(ROOT)) if part.startswith(str(ROOT)) else part
            for part in self.gate.command
        ]

    def _where_the_time_goes(self) -> str:
        ranked = sorted((r for r in self.rows if r.gate), key=lambda r: -(r.gate or 0.0))
        parts = ", ".join(
            f"{r.name} {r.gate:.2f} s ({(r.gate or 0.0) / self.gate.wall:.0%})" for r in ranked
        )
        return f"Of the gate's {self.gate.wall:.2f} s wall: {parts}."


if __name__ == "__main__":
    sys.exit(main())
