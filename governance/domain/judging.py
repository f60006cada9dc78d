"""How each kind of rule is judged from a check's figures. Pure: no data, no ML library.

The checks compute the figures (confusion tables, SHAP values, drift statistics …) and
judge their rules with these functions; the policy impact analysis (`domain.impact`) reads
the same figures back from stored evidence and judges a draft policy's rules with the same
functions, so both reach the same observed value and the same outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.domain.errors import InputError
from governance.domain.policy import (
    LOWER_IS_BETTER,
    AnyCheck,
    DataQualityRule,
    DriftShareRule,
    FairnessCheck,
    FairnessRule,
    NoDriftInRule,
    NoRegressionRule,
    PerformanceRule,
    ProhibitedInTopKRule,
    SchemaMatchRule,
    Severity,
)
from governance.domain.results import RuleOutcome, judge_bounds


def rule_severity(rule: Any, check: AnyCheck) -> Severity:
    """A rule's own severity wins over its check's."""
    severity: Severity = rule.severity or check.severity
    return severity


# --- performance -------------------------------------------------------------------------

RECORDED = "recorded"  # the champion's metrics were recorded, not measured on the same data
# float subtraction must not fail a candidate that is exactly `tolerance` worse
_SLACK = 1e-12


def fmt_metric(value: float) -> str:
    return "undefined" if value != value else f"{value:.4f}"


def judge_performance_metric(
    rule: PerformanceRule, value: float, rows: int, severity: Severity
) -> RuleOutcome:
    """`metric` within its bounds; NaN (undefined) never passes."""
    detail = f"{rule.metric} is {fmt_metric(value)} on {rows:,} rows"
    return judge_bounds(rule.label, value, rule.min, rule.max, severity, rule.basis, detail)


def judge_no_regression(
    rule: NoRegressionRule,
    candidate: Mapping[str, float],
    champion: tuple[Mapping[str, float], str] | None,
    severity: Severity,
) -> RuleOutcome:
    """Observed: the candidate's improvement over the champion (positive is better, for
    lower-is-better metrics too); the rule holds while it is ≥ −tolerance."""
    metric, tolerance = rule.no_regression.metric, rule.no_regression.tolerance
    threshold = f"improvement over the champion ≥ {-tolerance if tolerance else 0:g}"
    if champion is None:
        return RuleOutcome(
            rule=rule.label,
            observed=None,
            threshold=threshold,
            passed=True,
            severity=severity,
            basis=rule.basis,
            detail="no champion supplied: first version, nothing to regress against",
        )
    scores, source = champion
    if metric not in scores and source == RECORDED:
        raise InputError(
            "champion",
            f"its recorded metrics have no {metric}",
            f"record the champion's {metric}, or give its predictions on the same data",
        )
    if metric not in scores:
        raise InputError(
            "champion",
            f"its predictions come without probabilities, so its {metric} is unknown",
            "give the champion's y_score (predict_proba[:, 1]) on the same data",
        )
    ours, theirs = candidate[metric], scores[metric]
    improvement = theirs - ours if metric in LOWER_IS_BETTER else ours - theirs
    defined = improvement == improvement  # NaN: an undefined metric never passes
    return RuleOutcome(
        rule=rule.label,
        observed=improvement if defined else None,
        threshold=threshold,
        passed=defined and improvement >= -tolerance - _SLACK,
        severity=severity,
        basis=rule.basis,
        detail=f"{metric} is {fmt_metric(ours)} against the champion's {fmt_metric(theirs)} "
        f"({source})",
    )


# --- fairness ----------------------------------------------------------------------------


def fairness_groupings(spec: FairnessCheck) -> list[tuple[str, ...]]:
    """Each sensitive feature alone, their full intersection when asked for, and any other
    intersection a rule's `over` names; features keep the order of sensitiveFeatures."""
    wanted = [{feature} for feature in spec.sensitive_features]
    if spec.intersectional and len(spec.sensitive_features) > 1:
        wanted.append(set(spec.sensitive_features))
    wanted += [set(rule.over) for rule in spec.rules if rule.over]
    groupings: list[tuple[str, ...]] = []
    for features in wanted:
        ordered = tuple(f for f in spec.sensitive_features if f in features)
        if ordered not in groupings:
            groupings.append(ordered)
    return groupings


def covers(rule: FairnessRule, features: Sequence[str]) -> bool:
    """Whether the rule compares the groups of this grouping."""
    return rule.over is None or set(features) == set(rule.over)


def worst_grouping(rule: FairnessRule, reports: Sequence[Mapping[str, Any]]) -> int:
    """The index of the report the rule is judged on: the worst of the groupings it covers
    (undefined is the worst; the first of equals)."""
    covered = [i for i, report in enumerate(reports) if covers(rule, report["features"])]
    worse_is_lower = rule.metric.endswith("_ratio")
    return sorted(covered, key=lambda i: _rank(reports[i][rule.metric], worse_is_lower))[0]


def _rank(value: float | None, worse_is_lower: bool) -> float:
    if value is None:
        return float("-inf")  # undefined is the worst: it must be looked at
    return value if worse_is_lower else -value


def judge_fairness(
    rule: FairnessRule,
    severity: Severity,
    report: Mapping[str, Any],
    interval: tuple[float, float] | None = None,
) -> RuleOutcome:
    """A rule judged on one grouping's disparity (the worst it covers)."""
    observed = report[rule.metric]
    return judge_bounds(
        rule.label,
        float("nan") if observed is None else observed,
        rule.min,
        rule.max,
        severity,
        basis=rule.basis,
        detail=f"worst over {' × '.join(report['features'])}",
        interval=interval,
    )


