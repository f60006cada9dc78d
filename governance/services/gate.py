"""The gate use case: judge one model version under one policy and record the decision."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier

from governance.checks import Champion, CheckInputs, Task, run_check
from governance.domain.errors import InputError
from governance.domain.evidence import Artifact, EvidenceManifest, PolicyRef
from governance.domain.policy import ExplainabilityCheck, FairnessCheck, PromotionPolicy
from governance.domain.verdict import decide
from governance.services.ports import ArtifactSource, DecisionRecorder, GateRequest

LIBRARIES = (
    "governance", "numpy", "pandas", "scipy", "scikit-learn", "fairlearn", "shap",
    "evidently", "lightgbm", "skops", "pyarrow",
)  # fmt: skip

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GateOutcome:
    policy: PromotionPolicy
    manifest: EvidenceManifest
    decision_id: str | None


def run_gate(
    request: GateRequest,
    source: ArtifactSource,
    recorder: DecisionRecorder | None = None,
    progress: Progress = lambda step: None,
) -> GateOutcome:
    """Load, predict once, run every check the policy lists, decide, and record.

    Bad input raises `InputError` before anything is recorded."""
    progress("Loading policy")
    policy = source.load_policy(request.policy)
    manifest = judge(policy, request, source, progress)
    decision_id = None
    if recorder is not None:
        progress("Recording the decision")
        decision_id = recorder.record(manifest, policy)
    return GateOutcome(policy=policy, manifest=manifest, decision_id=decision_id)


def judge(
    policy: PromotionPolicy,
    request: GateRequest,
    source: ArtifactSource,
    progress: Progress = lambda step: None,
) -> EvidenceManifest:
    """Predict once, run every check the policy lists, and decide. The policy is given, not
    read from `request.policy`: the service judges under the document it pinned."""
    if request.model is None and request.prediction_col is None:
        raise InputError(
            "gate", "no model and no prediction column", "pass --model or --prediction-col"
        )
    progress("Reading data")
    data, data_artifact = source.read_table(request.data, "data")
    artifacts = [data_artifact]
    reference = None
    if request.reference is not None:
        reference, reference_artifact = source.read_table(request.reference, "reference")
        artifacts.append(reference_artifact)
    model = None
    if request.model is not None:
        progress("Loading model")
        model, model_artifact = source.load_model(request.model)
        artifacts.insert(0, model_artifact)

    progress("Predicting")
    target = _require_column(data, request.target, "target column", "--target")
    features = _features(model, data, request)
    _reject_infinite(data, features)
    task: Task = _task(model, data[target])
    positive = (
        _positive_label(model, data[target], request.positive_label)
        if task == "classification"
        else None
    )
    y_true = (
        (data[target] == positive).to_numpy()
        if positive is not None
        else data[target].to_numpy(float)
    )
    y_pred, y_score = _outputs(model, data, features, request, positive, task)

    champion = None
    if request.champion is not None:
        progress("Scoring the champion")
        champion, champion_artifact = _champion(
            source, request.champion, data, features, request, positive, task
        )
        artifacts.append(champion_artifact)

    inputs = CheckInputs(
        data=data,
        features=features,
        target=target,
        y_true=y_true.astype(np.int64) if task == "classification" else y_true,
        y_pred=y_pred,
        y_score=y_score,
        task=task,
        model=model,
        reference=reference,
        champion=champion,
    )
    results = []
    for spec in policy.checks:
        progress(f"Check {spec.id} ({spec.type})")
        if isinstance(spec, ExplainabilityCheck) and model is None:
            raise InputError(f"check '{spec.id}'", "explainability needs the model", "pass --model")
        results.append(run_check(spec, inputs))

    model_artifact = next((a for a in artifacts if a.role == "model"), data_artifact)
    return EvidenceManifest(
        created_at=datetime.now(UTC),
        model_name=request.model_name
        or (request.model.stem if request.model else request.data.stem),
        model_version=request.model_version or model_artifact.sha256[:12],
        target=target,
        task=task,
        positive_label=None if positive is None else str(positive),
        policy=PolicyRef(
            name=policy.metadata.name,
            version=policy.metadata.version,
            risk_tier=policy.applies_to.risk_tier,
            sha256=policy.content_hash,
        ),
        artifacts=artifacts,
        libraries=running_versions(),
        seeds=policy_seeds(policy),
        results=results,
        decision=decide(results),
    )


def _require_column(data: pd.DataFrame, column: str, what: str, option: str) -> str:
    if column not in data.columns:
        raise InputError(
            f"{what} {column!r}",
            f"not in the data (columns: {', '.join(map(str, data.columns))})",
            f"pass the right name with {option}",
        )
    if data[column].isna().any():
        count = int(data[column].isna().sum())
        raise InputError(f"{what} {column!r}", f"{count} row(s) are empty", "fill or drop them")
    return column


def _features(model: Any, data: pd.DataFrame, request: GateRequest) -> list[str]:
    """The columns the model was trained on, or every non-label column."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        features = [str(n) for n in names]
        absent = [f for f in features if f not in data.columns]
        if absent:
            raise InputError(
                "data",
                f"lacks column(s) the model was trained on: {', '.join(absent)}",
                "give data with every feature the model expects",
            )
        return features
    labels = {request.target, request.prediction_col, request.score_col}
    return [str(c) for c in data.columns if c not in labels]


