"""Performance: is the candidate good enough, and no worse than the model it would replace?

`noRegression` observes the candidate's *improvement* over the champion: candidate − champion
for higher-is-better metrics, champion − candidate for those in `LOWER_IS_BETTER`. Positive
means the candidate is better either way; the rule holds while it is ≥ −tolerance.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from governance.checks import CheckInputs, Task, library_versions, rule_severity
from governance.domain.errors import InputError
from governance.domain.judging import (
    RECORDED,
    judge_no_regression,
    judge_performance_metric,
)
from governance.domain.judging import fmt_metric as _fmt
from governance.domain.policy import (
    ClassificationMetric,
    NoRegressionRule,
    PerformanceCheck,
    PerformanceRule,
    RegressionMetric,
)
from governance.domain.results import CheckResult, RuleOutcome, status_of

TASK_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": get_args(ClassificationMetric),
    "regression": get_args(RegressionMetric),
}


def run(spec: PerformanceCheck, inputs: CheckInputs) -> CheckResult:
    for rule in spec.rules:
        _check_rule_fits(spec.id, rule, inputs)
    rows = len(inputs.y_true)
    _check_length("predictions", inputs.y_pred, rows)
    candidate = _metrics(inputs.task, inputs.y_true, inputs.y_pred, inputs.y_score)
    champion = _champion(inputs)

    outcomes = []
    for rule in spec.rules:
        severity = rule_severity(rule, spec)
        if isinstance(rule, PerformanceRule):
            outcomes.append(judge_performance_metric(rule, candidate[rule.metric], rows, severity))
        else:
            outcomes.append(judge_no_regression(rule, candidate, champion, severity))

    metrics: dict[str, object] = {"rows": rows, **_plain(candidate)}
    if champion is not None:
        metrics["champion"] = _plain(champion[0])
        metrics["champion_source"] = champion[1]
    return CheckResult(
        id=spec.id,
        type=spec.type,
        status=status_of(outcomes),
        summary=_summary(outcomes, spec.rules, candidate, rows),
        rules=outcomes,
        metrics=metrics,
        library_versions=library_versions("scikit-learn"),
    )


def _check_rule_fits(
    check_id: str, rule: PerformanceRule | NoRegressionRule, inputs: CheckInputs
) -> None:
    """Fail before computing anything: a policy asking the impossible is an input error."""
    metric = _metric_of(rule)
    subject = f"check '{check_id}', rule '{rule.label}'"
    allowed = TASK_METRICS[inputs.task]
    if metric not in allowed:
        raise InputError(
            subject,
            f"{metric} does not apply to a {inputs.task} model",
            f"use one of {', '.join(allowed)}, or correct the model's task",
        )
    if metric == "roc_auc" and inputs.y_score is None:
        raise InputError(
            subject,
            "roc_auc needs predicted probabilities but the model gives none (no predict_proba)",
            "use a classifier with predict_proba (e.g. wrap it in CalibratedClassifierCV) "
            "or judge accuracy, f1, precision or recall instead",
        )


def _metric_of(rule: PerformanceRule | NoRegressionRule) -> str:
    return rule.metric if isinstance(rule, PerformanceRule) else rule.no_regression.metric


def _check_length(what: str, values: np.ndarray | None, rows: int) -> None:
    if values is not None and len(values) != rows:
        raise InputError(
            what, f"{len(values):,} values for {rows:,} rows", "predict on the evaluation data"
        )


def _metrics(
    task: Task, y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None
) -> dict[str, float]:
    """Every metric the outputs allow; an undefined one is NaN, which no rule passes."""
    if task == "regression":
        return {
            "rmse": float(root_mean_squared_error(y_true, y_pred)),
            "mae": float(mean_absolute_error(y_true, y_pred)),
            "r2": float(r2_score(y_true, y_pred)),
        }
    # Label metrics depend only on the 2×2 confusion table: sklearn computes them on its
    # four cells weighted by their counts, which is exact and skips re-validating 1M rows.
    counts = np.bincount(2 * y_true.astype(np.int64) + y_pred.astype(np.int64), minlength=4)
    cells = np.flatnonzero(counts)
    truth, predicted, weight = cells // 2, cells % 2, counts[cells]
    values = {
        "accuracy": float(accuracy_score(truth, predicted, sample_weight=weight)),
        "f1": float(f1_score(truth, predicted, sample_weight=weight, zero_division=np.nan)),
        "precision": float(
            precision_score(truth, predicted, sample_weight=weight, zero_division=np.nan)
        ),
        "recall": float(recall_score(truth, predicted, sample_weight=weight, zero_division=np.nan)),
    }
    if y_score is not None:
        values["roc_auc"] = float(roc_auc_score(y_true, y_score))
    return values


def _champion(inputs: CheckInputs) -> tuple[dict[str, float], str] | None:
    """The champion's metrics and where they come from. Its outputs on the same data win
    over recorded metrics: they are measured on exactly the rows the candidate is."""
    champion = inputs.champion
    if champion is None:
        return None
    if champion.y_pred is None:
        return {name: float(value) for name, value in champion.metrics.items()}, RECORDED
    rows = len(inputs.y_true)
    _check_length("champion predictions", champion.y_pred, rows)
    _check_length("champion scores", champion.y_score, rows)
    scores = _metrics(inputs.task, inputs.y_true, champion.y_pred, champion.y_score)
    return scores, "measured on the same data"


def _summary(
    outcomes: list[RuleOutcome],
    rules: list[PerformanceRule | NoRegressionRule],
    candidate: dict[str, float],
    rows: int,
) -> str:
    failed = [outcome for outcome in outcomes if not outcome.passed]
    if failed:
        misses = "; ".join(f"{outcome.rule} ({outcome.detail})" for outcome in failed)
        return f"The model misses {len(failed)} of {len(outcomes)} performance rules: {misses}."
    judged = dict.fromkeys(_metric_of(rule) for rule in rules)
    values = ", ".join(f"{metric} {_fmt(candidate[metric])}" for metric in judged)
    rules_met = (
        "its performance rule" if len(outcomes) == 1 else f"all {len(outcomes)} performance rules"
    )
    return f"The model meets {rules_met} on {rows:,} rows ({values})."


def _plain(values: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: an undefined metric is recorded as null."""
    return {name: value if value == value else None for name, value in values.items()}
