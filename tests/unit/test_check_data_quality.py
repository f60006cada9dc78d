"""The data-quality check on the real Adult data and on small frames built to break one rule."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from governance.checks import CheckInputs
from governance.checks.data_quality import run
from governance.domain.errors import InputError
from governance.domain.policy import DataQualityCheck
from governance.domain.results import CheckResult, Status

FEATURES = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country",
]  # fmt: skip


def _inputs(
    data: pd.DataFrame,
    reference: pd.DataFrame | None,
    features: list[str] | None = None,
    target: str = "income",
) -> CheckInputs:
    y_true = np.zeros(len(data), dtype=np.int64)
    return CheckInputs(
        data=data,
        features=features or [c for c in data.columns if c != target],
        target=target,
        y_true=y_true,
        y_pred=y_true,
        task="classification",
        reference=reference,
    )


def _check(*rules: dict[str, Any]) -> DataQualityCheck:
    return DataQualityCheck.model_validate({"id": "dq", "type": "data_quality", "rules": rules})


def _run(data: pd.DataFrame, reference: pd.DataFrame | None, *rules: dict[str, Any]) -> CheckResult:
    return run(_check(*rules), _inputs(data, reference))


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [25, 40, 61, 33],
            "city": ["Oslo", "Lima", "Oslo", "Pune"],
            "member": [True, False, True, True],
            "joined": pd.to_datetime(["2020-01-01", "2021-06-01", "2019-03-15", "2022-11-30"]),
            "income": [0, 1, 1, 0],
        }
    )


# schemaMatch


def test_schema_matches_on_adult(adult_split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = adult_split
    result = _run(test, train, {"schemaMatch": {}})
    (rule,) = result.rules
    assert rule.passed and rule.observed == "match"
    assert rule.threshold == "no missing columns, no type changes"


def test_schema_fails_on_a_missing_column(small: pd.DataFrame) -> None:
    (rule,) = _run(small.drop(columns="city"), small, {"schemaMatch": {}}).rules
    assert not rule.passed and rule.observed == "missing: city"


def test_schema_allows_extra_columns_by_default(small: pd.DataFrame) -> None:
    data = small.assign(branch="north")
    (rule,) = _run(data, small, {"schemaMatch": {}}).rules
    assert rule.passed and rule.detail == "allowed by the policy: extra: branch"


def test_schema_fails_on_extra_columns_when_they_are_not_allowed(small: pd.DataFrame) -> None:
    data = small.assign(branch="north")
    (rule,) = _run(data, small, {"schemaMatch": {"allowExtraColumns": False}}).rules
    assert not rule.passed and rule.observed == "extra: branch"
    assert "no extra columns" in rule.threshold


def test_schema_fails_when_a_column_changes_kind(small: pd.DataFrame) -> None:
    data = small.assign(age=small["age"].astype(str), member=small["member"].astype(int))
    (rule,) = _run(data, small, {"schemaMatch": {}}).rules
    assert not rule.passed
    assert rule.observed == "type changed: age numeric → categorical, member bool → numeric"


def test_schema_allows_kind_changes_when_the_policy_does(small: pd.DataFrame) -> None:
    data = small.assign(joined=small["joined"].astype(str))
    (rule,) = _run(data, small, {"schemaMatch": {"allowDtypeChanges": True}}).rules
    assert rule.passed and "joined datetime → categorical" in rule.detail


def test_integers_becoming_floats_is_no_change_of_kind(small: pd.DataFrame) -> None:
    data = small.assign(age=[25.0, np.nan, 61.0, 33.0])
    (rule,) = _run(data, small, {"schemaMatch": {}}).rules
    assert rule.passed


# missing_share


def test_missing_share_passes_on_adult(adult_split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, test = adult_split
    result = _run(test, None, {"metric": "missing_share", "max": 0.10})
    (rule,) = result.rules
    missing = test[FEATURES].isna().mean()  # occupation and workclass: about 5.7% each
    assert rule.passed and rule.observed == pytest.approx(missing.max())
    assert rule.detail == f"{missing.idxmax()} has {missing.max():.2%} missing values"
    assert result.status is Status.PASS


def test_missing_share_fails_and_names_the_worst_column(
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, test = adult_split
    data = test.assign(hours_per_week=test["hours_per_week"].mask(test.index % 5 == 0))
    result = _run(data, None, {"metric": "missing_share", "max": 0.10, "basis": "Art. 10(3)"})
    (rule,) = result.rules
    assert not rule.passed and rule.observed == pytest.approx(0.2, abs=1e-3)
    assert rule.detail == "hours_per_week has 20.00% missing values"
    assert rule.basis == "Art. 10(3)"
    assert result.status is Status.FAIL
    assert result.summary == (
        "1 of 1 data-quality rules did not hold: missing_share ≤ 0.1 — "
        "hours_per_week has 20.00% missing values."
    )


# out_of_range_share


def test_out_of_range_share_passes_on_adult(adult_split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = adult_split
    (rule,) = _run(test, train, {"metric": "out_of_range_share", "max": 0.001}).rules
    assert rule.passed
    assert rule.observed == pytest.approx(1 / len(test))  # one fnlwgt above the training max
    assert rule.detail.startswith("fnlwgt has ")


def test_out_of_range_share_fails_when_ages_move_past_the_reference(
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = adult_split
    older = test.assign(age=test["age"] + 10)
    expected = (older["age"] > train["age"].max()).mean()
    (rule,) = _run(older, train, {"metric": "out_of_range_share", "max": 0.001}).rules
    assert not rule.passed and rule.observed == pytest.approx(expected)
    assert rule.detail.startswith("age has ")


def test_missing_values_are_not_out_of_range(small: pd.DataFrame) -> None:
    data = small.assign(age=[np.nan, 40.0, 99.0, 10.0])  # 2 of 4 outside [25, 61]
    result = _run(data, small, {"metric": "out_of_range_share", "max": 0.5})
    assert result.rules[0].observed == 0.5 and result.rules[0].passed


# unseen_category_share


def test_unseen_category_share_passes_on_adult(
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = adult_split
    (rule,) = _run(test, train, {"metric": "unseen_category_share", "max": 0.01}).rules
    assert rule.passed and rule.observed == pytest.approx(1 / len(test))
    assert rule.detail.startswith("native_country has ")


def test_unseen_category_share_fails_on_new_categories(
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = adult_split
    data = test.assign(workclass=test["workclass"].mask(test.index % 50 == 0, "Gig-economy"))
    (rule,) = _run(data, train, {"metric": "unseen_category_share", "max": 0.01}).rules
    assert not rule.passed and rule.observed == pytest.approx(0.02, abs=1e-3)
    assert rule.detail == f"workclass has {rule.observed:.2%} of values never seen in the reference"


def test_unseen_categories_work_for_categorical_and_bool_dtypes(small: pd.DataFrame) -> None:
    reference = small.assign(city=small["city"].astype("category"), member=True)
    data = small.assign(city=pd.Categorical(["Oslo", "Rome", "Rome", "Lima"]))
    result = _run(data, reference, {"metric": "unseen_category_share", "max": 0.6})
    shares = {c["column"]: c["unseen_category_share"] for c in result.metrics["columns"]}
    assert shares == {"age": None, "city": 0.5, "member": 0.25, "joined": None}
    assert result.rules[0].passed


# the check as a whole


def test_per_column_table_on_adult(adult_split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = adult_split
    result = run(
        _check(
            {"schemaMatch": {}},
            {"metric": "missing_share", "max": 0.10},
            {"metric": "out_of_range_share", "max": 0.01},
            {"metric": "unseen_category_share", "max": 0.01},
        ),
        _inputs(test, train, FEATURES),
    )
    table = {c["column"]: c for c in result.metrics["columns"]}
    assert list(table) == FEATURES and result.metrics["rows"] == len(test)
    assert table["age"] == {
        "column": "age",
        "kind": "numeric",
        "missing_share": 0.0,
        "out_of_range_share": 0.0,
        "unseen_category_share": None,
    }
    assert table["workclass"]["kind"] == "categorical"
    assert table["workclass"]["missing_share"] == pytest.approx(test["workclass"].isna().mean())
    assert table["workclass"]["out_of_range_share"] is None
    assert result.status is Status.PASS
    assert result.summary == f"All 4 data-quality rules held on {len(test):,} rows and 14 features."
    json.dumps(result.metrics, allow_nan=False)


def test_a_warning_rule_only_warns(small: pd.DataFrame) -> None:
    data = small.assign(city=[None, None, "Oslo", "Lima"])
    result = _run(data, None, {"metric": "missing_share", "max": 0.1, "severity": "warning"})
    assert result.status is Status.WARN


@pytest.mark.parametrize(
    "rule",
    [
        {"schemaMatch": {}},
        {"metric": "out_of_range_share", "max": 0.01},
        {"metric": "unseen_category_share", "max": 0.01},
    ],
)
def test_rules_that_compare_need_a_reference(small: pd.DataFrame, rule: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="--reference FILE"):
        _run(small, None, {"metric": "missing_share", "max": 0.1}, rule)


def test_missing_share_needs_no_reference(small: pd.DataFrame) -> None:
    result = _run(small, None, {"metric": "missing_share", "max": 0.0})
    assert result.rules[0].passed and result.rules[0].observed == 0.0


def test_empty_data_is_an_input_error(small: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="no rows"):
        _run(small.iloc[:0], small, {"metric": "missing_share", "max": 0.1})
