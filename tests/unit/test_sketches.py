"""The mergeable summaries: each sketched figure lies within its stated bound of the exact
one (scipy's and scikit-learn's own), and merging batches gives what one batch gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from governance.checks.drift import _Side, _sketched_ks
from governance.checks.reference import column_profile
from governance.checks.sketches import Moments, ScoreBins, ValueBins, wasserstein


def _split(values: np.ndarray, parts: int, rng: np.random.Generator) -> list[np.ndarray]:
    cuts = np.sort(rng.choice(np.arange(1, values.size), size=parts - 1, replace=False))
    return np.split(values, cuts)


@pytest.mark.parametrize("seed", range(5))
def test_moments_merged_over_batches_equal_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(3, 2, size=50_000)
    merged = Moments()
    for part in _split(values, 7, rng):
        merged = merged.merge(Moments.of(part))
    assert merged.count == values.size
    assert merged.std == pytest.approx(np.std(values), rel=1e-12)


@pytest.mark.parametrize(
    "scores",
    [
        lambda rng, n: rng.random(n),  # spread out
        lambda rng, n: np.round(rng.random(n), 2),  # many ties, as a coarse model gives
        lambda rng, n: 0.5 + rng.normal(0, 1e-6, n),  # crowded into a few bins
    ],
)
def test_binned_roc_auc_is_within_its_bound_of_sklearn(scores) -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    y_true = rng.random(n) < 0.3
    y_score = np.clip(scores(rng, n) + 0.05 * y_true, 0, 1)
    bins = ScoreBins.of(y_true[:1000], y_score[:1000])
    for start in range(1000, n, 37_000):
        bins = bins.merge(
            ScoreBins.of(y_true[start : start + 37_000], y_score[start : start + 37_000])
        )
    auc, bound = bins.roc_auc()
    exact = roc_auc_score(y_true, y_score)
    assert abs(auc - exact) <= bound + 1e-12
    assert bound < 0.5  # says something


def test_binned_roc_auc_is_exact_when_scores_are_bin_aligned() -> None:
    """Pairs tied in a bin are tied scores here, which is what the exact AUC counts ½ for."""
    rng = np.random.default_rng(4)
    y_true = rng.random(10_000) < 0.5
    y_score = rng.integers(0, 100, 10_000) / 100
    auc, _ = ScoreBins.of(y_true, y_score).roc_auc()
    assert auc == pytest.approx(roc_auc_score(y_true, y_score), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_binned_wasserstein_is_within_its_bound_of_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.normal(0, 1, 120_000)
    reference[:50] = rng.normal(0, 40, 50)  # outliers stretch the bins
    current = np.concatenate((rng.normal(0.2, 1.3, 90_000), rng.normal(0, 80, 30)))
    low, high = float(reference.min()), float(reference.max())
    ref_bins = [ValueBins.of(part, low, high) for part in _split(reference, 5, rng)]
    cur_bins = [ValueBins.of(part, low, high) for part in _split(current, 4, rng)]
    merged_ref, merged_cur = ref_bins[0], cur_bins[0]
    for part in ref_bins[1:]:
        merged_ref = merged_ref.merge(part)
    for part in cur_bins[1:]:
        merged_cur = merged_cur.merge(part)
    distance, bound = wasserstein(merged_ref, merged_cur)
    exact = stats.wasserstein_distance(reference, current)
    assert abs(distance - exact) <= bound + 1e-9
    assert bound < 0.05 * exact + 0.01


def test_wasserstein_of_a_constant_reference_is_exact() -> None:
    reference = np.full(5000, 3.0)
    current = np.array([1.0, 3.0, 3.0, 7.5])
    distance, bound = wasserstein(
        ValueBins.of(reference, 3.0, 3.0), ValueBins.of(current, 3.0, 3.0)
    )
    assert bound == 0
    assert distance == pytest.approx(stats.wasserstein_distance(reference, current), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_ks_from_counts_equals_scipy_on_every_value(ties: bool) -> None:
    """A small reference against a big current sample: the statistic from counts at the
    reference values is scipy's, and so is the (asymptotic) p-value."""
    rng = np.random.default_rng(5)
    reference = rng.normal(0, 1, 800)
    current = rng.normal(0.05, 1, 60_000)
    if ties:
        reference, current = np.round(reference, 1), np.round(current, 1)
    profile = column_profile("x", pd.Series(reference))
    sides = []
    for part in np.array_split(current, 6):
        ordered = np.sort(part)
        sides.append(
            _Side(
                integer=False,
                numeric=True,
                finite=part.size,
                at_most=np.searchsorted(ordered, profile.values, side="right"),
                below=np.searchsorted(ordered, profile.values, side="left"),
            )
        )
    merged = sides[0]
    for side in sides[1:]:
        merged = merged.merge(side)
    assert merged.values is None  # the current values were not kept
    assert _sketched_ks(profile, merged) == pytest.approx(
        stats.ks_2samp(reference, current).pvalue, rel=1e-9, abs=1e-15
    )


def test_a_sketched_auc_is_judged_at_its_bounds_worse_end() -> None:
    """Scores crowded into one bin: the sketch cannot order them, so a floor the exact
    AUC meets fails when sketched, with the reason in the rule's detail."""
    from governance.checks import Batch, Checks, Scope
    from governance.domain.policy import PerformanceCheck

    rng = np.random.default_rng(8)
    y_true = (rng.random(5000) < 0.5).astype(np.int64)
    y_score = 0.5 + 1e-9 * (y_true + rng.random(5000))  # well ordered, all in one bin
    spec = PerformanceCheck.model_validate(
        {"id": "perf", "type": "performance", "rules": [{"metric": "roc_auc", "min": 0.45}]}
    )
    batch = Batch(data=pd.DataFrame({"x": y_score}), y_true=y_true, y_pred=y_true, y_score=y_score)
    results = {}
    for exact in (True, False):
        scope = Scope(["x"], ["x"], "y", "classification", 5000, scores=True, exact=exact)
        checks = Checks([spec], scope)
        results[exact] = checks.finalize(checks.partial(batch))[0]
    assert results[True].rules[0].passed and results[True].metrics["roc_auc"] > 0.9
    sketched = results[False].rules[0]
    assert not sketched.passed and "worse end" in (sketched.detail or "")
