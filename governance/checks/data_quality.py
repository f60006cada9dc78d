"""Data quality: is the evaluation data complete, and shaped like the training data?

A model judged on data with holes, values it never saw in training, or columns that changed
type says little about how it will behave; EU AI Act Art. 10(3) asks for data that is
complete and representative. Only `missing_share` can be judged without the reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

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
    BOOL,
    CATEGORICAL,
    NUMERIC,
    ColumnProfile,
    ReferenceProfile,
    kind_of,
)
from governance.domain.errors import InputError
from governance.domain.judging import (
    NEEDS_REFERENCE,
    ColumnQuality,
    judge_quality,
    judge_schema,
)
from governance.domain.policy import DataQualityCheck, DataQualityRule, SchemaMatchRule
from governance.domain.results import CheckResult, RuleOutcome, status_of


def run(spec: DataQualityCheck, inputs: CheckInputs) -> CheckResult:
    """All rows in memory: one batch."""
    return run_check(spec, inputs)


@dataclass(frozen=True)
class _Counts:
    """One column's counts over the rows so far: what its shares are made of."""

    kind: str
    missing: int = 0
    outside: int | None = None  # numeric values outside the reference's range
    unseen: int | None = None  # categories the reference never has

    def merge(self, other: _Counts) -> _Counts:
        if other.kind != self.kind:
            raise InputError(
                "evaluation data",
                f"a column holds {self.kind} values in one part and {other.kind} in another",
                "give every file of the data set the same column types",
            )
        return _Counts(
            self.kind,
            self.missing + other.missing,
            _add(self.outside, other.outside),
            _add(self.unseen, other.unseen),
        )


@dataclass(frozen=True)
class _State:
    rows: int
    columns: dict[str, _Counts]
    kinds: dict[str, str]  # every column's kind, the target's too


class Aggregate:
    """Missing, out-of-range and unseen-category counts per column: exact over batches."""

    def __init__(self, spec: DataQualityCheck, scope: Scope) -> None:
        _require_reference(spec, scope.reference)
        if scope.rows == 0:
            raise InputError("evaluation data", "has no rows", "give data with at least one row")
        self.spec, self.scope = spec, scope
        self.columns = [column for column in scope.features if column in scope.columns]

    def partial(self, batch: Batch) -> _State:
        reference = self.scope.reference
        return _State(
            len(batch.data),
            {
                column: _column_counts(
                    batch.data[column],
                    None if reference is None else reference.columns.get(column),
                )
                for column in self.columns
            },
            {str(column): kind_of(batch.data[column]) for column in batch.data.columns},
        )

    def merge(self, first: _State, second: _State) -> _State:
        return _State(
            first.rows + second.rows,
            {name: counts.merge(second.columns[name]) for name, counts in first.columns.items()},
            _same_kinds(first.kinds, second.kinds),
        )

    def finalize(self, state: _State) -> CheckResult:
        spec, rows = self.spec, state.rows
        table = [
            ColumnQuality(
                column,
                counts.kind,
                counts.missing / rows,
                out_of_range_share=None if counts.outside is None else counts.outside / rows,
                unseen_category_share=None if counts.unseen is None else counts.unseen / rows,
            )
            for column, counts in state.columns.items()
        ]
        kinds = state.kinds
        rules = [
            _schema(rule, spec, self.scope, kinds)
            if isinstance(rule, SchemaMatchRule)
            else _threshold(rule, spec, table)
            for rule in spec.rules
        ]
        return CheckResult(
            id=spec.id,
            type=spec.type,
            status=status_of(rules),
            summary=_summary(rules, rows, len(table)),
            rules=rules,
            metrics={
                "rows": rows,
                "columns": [asdict(quality) for quality in table],
                "statistics": [
                    Exactness("missing, out-of-range and unseen-category counts", "exact").as_json()
                ],
            },
            library_versions=library_versions("numpy", "pandas"),
        )


def _same_kinds(first: dict[str, str], second: dict[str, str]) -> dict[str, str]:
    for column, kind in second.items():
        if first.get(column, kind) != kind:
            raise InputError(
                f"evaluation data column {column!r}",
                f"holds {first[column]} values in one part and {kind} in another",
                "give every file of the data set the same column types",
            )
    return {**first, **second}


def _add(first: int | None, second: int | None) -> int | None:
    return None if first is None or second is None else first + second


def _require_reference(spec: DataQualityCheck, reference: ReferenceProfile | None) -> None:
    if reference is not None:
        return
    for rule in spec.rules:
        if isinstance(rule, SchemaMatchRule) or rule.metric in NEEDS_REFERENCE:
            raise InputError(
                f"data_quality check '{spec.id}', rule '{rule.label}'",
                "compares the evaluation data with reference data, and none was given",
                "pass `--reference FILE`, the training data",
            )


def _column_counts(values: pd.Series, reference: ColumnProfile | None) -> _Counts:
    rows, column_kind = len(values), kind_of(values)
    if reference is not None and reference.kind != column_kind:
        reference = None  # nothing comparable: schemaMatch reports the change of kind
    if column_kind in (CATEGORICAL, BOOL):
        counts = values.value_counts(sort=False)  # one pass over the rows serves both counts
        unseen = None if reference is None else _unseen(counts, reference)
        missing = rows - int(counts.sum())  # value_counts leaves NaN out
        return _Counts(column_kind, missing, unseen=unseen)
    missing = int(values.isna().sum())
    outside = None
    if reference is not None and column_kind == NUMERIC:
        outside = rows - missing - _inside_range(values, reference)
    return _Counts(column_kind, missing, outside=outside)


def _inside_range(values: pd.Series, reference: ColumnProfile) -> int:
    """How many values lie within the reference's [min, max]; none if it has no values."""
    low, high = reference.low, reference.high
    if low is None or high is None:
        return 0
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return int(np.count_nonzero((array >= low) & (array <= high)))


def _unseen(counts: pd.Series, reference: ColumnProfile) -> int:
    """How many values never occur in the reference. Looking up each distinct value once is
    far cheaper than looking up every row."""
    seen = counts.index.isin(list(reference.categories or ()))
    return int(counts[~seen].sum())


def _schema(
    rule: SchemaMatchRule, spec: DataQualityCheck, scope: Scope, kinds: dict[str, str]
) -> RuleOutcome:
    """Missing: a reference column the data lacks; extra: the reverse. The target may be
    absent from either side, as unlabelled reference data often is."""
    reference = scope.reference
    assert reference is not None  # _require_reference saw to it
    target = scope.target
    missing = [c for c in reference.columns if c not in scope.columns and c != target]
    extra = [c for c in scope.columns if c not in reference.columns and c != target]
    changed = [
        f"{column} {reference.columns[column].kind} → {kinds[column]}"
        for column in reference.columns
        if column in kinds and reference.columns[column].kind != kinds[column]
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