# --- drift -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    stattest: str
    statistic: float | None  # a distance, or the p-value for ks, chisquare and z
    threshold: float
    drifted: bool
    sketched: bool = False  # computed from bins rather than every value
    bound: float = 0.0  # how far a sketched statistic may be from the exact one


def judge_drift(
    rule: DriftShareRule | NoDriftInRule,
    severity: Severity,
    drifts: Sequence[ColumnDrift],
    share: float,
) -> RuleOutcome:
    if isinstance(rule, DriftShareRule):
        drifted = [drift.column for drift in drifts if drift.drifted]
        return RuleOutcome(
            rule=rule.label,
            observed=share,
            threshold=f"≤ {rule.drift_share.max:g}",
            passed=share <= rule.drift_share.max,
            severity=severity,
            basis=rule.basis,
            detail=f"drifted: {', '.join(drifted)}" if drifted else "no column drifted",
        )
    named = [drift for drift in drifts if drift.column in rule.no_drift_in.columns]
    drifted = [drift.column for drift in named if drift.drifted]
    return RuleOutcome(
        rule=rule.label,
        observed=f"{', '.join(drifted)} drifted" if drifted else "none drifted",
        threshold="no drift",
        passed=not drifted,
        severity=severity,
        basis=rule.basis,
        detail="; ".join(describe_drift(drift) for drift in named),
    )


def describe_drift(drift: ColumnDrift) -> str:
    score = "undefined" if drift.statistic is None else f"{drift.statistic:.3g}"
    return f"{drift.column}: {drift.stattest} {score} (threshold {drift.threshold:g})"


# --- data quality ------------------------------------------------------------------------

NEEDS_REFERENCE = frozenset({"out_of_range_share", "unseen_category_share"})
PHRASES = {
    "missing_share": "missing values",
    "out_of_range_share": "of values outside the reference's range",
    "unseen_category_share": "of values never seen in the reference",
}
SCHEMA_LABELS = ("missing", "extra", "type changed")
SCHEMA_ALLOWED = "allowed by the policy: "


@dataclass(frozen=True)
class ColumnQuality:
    column: str
    kind: str
    missing_share: float
    out_of_range_share: float | None = None  # numeric columns, against the reference
    unseen_category_share: float | None = None  # categorical and bool columns, likewise


def judge_quality(
    rule: DataQualityRule, severity: Severity, table: Sequence[ColumnQuality]
) -> RuleOutcome:
    """The worst column decides: a share averaged over columns would hide one broken column."""
    shares = {q.column: getattr(q, rule.metric) for q in table}
    shares = {column: share for column, share in shares.items() if share is not None}
    if shares:
        worst = max(shares, key=lambda column: shares[column])
        observed = shares[worst]
        detail = f"{worst} has {observed:.2%} {PHRASES[rule.metric]}"
    else:
        observed, detail = 0.0, "no column of a kind this metric applies to"
    return judge_bounds(
        rule.label, observed, rule.min, rule.max, severity, basis=rule.basis, detail=detail
    )


def judge_schema(
    rule: SchemaMatchRule,
    severity: Severity,
    missing: Sequence[object],
    extra: Sequence[object],
    changed: Sequence[object],
) -> RuleOutcome:
    """Missing reference columns always fail; extra ones and changes of kind fail unless
    the rule allows them (then they are reported in the detail)."""
    options = rule.schema_match
    wrong: list[str] = []
    allowed: list[str] = []
    for label, names, permitted in (
        ("missing", missing, False),
        ("extra", extra, options.allow_extra_columns),
        ("type changed", changed, options.allow_dtype_changes),
    ):
        if names:
            (allowed if permitted else wrong).append(f"{label}: {', '.join(map(str, names))}")
    required = ["no missing columns"]
    required += [] if options.allow_extra_columns else ["no extra columns"]
    required += [] if options.allow_dtype_changes else ["no type changes"]
    return RuleOutcome(
        rule=rule.label,
        observed="; ".join(wrong) or "match",
        threshold=", ".join(required),
        passed=not wrong,
        severity=severity,
        basis=rule.basis,
        detail=f"{SCHEMA_ALLOWED}{'; '.join(allowed)}" if allowed else "",
    )


# --- explainability ----------------------------------------------------------------------


def offenders(rule: ProhibitedInTopKRule, ranks: Mapping[str, int]) -> list[str]:
    spec = rule.prohibited_in_top_k
    return [feature for feature in spec.features if ranks.get(feature, spec.k + 1) <= spec.k]


def judge_prohibited(
    rule: ProhibitedInTopKRule, ranks: Mapping[str, int], severity: Severity
) -> RuleOutcome:
    """Observed: the best (smallest) rank of any prohibited feature; it must exceed k."""
    spec = rule.prohibited_in_top_k
    used = [f for f in spec.features if f in ranks]
    if not used:
        return RuleOutcome(
            rule=rule.label,
            observed="not used",
            threshold=f"best rank > {spec.k}",
            passed=True,
            severity=severity,
            basis=rule.basis,
            detail=f"the model does not take {', '.join(spec.features)} as input",
        )
    best = min(used, key=ranks.__getitem__)
    found = offenders(rule, ranks)
    if found:
        detail = ", ".join(f"{f} is ranked {ranks[f]}" for f in found) + f" of {len(ranks)}"
    else:
        detail = f"the highest-ranked prohibited feature, {best}, is ranked {ranks[best]}"
    return RuleOutcome(
        rule=rule.label,
        observed=float(ranks[best]),
        threshold=f"best rank > {spec.k}",
        passed=not found,
        severity=severity,
        basis=rule.basis,
        detail=detail,
    )
