"""Performance: is the candidate good enough, and no worse than the model it would replace?

`noRegression` observes the candidate's *improvement* over the champion: candidate − champion
for higher-is-better metrics, champion − candidate for those in `LOWER_IS_BETTER`. Positive
means the candidate is better either way; the rule holds while it is ≥ −tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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

from governance.checks import (
    Batch,
    CheckInputs,
    Exactness,
    Scope,
    Task,
    library_versions,
    rule_severity,
    run_check,
)
from governance.checks.sketches import Moments, ScoreBins
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
    Severity,
)
from governance.domain.results import CheckResult, RuleOutcome, status_of

TASK_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": get_args(ClassificationMetric),
    "regression": get_args(RegressionMetric),
}


def run(spec: PerformanceCheck, inputs: CheckInputs) -> CheckResult:
    """All rows in memory: one batch."""
    return run_check(spec, inputs)


@dataclass(frozen=True)
class Outputs:
    """One model's outputs on the rows so far, as what its metrics need.

    Label metrics need only the 2×2 confusion counts. ROC AUC and the regression metrics
    need every value while the data is kept (`exact`); otherwise the AUC comes from score
    bins (with a bound) and the regression metrics from sums, exact up to rounding."""

    counts: np.ndarray | None = None  # classification: tn, fp, fn, tp
    truth: list[np.ndarray] = field(default_factory=list)  # exact: the rows' values
    scores: list[np.ndarray] = field(default_factory=list)
    bins: ScoreBins | None = None
    sums: np.ndarray | None = None  # regression: n, Σe², Σ|e|
    truth_moments: Moments = field(default_factory=Moments)

    @classmethod
    def of(
        cls,
        task: Task,
        exact: bool,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        y_score: np.ndarray | None,
    ) -> Outputs:
        if task == "regression":
            if exact:
                return cls(truth=[y_true], scores=[y_pred])
            error = y_true - y_pred
            sums = np.array(
                [error.size, np.dot(error, error), np.abs(error).sum()], dtype=np.float64
            )
            return cls(sums=sums, truth_moments=Moments.of(y_true))
        counts = np.bincount(2 * y_true.astype(np.int64) + y_pred.astype(np.int64), minlength=4)
        if y_score is None:
            return cls(counts=counts)
        if exact:
            return cls(counts=counts, truth=[y_true], scores=[y_score])
        return cls(counts=counts, bins=ScoreBins.of(y_true, y_score))

    def merge(self, other: Outputs) -> Outputs:
        return Outputs(
            counts=None
            if self.counts is None or other.counts is None
            else self.counts + other.counts,
            truth=self.truth + other.truth,
            scores=self.scores + other.scores,
            bins=None if self.bins is None or other.bins is None else self.bins.merge(other.bins),
            sums=None if self.sums is None or other.sums is None else self.sums + other.sums,
            truth_moments=self.truth_moments.merge(other.truth_moments),
        )

    def metrics(self, task: Task) -> tuple[dict[str, float], list[Exactness]]:
        """Every metric the outputs allow; an undefined one is NaN, which no rule passes."""
        if task == "regression":
            if self.sums is None:
                y_true, y_pred = np.concatenate(self.truth), np.concatenate(self.scores)
                return _regression(y_true, y_pred), [Exactness("rmse, mae, r2", "exact")]
            rows, squared, absolute = self.sums
            total = self.truth_moments.m2
            r2 = 1.0 - squared / total if total > 0 else (1.0 if squared == 0 else 0.0)
            values = {
                "rmse": float(np.sqrt(squared / rows)),
                "mae": float(absolute / rows),
                "r2": float(r2),
            }
            return values, [Exactness("rmse, mae, r2 (sums)", "exact")]
        assert self.counts is not None
        values = _label_metrics(self.counts)
        statistics = [Exactness("accuracy, precision, recall, f1", "exact")]
        if self.bins is not None:
            auc, bound = self.bins.roc_auc()
            values["roc_auc"] = auc
            statistics.append(Exactness("roc_auc", "sketch", bound))
        elif self.scores:
            y_true, y_score = np.concatenate(self.truth), np.concatenate(self.scores)
            values["roc_auc"] = float(roc_auc_score(y_true, y_score))
            statistics.append(Exactness("roc_auc", "exact"))
        return values, statistics


@dataclass(frozen=True)
class _State:
    candidate: Outputs
    champion: Outputs | None
    rows: int


class Aggregate:
    """The candidate's (and a measured champion's) outputs, merged over batches."""

    def __init__(self, spec: PerformanceCheck, scope: Scope) -> None:
        self.spec, self.scope = spec, scope
        for rule in spec.rules:
            _check_rule_fits(spec.id, rule, scope.task, scope.scores)

    def partial(self, batch: Batch) -> _State:
        scope = self.scope
        rows = len(batch.y_true)
        _check_length("predictions", batch.y_pred, rows)
        candidate = Outputs.of(scope.task, scope.exact, batch.y_true, batch.y_pred, batch.y_score)
        champion = None
        if scope.champion_measured:
            assert batch.champion_pred is not None
            _check_length("champion predictions", batch.champion_pred, rows)
            _check_length("champion scores", batch.champion_score, rows)
            champion = Outputs.of(
                scope.task, scope.exact, batch.y_true, batch.champion_pred, batch.champion_score
            )
        return _State(candidate, champion, rows)

    def merge(self, first: _State, second: _State) -> _State:
        champion = None
        if first.champion is not None and second.champion is not None:
            champion = first.champion.merge(second.champion)
        return _State(first.candidate.merge(second.candidate), champion, first.rows + second.rows)

    def finalize(self, state: _State) -> CheckResult:
        spec, scope, rows = self.spec, self.scope, state.rows
        candidate, statistics = state.candidate.metrics(scope.task)
        champion = _champion(scope, state.champion)
        bounds = {s.statistic: s.bound for s in statistics if s.method == "sketch"}
        if state.champion is not None:
            statistics += [
                replace(statistic, statistic=f"champion {statistic.statistic}")
                for statistic in state.champion.metrics(scope.task)[1]
            ]
        outcomes = [
            _judge(rule, rule_severity(rule, spec), candidate, champion, bounds, rows)
            for rule in spec.rules
        ]

        metrics: dict[str, object] = {"rows": rows, **_plain(candidate)}
        if champion is not None:
            metrics["champion"] = _plain(champion[0])
            metrics["champion_source"] = champion[1]
        metrics["statistics"] = [statistic.as_json() for statistic in statistics]
        return CheckResult(
            id=spec.id,
            type=spec.type,
            status=status_of(outcomes),
            summary=_summary(outcomes, spec.rules, candidate, rows),
            rules=outcomes,
            metrics=metrics,
            library_versions=library_versions("scikit-learn"),
        )


def _judge(
    rule: PerformanceRule | NoRegressionRule,
    severity: Severity,
    candidate: dict[str, float],
    champion: tuple[dict[str, float], str] | None,
    bounds: dict[str, float],
    rows: int,
) -> RuleOutcome:
    """A sketched figure is judged at its bound's worse end when the rule fails there:
    the party judged chooses how big its data is, so it must not gain from the sketch."""
    if isinstance(rule, PerformanceRule):
        outcome = judge_performance_metric(rule, candidate[rule.metric], rows, severity)
        bound = bounds.get(rule.metric, 0.0)
        value = candidate[rule.metric]
        for worse, limit in ((value - bound, rule.min), (value + bound, rule.max)):
            if bound and outcome.passed and limit is not None:
                pessimistic = judge_performance_metric(rule, worse, rows, severity)
                if not pessimistic.passed:
                    return _sketched(pessimistic, value, bound)
        return outcome
    outcome = judge_no_regression(rule, candidate, champion, severity)
    metric = rule.no_regression.metric
    bound = bounds.get(metric, 0.0) + bounds.get(f"champion {metric}", 0.0)
    if not bound or not outcome.passed or champion is None or metric not in champion[0]:
        return outcome
    # only roc_auc is sketched, and higher is better: the worse end is below
    worse_candidate = {**candidate, metric: candidate[metric] - bound}
    pessimistic = judge_no_regression(rule, worse_candidate, champion, severity)
    return outcome if pessimistic.passed else _sketched(pessimistic, candidate[metric], bound)


def _sketched(outcome: RuleOutcome, value: float, bound: float) -> RuleOutcome:
    note = f"; sketched {value:.6g} ± {bound:.1e}, judged at the bound's worse end"
    return outcome.model_copy(update={"detail": (outcome.detail or "") + note})


def _check_rule_fits(
    check_id: str, rule: PerformanceRule | NoRegressionRule, task: Task, has_scores: bool
) -> None:
    """Fail before computing anything: a policy asking the impossible is an input error."""
    metric = _metric_of(rule)
    subject = f"check '{check_id}', rule '{rule.label}'"
    allowed = TASK_METRICS[task]
    if metric not in allowed:
        raise InputError(
            subject,
            f"{metric} does not apply to a {task} model",
            f"use one of {', '.join(allowed)}, or correct the model's task",
        )
    if metric == "roc_auc" and not has_scores:
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


def _regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def _label_metrics(counts: np.ndarray) -> dict[str, float]:
    """Label metrics depend only on the 2×2 confusion table: sklearn computes them on its
    four cells weighted by their counts, which is exact and skips re-validating every row."""
    cells = np.flatnonzero(counts)
    truth, predicted, weight = cells // 2, cells % 2, counts[cells]
    return {
        "accuracy": float(accuracy_score(truth, predicted, sample_weight=weight)),
        "f1": float(f1_score(truth, predicted, sample_weight=weight, zero_division=np.nan)),
        "precision": float(
            precision_score(truth, predicted, sample_weight=weight, zero_division=np.nan)
        ),
        "recall": float(recall_score(truth, predicted, sample_weight=weight, zero_division=np.nan)),
    }


def _champion(scope: Scope, outputs: Outputs | None) -> tuple[dict[str, float], str] | None:
    """The champion's metrics and where they come from. Its outputs on the same data win
    over recorded metrics: they are measured on exactly the rows the candidate is."""
    if outputs is not None:
        return outputs.metrics(scope.task)[0], "measured on the same data"
    if scope.champion_metrics is not None:
        return {name: float(value) for name, value in scope.champion_metrics.items()}, RECORDED
    return None


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
