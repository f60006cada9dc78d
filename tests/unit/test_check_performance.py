"""The performance check on the real Adult data, against scikit-learn's own metrics."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from governance.checks import Champion, CheckInputs, performance
from governance.connectors.adult import COLUMNS, TARGET
from governance.domain.errors import InputError
from governance.domain.policy import PerformanceCheck
from governance.domain.results import Status

FEATURES = [column for column in COLUMNS if column != TARGET]
Split = tuple[pd.DataFrame, pd.DataFrame]


def check(*rules: dict[str, Any], severity: str = "blocking") -> PerformanceCheck:
    return PerformanceCheck.model_validate(
        {"id": "perf", "type": "performance", "severity": severity, "rules": list(rules)}
    )


def classifier(model: Any, train: pd.DataFrame) -> Pipeline:
    objects = [c for c in FEATURES if train[c].dtype == object]
    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore"), objects)],
        remainder=StandardScaler(),
    )
    return Pipeline([("encode", encode), ("model", model)]).fit(train[FEATURES], train[TARGET])


@pytest.fixture(scope="module")
def strong(adult_split: Split) -> CheckInputs:
    """A logistic regression: accuracy ≈ 0.85, ROC AUC ≈ 0.90."""
    train, test = adult_split
    return outputs(classifier(LogisticRegression(max_iter=500), train), test)


@pytest.fixture(scope="module")
def weak(adult_split: Split) -> CheckInputs:
    """A two-level decision tree: clearly worse than the regression."""
    train, test = adult_split
    return outputs(classifier(DecisionTreeClassifier(max_depth=2, random_state=0), train), test)


def outputs(model: Pipeline, test: pd.DataFrame) -> CheckInputs:
    return CheckInputs(
        data=test,
        features=FEATURES,
        target=TARGET,
        y_true=test[TARGET].to_numpy(),
        y_pred=model.predict(test[FEATURES]),
        y_score=model.predict_proba(test[FEATURES])[:, 1],
        task="classification",
        model=model,
    )


def against(candidate: CheckInputs, champion: CheckInputs) -> CheckInputs:
    return replace(candidate, champion=Champion(y_pred=champion.y_pred, y_score=champion.y_score))


def test_classification_metrics_equal_sklearn(strong: CheckInputs) -> None:
    result = performance.run(check({"metric": "accuracy", "min": 0.5}), strong)

    y, pred, score = strong.y_true, strong.y_pred, strong.y_score
    assert result.metrics.pop("statistics") == [
        {"statistic": "accuracy, precision, recall, f1", "method": "exact", "bound": 0.0},
        {"statistic": "roc_auc", "method": "exact", "bound": 0.0},
    ]
    assert result.metrics == {
        "rows": len(y),
        "accuracy": sk.accuracy_score(y, pred),
        "roc_auc": sk.roc_auc_score(y, score),
        "f1": sk.f1_score(y, pred),
        "precision": sk.precision_score(y, pred),
        "recall": sk.recall_score(y, pred),
    }
    assert all(type(value) in (int, float) for value in result.metrics.values())
    json.dumps(result.metrics, allow_nan=False)


def test_min_and_max_rules_pass_and_fail(strong: CheckInputs) -> None:
    spec = check(
        {"metric": "accuracy", "min": 0.8, "basis": "model-risk standard §4"},
        {"metric": "roc_auc", "min": 0.95},
        {"metric": "recall", "max": 0.99},
        {"metric": "precision", "max": 0.5},
    )

    result = performance.run(spec, strong)

    assert [rule.passed for rule in result.rules] == [True, False, True, False]
    assert result.status is Status.FAIL
    accuracy = result.rules[0]
    assert accuracy.observed == result.metrics["accuracy"]
    assert accuracy.threshold == "≥ 0.8"
    assert accuracy.basis == "model-risk standard §4"
    assert result.summary.startswith("The model misses 2 of 4 performance rules: roc_auc ≥ 0.95")


def test_all_rules_met(strong: CheckInputs) -> None:
    result = performance.run(check({"metric": "accuracy", "min": 0.8}), strong)
    assert result.status is Status.PASS
    assert result.summary.startswith(
        "The model meets its performance rule on 14,653 rows (accuracy 0."
    )
    assert result.library_versions.keys() == {"scikit-learn"}


def test_warning_rule_only_warns(strong: CheckInputs) -> None:
    spec = check({"metric": "roc_auc", "min": 0.99, "severity": "warning"})
    assert performance.run(spec, strong).status is Status.WARN


def test_undefined_metric_fails_and_is_recorded_as_null(strong: CheckInputs) -> None:
    """Predicting nobody positive leaves precision undefined: it can never pass a rule."""
    never = replace(strong, y_pred=np.zeros_like(strong.y_pred))
    result = performance.run(check({"metric": "precision", "min": 0.1}), never)
    assert result.metrics["precision"] is None
    assert not result.rules[0].passed and result.rules[0].observed is None
    json.dumps(result.metrics, allow_nan=False)


def test_no_regression_against_champion_model(strong: CheckInputs, weak: CheckInputs) -> None:
    spec = check({"noRegression": {"metric": "roc_auc", "tolerance": 0.01}})

    better = performance.run(spec, against(strong, weak))
    worse = performance.run(spec, against(weak, strong))

    gain = sk.roc_auc_score(strong.y_true, strong.y_score) - sk.roc_auc_score(
        weak.y_true, weak.y_score
    )
    assert better.status is Status.PASS
    assert better.rules[0].observed == pytest.approx(gain)
    assert worse.status is Status.FAIL
    assert worse.rules[0].observed == pytest.approx(-gain)
    champion = worse.metrics["champion"]
    assert champion.keys() == {"accuracy", "roc_auc", "f1", "precision", "recall"}
    assert champion == {metric: better.metrics[metric] for metric in champion}
    assert worse.metrics["champion_source"] == "measured on the same data"
    detail = worse.rules[0].detail
    assert (
        f"{worse.metrics['roc_auc']:.4f}" in detail and f"{better.metrics['roc_auc']:.4f}" in detail
    )


@pytest.mark.parametrize(
    ("champion_gap", "tolerance", "passed"),
    [(-0.02, 0.0, True), (0.005, 0.01, True), (0.01, 0.01, True), (0.011, 0.01, False)],
)
def test_no_regression_against_recorded_metrics(
    strong: CheckInputs, champion_gap: float, tolerance: float, passed: bool
) -> None:
    """champion_gap: how much better the champion's recorded accuracy is."""
    accuracy = sk.accuracy_score(strong.y_true, strong.y_pred)
    recorded = replace(strong, champion=Champion(metrics={"accuracy": accuracy + champion_gap}))
    spec = check({"noRegression": {"metric": "accuracy", "tolerance": tolerance}})

    result = performance.run(spec, recorded)

    assert result.rules[0].passed is passed
    assert result.rules[0].observed == pytest.approx(-champion_gap)
    assert result.metrics["champion_source"] == "recorded"
    assert "recorded" in result.rules[0].detail


