"""Data quality: is the evaluation data complete, and shaped like the training data?

A model judged on data with holes, values it never saw in training, or columns that changed
type says little about how it will behave; EU AI Act Art. 10(3) asks for data that is
complete and representative. Only `missing_share` can be judged without the reference.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
from pandas.api import types

from governance.checks import CheckInputs, library_versions, rule_severity
from governance.domain.errors import InputError
from governance.domain.judging import (
    NEEDS_REFERENCE,
    ColumnQuality,
    judge_quality,
    judge_schema,
)
from governance.domain.policy import DataQualityCheck, DataQualityRule, SchemaMatchRule
from governance.domain.results import CheckResult, RuleOutcome, status_of

NUMERIC, CATEGORICAL, BOOL, DATETIME = "numeric", "categorical", "bool", "datetime"


def run(spec: DataQualityCheck, inputs: CheckInputs) -> CheckResult:
    data, reference = inputs.data, inputs.reference
    _require_reference(spec, reference)
    if data.empty:
        raise InputError("evaluation data", "has no rows", "give data with at least one row")
    table = [
        _quality(column, data[column], _reference_column(reference, column))
        for column in inputs.features
        if column in data.columns
    ]
    rules = [
        _schema(rule, spec, data, reference, inputs.target)
        if isinstance(rule, SchemaMatchRule)
        else _threshold(rule, spec, table)
        for rule in spec.rules
    ]
    return CheckResult(
        id=spec.id,
        type=spec.type,
        status=status_of(rules),
        summary=_summary(rules, len(data), len(table)),
        rules=rules,
        metrics={"rows": len(data), "columns": [asdict(quality) for quality in table]},
        library_versions=library_versions("numpy", "pandas"),
    )


def _kind(values: pd.Series) -> str:
    """The kind of values a column holds; a change of kind breaks what a model learned."""
    dtype = values.dtype
    if types.is_bool_dtype(dtype):
        return BOOL
    if types.is_numeric_dtype(dtype):
        return NUMERIC
    if types.is_datetime64_any_dtype(dtype):
        return DATETIME
    return CATEGORICAL


def _require_reference(spec: DataQualityCheck, reference: pd.DataFrame | None) -> None:
    if reference is not None:
        return
    for rule in spec.rules:
        if isinstance(rule, SchemaMatchRule) or rule.metric in NEEDS_REFERENCE:
            raise InputError(
                f"data_quality check '{spec.id}', rule '{rule.label}'",
                "compares the evaluation data with reference data, and none was given",
                "pass `--reference FILE`, the training data",
            )


def _reference_column(reference: pd.DataFrame | None, column: str) -> pd.Series | None:
    if reference is None or column not in reference.columns:
        return None
    return reference[column]


def _quality(column: str, values: pd.Series, reference: pd.Series | None) -> ColumnQuality:
    rows, column_kind = len(values), _kind(values)
    if reference is not None and _kind(reference) != column_kind:
        reference = None  # nothing comparable: schemaMatch reports the change of kind
    if column_kind in (CATEGORICAL, BOOL):
        counts = values.value_counts(sort=False)  # one pass over the rows serves both shares
        unseen = None if reference is None else _unseen(counts, reference) / rows
        missing = rows - int(counts.sum())  # value_counts leaves NaN out
        return ColumnQuality(column, column_kind, missing / rows, unseen_category_share=unseen)
    missing = int(values.isna().sum())
    out_of_range = None
    if reference is not None and column_kind == NUMERIC:
        out_of_range = (rows - missing - _inside_range(values, reference)) / rows
    return ColumnQuality(column, column_kind, missing / rows, out_of_range_share=out_of_range)


def _inside_range(values: pd.Series, reference: pd.Series) -> int:
    """How many values lie within the reference's [min, max]; none if it has no values."""
    low, high = reference.min(), reference.max()
    if pd.isna(low):
        return 0
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return int(np.count_nonzero((array >= low) & (array <= high)))


def _unseen(counts: pd.Series, reference: pd.Series) -> int:
    """How many values never occur in the reference. Looking up each distinct value once is
    far cheaper than looking up every row."""
    seen = counts.index.isin(pd.unique(reference))
    return int(counts[~seen].sum())


def _schema(
    rule: SchemaMatchRule,
    spec: DataQualityCheck,
    data: pd.DataFrame,
    reference: pd.DataFrame | None,
    target: str,
) -> RuleOutcome:
    """Missing: a reference column the data lacks; extra: the reverse. The target may be
    absent from either side, as unlabelled reference data often is."""
    assert reference is not None  # _require_reference saw to it
    missing = [c for c in reference.columns if c not in data.columns and c != target]
    extra = [c for c in data.columns if c not in reference.columns and c != target]
    changed = [
        f"{column} {_kind(reference[column])} → {_kind(data[column])}"
        for column in reference.columns
        if column in data.columns and _kind(reference[column]) != _kind(data[column])
    ]
    return judge_schema(rule, rule_severity(rule, spec), missing, extra, changed)


def _threshold(
    rule: DataQualityRule, spec: DataQualityCheck, table: list[ColumnQuality]
) -> RuleOutcome:
    """The worst column decides: a share averaged over columns would hide one broken column."""
    return judge_quality(rule, rule_severity(rule, spec), table)


def _summary(rules: list[RuleOutcome], rows: int, columns: int) -> str:
    failed = [rule for rule in rules if not rule.passed]
    if not failed:
        return f"All {len(rules)} data-quality rules held on {rows:,} rows and {columns} features."
    reasons = "; ".join(
        f"{rule.rule} — {rule.observed if isinstance(rule.observed, str) else rule.detail}"
        for rule in failed
    )
    return f"{len(failed)} of {len(rules)} data-quality rules did not hold: {reasons}."
