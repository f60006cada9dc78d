"""Data drift: does the evaluation data still look like the training (reference) data?

Each column gets exactly the test evidently 0.7.23's `DataDriftPreset` picks by default, with
its thresholds and NaN handling, so a drift verdict here is the one evidently would give. The
statistics are computed directly rather than through evidently: its per-column orchestration
(correlations, plots, histograms) takes about a minute on 500k rows, the statistics well under
a second. `tests/test_check_drift.py` holds the two to 1e-9 of each other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from pandas.api import types
from scipy import stats
from scipy.spatial import distance

from governance.checks import (
    Batch,
    CheckInputs,
    Exactness,
    Scope,
    library_versions,
    rule_severity,
    run_check,
)
from governance.checks.reference import (
    SMALL_SAMPLE,
    ColumnProfile,
    capped_counts,
    count_cap,
    join_values,
    merge_counts,
)
from governance.checks.sketches import ValueBins, wasserstein
from governance.domain.errors import InputError
from governance.domain.judging import ColumnDrift, judge_drift
from governance.domain.policy import DriftCheck, DriftShareRule, NoDriftInRule
from governance.domain.results import CheckResult, RuleOutcome, status_of

NUMERICAL, CATEGORICAL = "numerical", "categorical"
SMALL_REFERENCE = 1000  # up to this many reference values evidently uses p-value tests
INTEGER_CARDINALITY_LIMIT = 10  # evidently treats integers with at most 10 values as categories
FEW_VALUES = 5  # evidently tests numbers with at most 5 distinct values like categories
PREFIX = 10_000  # values hashed before counting distinct values over a whole column
NORM_FLOOR = 0.001  # evidently's floor on the reference std that scales the Wasserstein distance

# evidently's default thresholds; distances drift at or above them, p-values below them
THRESHOLDS = {"wasserstein": 0.1, "jensenshannon": 0.1, "ks": 0.05, "chisquare": 0.05, "z": 0.05}


def run(spec: DriftCheck, inputs: CheckInputs) -> CheckResult:
    """All rows in memory: one batch."""
    return run_check(spec, inputs)


@dataclass(frozen=True)
class _Side:
    """One current column over the rows so far, when not every value is kept."""

    integer: bool
    numeric: bool
    finite: int = 0
    counts: pd.Series | None = None  # value counts (numbers: finite ones, while few)
    values: np.ndarray | None = None  # finite values while few enough for exact small tests
    bins: ValueBins | None = None  # in the reference's bins
    at_most: np.ndarray | None = None  # per reference value r: how many values are ≤ r
    below: np.ndarray | None = None  # … and how many are < r

    def merge(self, other: _Side) -> _Side:
        return _Side(
            self.integer,
            self.numeric,
            self.finite + other.finite,
            merge_counts(self.counts, other.counts, count_cap(self.numeric, self.integer)),
            join_values(self.values, other.values, SMALL_SAMPLE),
            None if self.bins is None or other.bins is None else self.bins.merge(other.bins),
            None if self.at_most is None or other.at_most is None else self.at_most + other.at_most,
            None if self.below is None or other.below is None else self.below + other.below,
        )


@dataclass(frozen=True)
class _State:
    columns: list[str]
    frames: list[pd.DataFrame] = field(default_factory=list)  # exact: the batches' columns
    sides: dict[str, _Side] = field(default_factory=dict)  # sketched: a summary per column


class Aggregate:
    """Each column's test as evidently picks it. While the data is kept (`exact`) the
    statistics are computed on every value as before; otherwise from counts (exact) and,
    for the Wasserstein distance, from bins with a bound."""

    def __init__(self, spec: DriftCheck, scope: Scope) -> None:
        if scope.reference is None:
            raise InputError(
                f"drift check '{spec.id}'",
                "needs reference data to compare the evaluation data with, and none was given",
                "pass `--reference FILE`, the training data",
            )
        self.spec, self.scope, self.reference = spec, scope, scope.reference

    def partial(self, batch: Batch) -> _State:
        data, spec = batch.data, self.spec
        # like evidently's preset, test every feature that holds numbers or categories
        columns = spec.columns or [
            c for c in self.scope.features if c in data.columns and _testable(data[c])
        ]
        _require_columns(columns, spec, self.scope.columns, list(self.reference.columns))
        if self.reference.frame is not None:
            return _State(columns, frames=[data[columns]])
        return _State(columns, sides={c: self._side(data[c]) for c in columns if c in data})

    def _side(self, values: pd.Series) -> _Side:
        dtype = values.dtype
        numeric = bool(types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype))
        integer = bool(types.is_integer_dtype(dtype))
        if not numeric:
            counts = values.value_counts(sort=False)
            return _Side(integer, False, counts=counts[counts > 0])
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = array[np.isfinite(array)]
        reference = self.reference.columns.get(str(values.name))
        bins = at_most = below = None
        if reference is not None and reference.finite_low is not None:
            assert reference.finite_high is not None
            bins = ValueBins.of(finite, reference.finite_low, reference.finite_high)
        if reference is not None and reference.values is not None:
            ordered = np.sort(finite)
            at_most = np.searchsorted(ordered, reference.values, side="right")
            below = np.searchsorted(ordered, reference.values, side="left")
        return _Side(
            integer,
            True,
            int(finite.size),
            capped_counts(finite, count_cap(True, integer)),
            finite if finite.size <= SMALL_SAMPLE else None,
            bins,
            at_most,
            below,
        )

    def merge(self, first: _State, second: _State) -> _State:
        if first.columns != second.columns:
            raise InputError(
                "evaluation data",
                "its parts have different columns",
                "give every file of the data set the same columns",
            )
        return _State(
            first.columns,
            first.frames + second.frames,
            {name: side.merge(second.sides[name]) for name, side in first.sides.items()},
        )

    def finalize(self, state: _State) -> CheckResult:
        spec, columns = self.spec, state.columns
        reference = self.reference
        if reference.frame is not None:
            current = (
                pd.concat(state.frames, ignore_index=True)
                if len(state.frames) > 1
                else state.frames[0]
            )
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # numpy frees the GIL
                drifts = list(
                    pool.map(
                        _column_drift,
                        columns,
                        [reference.frame[column] for column in columns],
                        [current[column] for column in columns],
                    )
                )
            current_rows = len(current)
        else:
            drifts = [
                _sketched_drift(column, reference.columns[column], state.sides[column])
                for column in columns
            ]
            current_rows = self.scope.rows

        drifted = [drift.column for drift in drifts if drift.drifted]
        share = len(drifted) / len(drifts)
        rules = [_judge(rule, spec, drifts, share) for rule in spec.rules]
        sketched = [drift for drift in drifts if drift.sketched]
        statistics = [Exactness("drift statistics on counts or every value", "exact")]
        if sketched:
            statistics.append(
                Exactness(
                    "wasserstein distance (normed) of "
                    + ", ".join(drift.column for drift in sketched),
                    "sketch",
                    max(drift.bound for drift in sketched),
                )
            )
        return CheckResult(
            id=spec.id,
            type=spec.type,
            status=status_of(rules),
            summary=_summary(spec, drifts, drifted, share),
            rules=rules,
            metrics={
                "drift_share": share,
                "drifted_columns": drifted,
                "tested_columns": len(drifts),
                "untested_columns": [c for c in self.scope.features if c not in columns],
                "reference_rows": reference.rows,
                "current_rows": current_rows,
                "columns": [asdict(drift) for drift in drifts],
                "statistics": [statistic.as_json() for statistic in statistics],
            },
            library_versions=library_versions("evidently", "scipy", "numpy", "pandas"),
        )


def _testable(values: pd.Series) -> bool:
    """Whether drift is tested on the column by default: numbers and categories."""
    dtype = values.dtype
    return bool(
        types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or types.is_numeric_dtype(dtype)
        or types.is_string_dtype(dtype)
    )


def _sketched_drift(column: str, reference: ColumnProfile, current: _Side) -> ColumnDrift:
    """`_column_drift` from summaries: the same choice of test, on counts where the test
    takes counts, on kept values where they are few, and on bins for the Wasserstein
    distance."""
    if current.numeric and not current.integer:
        kind = NUMERICAL
    elif current.integer:
        many = current.counts is None or len(current.counts) > INTEGER_CARDINALITY_LIMIT
        kind = NUMERICAL if many else CATEGORICAL
    else:
        kind = CATEGORICAL
    if kind == NUMERICAL:
        if not reference.numeric:
            raise InputError(
                f"column {column!r}",
                f"is numeric in the evaluation data but {reference.kind} in the reference",
                "give both data sets the same column types",
            )
        _require_values(column, reference.finite.count, current.finite)
        few = (
            reference.counts is not None
            and current.counts is not None
            and len(reference.counts.index.union(current.counts.index)) <= FEW_VALUES
        )
        if not few:
            if reference.finite.count > SMALL_REFERENCE:
                return _sketched_wasserstein(column, reference, current)
            return _verdict(column, kind, "ks", _sketched_ks(reference, current))
        assert reference.counts is not None and current.counts is not None
        counts = _count_table(reference.counts, current.counts)
    else:
        if reference.counts is None or current.counts is None:
            raise InputError(
                f"column {column!r}",
                "has too many distinct values in the reference to test it as categories "
                "without keeping every row",
                "judge it with every row kept (raise GOVERNANCE_EXACT_ROWS) or leave it "
                "out of the drift check's `columns`",
            )
        counts = _count_table(reference.counts, current.counts)
        _require_values(column, int(counts["reference"].sum()), int(counts["current"].sum()))
    return _count_test(column, kind, counts)


def _count_table(reference: pd.Series, current: pd.Series) -> pd.DataFrame:
    counts = pd.concat({"reference": reference, "current": current}, axis=1).fillna(0)
    return counts[counts.sum(axis=1) > 0]


def _sketched_wasserstein(column: str, reference: ColumnProfile, current: _Side) -> ColumnDrift:
    if reference.values is not None and current.values is not None:
        statistic = _wasserstein_normed(reference.values, current.values)
        return _verdict(column, NUMERICAL, "wasserstein", statistic)
    assert reference.bins is not None and current.bins is not None
    distance, bound = wasserstein(reference.bins, current.bins)
    norm = max(reference.finite.std, NORM_FLOOR)
    drift = _verdict(column, NUMERICAL, "wasserstein", distance / norm)
    # judged at the bound's worse end: a sketch never lets drift pass that might be there
    drifted = drift.drifted or distance / norm + bound / norm >= drift.threshold
    return replace(drift, drifted=drifted, sketched=True, bound=bound / norm)


def _sketched_ks(reference: ColumnProfile, current: _Side) -> float:
    """The two-sample KS p-value: on every value when the current ones are few; otherwise
    the statistic from counts of current values at each reference value (exact: the
    largest CDF gap lies at a reference value or just before one), with the p-value by
    Smirnov's asymptotic formula, which scipy's `ks_2samp` uses at these sizes."""
    assert reference.values is not None
    if current.values is not None:
        return _ks(reference.values, current.values)
    assert current.at_most is not None and current.below is not None
    order = np.argsort(reference.values, kind="stable")
    ordered = reference.values[order]
    n1, n2 = ordered.size, current.finite
    cdf_reference = np.searchsorted(ordered, ordered, side="right") / n1
    before = np.searchsorted(ordered, ordered, side="left") / n1  # just below each value
    gaps = np.concatenate(
        (
            np.abs(cdf_reference - current.at_most[order] / n2),
            np.abs(before - current.below[order] / n2),
        )
    )
    statistic = float(gaps.max())
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))


def _column_drift(column: str, reference: pd.Series, current: pd.Series) -> ColumnDrift:
    """evidently's default test for one column (`registry._get_default_stattest`), NaN and
    ±inf dropped first as `get_one_column_drift` does."""
    kind = _column_kind(current)
    if kind is None:
        raise InputError(
            f"column {column!r}",
            f"has type {current.dtype}, which drift cannot be tested on",
            "leave it out of the drift check's `columns`",
        )
    if kind == NUMERICAL:
        if not types.is_numeric_dtype(reference.dtype):
            raise InputError(
                f"column {column!r}",
                f"is numeric in the evaluation data but {reference.dtype} in the reference",
                "give both data sets the same column types",
            )
        ref, cur = _finite(reference), _finite(current)
        _require_values(column, len(ref), len(cur))
        if _more_distinct_than(FEW_VALUES, ref, cur):
            name = "wasserstein" if len(ref) > SMALL_REFERENCE else "ks"
            statistic = _wasserstein_normed(ref, cur) if name == "wasserstein" else _ks(ref, cur)
            return _verdict(column, kind, name, statistic)
        counts = _counts(pd.Series(ref), pd.Series(cur))
    else:
        counts = _counts(reference, current)
        _require_values(column, int(counts["reference"].sum()), int(counts["current"].sum()))
    return _count_test(column, kind, counts)


def _count_test(column: str, kind: str, counts: pd.DataFrame) -> ColumnDrift:
    """evidently's test on value counts: Jensen–Shannon for a big reference, else
    chi-square, or the z-test for two values."""
    if counts["reference"].sum() > SMALL_REFERENCE:
        return _verdict(column, kind, "jensenshannon", _jensenshannon(counts))
    if len(counts) > 2:
        return _verdict(column, kind, "chisquare", _chisquare(counts))
    return _verdict(column, kind, "z", _z_test(counts))


def _column_kind(values: pd.Series) -> str | None:
    """evidently's type inference (`core.datasets.infer_column_type`) on the evaluation data,
    except that text is taken as categorical: evidently's text drift test is a classifier.
    None for dates and other values drift is not tested on."""
    dtype = values.dtype
    if types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if types.is_float_dtype(dtype):
        return NUMERICAL
    if types.is_integer_dtype(dtype):
        many = _more_distinct_than(INTEGER_CARDINALITY_LIMIT, values.to_numpy())
        return NUMERICAL if many else CATEGORICAL
    return CATEGORICAL if types.is_string_dtype(dtype) else None


def _require_columns(
    columns: Sequence[str],
    spec: DriftCheck,
    data: Sequence[str],
    reference: Sequence[str],
) -> None:
    if not columns:
        raise InputError(
            f"drift check '{spec.id}'",
            "has no column to test: no feature holds numbers or categories",
            "list the columns to test in the check's `columns`",
        )
    for names, name in ((data, "evaluation data"), (reference, "reference data")):
        absent = [column for column in columns if column not in names]
        if absent:
            raise InputError(
                f"drift check '{spec.id}'",
                f"column(s) {', '.join(absent)} are not in the {name}",
                "correct the names in the check's `columns` or give data that has them",
            )
    for rule in spec.rules:
        if isinstance(rule, NoDriftInRule):
            untested = [column for column in rule.no_drift_in.columns if column not in columns]
            if untested:
                raise InputError(
                    f"drift check '{spec.id}', rule '{rule.label}'",
                    f"column(s) {', '.join(untested)} are not among the tested columns "
                    f"({', '.join(columns)})",
                    "correct the names, or add them to the check's `columns`",
                )


def _require_values(column: str, reference_count: int, current_count: int) -> None:
    """evidently refuses a column with no values on either side; so do we."""
    for count, name in ((reference_count, "reference"), (current_count, "evaluation")):
        if count == 0:
            raise InputError(
                f"column {column!r}",
                f"has no values in the {name} data, so its drift cannot be tested",
                "fill the column or leave it out of the drift check's `columns`",
            )


def _finite(values: pd.Series) -> np.ndarray:
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)  # no copy for float64 columns
    finite = np.isfinite(array)
    return array if finite.all() else array[finite]


def _more_distinct_than(limit: int, *arrays: np.ndarray) -> bool:
    """Whether the arrays together hold more than `limit` distinct values. A column's first
    values nearly always settle it, which spares hashing millions of them."""
    if any(pd.unique(array[:PREFIX]).size > limit for array in arrays):
        return True
    return len(set().union(*(pd.unique(array) for array in arrays))) > limit


def _counts(reference: pd.Series, current: pd.Series) -> pd.DataFrame:
    """How often each value occurs on each side, NaN left out, over the values seen on either."""
    counts = pd.concat(
        {
            "reference": reference.value_counts(sort=False),
            "current": current.value_counts(sort=False),
        },
        axis=1,
    ).fillna(0)
    return counts[counts.sum(axis=1) > 0]  # a categorical dtype lists unobserved categories


def _verdict(column: str, kind: str, stattest: str, statistic: float) -> ColumnDrift:
    threshold = THRESHOLDS[stattest]
    if stattest in ("wasserstein", "jensenshannon"):
        drifted = statistic >= threshold
    elif stattest == "ks":
        drifted = statistic <= threshold
    else:
        drifted = statistic < threshold
    defined = statistic == statistic  # NaN never drifts in evidently: every comparison fails
    return ColumnDrift(
        column, kind, stattest, float(statistic) if defined else None, threshold, bool(drifted)
    )


def _wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """`scipy.stats.wasserstein_distance` over the reference std, to the last bit.

    scipy argsorts each sample and binary-searches every pooled value in both. Sorting each
    sample, then merging the two sorted runs (a stable sort merges runs in linear time), gives
    the same CDF steps several times faster. Within a run of tied values the running counts
    differ from scipy's, but those steps have zero width and add nothing."""
    pooled = np.concatenate((np.sort(reference), np.sort(current)))
    order = np.argsort(pooled, kind="stable")
    current_counts = np.cumsum(order[:-1] >= reference.size)
    cdf_gap = np.arange(1, pooled.size, dtype=np.float64)  # values seen so far, both samples
    cdf_gap -= current_counts
    cdf_gap /= reference.size
    cdf_gap -= current_counts / current.size
    np.abs(cdf_gap, out=cdf_gap)
    total = np.vecdot(cdf_gap, np.diff(pooled[order]))
    return float(total) / max(float(np.std(reference)), NORM_FLOOR)


