"""Explainability: which input features drive the model, and are prohibited ones among them?

Features are ranked by mean |SHAP| over a seeded sample. Tree models get exact, fast
path-dependent Tree SHAP; anything else a model-agnostic permutation explainer. A decision
threshold around a model (scikit-learn's threshold classifiers, a frozen estimator) serves
that model's score cut at a point, so the score is what gets explained: a tree model keeps
Tree SHAP when it is thresholded. A one-hot
encoded feature is one feature to a model-risk officer, so its columns' SHAP values are
summed per row before taking |·| — the sum is that feature's additive attribution.
SHAP values are in the explained model's output units: log-odds for boosted trees,
probability for forests and for the model-agnostic path.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap
from numba.core.caching import NullCache
from numba.core.dispatcher import Dispatcher
from pandas.api.types import is_numeric_dtype, union_categoricals
from shap.utils._exceptions import InvalidModelError  # shap exports it nowhere public
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from governance.checks import (
    Batch,
    CheckInputs,
    Exactness,
    Scope,
    library_versions,
    rule_severity,
    run_check,
)
from governance.domain.errors import InputError
from governance.domain.judging import judge_prohibited
from governance.domain.judging import offenders as _offenders
from governance.domain.policy import ExplainabilityCheck, ProhibitedInTopKRule
from governance.domain.results import CheckResult, status_of


def _keep_compiled_loops() -> None:
    """Have numba keep the machine code of shap's compiled loops on disk, and load it next
    time, instead of compiling them again in every process: a check job is a fresh
    interpreter, and compiling cost it about 7 s of 12 (bench/RESULTS.md). shap declares
    its loops without numba's `cache=True`; this turns numba's own cache on for each of
    them. The loaded code is the code the compiler made, so the figures are the same to
    the last bit. Where the code lives is numba's choice (`NUMBA_CACHE_DIR` when set, as
    the server sets it for its check processes); where no place is writable, numba
    compiles as before."""
    for name, module in list(sys.modules.items()):
        if name != "shap" and not name.startswith("shap."):
            continue
        for value in list(vars(module).values()):
            uncached = isinstance(getattr(value, "_cache", None), NullCache)
            if isinstance(value, Dispatcher) and uncached:
                with contextlib.suppress(RuntimeError):  # numba found no writable place
                    value.enable_caching()


_keep_compiled_loops()


def compiled_loops() -> int:
    """How many machine-code versions of shap's loops this process holds: it grows when a
    run had to compile them or load them from the cache (`services/isolation.py` tells its
    zygote to make them when a job did)."""
    return sum(
        len(value.overloads)
        for name, module in list(sys.modules.items())
        if name == "shap" or name.startswith("shap.")
        for value in list(vars(module).values())
        if isinstance(value, Dispatcher)
    )


def run(spec: ExplainabilityCheck, inputs: CheckInputs) -> CheckResult:
    """All rows in memory: one batch."""
    return run_check(spec, inputs)


def sample_keys(seed: int, offset: int, rows: int) -> np.ndarray:
    """A uniform random key for each row, from a counter-based generator (Philox) keyed by
    the seed: row i's key depends only on the seed and i, so the rows with the smallest
    keys are the same sample however the data is split into batches or partitions."""
    generator = np.random.Philox(key=seed)
    generator.advance(offset // 4)  # Philox makes four 64-bit values per counter step
    skip = offset % 4
    return generator.random_raw(skip + rows)[skip:]


def sample_rows(frame: pd.DataFrame, size: int, seed: int, offset: int = 0) -> pd.DataFrame:
    """The `size` rows of `frame` with the smallest keys, in key order."""
    keys = sample_keys(seed, offset, len(frame))
    order = np.argsort(keys, kind="stable")[:size]
    return frame.iloc[order]


@dataclass(frozen=True)
class _Sample:
    keys: np.ndarray
    rows: pd.DataFrame  # the features of the rows with the smallest keys, in key order
    seen: int  # rows read
    background: pd.DataFrame | None = None  # drawn on its own ("frame" sampling)


class Aggregate:
    """A uniform, seeded sample kept across batches; SHAP runs on it at the end."""

    def __init__(self, spec: ExplainabilityCheck, scope: Scope) -> None:
        _check_inputs(spec, scope)
        self.spec, self.scope = spec, scope
        self.size = max(spec.sample_size, spec.background_size)

    def partial(self, batch: Batch) -> _Sample:
        if self.scope.sampling == "frame":
            return self._frame_sample(batch)
        keys = sample_keys(self.spec.seed, batch.offset, len(batch.data))
        order = np.argsort(keys, kind="stable")[: self.size]
        rows = batch.data.iloc[order][self.scope.features]
        return _Sample(keys[order], rows, len(batch.data))

    def _frame_sample(self, batch: Batch) -> _Sample:
        """`DataFrame.sample`, as decisions recorded before the keys drew it: every row in
        one batch, or it is not the same sample."""
        if batch.offset != 0 or len(batch.data) != self.scope.rows:
            raise InputError(
                f"check '{self.spec.id}'",
                "its decision drew the sample with DataFrame.sample, which needs every row "
                "in one batch",
                "replay it in memory",
            )
        spec, frame = self.spec, batch.data[self.scope.features]
        rows = batch.data.sample(n=min(spec.sample_size, len(frame)), random_state=spec.seed)
        background = frame.sample(n=min(spec.background_size, len(frame)), random_state=spec.seed)
        return _Sample(np.empty(0, np.uint64), rows[self.scope.features], len(frame), background)

    def merge(self, first: _Sample, second: _Sample) -> _Sample:
        keys = np.concatenate((first.keys, second.keys))
        order = np.argsort(keys, kind="stable")[: self.size]
        rows = _concat(first.rows, second.rows).iloc[order]
        return _Sample(keys[order], rows, first.seen + second.seen)

    def finalize(self, state: _Sample) -> CheckResult:
        spec, scope = self.spec, self.scope
        if state.seen == 0:
            raise InputError("data", "has no rows to explain", "evaluate on a non-empty data set")
        sample = state.rows.iloc[: spec.sample_size]
        background = (
            state.background
            if state.background is not None
            else state.rows.iloc[: spec.background_size]
        )
        explainer, values = _tree_shap(scope.model, sample) or _agnostic_shap(
            spec, scope, sample, background
        )
        ranking = _ranking(scope.features, np.abs(values).mean(axis=0))
        ranks = {entry["feature"]: entry["rank"] for entry in ranking}
        outcomes = [judge_prohibited(rule, ranks, rule_severity(rule, spec)) for rule in spec.rules]
        return CheckResult(
            id=spec.id,
            type=spec.type,
            status=status_of(outcomes),
            summary=_summary(spec.rules, ranks, ranking[0]["feature"], len(sample)),
            rules=outcomes,
            metrics={
                "explainer": explainer,
                "sample_size": len(sample),
                "seed": spec.seed,
                **(
                    {"sampling": "the rows with the smallest Philox keys (seeded, uniform)"}
                    if scope.sampling == "keys"
                    else {}
                ),
                "background_size": None if explainer == "TreeExplainer" else spec.background_size,
                "ranking": ranking,
                "statistics": [
                    Exactness(
                        f"mean |SHAP| over a seeded uniform sample of {len(sample):,} of "
                        f"{state.seen:,} rows",
                        "sample",
                    ).as_json()
                ],
            },
            library_versions=library_versions("shap", "scikit-learn"),
        )


def _concat(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """The rows of both, a categorical column staying categorical: batches read apart
    may carry different categories, which `pd.concat` would turn into plain objects, and
    a model trained on categories would then refuse the sample."""
    joined = pd.concat([first, second])
    for name in first.columns:
        both = (first[name].dtype, second[name].dtype)
        if all(isinstance(dtype, pd.CategoricalDtype) for dtype in both) and not isinstance(
            joined[name].dtype, pd.CategoricalDtype
        ):
            values = union_categoricals([first[name], second[name]])
            joined[name] = pd.Categorical(values, categories=values.categories)
    return joined


def _check_inputs(spec: ExplainabilityCheck, scope: Scope) -> None:
    """Fail before the expensive part: a typo in the policy must not cost a SHAP run."""
    if scope.model is None:
        raise InputError("model", "the explainability check needs the fitted model", "pass it")
    missing = [name for name in scope.features if name not in scope.columns]
    if missing:
        raise InputError(
            "data", f"lacks the model's features {missing}", "evaluate on data with every feature"
        )
    if scope.rows == 0:
        raise InputError("data", "has no rows to explain", "evaluate on a non-empty data set")
    for index, rule in enumerate(spec.rules):
        # A prohibited feature the model does not take as input has no influence: that
        # passes. One that is not even in the data is a typo in the policy.
        unknown = [
            f
            for f in rule.prohibited_in_top_k.features
            if f not in scope.features and f not in scope.columns
        ]
        if unknown:
            raise InputError(
                f"check '{spec.id}', rules[{index}].prohibitedInTopK.features",
                f"{unknown} are neither model features {scope.features} nor data columns",
                "check the spelling against the data's columns",
            )


def _tree_shap(model: Any, sample: pd.DataFrame) -> tuple[str, np.ndarray] | None:
    """Tree SHAP on the model, or on a pipeline's last step mapped back to its inputs;
    None when shap has no tree algorithm for the model."""
    model = _scorer(model)
    if isinstance(model, Pipeline):
        explainer = _tree_explainer(_scorer(model[-1]))
        if explainer is None:
            return None
        transformed = model[:-1].transform(sample)
        if hasattr(transformed, "toarray"):  # one-hot output is often sparse
            transformed = transformed.toarray()
        values = _positive_class(explainer(transformed).values)
        sources = _sources(model[:-1], list(sample.columns))
        return "TreeExplainer", _sum_by_source(values, sources, list(sample.columns))
    explainer = _tree_explainer(model)
    if explainer is None:
        return None
    return "TreeExplainer", _positive_class(explainer(sample).values)


def _scorer(model: Any) -> Any:
    """The model whose score a threshold wrapper cuts: its `predict` is that score against
    a threshold, a monotone step, so the features that drive the score drive the decision.
    Exact types only: a subclass may predict something else."""
    while True:
        if type(model) in (FixedThresholdClassifier, TunedThresholdClassifierCV):
            model = getattr(model, "estimator_", model.estimator)  # as their predict() does
        elif type(model) is FrozenEstimator:
            model = model.estimator
        else:
            return model


def _tree_explainer(model: Any) -> shap.TreeExplainer | None:
    try:
        return shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    except InvalidModelError:
        return None


def _positive_class(values: np.ndarray) -> np.ndarray:
    """sklearn classifiers explain both classes (rows, features, 2); boosters and
    regressors give one output (rows, features). Labels are 0/1, so column 1 is positive."""
    return values[..., 1] if values.ndim == 3 else values


def _sources(step: Any, columns: list[str]) -> list[str]:
    """For each column `step` outputs, the input column it was computed from."""
    if isinstance(step, Pipeline):
        sources, names = columns, columns
        for _, inner in step.steps:
            origin = dict(zip(names, sources, strict=True))
            sources = [origin[name] for name in _sources(inner, names)]
            names = list(inner.get_feature_names_out(names))
        return sources
    if isinstance(step, ColumnTransformer):
        sources = []
        for _, inner, selection in step.transformers_:
            used = _selected(selection, columns)
            if inner != "drop" and used:
                sources += _sources(inner, used)
        return sources
    outputs = list(step.get_feature_names_out(columns))
    if len(outputs) == len(columns):  # passthrough, scalers, imputers, ordinal encoders
        return columns
    return [_source_of(output, columns) for output in outputs]


def _selected(selection: Any, columns: list[str]) -> list[str]:
    """A fitted ColumnTransformer keeps each selection as given: names or positions."""
    if isinstance(selection, str):
        return [selection]
    if isinstance(selection, slice) or not all(isinstance(item, str) for item in selection):
        return list(np.asarray(columns)[selection])
    return list(selection)


def _source_of(output: str, columns: list[str]) -> str:
    """OneHotEncoder names its outputs `<column>_<category>`: the longest matching column
    wins, so `education_num_…` is not taken for `education`."""
    matches = [c for c in columns if output == c or output.startswith(f"{c}_")]
    if not matches:
        raise InputError(
            "model",
            f"cannot tell which input feature its transformed column {output!r} comes from",
            "use transformers whose output names start with the input column's name "
            "(OneHotEncoder, scalers, passthrough), or explain a model on the raw features",
        )
    return max(matches, key=len)


def _sum_by_source(values: np.ndarray, sources: list[str], features: list[str]) -> np.ndarray:
    """Sum the transformed columns' SHAP values per input feature, row by row."""
    membership = np.zeros((len(sources), len(features)))
    for column, source in enumerate(sources):
        membership[column, features.index(source)] = 1.0
    return values @ membership