def _reject_infinite(data: pd.DataFrame, features: list[str]) -> None:
    """Only float columns can hold ±inf; read them in place, column by column."""
    bad = {}
    for column in features:
        values = data[column]
        if values.dtype.kind == "f":
            count = int(np.isinf(values.to_numpy()).sum())
            if count:
                bad[column] = count
    if bad:
        named = ", ".join(f"{column} ({count} rows)" for column, count in bad.items())
        raise InputError(
            "data", f"infinite values in {named}", "replace them with real values or drop the rows"
        )


def _task(model: Any, target: pd.Series) -> Task:
    if model is not None:
        return (
            "classification"
            if is_classifier(model) or hasattr(model, "predict_proba")
            else "regression"
        )
    return "classification" if target.nunique() <= 2 else "regression"


def _positive_label(model: Any, target: pd.Series, requested: str | None) -> Any:
    """The positive class: as requested, else the greater of the two classes."""
    classes = list(model.classes_) if model is not None else sorted(target.unique())
    if len(classes) != 2:
        raise InputError(
            "target",
            f"has {len(classes)} classes ({classes[:10]}); the gate judges binary classifiers",
            "give a binary target",
        )
    unknown = set(target.unique()) - set(classes)
    if unknown:
        raise InputError(
            f"target column {target.name!r}",
            f"holds values {sorted(map(str, unknown))} that are not model classes {classes}",
            "encode the target as the model was trained",
        )
    if requested is None:
        return classes[-1]
    for label in classes:
        if str(label) == requested:
            return label
    raise InputError(
        "--positive-label", f"{requested!r} is not one of the classes {classes}", "name one of them"
    )


def _outputs(
    model: Any,
    data: pd.DataFrame,
    features: list[str],
    request: GateRequest,
    positive: Any,
    task: Task,
) -> tuple[np.ndarray, np.ndarray | None]:
    if model is None:
        column = _require_column(
            data, request.prediction_col or "", "prediction column", "--prediction-col"
        )
        labels = data[column]
        scores = None
        if request.score_col is not None:
            scores = data[
                _require_column(data, request.score_col, "score column", "--score-col")
            ].to_numpy(float)
        if task == "classification":
            return (labels == positive).to_numpy().astype(np.int64), scores
        return labels.to_numpy(float), scores
    return predict(model, data, features, positive, task)


def feature_frame(data: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The feature columns as a frame that shares the data's memory: `data[features]`
    copies every row, which costs 0.4 s on a million rows."""
    if not features:
        return data[features]
    return pd.concat([data[column] for column in features], axis=1, copy=False)


def predict(
    model: Any, data: pd.DataFrame, features: list[str], positive: Any, task: Task
) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (0/1 for the positive class) and positive-class probabilities, once."""
    frame = feature_frame(data, features)
    try:
        if task == "regression":
            return np.asarray(model.predict(frame), dtype=float), None
        # What the model serves is what gets judged: labels come from predict(), which may
        # apply a threshold of its own. Only where predict() is argmax(predict_proba) by the
        # library's own code do we derive labels from the scores and predict once.
        if not hasattr(model, "predict_proba"):
            return (np.asarray(model.predict(frame)) == positive).astype(np.int64), None
        probabilities = np.asarray(model.predict_proba(frame))
        scores = probabilities[:, list(model.classes_).index(positive)]
        if _predicts_argmax(model):
            labels = np.asarray(model.classes_)[probabilities.argmax(axis=1)]
        else:
            labels = np.asarray(model.predict(frame))
        return (labels == positive).astype(np.int64), scores
    except Exception as exc:  # noqa: BLE001 - any failure here means the model and data disagree
        missing = [str(c) for c in features if frame[c].isna().any()]
        hint = f" The data has missing values in {', '.join(missing)}." if missing else ""
        raise InputError(
            "model",
            f"cannot predict the data ({type(exc).__name__}: {exc}).{hint}",
            "give data with the columns and types the model was trained on"
            + (", without missing values" if missing else ""),
        ) from None


def _predicts_argmax(model: Any) -> bool:
    """True for estimators whose predict() is, in their library's source, the argmax of
    predict_proba (LightGBM's LGBMClassifier.predict). Exact types only: a subclass may
    override predict."""
    from lightgbm import LGBMClassifier

    return type(model) is LGBMClassifier


def _champion(
    source: ArtifactSource,
    path: Path,
    data: pd.DataFrame,
    features: list[str],
    request: GateRequest,
    positive: Any,
    task: Task,
) -> tuple[Champion, Artifact]:
    if path.suffix.lower() == ".json":
        metrics, artifact = source.load_metrics(path)
        return Champion(metrics=metrics), artifact
    model, artifact = source.load_model(path, "champion")
    y_pred, y_score = predict(model, data, features, positive, task)
    return Champion(y_pred=y_pred, y_score=y_score), artifact


def running_versions() -> dict[str, str]:
    """The versions a manifest records: Python, the platform, and each library in use."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def policy_seeds(policy: PromotionPolicy) -> dict[str, int]:
    """Every seed the policy's checks use, by check id: a replay must use the same."""
    seeds = {}
    for spec in policy.checks:
        if isinstance(spec, ExplainabilityCheck):
            seeds[spec.id] = spec.seed
        elif isinstance(spec, FairnessCheck) and spec.bootstrap is not None:
            seeds[spec.id] = spec.bootstrap.seed
    return seeds
