"""Mergeable summaries for statistics that are not counts.

A count merges by adding, so fairness, data quality and the label metrics stay exact on
any number of batches. Rank and distribution statistics (ROC AUC, the Wasserstein
distance) need every value; when the data is too big to keep every value, they are
computed from fixed bins instead, and each comes with an error bound computed from the
same bins, so a reader knows how far the figure can be from the exact one:

- ROC AUC from per-class score bins over [0, 1]. A pair of rows in different bins is
  ordered exactly; a pair in the same bin is counted as a tie (½), while its true share
  lies in [0, 1]. So |estimate − exact| ≤ ½ · Σ_b positives_b · negatives_b / (P · N).
- The Wasserstein distance from bins over the reference's finite range, plus the exact
  sums of how far current values lie outside that range. Within a bin both CDFs rise by at
  most their mass in it, so taking |F_ref − F_cur| at the bin's left edge errs by at most
  width_b · max(p_ref,b, p_cur,b) in that bin; the bound is their sum over the std.

Moments merge with Chan et al.'s parallel update, so a standard deviation over batches
equals numpy's up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORE_BINS = 1 << 18
VALUE_BINS = 1 << 14


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations of finite values."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        if values.size == 0:
            return cls()
        mean = float(np.mean(values))
        return cls(int(values.size), mean, float(np.sum((values - mean) ** 2)))

    def merge(self, other: Moments) -> Moments:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / count
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / count
        return Moments(count, mean, m2)

    @property
    def std(self) -> float:
        """Population standard deviation (ddof 0), as `np.std`."""
        return float(np.sqrt(self.m2 / self.count)) if self.count else float("nan")


@dataclass(frozen=True)
class ScoreBins:
    """Positive and negative counts of scores in [0, 1], in `SCORE_BINS` equal bins."""

    positives: np.ndarray
    negatives: np.ndarray

    @classmethod
    def of(cls, y_true: np.ndarray, y_score: np.ndarray) -> ScoreBins:
        index = np.minimum(
            (np.clip(y_score, 0.0, 1.0) * SCORE_BINS).astype(np.int64), SCORE_BINS - 1
        )
        truth = y_true.astype(bool)
        return cls(
            np.bincount(index[truth], minlength=SCORE_BINS),
            np.bincount(index[~truth], minlength=SCORE_BINS),
        )

    def merge(self, other: ScoreBins) -> ScoreBins:
        return ScoreBins(self.positives + other.positives, self.negatives + other.negatives)

    def roc_auc(self) -> tuple[float, float]:
        """The AUC and its error bound; NaN when a class is absent (sklearn refuses)."""
        total_pos, total_neg = float(self.positives.sum()), float(self.negatives.sum())
        if total_pos == 0 or total_neg == 0:
            return float("nan"), 0.0
        negatives_below = np.cumsum(self.negatives) - self.negatives
        pos, neg = self.positives.astype(np.float64), self.negatives.astype(np.float64)
        pairs = float(np.dot(pos, negatives_below)) + 0.5 * float(np.dot(pos, neg))
        tied = float(np.dot(pos, neg))
        denominator = total_pos * total_neg
        return pairs / denominator, 0.5 * tied / denominator


@dataclass(frozen=True)
class ValueBins:
    """Where finite values fall against fixed edges over [low, high], with the exact sums of
    how far values outside lie from the range."""

    low: float
    high: float
    counts: np.ndarray  # VALUE_BINS bins over [low, high]
    below: int = 0
    below_distance: float = 0.0  # Σ (low − x) over values under low
    above: int = 0
    above_distance: float = 0.0  # Σ (x − high) over values over high

    @classmethod
    def of(cls, values: np.ndarray, low: float, high: float) -> ValueBins:
        under, over = values < low, values > high
        inside = values[~(under | over)]
        if high > low:
            scale = VALUE_BINS / (high - low)
            index = np.minimum(((inside - low) * scale).astype(np.int64), VALUE_BINS - 1)
        else:
            index = np.zeros(inside.size, dtype=np.int64)
        return cls(
            low,
            high,
            np.bincount(index, minlength=VALUE_BINS),
            int(under.sum()),
            float(np.sum(low - values[under])),
            int(over.sum()),
            float(np.sum(values[over] - high)),
        )

    def merge(self, other: ValueBins) -> ValueBins:
        return ValueBins(
            self.low,
            self.high,
            self.counts + other.counts,
            self.below + other.below,
            self.below_distance + other.below_distance,
            self.above + other.above,
            self.above_distance + other.above_distance,
        )

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self.below + self.above


def wasserstein(reference: ValueBins, current: ValueBins) -> tuple[float, float]:
    """W1 between the two samples and its error bound, in the values' units. The reference
    lies inside [low, high] by construction (its bins were cut at its own min and max)."""
    n_ref, n_cur = reference.total, current.total
    tails = (current.below_distance + current.above_distance) / n_cur
    if reference.high <= reference.low:
        return tails, 0.0
    width = (reference.high - reference.low) / VALUE_BINS
    p_ref = reference.counts / n_ref
    p_cur = current.counts / n_cur
    # left-edge CDFs: mass strictly before each bin (current: its lower tail included)
    f_ref = np.cumsum(p_ref) - p_ref
    f_cur = current.below / n_cur + np.cumsum(p_cur) - p_cur
    inside = float(np.sum(np.abs(f_ref - f_cur))) * width
    bound = float(np.sum(np.maximum(p_ref, p_cur))) * width
    return inside + tails, bound