def _agnostic_shap(
    spec: ExplainabilityCheck, scope: Scope, sample: pd.DataFrame, background: pd.DataFrame
) -> tuple[str, np.ndarray]:
    """Permutation SHAP over P(positive) (or the prediction), masking with an independent
    background. One forward-and-reverse permutation per row (2·features + 1 evaluations):
    exact for models with at most pairwise interactions, and ~20× cheaper than shap's
    default of 500 evaluations; the ranking averages over the whole sample anyway."""
    codec = _Codec(pd.concat([sample, background]))
    model: Any = scope.model
    if scope.task == "classification" and hasattr(model, "predict_proba"):

        def predict(rows: np.ndarray) -> np.ndarray:
            return model.predict_proba(codec.decode(rows))[:, 1]
    else:

        def predict(rows: np.ndarray) -> np.ndarray:
            return np.asarray(model.predict(codec.decode(rows)), dtype=float)

    masker = shap.maskers.Independent(codec.encode(background), max_samples=len(background))
    explainer = shap.PermutationExplainer(predict, masker, seed=spec.seed)
    max_evals = 2 * len(scope.features) + 1
    # One row per call: shap 0.51's Explainer.__call__ shadows its `main_effects` flag with
    # a list, so from the second row of a batch on it also computes unused main effects —
    # 3-4× slower, with identical SHAP values.
    # One OpenMP thread: each call predicts a few thousand rows, where the threads' start
    # and barriers cost more than they save, and on a busy machine their spin-waiting made
    # the check 8-35× slower (bench/RESULTS.md, "SHAP and OpenMP"). Same values.
    with threadpool_limits(limits=1, user_api="openmp"):
        rows = [
            explainer(row[np.newaxis], max_evals=max_evals, silent=True).values
            for row in codec.encode(sample)
        ]
    return "PermutationExplainer", np.vstack(rows)


