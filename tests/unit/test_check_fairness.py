"""Fairness: the figures are fairlearn's own; rules pass and fail for the right reason."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as flm
from sklearn.metrics import accuracy_score

from governance.checks import CheckInputs
from governance.checks.fairness import disparities_from_counts, run
from governance.domain.errors import InputError
from governance.domain.policy import FairnessCheck, FairnessMetric
from governance.domain.results import Status

DISPARITIES = get_args(FairnessMetric)


def spec(**overrides: object) -> FairnessCheck:
    document = {
        "id": "fairness",
        "type": "fairness",
        "sensitiveFeatures": ["sex", "race"],
        "intersectional": True,
        "minGroupSize": 30,
        "rules": [{"metric": "equalized_odds_difference", "max": 0.05, "over": ["sex"]}],
    }
    document.update(overrides)
    return FairnessCheck.model_validate(document)


def inputs(data: pd.DataFrame, y_pred: np.ndarray) -> CheckInputs:
    return CheckInputs(
        data=data,
        features=[],
        target="income",
        y_true=data["income"].to_numpy(),
        y_pred=y_pred,
        task="classification",
    )


@pytest.fixture(scope="module")
def predictions(demo_dir, adult_split) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    import skops.io

    test = pd.read_parquet(demo_dir / "test.parquet")
    out = {}
    for name in ("income-full", "income-reweighed"):
        path = demo_dir / f"{name}.skops"
        model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
        out[name] = (test, model.predict(test[list(model.feature_names_in_)]))
    return out


@pytest.mark.parametrize("over", [["sex"], ["race"], ["sex", "race"]])
def test_figures_equal_fairlearn_called_directly(predictions, over: list[str]) -> None:
    data, y_pred = predictions["income-full"]
    result = run(spec(), inputs(data, y_pred))
    report = next(g for g in result.metrics["groupings"] if g["features"] == over)
    y_true = data["income"].to_numpy()
    sensitive = data[over] if len(over) > 1 else data[over[0]]
    for name in DISPARITIES:
        expected = getattr(flm, name)(y_true, y_pred, sensitive_features=sensitive)
        assert report[name] == pytest.approx(expected, abs=1e-9, rel=1e-9), name
    frame = flm.MetricFrame(
        metrics={
            "selection_rate": flm.selection_rate,
            "true_positive_rate": flm.true_positive_rate,
            "false_positive_rate": flm.false_positive_rate,
            "accuracy": accuracy_score,
            "count": flm.count,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sensitive,
    ).by_group
    assert len(report["groups"]) == len(frame)
    for group in report["groups"]:
        key = tuple(group["group"][f] for f in over)
        row = frame.loc[key if len(key) > 1 else key[0]]
        assert group["count"] == row["count"]
        for name in ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy"):
            assert group[name] == pytest.approx(row[name], abs=1e-9), (key, name)
        top = frame["selection_rate"].max()
        assert group["impact_ratio"] == pytest.approx(row["selection_rate"] / top, abs=1e-9)


def test_model_using_sex_fails_and_reweighed_model_passes(predictions) -> None:
    full = run(spec(), inputs(*predictions["income-full"]))
    fair = run(spec(), inputs(*predictions["income-reweighed"]))
    assert full.status is Status.FAIL
    (rule,) = full.rules
    assert not rule.passed and rule.observed is not None and rule.observed > 0.05
    assert "equalized_odds_difference" in full.summary
    assert fair.status is Status.PASS, fair.summary
    assert fair.rules[0].observed is not None and fair.rules[0].observed <= 0.05


def test_warning_rule_never_fails_the_check(predictions) -> None:
    warn = spec(
        rules=[
            {"metric": "demographic_parity_ratio", "min": 0.8, "over": ["sex"],
             "severity": "warning", "basis": "29 CFR 1607.4(D) four-fifths rule"},
        ]
    )  # fmt: skip
    result = run(warn, inputs(*predictions["income-reweighed"]))
    assert result.status is Status.WARN
    assert result.rules[0].basis == "29 CFR 1607.4(D) four-fifths rule"
    assert "sex=Female" in result.metrics["four_fifths_flagged"]


def test_worst_grouping_is_reported_when_rule_covers_all(predictions) -> None:
    data, y_pred = predictions["income-full"]
    result = run(
        spec(rules=[{"metric": "demographic_parity_ratio", "min": 0.8}]), inputs(data, y_pred)
    )
    worst = min(g["demographic_parity_ratio"] for g in result.metrics["groupings"])
    assert result.rules[0].observed == worst
    assert result.rules[0].detail == "worst over sex × race"


def small_group_data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    n = 400
    data = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "race": np.where(np.arange(n) < 12, "Tiny", rng.choice(["A", "B"], n)),
            "income": rng.integers(0, 2, n),
        }
    )
    return data, rng.integers(0, 2, n)


def test_small_group_stops_the_gate_by_default() -> None:
    data, y_pred = small_group_data()
    with pytest.raises(InputError) as caught:
        run(spec(), inputs(data, y_pred))
    message = caught.value.message
    assert "race=Tiny has 12 rows" in message and "minGroupSize 30" in message
    assert "smallGroups: exclude" in message


def test_small_group_excluded_is_reported_not_dropped() -> None:
    data, y_pred = small_group_data()
    result = run(spec(smallGroups="exclude"), inputs(data, y_pred))
    race = next(g for g in result.metrics["groupings"] if g["features"] == ["race"])
    tiny = next(g for g in race["groups"] if g["group"]["race"] == "Tiny")
    assert tiny == {**tiny, "excluded": True, "count": 12, "selection_rate": None}
    kept = data["race"] != "Tiny"
    expected = flm.equalized_odds_difference(
        data["income"][kept], y_pred[kept], sensitive_features=data["race"][kept]
    )
    assert race["equalized_odds_difference"] == pytest.approx(expected, abs=1e-12)


def test_missing_sensitive_values_form_their_own_group() -> None:
    data, y_pred = small_group_data()
    data["sex"] = data["sex"].astype(object)
    data.loc[data.index[:40], "sex"] = None
    result = run(spec(sensitiveFeatures=["sex"], intersectional=False, rules=[
        {"metric": "demographic_parity_ratio", "min": 0.0}]), inputs(data, y_pred))  # fmt: skip
    labels = [g["label"] for g in result.metrics["groupings"][0]["groups"]]
    assert "sex=(missing)" in labels


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate(predictions) -> None:
    data, y_pred = predictions["income-full"]
    seeded = spec(bootstrap={"samples": 300, "seed": 3})
    first = run(seeded, inputs(data, y_pred)).rules[0]
    again = run(seeded, inputs(data, y_pred)).rules[0]
    assert first.interval == again.interval
    assert first.interval is not None and first.observed is not None
    assert first.interval[0] <= first.observed <= first.interval[1]


def test_count_formulas_match_fairlearn_definitions(predictions) -> None:
    """The bootstrap's vectorised formulas give fairlearn's value on the observed counts."""
    data, y_pred = predictions["income-full"]
    y_true = data["income"].to_numpy()
    codes, _ = pd.factorize(data["race"], sort=True)
    counts = np.bincount(4 * codes + 2 * y_true + y_pred, minlength=4 * codes.max() + 4)
    counts = counts.reshape(-1, 4)
    for name in DISPARITIES:
        expected = getattr(flm, name)(y_true, y_pred, sensitive_features=data["race"])
        assert float(disparities_from_counts(counts, name)) == pytest.approx(expected, abs=1e-12)


def test_missing_sensitive_column_is_bad_input(predictions) -> None:
    data, y_pred = predictions["income-full"]
    with pytest.raises(InputError, match=r"sensitive column\(s\) \['age_group'\]"):
        run(spec(sensitiveFeatures=["sex", "age_group"]), inputs(data, y_pred))


def test_rule_over_a_partial_intersection_is_computed(predictions) -> None:
    """With three sensitive features, `over: [race, sex]` (in any order) is its own grouping,
    judged against fairlearn on that intersection."""
    data, y_pred = predictions["income-full"]
    data = data.assign(age_group=np.where(data["age"] >= 40, "40+", "under 40"))
    three = spec(
        sensitiveFeatures=["sex", "race", "age_group"],
        smallGroups="exclude",
        rules=[{"metric": "equalized_odds_difference", "max": 1.0, "over": ["race", "sex"]}],
    )
    result = run(three, inputs(data, y_pred))
    assert [g["features"] for g in result.metrics["groupings"]] == [
        ["sex"], ["race"], ["age_group"], ["sex", "race", "age_group"], ["sex", "race"]
    ]  # fmt: skip
    assert result.rules[0].detail == "worst over sex × race"
    pair = result.metrics["groupings"][-1]
    kept = {tuple(g["group"].values()) for g in pair["groups"] if not g["excluded"]}
    rows = [tuple(r) in kept for r in data[["sex", "race"]].itertuples(index=False)]
    expected = flm.equalized_odds_difference(
        data["income"][rows], y_pred[rows], sensitive_features=data[["sex", "race"]][rows]
    )
    assert result.rules[0].observed == pytest.approx(expected, abs=1e-9)