def _ks(reference: np.ndarray, current: np.ndarray) -> float:
    return float(stats.ks_2samp(reference, current).pvalue)


def _jensenshannon(counts: pd.DataFrame) -> float:
    reference, current = counts["reference"], counts["current"]
    return float(distance.jensenshannon(reference / reference.sum(), current / current.sum()))


def _chisquare(counts: pd.DataFrame) -> float:
    reference, current = counts["reference"], counts["current"]
    expected = reference * (current.sum() / reference.sum())
    with np.errstate(divide="ignore"):  # a value the reference lacks: p = 0, as in evidently
        return float(stats.chisquare(current, expected).pvalue)


def _z_test(counts: pd.DataFrame) -> float:
    """Two-proportion z-test on the share of the lowest value, as evidently computes it."""
    if len(counts) == 1:
        return 1.0
    first = min(counts.index)
    n1, n2 = counts["reference"].sum(), counts["current"].sum()
    p1 = float(n1 - counts.at[first, "reference"]) / n1
    p2 = float(n2 - counts.at[first, "current"]) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _judge(
    rule: DriftShareRule | NoDriftInRule,
    spec: DriftCheck,
    drifts: list[ColumnDrift],
    share: float,
) -> RuleOutcome:
    return judge_drift(rule, rule_severity(rule, spec), drifts, share)


def _summary(spec: DriftCheck, drifts: list[ColumnDrift], drifted: list[str], share: float) -> str:
    text = f"{len(drifted)} of {len(drifts)} columns drifted ({share:.0%})"
    for rule in spec.rules:
        if isinstance(rule, DriftShareRule):
            allowed = rule.drift_share.max
            text += f", {'within' if share <= allowed else 'more than'} the {allowed:.0%} allowed"
    if drifted:
        text += f"; {_names(drifted)} drifted"
    forbidden = [
        column
        for rule in spec.rules
        if isinstance(rule, NoDriftInRule)
        for column in rule.no_drift_in.columns
        if column in drifted
    ]
    if forbidden:
        text += f", and the policy forbids drift in {_names(forbidden)}"
    return text + "."


def _names(columns: list[str], shown: int = 5) -> str:
    if len(columns) <= shown:
        return ", ".join(columns)
    return f"{', '.join(columns[:shown])} and {len(columns) - shown} more"
