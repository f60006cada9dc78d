"""The explainability check on the real Adult data, against shap called directly."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from governance.checks import CheckInputs, explainability
from governance.connectors.adult import COLUMNS, TARGET
from governance.domain.errors import InputError
from governance.domain.policy import ExplainabilityCheck
from governance.domain.results import Status

FEATURES = [column for column in COLUMNS if column != TARGET]
PROXIES = ["sex", "relationship", "marital_status"]
Split = tuple[pd.DataFrame, pd.DataFrame]


def check(prohibited: list[str], k: int, **options: Any) -> ExplainabilityCheck:
    return ExplainabilityCheck.model_validate(
        {
            "id": "explain",
            "type": "explainability",
            "sampleSize": 300,
            **options,
            "rules": [{"prohibitedInTopK": {"features": prohibited, "k": k}}],
        }
    )


def inputs(model: Any, data: pd.DataFrame, features: list[str] = FEATURES) -> CheckInputs:
    y = data[TARGET].to_numpy()
    return CheckInputs(
        data=data,
        features=features,
        target=TARGET,
        y_true=y,
        y_pred=model.predict(data[features]),
        task="classification",
        model=model,
    )


def by_feature(ranking: list[dict[str, Any]]) -> dict[str, float]:
    return {entry["feature"]: entry["mean_abs_shap"] for entry in ranking}


@pytest.fixture(scope="module")
def categorical(adult: pd.DataFrame, adult_split: Split) -> Split:
    """LightGBM takes pandas categoricals natively; fix the categories on the full data."""
    dtypes = {c: pd.CategoricalDtype(adult[c].dropna().unique()) for c in _objects(adult)}
    train, test = adult_split
    return train.astype(dtypes), test.astype(dtypes)


def _objects(frame: pd.DataFrame) -> list[str]:
    return [c for c in FEATURES if frame[c].dtype == object]


def lightgbm_on(train: pd.DataFrame, features: list[str]) -> lgb.LGBMClassifier:
    model = lgb.LGBMClassifier(n_estimators=30, random_state=0, verbose=-1)
    return model.fit(train[features], train[TARGET])


@pytest.fixture(scope="module")
def forest_pipeline(adult_split: Split) -> Pipeline:
    """One-hot categoricals, numeric passthrough, a forest: the common sklearn shape."""
    train, _ = adult_split
    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore"), _objects(train))],
        remainder="passthrough",
    )
    forest = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
    return Pipeline([("encode", encode), ("forest", forest)]).fit(train[FEATURES], train[TARGET])


def test_ranking_equals_tree_shap_called_directly(categorical: Split) -> None:
    train, test = categorical
    model = lightgbm_on(train, FEATURES)
    spec = check(["race"], 1, seed=7)

    result = explainability.run(spec, inputs(model, test))

    sample = explainability.sample_rows(test[FEATURES], 300, seed=7)
    direct = np.abs(shap.TreeExplainer(model)(sample).values).mean(axis=0)
    assert by_feature(result.metrics["ranking"]) == pytest.approx(
        dict(zip(FEATURES, direct, strict=True)), abs=1e-9
    )
    assert result.metrics["explainer"] == "TreeExplainer"
    assert result.metrics["sample_size"] == 300
    assert [entry["rank"] for entry in result.metrics["ranking"]] == list(range(1, 15))
    json.dumps(result.metrics, allow_nan=False)


def test_pipeline_sums_one_hot_columns_per_feature(
    adult_split: Split, forest_pipeline: Pipeline
) -> None:
    _, test = adult_split
    result = explainability.run(check(["race"], 1), inputs(forest_pipeline, test))

    # independently: shap on the forest, then group the columns by the encoder's categories
    sample = explainability.sample_rows(test[FEATURES], 300, seed=0)
    encoded = forest_pipeline[:-1].transform(sample).toarray()
    values = shap.TreeExplainer(forest_pipeline[-1])(encoded).values[..., 1]
    encoder = forest_pipeline[0].named_transformers_["onehot"]
    owners = [c for c, cats in zip(_objects(test), encoder.categories_, strict=True) for _ in cats]
    owners += [c for c in FEATURES if c not in _objects(test)]
    per_feature = pd.DataFrame(values, columns=owners).T.groupby(level=0).sum().T
    expected = per_feature.abs().mean()
    assert by_feature(result.metrics["ranking"]) == pytest.approx(expected.to_dict(), abs=1e-9)


def test_a_thresholded_tree_model_is_explained_by_tree_shap_on_its_score(
    adult_split: Split, forest_pipeline: Pipeline
) -> None:
    """A decision threshold around a frozen tree pipeline (the demo's shape) serves the
    forest's score cut at a point: the ranking is the forest's own Tree SHAP ranking."""
    train, test = adult_split
    frozen = FixedThresholdClassifier(FrozenEstimator(forest_pipeline), threshold=0.35)
    thresholded = frozen.fit(train[FEATURES], train[TARGET])

    result = explainability.run(check(["race"], 1), inputs(thresholded, test))
    direct = explainability.run(check(["race"], 1), inputs(forest_pipeline, test))

    assert result.metrics["explainer"] == "TreeExplainer"
    assert result.metrics["background_size"] is None
    assert result.metrics["ranking"] == direct.metrics["ranking"]


def test_a_subclass_of_a_threshold_wrapper_is_not_taken_on_its_word(
    adult_split: Split, forest_pipeline: Pipeline
) -> None:
    """A subclass may serve something other than its inner model's score, so only the
    exact wrapper types are seen through; anything else is explained as it predicts."""

    class Relabelled(FixedThresholdClassifier):
        pass

    train, test = adult_split
    model = Relabelled(FrozenEstimator(forest_pipeline)).fit(train[FEATURES], train[TARGET])

    result = explainability.run(
        check(["race"], 1, sampleSize=10, backgroundSize=10), inputs(model, test)
    )

    assert result.metrics["explainer"] == "PermutationExplainer"


def test_proxy_in_top_k_fails(categorical: Split) -> None:
    train, test = categorical
    model = lightgbm_on(train, FEATURES)

    result = explainability.run(check(PROXIES, 3), inputs(model, test))

    assert result.status is Status.FAIL
    (rule,) = result.rules
    assert not rule.passed
    assert rule.observed is not None and rule.observed <= 3
    assert "relationship (rank 1)" in result.summary
    assert "relationship is ranked 1" in rule.detail


def test_model_without_proxies_passes(categorical: Split) -> None:
    """Without relationship and marital status, sex alone stays out of the top 3."""
    train, test = categorical
    features = [f for f in FEATURES if f not in ("relationship", "marital_status")]
    model = lightgbm_on(train, features)

    result = explainability.run(check(["sex"], 3), inputs(model, test, features))

    assert result.status is Status.PASS
    assert result.rules[0].observed is not None and result.rules[0].observed > 3
    assert "No prohibited feature" in result.summary


def test_warning_severity_only_warns(categorical: Split) -> None:
    train, test = categorical
    spec = check(PROXIES, 3, severity="warning")
    result = explainability.run(spec, inputs(lightgbm_on(train, FEATURES), test))
    assert result.status is Status.WARN


def test_model_agnostic_path_equals_permutation_shap(adult_split: Split) -> None:
    """A logistic regression has no tree: the permutation explainer runs instead."""
    train, test = adult_split
    numeric = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
    model = Pipeline([("scale", StandardScaler()), ("logistic", LogisticRegression())])
    model.fit(train[numeric], train[TARGET])
    spec = check(["age"], 1, sampleSize=40, backgroundSize=20, seed=3)

    result = explainability.run(spec, inputs(model, test, numeric))

    sample = explainability.sample_rows(test[numeric], 40, seed=3)
    background = explainability.sample_rows(test[numeric], 20, seed=3)

    def predict(rows: np.ndarray) -> np.ndarray:
        return model.predict_proba(pd.DataFrame(rows, columns=numeric))[:, 1]

    masker = shap.maskers.Independent(background.to_numpy(float), max_samples=20)
    direct = shap.PermutationExplainer(predict, masker, seed=3)(
        sample.to_numpy(float), max_evals=2 * len(numeric) + 1, silent=True
    )
    expected = np.abs(direct.values).mean(axis=0)
    assert result.metrics["explainer"] == "PermutationExplainer"
    assert result.metrics["background_size"] == 20
    assert by_feature(result.metrics["ranking"]) == pytest.approx(
        dict(zip(numeric, expected, strict=True)), abs=1e-9
    )


def test_model_agnostic_path_copes_with_text_columns_and_missing_values(
    adult_split: Split,
) -> None:
    train, test = adult_split
    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore"), _objects(train))],
        remainder=StandardScaler(),
    )
    model = Pipeline([("encode", encode), ("logistic", LogisticRegression(max_iter=500))])
    model.fit(train[FEATURES], train[TARGET])
    assert test[FEATURES].isna().any().any()
    spec = check(PROXIES, 2, sampleSize=30, backgroundSize=20)

    first = explainability.run(spec, inputs(model, test))
    again = explainability.run(spec, inputs(model, test))

    assert first.metrics["explainer"] == "PermutationExplainer"
    assert sorted(by_feature(first.metrics["ranking"])) == sorted(FEATURES)
    assert first.metrics["ranking"] == again.metrics["ranking"]  # seeded: reproducible
    assert first.metrics["ranking"][0]["mean_abs_shap"] > 0


def test_prohibited_feature_the_model_does_not_use_passes(categorical: Split) -> None:
    train, test = categorical
    features = [f for f in FEATURES if f not in PROXIES]
    model = lightgbm_on(train, features)

    result = explainability.run(check(["sex", "relationship"], 3), inputs(model, test, features))
    (rule,) = result.rules
    assert rule.passed and rule.observed == "not used"
    assert rule.detail == "the model does not take sex, relationship as input"


def test_unknown_prohibited_feature_is_an_input_error(categorical: Split) -> None:
    train, test = categorical
    model = lightgbm_on(train, FEATURES)

    with pytest.raises(InputError, match="religion") as raised:
        explainability.run(check(["religion"], 3), inputs(model, test, FEATURES))
    assert "rules[0].prohibitedInTopK.features" in raised.value.subject
    assert raised.value.fix


def test_missing_model_is_an_input_error(adult_split: Split, forest_pipeline: Pipeline) -> None:
    _, test = adult_split
    no_model = replace(inputs(forest_pipeline, test), model=None)
    with pytest.raises(InputError, match="model"):
        explainability.run(check(["sex"], 3), no_model)


def test_shap_s_compiled_loops_are_kept_on_disk() -> None:
    """Each check job is a fresh process: without numba's cache it compiled these again."""
    from numba.core.caching import FunctionCache

    import governance.checks.explainability  # noqa: F401 - turns the cache on

    loops = [shap.maskers._tabular._delta_masking, shap.links.identity, shap.links.logit]
    assert all(isinstance(loop._cache, FunctionCache) for loop in loops)


def test_frame_sampling_draws_what_decisions_before_keys_drew(categorical: Split) -> None:
    """A replay of a decision recorded before the keys (its manifest names no `sampling`)
    draws the sample with DataFrame.sample, as that decision did, and needs one batch."""
    from dataclasses import replace

    from governance.checks import Checks, scope_and_batch
    from governance.domain.errors import InputError
    from governance.services.replay import _sampling

    train, test = categorical
    model = lightgbm_on(train, FEATURES)
    spec = check(["race"], 1, seed=7)
    scope, batch = scope_and_batch(inputs(model, test))
    checks = Checks([spec], replace(scope, sampling="frame"))
    result = checks.finalize(checks.partial(batch))[0]

    sample = test.sample(n=300, random_state=7)[FEATURES]
    direct = np.abs(shap.TreeExplainer(model)(sample).values).mean(axis=0)
    assert by_feature(result.metrics["ranking"]) == pytest.approx(
        dict(zip(FEATURES, direct, strict=True)), abs=1e-9
    )
    assert "sampling" not in result.metrics  # so that its replay draws the same way
    legacy = {"ranking": result.metrics["ranking"]}  # it ran, and names no sampling
    assert _sampling({"results": [{"type": "explainability", "metrics": legacy}]}) == "frame"
    errored: dict[str, object] = {"type": "explainability", "status": "error", "metrics": {}}
    assert _sampling({"results": [errored]}) == "keys"
    keyed = explainability.run(spec, inputs(model, test))
    assert _sampling({"results": [{"type": "explainability", "metrics": keyed.metrics}]}) == "keys"

    half = replace(batch, data=batch.data.iloc[:100], offset=100)
    with pytest.raises(InputError, match="one batch"):
        checks.partial(half)
