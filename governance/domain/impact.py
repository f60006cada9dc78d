"""Policy impact: what a draft policy would decide for a model version already judged,
from its stored evidence alone. Pure: no I/O, and no check is run again.

Every rule of the draft is judged on the figures the checks stored (`CheckResult.metrics`)
with the checks' own judging functions (`domain.judging`), and the verdict is taken with the
gate's own `decide`. A figure the evidence does not hold — a grouping never computed, a
metric never recorded, a SHAP ranking over another sample, a bootstrap interval under other
settings — is never guessed: the rule is reported as needing a re-run, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from governance.domain.errors import InputError
from governance.domain.evidence import EvidenceManifest
from governance.domain.judging import (
    NEEDS_REFERENCE,
    SCHEMA_ALLOWED,
    SCHEMA_LABELS,
    ColumnDrift,
    ColumnQuality,
    covers,
    fairness_groupings,
    judge_drift,
    judge_fairness,
    judge_no_regression,
    judge_performance_metric,
    judge_prohibited,
    judge_quality,
    judge_schema,
    rule_severity,
    worst_grouping,
)
from governance.domain.policy import (
    AnyCheck,
    ClassificationMetric,
    DataQualityCheck,
    DriftCheck,
    DriftShareRule,
    ExplainabilityCheck,
    FairnessCheck,
    FairnessRule,
    NoDriftInRule,
    NoRegressionRule,
    PerformanceCheck,
    PerformanceRule,
    ProhibitedInTopKRule,
    PromotionPolicy,
    RegressionMetric,
    SchemaMatch,
    SchemaMatchRule,
    Severity,
    ThresholdRule,
)
from governance.domain.results import CheckResult, RuleOutcome, Status, status_of
from governance.domain.verdict import Decision, Verdict, decide

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": get_args(ClassificationMetric),
    "regression": get_args(RegressionMetric),
}
SCHEMA_RULE = SchemaMatchRule(schema_match=SchemaMatch()).label
RERUN = "a re-run computes it"


def effect(outcome: RuleOutcome) -> Status:
    """What a judged rule does to the verdict: nothing (pass), block (fail) or warn."""
    if outcome.passed:
        return Status.PASS
    return Status.FAIL if outcome.severity is Severity.BLOCKING else Status.WARN


@dataclass(frozen=True)
class RuleImpact:
    """One rule: as recorded under the old policy, and as the draft would judge it."""

    check_id: str
    rule: str  # the draft's label (the old one for a rule the draft drops)
    severity: Severity | None  # under the draft; None for a dropped rule
    outcome: RuleOutcome | None  # under the draft; None: dropped, or it needs a re-run
    stored: RuleOutcome | None  # as recorded; None: the old policy had no such rule
    rerun: str | None = None  # why the stored evidence cannot judge it

    @property
    def observed(self) -> float | str | None:
        if self.outcome is not None:
            return self.outcome.observed
        return self.stored.observed if self.stored is not None and self.rerun is None else None

    @property
    def old(self) -> Status | None:
        return effect(self.stored) if self.stored is not None else None

    @property
    def new(self) -> Status | None:
        return effect(self.outcome) if self.outcome is not None else None

    @property
    def dropped(self) -> bool:
        return self.outcome is None and self.rerun is None

    @property
    def flipped(self) -> bool:
        """Its effect on the verdict changes: a pass that fails or warns, a failure that
        passes or is dropped, a blocking failure that only warns, a new failing rule."""
        if self.rerun is not None:
            return False
        return (self.old or Status.PASS) != (self.new or Status.PASS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "rule": self.rule,
            "observed": self.observed,
            "severity": self.severity.value if self.severity is not None else None,
            "old": self.old.value if self.old is not None else None,
            "new": self.new.value if self.new is not None else None,
            "flipped": self.flipped,
            "dropped": self.dropped,
            "rerun": self.rerun,
            "outcome": self.outcome.model_dump(mode="json") if self.outcome else None,
            "stored": self.stored.model_dump(mode="json") if self.stored else None,
        }


@dataclass(frozen=True)
class MissingCheck:
    """A draft check with no stored result to re-judge: the old policy never ran it."""

    check_id: str
    type: str
    reason: str


@dataclass(frozen=True)
class Rerun:
    """A value the stored evidence does not hold. `affects_verdict` is False for a value
    that is reported but never judged (a bootstrap interval)."""

    check_id: str
    rule: str | None
    reason: str
    affects_verdict: bool = True


@dataclass(frozen=True)
class VersionImpact:
    model: str
    version: str
    state: str | None
    old_policy: str
    old_policy_version: int
    old_verdict: Verdict
    new_verdict: Verdict | None  # None: the stored evidence cannot decide it
    changed: bool
    rules: list[RuleImpact]
    missing_checks: list[MissingCheck]
    needs_rerun: list[Rerun]
    decision: Decision | None = None  # the draft's decision, when it can be taken
    target: str | None = None
    request_id: str | None = None
    decision_id: str | None = None
    old_policy_sha256: str = ""

    @property
    def flipped(self) -> list[RuleImpact]:
        return [rule for rule in self.rules if rule.flipped]

    @property
    def complete(self) -> bool:
        """Everything the draft asks for could be judged from the stored evidence."""
        return not self.missing_checks and not self.needs_rerun

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "target": self.target,
            "state": self.state,
            "request_id": self.request_id,
            "decision_id": self.decision_id,
            "old_policy": {
                "name": self.old_policy,
                "version": self.old_policy_version,
                "sha256": self.old_policy_sha256,
            },
            "old_verdict": self.old_verdict.value,
            "new_verdict": self.new_verdict.value if self.new_verdict is not None else None,
            "changed": self.changed,
            "new_summary": self.decision.summary if self.decision is not None else None,
            "rules": [rule.as_dict() for rule in self.rules],
            "missing_checks": [
                {"check_id": m.check_id, "type": m.type, "reason": m.reason}
                for m in self.missing_checks
            ],
            "needs_rerun": [
                {
                    "check_id": r.check_id,
                    "rule": r.rule,
                    "reason": r.reason,
                    "affects_verdict": r.affects_verdict,
                }
                for r in self.needs_rerun
            ],
        }


@dataclass(frozen=True)
class _Judged:
    """A draft rule judged from the stored figures, or why it cannot be."""

    outcome: RuleOutcome | None = None
    reason: str | None = None  # the outcome needs a re-run
    note: str | None = None  # a reported value (not the outcome) needs a re-run


@dataclass
class _Collected:
    rows: list[RuleImpact] = field(default_factory=list)
    missing: list[MissingCheck] = field(default_factory=list)
    reruns: list[Rerun] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)


def impact_on(
    draft: PromotionPolicy,
    manifest: EvidenceManifest,
    old_policy: PromotionPolicy | None = None,
    *,
    state: str | None = None,
    target: str | None = None,
    request_id: str | None = None,
    decision_id: str | None = None,
) -> VersionImpact:
    """Judge the draft's rules on the manifest's stored results and decide the verdict.

    `old_policy` is the policy the manifest was judged under (it pins its hash). With it,
    a rule whose threshold changed is matched to its old outcome, and settings that shape
    the stored figures (bootstrap, columns tested) are compared; without it, rules are
    matched by label and such figures are reported as needing a re-run."""
    if old_policy is not None and old_policy.content_hash != manifest.policy.sha256:
        old_policy = None  # not the policy this evidence was judged under: do not trust it
    collected = _Collected()
    used: set[str] = set()
    for check in draft.checks:
        stored, why = _stored_result(check, manifest.results)
        if stored is None:
            collected.missing.append(MissingCheck(check.id, check.type, why))
            continue
        used.add(stored.id)
        _rejudge_check(check, stored, manifest, _old_check(old_policy, stored), collected)
    for result in manifest.results:
        if result.id not in used:  # the draft drops this check: its rules no longer count
            collected.rows += [RuleImpact(result.id, o.rule, None, None, o) for o in result.rules]

    judged = not collected.missing and not any(r.affects_verdict for r in collected.reruns)
    decision = decide(collected.results) if judged else None
    old_verdict = manifest.decision.verdict
    new_verdict = decision.verdict if decision is not None else None
    return VersionImpact(
        model=manifest.model_name,
        version=manifest.model_version,
        state=state,
        old_policy=manifest.policy.name,
        old_policy_version=manifest.policy.version,
        old_verdict=old_verdict,
        new_verdict=new_verdict,
        changed=new_verdict is not None and new_verdict is not old_verdict,
        rules=collected.rows,
        missing_checks=collected.missing,
        needs_rerun=collected.reruns,
        decision=decision,
        target=target,
        request_id=request_id,
        decision_id=decision_id,
        old_policy_sha256=manifest.policy.sha256,
    )


def _rejudge_check(
    check: AnyCheck,
    stored: CheckResult,
    manifest: EvidenceManifest,
    old_check: AnyCheck | None,
    collected: _Collected,
) -> None:
    pairs = _old_rules(old_check, stored)
    judged = _judge_check(check, stored, manifest, old_check, pairs)
    matched = _match(list(check.rules), pairs)
    outcomes: list[RuleOutcome] = []
    for rule, result, match in zip(check.rules, judged, matched, strict=True):
        previous = pairs[match][1] if match is not None else None
        severity = rule_severity(rule, check)
        collected.rows.append(
            RuleImpact(check.id, rule.label, severity, result.outcome, previous, result.reason)
        )
        if result.reason is not None:
            collected.reruns.append(Rerun(check.id, rule.label, result.reason))
        if result.note is not None:
            collected.reruns.append(Rerun(check.id, rule.label, result.note, False))
        if result.outcome is not None:
            outcomes.append(result.outcome)
    taken = {index for index in matched if index is not None}
    collected.rows += [
        RuleImpact(stored.id, outcome.rule, None, None, outcome)
        for index, (_, outcome) in enumerate(pairs)
        if index not in taken
    ]
    if len(outcomes) == len(check.rules):
        collected.results.append(
            CheckResult(
                id=check.id,
                type=check.type,
                status=status_of(outcomes),
                summary=f"Re-judged from the figures stored by check '{stored.id}'.",
                rules=outcomes,
                metrics=stored.metrics,
                library_versions=stored.library_versions,
            )
        )


def _stored_result(
    check: AnyCheck, results: Sequence[CheckResult]
) -> tuple[CheckResult | None, str]:
    """The stored result of the same type: the one with the same id, else the only one."""
    same_type = [result for result in results if result.type == check.type]
    same_id = next((result for result in same_type if result.id == check.id), None)
    if same_id is not None:
        return same_id, ""
    if len(same_type) == 1:
        return same_type[0], ""
    if not same_type:
        return None, f"the old policy ran no {check.type} check"
    ids = ", ".join(result.id for result in same_type)
    return None, (
        f"the old policy ran {len(same_type)} {check.type} checks ({ids}) and none has the "
        f"id {check.id!r}: give the draft check the id of the one it replaces"
    )


def _old_check(policy: PromotionPolicy | None, stored: CheckResult) -> AnyCheck | None:
    if policy is None:
        return None
    return next((c for c in policy.checks if c.id == stored.id and c.type == stored.type), None)


def _old_rules(old_check: AnyCheck | None, stored: CheckResult) -> list[tuple[Any, RuleOutcome]]:
    """The stored outcomes, each with the old policy's rule when known (a check judges its
    rules in the policy's order, each outcome labelled with its rule's label)."""
    if old_check is not None and [r.label for r in old_check.rules] == [
        o.rule for o in stored.rules
    ]:
        return list(zip(old_check.rules, stored.rules, strict=True))
    return [(None, outcome) for outcome in stored.rules]


def rule_key(rule: Any) -> tuple[Any, ...]:
    """What a rule judges, whatever its threshold: the same key is the same rule, changed."""
    if isinstance(rule, FairnessRule):
        return ("metric", rule.metric, frozenset(rule.over) if rule.over else None)
    if isinstance(rule, ThresholdRule):
        return ("metric", rule.metric)
    if isinstance(rule, NoRegressionRule):
        return ("noRegression", rule.no_regression.metric)
    if isinstance(rule, ProhibitedInTopKRule):
        return ("prohibitedInTopK", frozenset(rule.prohibited_in_top_k.features))
    if isinstance(rule, DriftShareRule):
        return ("driftShare",)
    if isinstance(rule, NoDriftInRule):
        return ("noDriftIn", frozenset(rule.no_drift_in.columns))
    return ("schemaMatch",)


def _match(rules: list[Any], pairs: list[tuple[Any, RuleOutcome]]) -> list[int | None]:
    """For each draft rule, the stored outcome of the same rule: first an identical one
    (same label), then the same rule with another threshold or severity."""
    matched: list[int | None] = [None] * len(rules)
    taken: set[int] = set()
    for same_label in (True, False):
        for position, rule in enumerate(rules):
            if matched[position] is not None:
                continue
            for index, (old_rule, outcome) in enumerate(pairs):
                if index in taken:
                    continue
                known = old_rule is None or rule_key(old_rule) == rule_key(rule)
                if (outcome.rule == rule.label if same_label else old_rule is not None) and known:
                    matched[position] = index
                    taken.add(index)
                    break
    return matched


def _judge_check(
    check: AnyCheck,
    stored: CheckResult,
    manifest: EvidenceManifest,
    old_check: AnyCheck | None,
    pairs: list[tuple[Any, RuleOutcome]],
) -> list[_Judged]:
    every = len(check.rules)
    if stored.status is Status.ERROR:
        reason = f"the check could not run when this version was judged ({stored.summary})"
        return [_Judged(reason=reason)] * every
    try:
        if isinstance(check, FairnessCheck):
            return _fairness(check, stored, manifest, old_check, pairs)
        if isinstance(check, PerformanceCheck):
            return _performance(check, stored, manifest)
        if isinstance(check, DriftCheck):
            return _drift(check, stored, old_check)
        if isinstance(check, DataQualityCheck):
            return _data_quality(check, stored, manifest, pairs)
        return _explainability(check, stored, manifest, old_check)
    except (KeyError, TypeError, ValueError) as exc:  # evidence of another shape
        reason = f"its stored figures cannot be read ({type(exc).__name__}: {exc}): {RERUN}"
        return [_Judged(reason=reason)] * every


# --- per check type ----------------------------------------------------------------------


def _number(value: Any) -> float:
    """JSON has no NaN: an undefined metric was stored as null."""
    return float("nan") if value is None else float(value)


def _data_columns(manifest: EvidenceManifest) -> list[str] | None:
    data = manifest.artifact("data")
    return data.columns if data is not None else None


def _data_rows(manifest: EvidenceManifest) -> int | None:
    data = manifest.artifact("data")
    return data.rows if data is not None else None


def _fairness(
    check: FairnessCheck,
    stored: CheckResult,
    manifest: EvidenceManifest,
    old_check: AnyCheck | None,
    pairs: list[tuple[Any, RuleOutcome]],
) -> list[_Judged]:
    if manifest.task != "classification":
        reason = "fairness metrics need a classifier: the check would refuse it"
        return [_Judged(reason=reason)] * len(check.rules)
    reports: list[dict[str, Any]] = stored.metrics["groupings"]
    by_features = {frozenset(report["features"]): report for report in reports}
    wanted = fairness_groupings(check)
    # In the draft's order, named in the draft's order of sensitiveFeatures.
    present = [
        {**by_features[frozenset(features)], "features": list(features)}
        for features in wanted
        if frozenset(features) in by_features
    ]
    problem = _group_size_problem(check, present)
    if problem is not None:
        return [_Judged(reason=problem)] * len(check.rules)
    judged = []
    for rule in check.rules:
        absent = [g for g in wanted if covers(rule, g) and frozenset(g) not in by_features]
        if absent:
            judged.append(_Judged(reason=_never_grouped(absent, _data_columns(manifest))))
            continue
        report = present[worst_grouping(rule, present)]
        interval, note = _interval(check, rule, report, stored, old_check, pairs)
        outcome = judge_fairness(rule, rule_severity(rule, check), report, interval)
        judged.append(_Judged(outcome, note=note))
    return judged


def _group_size_problem(check: FairnessCheck, reports: list[dict[str, Any]]) -> str | None:
    """Whether minGroupSize would keep or leave out other groups than when judged (their
    disparities would change), or stop the gate."""
    for report in reports:
        for group in report["groups"]:
            small = group["count"] < check.min_group_size
            if small and check.small_groups == "error":
                return (
                    f"{group['label']} has {group['count']} rows, fewer than minGroupSize "
                    f"{check.min_group_size}: the check would stop the gate (smallGroups: error)"
                )
            if small != group["excluded"]:
                change = "leaves out" if small else "brings back"
                return (
                    f"minGroupSize {check.min_group_size} {change} {group['label']} "
                    f"({group['count']} rows): the disparities must be computed again"
                )
    return None


def _never_grouped(absent: list[tuple[str, ...]], columns: list[str] | None) -> str:
    names = ", ".join(" × ".join(grouping) for grouping in absent)
    unknown = sorted({f for g in absent for f in g if columns is not None and f not in columns})
    if unknown:
        return (
            f"the grouping {names} was never computed, and {', '.join(unknown)} is not a "
            "column of the evaluation data: the check would refuse it"
        )
    return f"the grouping {names} was never computed: {RERUN}"


def _interval(
    check: FairnessCheck,
    rule: FairnessRule,
    report: Mapping[str, Any],
    stored: CheckResult,
    old_check: AnyCheck | None,
    pairs: list[tuple[Any, RuleOutcome]],
) -> tuple[tuple[float, float] | None, str | None]:
    """The stored bootstrap interval of the same metric over the same grouping under the
    same bootstrap settings (the groups kept are the same: `_group_size_problem`)."""
    if check.bootstrap is None:
        return None, None
    features = frozenset(report["features"])
    if isinstance(old_check, FairnessCheck) and old_check.bootstrap == check.bootstrap:
        reports = stored.metrics["groupings"]
        for old_rule, outcome in pairs:
            if (
                isinstance(old_rule, FairnessRule)
                and old_rule.metric == rule.metric
                and outcome.interval is not None
                and frozenset(reports[worst_grouping(old_rule, reports)]["features"]) == features
            ):
                return outcome.interval, None
    name = " × ".join(report["features"])
    return None, (
        f"the bootstrap interval of {rule.metric} over {name} was never computed with "
        f"these settings: {RERUN}"
    )


def _performance(
    check: PerformanceCheck, stored: CheckResult, manifest: EvidenceManifest
) -> list[_Judged]:
    metrics = stored.metrics
    allowed = TASK_METRICS[manifest.task]
    rows = int(metrics["rows"])
    candidate = {name: _number(value) for name, value in metrics.items() if name in allowed}
    champion = None
    if "champion" in metrics:
        scores = {name: _number(value) for name, value in metrics["champion"].items()}
        champion = (scores, str(metrics["champion_source"]))
    judged = []
    for rule in check.rules:
        metric = rule.metric if isinstance(rule, PerformanceRule) else rule.no_regression.metric
        severity = rule_severity(rule, check)
        if metric not in allowed:
            reason = f"{metric} does not apply to a {manifest.task} model: the check refuses it"
            judged.append(_Judged(reason=reason))
        elif metric not in candidate:
            scores_missing = " (the model gives no probabilities)" if metric == "roc_auc" else ""
            reason = f"{metric} was never recorded{scores_missing}: the check would refuse it"
            judged.append(_Judged(reason=reason))
        elif isinstance(rule, PerformanceRule):
            judged.append(
                _Judged(judge_performance_metric(rule, candidate[metric], rows, severity))
            )
        else:
            try:
                judged.append(_Judged(judge_no_regression(rule, candidate, champion, severity)))
            except InputError as exc:
                judged.append(_Judged(reason=f"{exc.message}: the check would refuse it"))
    return judged


def _drift(check: DriftCheck, stored: CheckResult, old_check: AnyCheck | None) -> list[_Judged]:
    metrics = stored.metrics
    drifts = [ColumnDrift(**column) for column in metrics["columns"]]
    by_name = {drift.column: drift for drift in drifts}
    if check.columns:
        absent = [column for column in check.columns if column not in by_name]
        if absent:
            reason = f"drift in {', '.join(absent)} was never tested: {RERUN}"
            return [_Judged(reason=reason)] * len(check.rules)
        tested = [by_name[column] for column in check.columns]
    else:
        # By default every feature of a testable kind. The stored columns are that set when
        # the old check tested by default too, or when it left no feature untested.
        untested = metrics.get("untested_columns") or []
        by_default = isinstance(old_check, DriftCheck) and not old_check.columns
        if untested and not by_default:
            reason = (
                f"the draft tests every feature, and {', '.join(untested)} were never "
                f"tested: {RERUN}"
            )
            return [_Judged(reason=reason)] * len(check.rules)
        tested = drifts
    share = len([drift for drift in tested if drift.drifted]) / len(tested)
    names = {drift.column for drift in tested}
    judged = []
    for rule in check.rules:
        if isinstance(rule, NoDriftInRule):
            untested = [c for c in rule.no_drift_in.columns if c not in names]
            if untested:
                reason = (
                    f"{', '.join(untested)} are not among the tested columns: the check "
                    "would refuse it"
                )
                judged.append(_Judged(reason=reason))
                continue
        judged.append(_Judged(judge_drift(rule, rule_severity(rule, check), tested, share)))
    return judged


def _data_quality(
    check: DataQualityCheck,
    stored: CheckResult,
    manifest: EvidenceManifest,
    pairs: list[tuple[Any, RuleOutcome]],
) -> list[_Judged]:
    table = [ColumnQuality(**column) for column in stored.metrics["columns"]]
    no_reference = manifest.artifact("reference") is None
    refused = "no reference data was given, and the check would refuse it without"
    judged = []
    for rule in check.rules:
        severity = rule_severity(rule, check)
        if isinstance(rule, SchemaMatchRule):
            if no_reference:
                judged.append(_Judged(reason=refused))
                continue
            parts, why = _stored_schema(pairs)
            if parts is None:
                judged.append(_Judged(reason=why))
            else:
                judged.append(_Judged(judge_schema(rule, severity, *parts)))
        elif rule.metric in NEEDS_REFERENCE and no_reference:
            judged.append(_Judged(reason=refused))
        else:
            judged.append(_Judged(judge_quality(rule, severity, table)))
    return judged


Schema = tuple[list[str], list[str], list[str]]


def _stored_schema(pairs: list[tuple[Any, RuleOutcome]]) -> tuple[Schema | None, str]:
    """The missing, extra and changed columns, read back from the stored schemaMatch
    outcome: those it failed on are its observed value, those it allowed its detail."""
    for old_rule, outcome in pairs:
        if not isinstance(old_rule, SchemaMatchRule) and outcome.rule != SCHEMA_RULE:
            continue
        parts = _parse_schema(outcome)
        if parts is not None and isinstance(old_rule, SchemaMatchRule):
            again = judge_schema(old_rule, outcome.severity, *parts)
            if (again.observed, again.detail) != (outcome.observed, outcome.detail):
                parts = None  # a column name that reads like our separators: do not guess
        if parts is not None:
            return parts, ""
        return None, f"the stored comparison of the columns cannot be read back: {RERUN}"
    return None, f"the columns were never compared with the reference's: {RERUN}"


def _parse_schema(outcome: RuleOutcome) -> Schema | None:
    segments: list[str] = []
    if outcome.observed != "match":
        if not isinstance(outcome.observed, str):
            return None
        segments += _segments(outcome.observed) or [""]
    if outcome.detail:
        if not outcome.detail.startswith(SCHEMA_ALLOWED):
            return None
        segments += _segments(outcome.detail[len(SCHEMA_ALLOWED) :]) or [""]
    found: dict[str, str] = {}
    for segment in segments:
        label = next((x for x in SCHEMA_LABELS if segment.startswith(f"{x}: ")), None)
        if label is None or label in found:
            return None
        found[label] = segment[len(label) + 2 :]
    missing, extra, changed = ([found[x]] if x in found else [] for x in SCHEMA_LABELS)
    return missing, extra, changed


def _segments(text: str) -> list[str]:
    """Split `label: names; label: names`, keeping a name that holds "; " whole."""
    segments: list[str] = []
    for piece in text.split("; "):
        if segments and not any(piece.startswith(f"{x}: ") for x in SCHEMA_LABELS):
            segments[-1] += f"; {piece}"
        else:
            segments.append(piece)
    return segments


def _explainability(
    check: ExplainabilityCheck,
    stored: CheckResult,
    manifest: EvidenceManifest,
    old_check: AnyCheck | None,
) -> list[_Judged]:
    metrics = stored.metrics
    ranks = {entry["feature"]: entry["rank"] for entry in metrics["ranking"]}
    problem = _sample_problem(check, metrics, manifest, old_check)
    if problem is not None:
        return [_Judged(reason=problem)] * len(check.rules)
    columns = _data_columns(manifest)
    judged = []
    for rule in check.rules:
        unknown = [
            feature
            for feature in rule.prohibited_in_top_k.features
            if feature not in ranks and (columns is None or feature not in columns)
        ]
        if unknown and columns is not None:
            reason = (
                f"{', '.join(unknown)} are neither model features nor data columns: the "
                "check would refuse it"
            )
            judged.append(_Judged(reason=reason))
        elif unknown:
            reason = f"{', '.join(unknown)} are not model features, and the data's columns "
            judged.append(_Judged(reason=reason + "were not recorded: " + RERUN))
        else:
            judged.append(_Judged(judge_prohibited(rule, ranks, rule_severity(rule, check))))
    return judged


def _sample_problem(
    check: ExplainabilityCheck,
    metrics: Mapping[str, Any],
    manifest: EvidenceManifest,
    old_check: AnyCheck | None,
) -> str | None:
    """The stored ranking is the draft's only when SHAP ran on the same rows (sample size,
    seed) against the same background (the model-agnostic explainer only)."""
    rows = _data_rows(manifest)
    if rows is not None:
        same_size = metrics["sample_size"] == min(check.sample_size, rows)
    else:
        same_size = (
            isinstance(old_check, ExplainabilityCheck)
            and old_check.sample_size == check.sample_size
        )
    background = metrics.get("background_size")
    same_background = metrics.get("explainer") == "TreeExplainer" or (
        background is not None
        and (
            min(background, rows) == min(check.background_size, rows)
            if rows is not None
            else background == check.background_size
        )
    )
    if same_size and metrics["seed"] == check.seed and same_background:
        return None
    return (
        f"the features were ranked by SHAP on {metrics['sample_size']:,} rows with seed "
        f"{metrics['seed']}; the draft asks for sampleSize {check.sample_size}, seed "
        f"{check.seed}, backgroundSize {check.background_size}: a re-run ranks them again"
    )
