"""The drift check on the real Adult data, held against evidently's own DataDriftPreset."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.core.datasets import infer_column_type
from evidently.legacy.calculations import stattests
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

from governance.checks import CheckInputs
from governance.checks.drift import run
from governance.domain.errors import InputError
from governance.domain.policy import DriftCheck
from governance.domain.results import CheckResult, Status

NUMERICAL = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CATEGORICAL = [
    "workclass", "education", "marital_status", "occupation",
    "relationship", "race", "sex", "native_country",
]  # fmt: skip
# numbers with few distinct values, so every branch of evidently's test selection is taken
FEW_VALUED = ["age_band", "long_hours"]
FEATURES = NUMERICAL + CATEGORICAL + FEW_VALUED
DRIFT_SHARE = {"driftShare": {"max": 0.3}}
KINDS = {ColumnType.Numerical: "numerical", ColumnType.Categorical: "categorical"}
STATTESTS = {
    test.name: test
    for test in (
        stattests.wasserstein_stat_test,
        stattests.jensenshannon_stat_test,
        stattests.ks_stat_test,
        stattests.chi_stat_test,
        stattests.z_stat_test,
    )
}


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["age_band"] = (frame["age"] // 20).astype(float)
    frame["long_hours"] = (frame["hours_per_week"] > 40).astype(float)
    return frame


def _shifted(frame: pd.DataFrame) -> pd.DataFrame:
    """Ten years older, many of the never-married now divorced, some weights unrecorded."""
    rng = np.random.default_rng(7)
    frame = frame.copy()
    frame["age"] += 10
    never_married = frame.index[frame["marital_status"].eq("Never-married")]
    divorced = rng.choice(never_married, size=len(never_married) // 2, replace=False)
    frame.loc[divorced, "marital_status"] = "Divorced"
    frame["fnlwgt"] = frame["fnlwgt"].astype(float).mask(rng.random(len(frame)) < 0.05)
    return _features(frame)


@pytest.fixture(scope="module")
def frames(adult_split: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    train, test = adult_split
    return {
        "reference": _features(train),
        "current": _features(test),
        "shifted": _shifted(test),
    }


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame.sample(rows, random_state=1).reset_index(drop=True)


def _inputs(
    current: pd.DataFrame, reference: pd.DataFrame | None, features: list[str] = FEATURES
) -> CheckInputs:
    y_true = current["income"].to_numpy()
    return CheckInputs(
        data=current,
        features=features,
        target="income",
        y_true=y_true,
        y_pred=np.zeros_like(y_true),
        task="classification",
        reference=reference,
    )


def _check(*rules: dict[str, Any], columns: list[str] | None = None) -> DriftCheck:
    return DriftCheck.model_validate(
        {"id": "drift", "type": "drift", "columns": columns, "rules": list(rules)}
    )


def _run(
    current: pd.DataFrame, reference: pd.DataFrame | None, *rules: dict[str, Any]
) -> CheckResult:
    return run(_check(*rules), _inputs(current, reference))


def _evidently(
    current: pd.DataFrame, reference: pd.DataFrame, kinds: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], float]:
    """Per column (method, threshold, score, drifted) and the drifted share, from evidently."""
    definition = DataDefinition(
        numerical_columns=[c for c, kind in kinds.items() if kind == "numerical"],
        categorical_columns=[c for c, kind in kinds.items() if kind == "categorical"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(current[list(kinds)], data_definition=definition),
            Dataset.from_pandas(reference[list(kinds)], data_definition=definition),
        )
    document = snapshot.dict()
    columns: dict[str, dict[str, Any]] = {}
    share = None
    for metric in document["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "method": config["method"],
                "threshold": config["threshold"],
                "score": metric["value"],
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            share = metric["value"]["share"]
    for test in document["tests"]:
        if test["id"] == "drift":
            column = test["metric_config"]["params"]["column"]
            columns[column]["drifted"] = test["status"] == "FAIL"
    assert share is not None
    return columns, share


@pytest.mark.parametrize("rows", [None, (800, 600)], ids=["full", "under-1000-rows"])
@pytest.mark.parametrize("current", ["current", "shifted"])
def test_matches_evidently(
    frames: dict[str, pd.DataFrame], current: str, rows: tuple[int, int] | None
) -> None:
    """Same test, threshold, statistic (to 1e-9) and verdict as evidently, column by column."""
    reference, data = frames["reference"], frames[current]
    if rows is not None:  # evidently switches to p-value tests up to 1000 reference rows
        reference, data = _sample(reference, rows[0]), _sample(data, rows[1])
    result = _run(data, reference, DRIFT_SHARE)
    ours = {column["column"]: column for column in result.metrics["columns"]}
    theirs, share = _evidently(data, reference, {c: ours[c]["kind"] for c in FEATURES})

    for column in FEATURES:
        mine, expected = ours[column], theirs[column]
        assert mine["kind"] == KINDS[infer_column_type(data[column])], column
        assert STATTESTS[mine["stattest"]].display_name == expected["method"], column
        assert mine["threshold"] == expected["threshold"], column
        assert mine["statistic"] == pytest.approx(expected["score"], rel=1e-9, abs=0), column
        assert mine["drifted"] == expected["drifted"], column
    assert result.metrics["drift_share"] == pytest.approx(share)
    used = {column["stattest"] for column in ours.values()}
    if rows is None:
        assert used == {"wasserstein", "jensenshannon"}
    else:
        assert used == {"ks", "chisquare", "z"}


def test_detects_the_shift(frames: dict[str, pd.DataFrame]) -> None:
    clean = _run(frames["current"], frames["reference"], DRIFT_SHARE)
    shifted = _run(frames["shifted"], frames["reference"], DRIFT_SHARE)
    assert clean.metrics["drifted_columns"] == []
    assert {"age", "marital_status", "age_band"} <= set(shifted.metrics["drifted_columns"])
    assert "sex" not in shifted.metrics["drifted_columns"]


def test_drift_share_passes_within_the_limit(frames: dict[str, pd.DataFrame]) -> None:
    result = _run(frames["shifted"], frames["reference"], {"driftShare": {"max": 0.3}})
    drifted = result.metrics["drifted_columns"]
    assert 0 < len(drifted) / len(FEATURES) <= 0.3
    assert result.status is Status.PASS
    assert result.rules[0].observed == pytest.approx(len(drifted) / len(FEATURES))
    assert result.summary.startswith(f"{len(drifted)} of {len(FEATURES)} columns drifted")
    assert "within the 30% allowed" in result.summary


def test_drift_share_fails_above_the_limit(frames: dict[str, pd.DataFrame]) -> None:
    result = _run(
        frames["shifted"],
        frames["reference"],
        {"driftShare": {"max": 0.1}, "basis": "EU AI Act Art. 15"},
    )
    (rule,) = result.rules
    assert result.status is Status.FAIL
    assert not rule.passed and rule.observed > 0.1
    assert rule.threshold == "≤ 0.1" and rule.basis == "EU AI Act Art. 15"
    assert "age" in rule.detail and "marital_status" in rule.detail
    assert "more than the 10% allowed" in result.summary


def test_no_drift_in_passes_when_the_named_columns_hold(frames: dict[str, pd.DataFrame]) -> None:
    result = _run(
        frames["shifted"], frames["reference"], {"noDriftIn": {"columns": ["sex", "race"]}}
    )
    (rule,) = result.rules
    assert rule.passed and rule.observed == "none drifted"
    assert rule.detail.startswith("race: jensenshannon")  # in the order the check tests them
    assert result.status is Status.PASS


def test_no_drift_in_fails_when_a_named_column_drifts(frames: dict[str, pd.DataFrame]) -> None:
    result = _run(
        frames["shifted"],
        frames["reference"],
        {"noDriftIn": {"columns": ["age", "sex"]}, "severity": "warning"},
    )
    (rule,) = result.rules
    assert not rule.passed and rule.observed == "age drifted"
    assert "age: wasserstein" in rule.detail
    assert result.status is Status.WARN  # the rule's own severity wins
    assert "the policy forbids drift in age" in result.summary


def test_columns_limit_what_is_tested(frames: dict[str, pd.DataFrame]) -> None:
    spec = _check({"driftShare": {"max": 0.5}}, columns=["sex", "age"])
    result = run(spec, _inputs(frames["shifted"], frames["reference"]))
    assert [c["column"] for c in result.metrics["columns"]] == ["sex", "age"]
    assert result.metrics["drift_share"] == 0.5
    assert result.summary == "1 of 2 columns drifted (50%), within the 50% allowed; age drifted."


def test_metrics_are_plain_json(frames: dict[str, pd.DataFrame]) -> None:
    result = _run(frames["shifted"], frames["reference"], DRIFT_SHARE)
    json.dumps(result.metrics, allow_nan=False)
    assert {"evidently", "scipy", "numpy", "pandas"} <= set(result.library_versions)


def test_missing_reference_is_an_input_error(frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(InputError, match="--reference FILE"):
        _run(frames["current"], None, DRIFT_SHARE)


def test_unknown_column_in_no_drift_in_is_an_input_error(frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(InputError, match="salary") as caught:
        _run(frames["current"], frames["reference"], {"noDriftIn": {"columns": ["age", "salary"]}})
    assert "rule 'no drift in age, salary'" in caught.value.subject


def test_unknown_column_in_columns_is_an_input_error(frames: dict[str, pd.DataFrame]) -> None:
    spec = _check(DRIFT_SHARE, columns=["age", "salary"])
    with pytest.raises(InputError, match="salary are not in the evaluation data"):
        run(spec, _inputs(frames["current"], frames["reference"]))


def test_dates_are_left_out_unless_named(frames: dict[str, pd.DataFrame]) -> None:
    """evidently's preset does not test dates either; naming one is a mistake to report."""
    interviewed = pd.Timestamp("1994-06-01")
    current = frames["current"].assign(interviewed=interviewed)
    reference = frames["reference"].assign(interviewed=interviewed)
    inputs = _inputs(current, reference, [*FEATURES, "interviewed"])
    result = run(_check(DRIFT_SHARE), inputs)
    assert result.metrics["tested_columns"] == len(FEATURES)
    assert result.metrics["untested_columns"] == ["interviewed"]
    spec = _check(DRIFT_SHARE, columns=["age", "interviewed"])
    with pytest.raises(InputError, match="drift cannot be tested on"):
        run(spec, inputs)


def test_a_column_without_values_is_an_input_error(frames: dict[str, pd.DataFrame]) -> None:
    current = frames["current"].assign(capital_gain=np.nan)
    with pytest.raises(InputError, match="no values in the evaluation data"):
        _run(current, frames["reference"], DRIFT_SHARE)
