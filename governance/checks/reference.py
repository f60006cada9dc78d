"""The reference (training) data, summarised once so that evaluation batches can be judged
against it without holding it: its columns' kinds, ranges, categories and moments.

A profile is itself a mergeable aggregation: one per batch of the reference, merged by
`merge_profiles`. When the data is small enough to keep (`exact`), the profile also keeps
every reference row, and the drift check computes its statistics on all of them exactly as
before; otherwise drift works from bins cut at the reference's own range (`sketches`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from pandas.api import types

from governance.checks.sketches import Moments, ValueBins

NUMERIC, CATEGORICAL, BOOL, DATETIME = "numeric", "categorical", "bool", "datetime"
DISTINCT_CAP = 11  # enough to tell ≤ 5 and ≤ 10 distinct values apart from more
INTEGER_CAP = 100_000  # an integer column's counts, kept for a few-valued evaluation column
SMALL_SAMPLE = 10_000  # values kept as they are, so small-sample tests stay exact


@dataclass(frozen=True)
class ColumnProfile:
    """What the checks need of one reference column."""

    name: str
    kind: str  # NUMERIC, CATEGORICAL, BOOL or DATETIME
    numeric: bool
    integer: bool
    rows: int
    low: float | None = None  # min and max with NaN skipped (±inf kept), as pandas takes them
    high: float | None = None
    categories: frozenset | None = None  # every non-null value of a non-numeric column
    finite: Moments = field(default_factory=Moments)
    finite_low: float | None = None
    finite_high: float | None = None
    counts: pd.Series | None = None  # value counts; None for a numeric column past the cap
    values: np.ndarray | None = None  # finite values while there are at most SMALL_SAMPLE
    bins: ValueBins | None = None  # filled by a second pass when drift is sketched

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        return replace(
            self,
            rows=self.rows + other.rows,
            low=_extreme(min, self.low, other.low),
            high=_extreme(max, self.high, other.high),
            categories=None
            if self.categories is None or other.categories is None
            else self.categories | other.categories,
            finite=self.finite.merge(other.finite),
            finite_low=_extreme(min, self.finite_low, other.finite_low),
            finite_high=_extreme(max, self.finite_high, other.finite_high),
            counts=merge_counts(
                self.counts, other.counts, cap=count_cap(self.numeric, self.integer)
            ),
            values=join_values(self.values, other.values, SMALL_SAMPLE),
            bins=None if self.bins is None or other.bins is None else self.bins.merge(other.bins),
        )


@dataclass(frozen=True)
class ReferenceProfile:
    rows: int
    columns: dict[str, ColumnProfile]
    frame: pd.DataFrame | None = None  # every row, when the data is small enough to keep

    @property
    def exact(self) -> bool:
        return self.frame is not None


def profile(frame: pd.DataFrame, exact: bool) -> ReferenceProfile:
    """One batch's profile."""
    columns = {str(name): column_profile(str(name), frame[name]) for name in frame.columns}
    return ReferenceProfile(len(frame), columns, frame if exact else None)


def merge_profiles(first: ReferenceProfile, second: ReferenceProfile) -> ReferenceProfile:
    frame = None
    if first.frame is not None and second.frame is not None:
        frame = pd.concat([first.frame, second.frame], ignore_index=True)
    columns = {
        name: column.merge(second.columns[name]) if name in second.columns else column
        for name, column in first.columns.items()
    }
    return ReferenceProfile(first.rows + second.rows, columns, frame)


def kind_of(values: pd.Series) -> str:
    """The kind of values a column holds; a change of kind breaks what a model learned."""
    dtype = values.dtype
    if types.is_bool_dtype(dtype):
        return BOOL
    if types.is_numeric_dtype(dtype):
        return NUMERIC
    if types.is_datetime64_any_dtype(dtype):
        return DATETIME
    return CATEGORICAL


def column_profile(name: str, values: pd.Series) -> ColumnProfile:
    kind = kind_of(values)
    numeric = kind == NUMERIC
    if not numeric:
        counts = values.value_counts(sort=False)
        counts = counts[counts > 0]
        return ColumnProfile(
            name, kind, False, False, len(values), categories=frozenset(counts.index), counts=counts
        )
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    present = array[~np.isnan(array)]
    finite = present[np.isfinite(present)]
    integer = bool(types.is_integer_dtype(values.dtype))
    return ColumnProfile(
        name,
        kind,
        True,
        integer,
        len(values),
        low=float(present.min()) if present.size else None,
        high=float(present.max()) if present.size else None,
        finite=Moments.of(finite),
        finite_low=float(finite.min()) if finite.size else None,
        finite_high=float(finite.max()) if finite.size else None,
        counts=capped_counts(finite, count_cap(True, integer)),
        values=finite if finite.size <= SMALL_SAMPLE else None,
    )


def with_bins(reference: ReferenceProfile, bins: dict[str, ValueBins]) -> ReferenceProfile:
    columns = dict(reference.columns)
    for name, column_bins in bins.items():
        columns[name] = replace(columns[name], bins=column_bins)
    return replace(reference, columns=columns)


def bin_batch(
    frame: pd.DataFrame, reference: ReferenceProfile, names: list[str]
) -> dict[str, ValueBins]:
    """A reference batch's values in the bins of its own finite range (the second pass)."""
    bins = {}
    for name in names:
        column = reference.columns[name]
        if column.finite_low is None or column.finite_high is None:
            continue
        array = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        bins[name] = ValueBins.of(array[np.isfinite(array)], column.finite_low, column.finite_high)
    return bins


def merge_bins(first: dict[str, ValueBins], second: dict[str, ValueBins]) -> dict[str, ValueBins]:
    return {
        name: bins.merge(second[name]) if name in second else bins for name, bins in first.items()
    }


def count_cap(numeric: bool, integer: bool) -> int | None:
    """How many distinct values a column's counts may hold: every category; for integers
    enough to compare with a few-valued evaluation column; for floats, enough to tell
    whether they are few."""
    if not numeric:
        return None
    return INTEGER_CAP if integer else DISTINCT_CAP


def capped_counts(finite: np.ndarray, cap: int | None) -> pd.Series | None:
    """Value counts of finite numbers, or None once there are more than `cap` values."""
    if cap is not None and pd.unique(finite[:10_000]).size > cap:
        return None
    counts = pd.Series(finite).value_counts(sort=False)
    return counts if cap is None or len(counts) <= cap else None


def merge_counts(
    first: pd.Series | None, second: pd.Series | None, cap: int | None
) -> pd.Series | None:
    if first is None or second is None:
        return None
    merged = first.add(second, fill_value=0).astype(np.int64)
    return None if cap is not None and len(merged) > cap else merged


def join_values(first: np.ndarray | None, second: np.ndarray | None, cap: int) -> np.ndarray | None:
    if first is None or second is None or first.size + second.size > cap:
        return None
    return np.concatenate((first, second))


def _extreme(
    pick: Callable[[float, float], float], first: float | None, second: float | None
) -> float | None:
    if first is None:
        return second
    if second is None:
        return first
    return pick(first, second)