class _Codec:
    """shap's maskers compare values numerically, so non-numeric columns travel to shap
    as category codes and are decoded back to the original dtypes before each predict."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.dtypes = frame.dtypes
        self.levels = {
            column: pd.factorize(frame[column], use_na_sentinel=False)[1]
            for column in frame.columns
            if not is_numeric_dtype(frame[column])
        }

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        columns = [
            self.levels[name].get_indexer(frame[name]) if name in self.levels else frame[name]
            for name in self.dtypes.index
        ]
        return np.column_stack(columns).astype(float)

    def decode(self, rows: np.ndarray) -> pd.DataFrame:
        columns = {}
        for i, (name, dtype) in enumerate(self.dtypes.items()):
            values = rows[:, i]
            if name in self.levels:
                values = np.asarray(self.levels[name], dtype=object)[values.astype(int)]
            columns[name] = pd.Series(values).astype(dtype)
        return pd.DataFrame(columns)


def _ranking(features: list[str], mean_abs: np.ndarray) -> list[dict[str, Any]]:
    """Most influential first; ties broken by name so the ranking is deterministic."""
    order = sorted(zip(features, mean_abs, strict=True), key=lambda item: (-item[1], item[0]))
    return [
        {"feature": feature, "mean_abs_shap": float(value), "rank": rank}
        for rank, (feature, value) in enumerate(order, start=1)
    ]


def _summary(rules: list[ProhibitedInTopKRule], ranks: dict[str, int], top: str, rows: int) -> str:
    offenders = sorted(
        {f for rule in rules for f in _offenders(rule, ranks)}, key=ranks.__getitem__
    )
    basis = f"by mean |SHAP| over {rows:,} rows"
    if offenders:
        listed = ", ".join(f"{f} (rank {ranks[f]})" for f in offenders)
        return (
            f"Prohibited features are among the model's most influential {basis}: {listed}; "
            f"the most influential is {top}."
        )
    return (
        f"No prohibited feature is among the model's most influential {basis}; "
        f"the most influential is {top}."
    )