def test_no_champion_is_a_first_version(strong: CheckInputs) -> None:
    result = performance.run(check({"noRegression": {"metric": "f1"}}), strong)
    (rule,) = result.rules
    assert rule.passed and rule.observed is None
    assert rule.threshold == "improvement over the champion ≥ 0"
    assert rule.detail == "no champion supplied: first version, nothing to regress against"
    assert "champion" not in result.metrics


@pytest.fixture(scope="module")
def regression(adult_split: Split) -> CheckInputs:
    """Predict weekly working hours from the numeric columns."""
    train, test = adult_split
    numeric = ["age", "education_num", "capital_gain", "capital_loss"]
    model = HistGradientBoostingRegressor(max_iter=30, random_state=0)
    model.fit(train[numeric], train["hours_per_week"])
    return CheckInputs(
        data=test,
        features=numeric,
        target="hours_per_week",
        y_true=test["hours_per_week"].to_numpy(),
        y_pred=model.predict(test[numeric]),
        task="regression",
        model=model,
    )


def test_regression_metrics_equal_sklearn(regression: CheckInputs) -> None:
    spec = check({"metric": "rmse", "max": 20.0}, {"metric": "r2", "min": 0.5})

    result = performance.run(spec, regression)

    y, pred = regression.y_true, regression.y_pred
    assert result.metrics.pop("statistics") == [
        {"statistic": "rmse, mae, r2", "method": "exact", "bound": 0.0}
    ]
    assert result.metrics == {
        "rows": len(y),
        "rmse": sk.root_mean_squared_error(y, pred),
        "mae": sk.mean_absolute_error(y, pred),
        "r2": sk.r2_score(y, pred),
    }
    assert [rule.passed for rule in result.rules] == [True, False]


@pytest.mark.parametrize(("champion_rmse_delta", "passed"), [(0.5, True), (-0.5, False)])
def test_no_regression_inverts_lower_is_better(
    regression: CheckInputs, champion_rmse_delta: float, passed: bool
) -> None:
    """A champion with a higher RMSE is worse: the candidate improves on it."""
    rmse = sk.root_mean_squared_error(regression.y_true, regression.y_pred)
    recorded = replace(regression, champion=Champion(metrics={"rmse": rmse + champion_rmse_delta}))
    spec = check({"noRegression": {"metric": "rmse", "tolerance": 0.1}})

    result = performance.run(spec, recorded)

    assert result.rules[0].passed is passed
    assert result.rules[0].observed == pytest.approx(champion_rmse_delta)


@pytest.mark.parametrize(
    ("rule", "task", "message"),
    [
        ({"metric": "rmse", "max": 1}, "classification", "rmse does not apply to a classification"),
        ({"noRegression": {"metric": "accuracy"}}, "regression", "accuracy does not apply"),
    ],
)
def test_metric_outside_the_task_is_an_input_error(
    strong: CheckInputs, rule: dict[str, Any], task: str, message: str
) -> None:
    with pytest.raises(InputError, match=message) as raised:
        performance.run(check(rule), replace(strong, task=task))
    assert raised.value.fix


def test_roc_auc_without_probabilities_is_an_input_error(strong: CheckInputs) -> None:
    with pytest.raises(InputError, match="predicted probabilities") as raised:
        performance.run(check({"metric": "roc_auc", "min": 0.8}), replace(strong, y_score=None))
    assert "predict_proba" in raised.value.fix


def test_champion_without_the_metric_is_an_input_error(strong: CheckInputs) -> None:
    recorded = replace(strong, champion=Champion(metrics={"accuracy": 0.8}))
    with pytest.raises(InputError, match="recorded metrics have no f1") as raised:
        performance.run(check({"noRegression": {"metric": "f1"}}), recorded)
    assert raised.value.subject == "champion"

    no_scores = replace(strong, champion=Champion(y_pred=strong.y_pred))
    with pytest.raises(InputError, match="without probabilities"):
        performance.run(check({"noRegression": {"metric": "roc_auc"}}), no_scores)


def test_champion_predictions_of_other_rows_are_an_input_error(strong: CheckInputs) -> None:
    short = replace(strong, champion=Champion(y_pred=strong.y_pred[:10]))
    with pytest.raises(InputError, match="champion predictions"):
        performance.run(check({"noRegression": {"metric": "accuracy"}}), short)
