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
from dataclasses import asdict

import numpy as np
import pandas as pd
from pandas.api import types
from scipy import stats
from scipy.spatial import distance

from governance.checks import CheckInputs, library_versions, rule_severity
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
    reference = _reference(spec, inputs)
    # like evidently's preset, test every feature that holds numbers or categories by default
    columns = spec.columns or [c for c in inputs.features if _column_kind(inputs.data[c])]
    _require_columns(columns, spec, inputs.data, reference)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # numpy releases the GIL
        drifts = list(
            pool.map(
                _column_drift,
                columns,
                [reference[column] for column in columns],
                [inputs.data[column] for column in columns],
            )
        )

    drifted = [drift.column for drift in drifts if drift.drifted]
    share = len(drifted) / len(drifts)
    rules = [_judge(rule, spec, drifts, share) for rule in spec.rules]
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
            "untested_columns": [c for c in inputs.features if c not in columns],
            "reference_rows": len(reference),
            "current_rows": len(inputs.data),
            "columns": [asdict(drift) for drift in drifts],
        },
        library_versions=library_versions("evidently", "scipy", "numpy", "pandas"),
    )


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


def _reference(spec: DriftCheck, inputs: CheckInputs) -> pd.DataFrame:
    if inputs.reference is None:
        raise InputError(
            f"drift check '{spec.id}'",
            "needs reference data to compare the evaluation data with, and none was given",
            "pass `--reference FILE`, the training data",
        )
    return inputs.reference


def _require_columns(
    columns: Sequence[str], spec: DriftCheck, data: pd.DataFrame, reference: pd.DataFrame
) -> None:
    if not columns:
        raise InputError(
            f"drift check '{spec.id}'",
            "has no column to test: no feature holds numbers or categories",
            "list the columns to test in the check's `columns`",
        )
    for frame, name in ((data, "evaluation data"), (reference, "reference data")):
        absent = [column for column in columns if column not in frame.columns]
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
