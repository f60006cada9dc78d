"""`governance policy impact`: a draft policy judged on the stored evidence of versions
already approved or promoted. The key property: under an unchanged policy every stored
rule is judged again to the very same observed value and outcome — by hand-written
evidence, against the real checks on the demo, and against a real re-run under a draft."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pandas as pd
import pytest
import skops.io
import yaml
from sklearn.linear_model import LogisticRegression
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

import governance.connectors.files as files
from governance.cli import app
from governance.demo import Demo
from governance.domain.evidence import Artifact, EvidenceManifest, PolicyRef
from governance.domain.impact import VersionImpact, impact_on
from governance.domain.policy import PromotionPolicy, Severity, parse_policy
from governance.domain.results import CheckResult, RuleOutcome, Status, status_of
from governance.domain.verdict import Verdict, decide
from governance.services.gate import judge
from governance.services.impact import policy_impact
from governance.services.ports import GateRequest
from governance.store.repository import audit_trail, in_transaction, record_decision
from governance.store.tables import GateDecision, PromotionRequest
from governance.store.uow import SqlUnits

pytest_plugins = ["tests.db_fixtures"]
runner = CliRunner()
BLOCKING, WARNING = Severity.BLOCKING, Severity.WARNING
CHECK_TYPES = {"fairness", "explainability", "drift", "data_quality", "performance"}

# --- hand-built evidence: every check type, figures in the shape each check stores ---------

OLD = {
    "apiVersion": "governance/v1",
    "kind": "PromotionPolicy",
    "metadata": {"name": "impact-test", "version": 1},
    "appliesTo": {"riskTier": "medium", "targets": ["production"]},
    "checks": [
        {
            "id": "fairness",
            "type": "fairness",
            "sensitiveFeatures": ["sex", "race"],
            "intersectional": True,
            "minGroupSize": 30,
            "bootstrap": {"samples": 50, "seed": 3},
            "rules": [
                {"metric": "equalized_odds_difference", "max": 0.1},
                {"metric": "demographic_parity_ratio", "min": 0.8, "over": ["sex"]},
            ],
        },
        {
            "id": "shap",
            "type": "explainability",
            "sampleSize": 500,
            "seed": 7,
            "rules": [{"prohibitedInTopK": {"features": ["sex", "race"], "k": 2}}],
        },
        {
            "id": "drift",
            "type": "drift",
            "rules": [{"driftShare": {"max": 0.3}}, {"noDriftIn": {"columns": ["age"]}}],
        },
        {
            "id": "quality",
            "type": "data_quality",
            "rules": [
                {"schemaMatch": {}},
                {"metric": "missing_share", "max": 0.1},
                {"metric": "out_of_range_share", "max": 0.05},
            ],
        },
        {
            "id": "perf",
            "type": "performance",
            "rules": [
                {"metric": "roc_auc", "min": 0.8},
                {"noRegression": {"metric": "roc_auc", "tolerance": 0.01}},
            ],
        },
    ],
    "approvals": {"quorum": 1, "roles": ["model_risk_officer"], "expiresAfterDays": 365},
    "waivers": {"allowed": False},
}


def policy(document: dict[str, Any]) -> PromotionPolicy:
    return parse_policy(json.loads(json.dumps(document)))


def edited(document: dict[str, Any], check_id: str, **changes: Any) -> dict[str, Any]:
    """A copy of the policy document with one check's keys replaced (None removes one)."""
    copy = json.loads(json.dumps(document))
    check = next(c for c in copy["checks"] if c["id"] == check_id)
    for key, value in changes.items():
        if value is None:
            check.pop(key, None)
        else:
            check[key] = value
    copy["metadata"]["version"] += 1
    return copy


def report(features: list[str], groups: list[tuple[str, int]], **disparities: float) -> dict:
    """One grouping as the fairness check stores it."""
    return {
        "features": features,
        "groups": [
            {"label": label, "group": {}, "count": count, "excluded": False}
            for label, count in groups
        ],
        "demographic_parity_difference": 0.1,
        "demographic_parity_ratio": 0.9,
        "equalized_odds_difference": 0.05,
        "equalized_odds_ratio": 0.9,
        "equal_opportunity_difference": 0.05,
        "equal_opportunity_ratio": 0.9,
        **disparities,
    }


def rule(
    label: str,
    observed: float | str | None,
    threshold: str,
    passed: bool,
    severity: Severity = BLOCKING,
    detail: str = "",
    interval: tuple[float, float] | None = None,
) -> RuleOutcome:
    return RuleOutcome(
        rule=label,
        observed=observed,
        threshold=threshold,
        passed=passed,
        severity=severity,
        detail=detail,
        interval=interval,
    )


def result(check_id: str, kind: str, rules: list[RuleOutcome], metrics: dict) -> CheckResult:
    return CheckResult(
        id=check_id,
        type=kind,
        status=status_of(rules),
        summary="stored",
        rules=rules,
        metrics=metrics,
    )


FAIRNESS = result(
    "fairness",
    "fairness",
    [
        # worst of the three groupings it covers: sex × race
        rule(
            "equalized_odds_difference ≤ 0.1",
            0.095,
            "≤ 0.1",
            True,
            detail="worst over sex × race",
            interval=(0.05, 0.14),
        ),
        rule(
            "demographic_parity_ratio ≥ 0.8 over sex",
            0.85,
            "≥ 0.8",
            True,
            detail="worst over sex",
            interval=(0.7, 0.95),
        ),
    ],
    {
        "groupings": [
            report(
                ["sex"],
                [("sex=F", 400), ("sex=M", 600)],
                equalized_odds_difference=0.06,
                demographic_parity_ratio=0.85,
            ),
            report(
                ["race"],
                [("race=A", 500), ("race=B", 500)],
                equalized_odds_difference=0.09,
                demographic_parity_ratio=0.75,
            ),
            report(
                ["sex", "race"],
                [
                    ("sex=F, race=A", 200),
                    ("sex=F, race=B", 200),
                    ("sex=M, race=A", 300),
                    ("sex=M, race=B", 300),
                ],
                equalized_odds_difference=0.095,
                demographic_parity_ratio=0.7,
            ),
        ],
        "min_group_size": 30,
    },
)
SHAP = result(
    "shap",
    "explainability",
    [
        rule(
            "none of sex, race in the top 2 features by mean |SHAP|",
            3.0,
            "best rank > 2",
            True,
            detail="the highest-ranked prohibited feature, sex, is ranked 3",
        )
    ],
    {
        "explainer": "TreeExplainer",
        "sample_size": 500,
        "seed": 7,
        "background_size": None,
        "ranking": [
            {"feature": "x", "mean_abs_shap": 0.5, "rank": 1},
            {"feature": "age", "mean_abs_shap": 0.3, "rank": 2},
            {"feature": "sex", "mean_abs_shap": 0.1, "rank": 3},
        ],
    },
)


def drifted(column: str, statistic: float, drift: bool, kind: str = "numerical") -> dict:
    stattest = "wasserstein" if kind == "numerical" else "jensenshannon"
    return {
        "column": column,
        "kind": kind,
        "stattest": stattest,
        "statistic": statistic,
        "threshold": 0.1,
        "drifted": drift,
    }


DRIFT = result(
    "drift",
    "drift",
    [
        rule("share of drifted columns ≤ 0.3", 1 / 3, "≤ 0.3", False, detail="drifted: x"),
        rule(
            "no drift in age",
            "none drifted",
            "no drift",
            True,
            detail="age: wasserstein 0.05 (threshold 0.1)",
        ),
    ],
    {
        "drift_share": 1 / 3,
        "drifted_columns": ["x"],
        "tested_columns": 3,
        "untested_columns": [],
        "columns": [
            drifted("age", 0.05, False),
            drifted("x", 0.2, True),
            drifted("sex", 0.01, False, "categorical"),
        ],
    },
)
QUALITY = result(
    "quality",
    "data_quality",
    [
        rule(
            "columns and types match the reference",
            "match",
            "no missing columns, no type changes",
            True,
            detail="allowed by the policy: extra: notes, id",
        ),
        rule("missing_share ≤ 0.1", 0.05, "≤ 0.1", True, detail="sex has 5.00% missing values"),
        rule(
            "out_of_range_share ≤ 0.05",
            0.03,
            "≤ 0.05",
            True,
            detail="x has 3.00% of values outside the reference's range",
        ),
    ],
    {
        "rows": 1000,
        "columns": [
            {"column": "age", "kind": "numeric", "missing_share": 0.0, "out_of_range_share": 0.01},
            {"column": "x", "kind": "numeric", "missing_share": 0.02, "out_of_range_share": 0.03},
            {
                "column": "sex",
                "kind": "categorical",
                "missing_share": 0.05,
                "unseen_category_share": 0.0,
            },
        ],
    },
)
PERF = result(
    "perf",
    "performance",
    [
        rule("roc_auc ≥ 0.8", 0.88, "≥ 0.8", True, detail="roc_auc is 0.8800 on 1,000 rows"),
        rule(
            "roc_auc no worse than the champion by more than 0.01",
            0.88 - 0.875,  # candidate − champion
            "improvement over the champion ≥ -0.01",
            True,
            detail="roc_auc is 0.8800 against the champion's 0.8750 (recorded)",
        ),
    ],
    {
        "rows": 1000,
        "accuracy": 0.85,
        "f1": 0.7,
        "precision": 0.72,
        "recall": 0.68,
        "roc_auc": 0.88,
        "champion": {"roc_auc": 0.875},
        "champion_source": "recorded",
    },
)
# The drift share rule fails as a warning in the evidence below (see `stored_manifest`).
DRIFT = DRIFT.model_copy(
    update={
        "rules": [DRIFT.rules[0].model_copy(update={"severity": WARNING}), DRIFT.rules[1]],
        "status": Status.WARN,
    }
)
OLD["checks"][2]["rules"][0]["severity"] = "warning"


def stored_manifest(
    old: PromotionPolicy, results: list[CheckResult], reference: bool = True
) -> EvidenceManifest:
    artifacts = [
        Artifact(role="model", uri="file:///m.skops", sha256="0" * 64, format="skops"),
        Artifact(
            role="data",
            uri="file:///d.csv",
            sha256="1" * 64,
            format="csv",
            rows=1000,
            columns=["age", "x", "sex", "race", "age_group", "notes", "id", "y"],
        ),
    ]
    if reference:
        artifacts.append(
            Artifact(role="reference", uri="file:///r.csv", sha256="2" * 64, format="csv")
        )
    return EvidenceManifest(
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        model_name="credit",
        model_version="7",
        target="y",
        task="classification",
        policy=PolicyRef(
            name=old.metadata.name,
            version=old.metadata.version,
            risk_tier=old.applies_to.risk_tier,
            sha256=old.content_hash,
        ),
        artifacts=artifacts,
        libraries={},
        seeds={},
        results=results,
        decision=decide(results),
    )


@pytest.fixture
def old() -> PromotionPolicy:
    return policy(OLD)


@pytest.fixture
def evidence(old: PromotionPolicy) -> EvidenceManifest:
    return stored_manifest(old, [FAIRNESS, SHAP, DRIFT, QUALITY, PERF])


def row(impact: VersionImpact, check_id: str, label: str):
    """The one row of this check whose label is `label`, else the one that starts so."""
    rows = [r for r in impact.rules if r.check_id == check_id]
    exact = [r for r in rows if r.rule == label]
    [found] = exact or [r for r in rows if r.rule.startswith(label)]
    return found


def test_an_unchanged_policy_judges_every_stored_rule_the_same(
    old: PromotionPolicy, evidence: EvidenceManifest
) -> None:
    assert evidence.decision.verdict is Verdict.PASS  # with the drift warning
    impact = impact_on(old, evidence, old, state="approved")
    assert impact.complete, (impact.missing_checks, impact.needs_rerun)
    stored = [(r.id, o) for r in evidence.results for o in r.rules]
    assert [(r.check_id, r.stored) for r in impact.rules] == stored
    for judged in impact.rules:
        # observed value, threshold, outcome, severity, detail and interval: all the same
        assert judged.outcome == judged.stored, judged.rule
        assert not judged.flipped
    assert (impact.old_verdict, impact.new_verdict, impact.changed) == (
        Verdict.PASS,
        Verdict.PASS,
        False,
    )
    assert impact.decision is not None
    assert [w.rule.rule for w in impact.decision.warnings] == ["share of drifted columns ≤ 0.3"]
    assert (impact.model, impact.version, impact.state) == ("credit", "7", "approved")
    assert (impact.old_policy, impact.old_policy_version) == ("impact-test", 1)

    # Without the old policy, rules are matched by label; only the bootstrap intervals,
    # whose settings the evidence does not hold, are not vouched for.
    blind = impact_on(old, evidence)
    assert blind.new_verdict is Verdict.PASS
    assert {(r.check_id, r.affects_verdict) for r in blind.needs_rerun} == {("fairness", False)}
    for judged in blind.rules:
        assert judged.outcome is not None and judged.stored is not None
        assert judged.outcome.model_copy(update={"interval": None}) == judged.stored.model_copy(
            update={"interval": None}
        )


def test_tightening_a_performance_threshold_blocks(
    old: PromotionPolicy, evidence: EvidenceManifest
) -> None:
    rules = [{"metric": "roc_auc", "min": 0.9}, OLD["checks"][4]["rules"][1]]
    impact = impact_on(policy(edited(OLD, "perf", rules=rules)), evidence, old)
    assert (impact.old_verdict, impact.new_verdict, impact.changed) == (
        Verdict.PASS,
        Verdict.BLOCKED,
        True,
    )
    [flip] = impact.flipped
    assert (flip.check_id, flip.rule, flip.observed) == ("perf", "roc_auc ≥ 0.9", 0.88)
    assert flip.stored is not None and flip.stored.rule == "roc_auc ≥ 0.8"  # the same rule
    assert (flip.old, flip.new, flip.severity) == (Status.PASS, Status.FAIL, BLOCKING)
    assert impact.complete


def test_loosening_a_threshold_passes_and_a_warning_does_not_block(
    evidence: EvidenceManifest,
) -> None:
    strict_document = edited(OLD, "perf", rules=[{"metric": "roc_auc", "min": 0.9}])
    strict = policy(strict_document)
    failed = rule("roc_auc ≥ 0.9", 0.88, "≥ 0.9", False, detail="roc_auc is 0.8800 on 1,000 rows")
    perf = result("perf", "performance", [failed], PERF.metrics)
    blocked = stored_manifest(strict, [FAIRNESS, SHAP, DRIFT, QUALITY, perf])
    assert blocked.decision.verdict is Verdict.BLOCKED

    loosened = policy(edited(strict_document, "perf", rules=[{"metric": "roc_auc", "min": 0.85}]))
    impact = impact_on(loosened, blocked, strict, state="waived")
    assert (impact.old_verdict, impact.new_verdict, impact.changed) == (
        Verdict.BLOCKED,
        Verdict.PASS,
        True,
    )
    [flip] = impact.flipped
    assert (flip.rule, flip.old, flip.new) == ("roc_auc ≥ 0.85", Status.FAIL, Status.PASS)

    warned = [{"metric": "roc_auc", "min": 0.9, "severity": "warning"}]
    impact = impact_on(policy(edited(strict_document, "perf", rules=warned)), blocked, strict)
    assert (impact.new_verdict, impact.changed) == (Verdict.PASS, True)
    [flip] = impact.flipped
    assert (flip.rule, flip.old, flip.new, flip.severity) == (
        "roc_auc ≥ 0.9",
        Status.FAIL,
        Status.WARN,
        WARNING,
    )
    # The same again through the check's severity rather than the rule's.
    impact = impact_on(policy(edited(strict_document, "perf", severity="warning")), blocked, strict)
    assert (impact.new_verdict, [f.new for f in impact.flipped]) == (Verdict.PASS, [Status.WARN])

    # Dropping the failing check altogether passes too: its rules no longer count.
    document = json.loads(json.dumps(strict_document))
    document["checks"] = [c for c in document["checks"] if c["id"] != "perf"]
    impact = impact_on(policy(document), blocked, strict)
    assert impact.new_verdict is Verdict.PASS
    [flip] = impact.flipped
    assert (flip.check_id, flip.dropped, flip.old, flip.new) == (
        "perf",
        True,
        Status.FAIL,
        None,
    )


def test_a_check_the_old_policy_never_ran_is_missing(old: PromotionPolicy) -> None:
    only_perf = {**OLD, "checks": [OLD["checks"][4]]}
    previous = policy(only_perf)
    evidence = stored_manifest(previous, [PERF])
    impact = impact_on(old, evidence, previous, state="promoted")
    assert [(m.check_id, m.type) for m in impact.missing_checks] == [
        ("fairness", "fairness"),
        ("shap", "explainability"),
        ("drift", "drift"),
        ("quality", "data_quality"),
    ]
    assert impact.missing_checks[0].reason == "the old policy ran no fairness check"
    assert (impact.new_verdict, impact.changed, impact.complete) == (None, False, False)
    perf = [r for r in impact.rules if r.check_id == "perf"]
    assert all(r.outcome == r.stored for r in perf) and len(perf) == 2  # still judged

    # A check renamed in the draft is still found by its type.
    renamed = {**only_perf, "checks": [{**OLD["checks"][4], "id": "performance"}]}
    impact = impact_on(policy(renamed), evidence, previous)
    assert impact.complete and impact.new_verdict is Verdict.PASS
    assert [r.outcome == r.stored for r in impact.rules] == [True, True]


def test_a_grouping_never_computed_needs_a_rerun(
    old: PromotionPolicy, evidence: EvidenceManifest
) -> None:
    fairness = OLD["checks"][0]
    draft = edited(
        OLD,
        "fairness",
        sensitiveFeatures=["sex", "race", "age_group"],
        intersectional=False,
        rules=[
            *fairness["rules"][1:],
            {"metric": "equalized_odds_difference", "max": 0.1, "over": ["age_group"]},
        ],
    )
    impact = impact_on(policy(draft), evidence, old)
    assert impact.new_verdict is None and not impact.changed and not impact.complete
    [rerun] = impact.needs_rerun
    assert (rerun.check_id, rerun.rule, rerun.affects_verdict) == (
        "fairness",
        "equalized_odds_difference ≤ 0.1 over age_group",
        True,
    )
    assert rerun.reason == "the grouping age_group was never computed: a re-run computes it"
    judged = row(impact, "fairness", "equalized_odds_difference ≤ 0.1 over age_group")
    assert (judged.outcome, judged.observed, judged.new) == (None, None, None)
    dropped = row(impact, "fairness", "equalized_odds_difference ≤ 0.1")  # over every grouping
    assert dropped.dropped and dropped.stored == FAIRNESS.rules[0] and not dropped.flipped
    # the rule over sex was computed: still judged, interval and all
    kept = row(impact, "fairness", "demographic_parity_ratio")
    assert kept.outcome == kept.stored


def test_fairness_rules_are_judged_on_the_worst_covered_grouping(
    old: PromotionPolicy, evidence: EvidenceManifest
) -> None:
    rules = [
        {"metric": "equalized_odds_difference", "max": 0.08, "over": ["race"]},
        {"metric": "demographic_parity_ratio", "min": 0.72},  # every grouping: worst 0.7
    ]
    impact = impact_on(policy(edited(OLD, "fairness", rules=rules)), evidence, old)
    race = row(impact, "fairness", "equalized_odds_difference ≤ 0.08 over race")
    assert race.outcome is not None
    assert (race.observed, race.new, race.outcome.detail) == (0.09, Status.FAIL, "worst over race")
    parity = row(impact, "fairness", "demographic_parity_ratio ≥ 0.72")
    assert parity.outcome is not None
    assert (parity.observed, parity.new, parity.outcome.detail) == (
        0.7,
        Status.FAIL,
        "worst over sex × race",
    )
    assert impact.new_verdict is Verdict.BLOCKED
    # No stored interval of these metrics over these groupings: reported, not guessed.
    assert {(r.rule, r.affects_verdict) for r in impact.needs_rerun} == {
        (race.rule, False),
        (parity.rule, False),
    }

    # A minGroupSize that leaves a group out changes the disparities: re-run.
    impact = impact_on(
        policy(edited(OLD, "fairness", minGroupSize=250, smallGroups="exclude")), evidence, old
    )
    assert impact.new_verdict is None
    assert "minGroupSize 250 leaves out sex=F, race=A (200 rows)" in impact.needs_rerun[0].reason
    impact = impact_on(policy(edited(OLD, "fairness", minGroupSize=250)), evidence, old)
    assert "the check would stop the gate" in impact.needs_rerun[0].reason
    # Other bootstrap settings: the verdict stands, the intervals need a re-run.
    impact = impact_on(policy(edited(OLD, "fairness", bootstrap={"samples": 99})), evidence, old)
    assert impact.new_verdict is Verdict.PASS and not impact.changed
    assert [r.affects_verdict for r in impact.needs_rerun] == [False, False]


def test_the_other_rule_kinds_are_judged_again(
    old: PromotionPolicy, evidence: EvidenceManifest
) -> None:
    # drift over fewer columns: the share is recomputed over them
    draft = edited(
        OLD,
        "drift",
        columns=["age", "sex"],
        rules=[{"driftShare": {"max": 0.3}}, {"noDriftIn": {"columns": ["sex"]}}],
    )
    impact = impact_on(policy(draft), evidence, old)
    share = row(impact, "drift", "share")
    assert (share.observed, share.old, share.new) == (0.0, Status.WARN, Status.PASS)
    assert share.flipped and impact.new_verdict is Verdict.PASS and not impact.changed
    assert row(impact, "drift", "no drift in sex").observed == "none drifted"
    impact = impact_on(policy(edited(OLD, "drift", columns=["age", "y"])), evidence, old)
    assert impact.needs_rerun[0].reason == "drift in y was never tested: a re-run computes it"

    # schemaMatch read back from the stored outcome: the extra columns now fail
    rules = [{"schemaMatch": {"allowExtraColumns": False}}, *OLD["checks"][3]["rules"][1:]]
    impact = impact_on(policy(edited(OLD, "quality", rules=rules)), evidence, old)
    schema = row(impact, "quality", "columns")
    assert schema.outcome is not None
    assert (schema.observed, schema.old, schema.new) == (
        "extra: notes, id",
        Status.PASS,
        Status.FAIL,
    )
    assert schema.outcome.threshold == "no missing columns, no extra columns, no type changes"
    assert impact.new_verdict is Verdict.BLOCKED
    rules = [
        {"metric": "missing_share", "max": 0.01},
        {"metric": "unseen_category_share", "max": 0},
    ]
    impact = impact_on(policy(edited(OLD, "quality", rules=rules)), evidence, old)
    missing = row(impact, "quality", "missing_share")
    assert (missing.observed, missing.new) == (0.05, Status.FAIL)
    assert row(impact, "quality", "unseen").observed == 0.0
    no_reference = stored_manifest(old, [QUALITY], reference=False)
    impact = impact_on(policy(edited(OLD, "quality", rules=rules)), no_reference, old)
    assert "no reference data" in impact.needs_rerun[0].reason  # unseen_category_share

    # explainability: k is a threshold; another sample is another ranking
    rules = [{"prohibitedInTopK": {"features": ["sex", "race"], "k": 3}}]
    impact = impact_on(policy(edited(OLD, "shap", rules=rules)), evidence, old)
    [flip] = impact.flipped
    assert (flip.observed, flip.old, flip.new) == (3.0, Status.PASS, Status.FAIL)
    assert flip.outcome is not None and flip.outcome.detail == "sex is ranked 3 of 3"
    impact = impact_on(policy(edited(OLD, "shap", sampleSize=2000)), evidence, old)
    assert (
        impact.new_verdict is None and "a re-run ranks them again" in impact.needs_rerun[0].reason
    )
    rules = [{"prohibitedInTopK": {"features": ["zip"], "k": 3}}]
    impact = impact_on(policy(edited(OLD, "shap", rules=rules)), evidence, old)
    assert "neither model features nor data columns" in impact.needs_rerun[0].reason

    # performance: a metric never recorded, a champion without it, a regression metric
    rules = [{"noRegression": {"metric": "accuracy"}}]
    impact = impact_on(policy(edited(OLD, "perf", rules=rules)), evidence, old)
    assert impact.needs_rerun[0].reason == (
        "champion: its recorded metrics have no accuracy. Fix: record the champion's accuracy, "
        "or give its predictions on the same data: the check would refuse it"
    )
    rules = [{"metric": "rmse", "max": 1}]
    impact = impact_on(policy(edited(OLD, "perf", rules=rules)), evidence, old)
    assert "rmse does not apply to a classification model" in impact.needs_rerun[0].reason
    rules = [{"noRegression": {"metric": "roc_auc", "tolerance": 0}}]
    impact = impact_on(policy(edited(OLD, "perf", rules=rules)), evidence, old)
    regression = row(impact, "perf", "roc_auc no worse")
    assert (regression.observed, regression.new) == (0.88 - 0.875, Status.PASS)


# --- against the real checks ---------------------------------------------------------------


def assert_judged_the_same(impact: VersionImpact, manifest: EvidenceManifest) -> None:
    assert impact.complete, (impact.missing_checks, impact.needs_rerun)
    stored = [(r.id, o) for r in manifest.results for o in r.rules]
    assert [(r.check_id, r.stored) for r in impact.rules] == stored
    for judged in impact.rules:
        assert judged.outcome is not None and judged.stored is not None, judged.rule
        assert judged.outcome.observed == judged.stored.observed, judged.rule
        assert judged.outcome.passed == judged.stored.passed, judged.rule
        assert judged.outcome == judged.stored, judged.rule  # detail, interval: everything
    assert impact.new_verdict is manifest.decision.verdict and not impact.changed


def test_the_demo_is_judged_again_exactly_as_the_checks_judged_it(
    fast_demo: Demo,
) -> None:
    runs = fast_demo.runs
    own = files.load_policy(fast_demo.settings.policies / "high.yaml")  # what the demo is judged by
    for run in runs:
        manifest = run.manifest
        assert manifest is not None and manifest.policy.sha256 == own.content_hash
        assert {r.type for r in manifest.results} == CHECK_TYPES
        assert_judged_the_same(impact_on(own, manifest, own), manifest)
        # as stored in the database: through JSON and back
        stored = EvidenceManifest.model_validate(
            json.loads(json.dumps(manifest.model_dump(mode="json")))
        )
        assert_judged_the_same(impact_on(own, stored, own), manifest)

    manifest = next(r.manifest for r in runs if r.manifest.decision.verdict is Verdict.PASS)
    perf = next(r for r in manifest.results if r.type == "performance")
    auc = next(o for o in perf.rules if o.rule.startswith("roc_auc ≥"))
    assert isinstance(auc.observed, float)
    document = own.model_dump(mode="json", by_alias=True, exclude_none=True)
    tightened = round(math.ceil(auc.observed * 100) / 100 + 0.01, 2)
    check = next(c for c in document["checks"] if c["type"] == "performance")
    check["rules"][0]["min"] = tightened
    impact = impact_on(parse_policy(document), manifest, own)
    assert (impact.old_verdict, impact.new_verdict, impact.changed) == (
        Verdict.PASS,
        Verdict.BLOCKED,
        True,
    )
    [flip] = impact.flipped
    assert (flip.rule, flip.observed, flip.old, flip.new) == (
        f"roc_auc ≥ {tightened:g}",
        auc.observed,
        Status.PASS,
        Status.FAIL,
    )


SMALL = """
apiVersion: governance/v1
kind: PromotionPolicy
metadata: {name: impact-small, version: 1}
appliesTo: {riskTier: medium, targets: [production]}
checks:
  - {id: fairness, type: fairness, sensitiveFeatures: [sex, race], intersectional: true,
     minGroupSize: 10, smallGroups: exclude, bootstrap: {samples: 20, seed: 1},
     rules: [{metric: equalized_odds_difference, max: 0.5},
             {metric: demographic_parity_ratio, min: 0.1, over: [sex]},
             {metric: equal_opportunity_ratio, min: 0, over: [sex, race], severity: warning}]}
  - {id: shap, type: explainability, sampleSize: 15, backgroundSize: 10, seed: 2,
     rules: [{prohibitedInTopK: {features: [x], k: 1}, severity: warning},
             {prohibitedInTopK: {features: [sex], k: 2}}]}
  - {id: drift, type: drift,
     rules: [{driftShare: {max: 0.5}}, {noDriftIn: {columns: [age]}, severity: warning}]}
  - {id: quality, type: data_quality,
     rules: [{schemaMatch: {allowExtraColumns: true, allowDtypeChanges: true}},
             {metric: missing_share, max: 0.5}, {metric: out_of_range_share, max: 0.5},
             {metric: unseen_category_share, max: 0.5}]}
  - {id: perf, type: performance,
     rules: [{metric: roc_auc, min: 0.5}, {metric: accuracy, min: 0.5},
             {metric: f1, max: 1.0, severity: warning},
             {noRegression: {metric: roc_auc, tolerance: 0.05}}]}
approvals: {quorum: 1, roles: [model_risk_officer], expiresAfterDays: 365}
waivers: {allowed: false}
"""


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "x": rng.normal(size=rows).round(6),
            "z": rng.normal(size=rows).round(6),
            "sex": rng.choice(["F", "M"], rows),
            "race": rng.choice(["A", "B", "C"], rows),
        }
    )
    frame["label"] = (frame["x"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return frame


class Small:
    """A logistic regression judged for real on 300 generated rows under SMALL; the data
    has an extra column and a column whose kind changed, for schemaMatch."""

    def __init__(self, directory: Path) -> None:
        train, test = _frame(400, 1), _frame(300, 2)
        train["code"] = "c" + (train.index % 3).astype(str)
        test["code"] = test.index % 3
        test["notes"] = "n"
        train.to_csv(directory / "train.csv", index=False)
        test.to_csv(directory / "test.csv", index=False)
        model = LogisticRegression().fit(train[["age", "x", "z"]], train["label"])
        skops.io.dump(model, directory / "model.skops")
        (directory / "champion.json").write_text(json.dumps({"roc_auc": 0.8, "accuracy": 0.7}))
        self.directory = directory
        self.policy_path = directory / "policy.yaml"
        self.policy_path.write_text(SMALL)
        self.policy = files.load_policy(self.policy_path)
        self.request = GateRequest(
            policy=self.policy_path,
            data=directory / "test.csv",
            reference=directory / "train.csv",
            champion=directory / "champion.json",
            model=directory / "model.skops",
            target="label",
            model_name="small",
            model_version="1",
        )
        self.manifest = self.judge(self.policy)

    def judge(self, policy: PromotionPolicy) -> EvidenceManifest:
        return judge(policy, self.request, files)

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = yaml.safe_load(SMALL)
        return document


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Small:
    return Small(tmp_path_factory.mktemp("impact-small"))


def test_every_rule_kind_is_judged_again_as_the_checks_judged_it(small: Small) -> None:
    manifest = small.manifest
    quality = next(r for r in manifest.results if r.type == "data_quality")
    assert quality.rules[0].detail == (
        "allowed by the policy: extra: notes; type changed: code categorical → numeric"
    )
    stored = EvidenceManifest.model_validate(
        json.loads(json.dumps(manifest.model_dump(mode="json")))
    )
    assert_judged_the_same(impact_on(small.policy, stored, small.policy), manifest)


def test_a_draft_is_judged_as_a_real_rerun_would_judge_it(small: Small) -> None:
    """The draft's outcomes from the stored figures are those of running its checks."""
    document = small.document()
    fairness, shap, drift, quality, perf = document["checks"]
    fairness["rules"] = [
        {"metric": "equalized_odds_difference", "max": 0.2, "over": ["race"]},
        {"metric": "demographic_parity_difference", "max": 0.05, "severity": "warning"},
        {"metric": "equal_opportunity_ratio", "min": 0, "over": ["sex", "race"]},
    ]
    shap["rules"] = [{"prohibitedInTopK": {"features": ["z", "age"], "k": 2}}]
    drift["columns"] = ["x", "age"]
    drift["rules"] = [{"driftShare": {"max": 0.0}}, {"noDriftIn": {"columns": ["x"]}}]
    quality["rules"] = [
        {"schemaMatch": {"allowExtraColumns": False}},
        {"metric": "out_of_range_share", "max": 0.001, "severity": "warning"},
    ]
    perf["severity"] = "warning"
    perf["rules"] = [
        {"metric": "roc_auc", "min": 0.99},
        {"noRegression": {"metric": "roc_auc", "tolerance": 0.0}, "severity": "blocking"},
        {"metric": "precision", "min": 0.2},
    ]
    draft = parse_policy(document)
    impact = impact_on(draft, small.manifest, small.policy)
    rerun = small.judge(draft)
    assert impact.new_verdict is rerun.decision.verdict
    assert impact.decision is not None
    assert impact.decision.summary == rerun.decision.summary
    judged = {(r.check_id, r.rule): r for r in impact.rules if r.outcome is not None}
    truth = {(r.id, o.rule): o for r in rerun.results for o in r.rules}
    assert judged.keys() == truth.keys()
    noted = {(n.check_id, n.rule) for n in impact.needs_rerun}
    assert all(not n.affects_verdict for n in impact.needs_rerun)
    for key, expected in truth.items():
        got = judged[key].outcome
        assert got is not None
        if key in noted:  # a bootstrap interval never computed: everything else the same
            assert got == expected.model_copy(update={"interval": None}), key
        else:
            assert got == expected, key
    assert ("fairness", "equal_opportunity_ratio ≥ 0 over sex × race") not in noted  # reused
    assert {s for r in impact.rules if r.flipped for s in [r.check_id]} >= {"perf", "quality"}


# --- the service and the command, on SQLite and PostgreSQL ---------------------------------


def admit(
    engine: Engine,
    manifest: EvidenceManifest,
    policy: PromotionPolicy,
    state: str,
    target: str = "production",
) -> str:
    """Record a decision and a promotion request in `state` for it, in one transaction (the
    workflow would get there through checks and signatures)."""

    def work(session: Session) -> str:
        decision_id = record_decision(session, manifest, policy, "test")
        decision = session.get(GateDecision, decision_id)
        assert decision is not None
        request = PromotionRequest(
            id=str(uuid4()),
            model_version_id=decision.model_version_id,
            target=target,
            policy_id=decision.policy_id,
            submitter="dana",
            state=state,
            decision_id=decision_id,
            inputs={},
        )
        session.add(request)
        return request.id

    return in_transaction(engine, work)


def cli(*arguments: str) -> tuple[int, str]:
    """Exit code and output, with the table's lines and the spacing taken out."""
    outcome = runner.invoke(app, ["policy", "impact", *arguments])
    text = "".join(" " if "\u2500" <= c <= "\u257f" else c for c in outcome.output)
    return outcome.exit_code, " ".join(text.split())


@pytest.fixture
def admitted(engine: Engine, small: Small) -> Engine:
    """small@1 approved, small@2 promoted, small@3 blocked, and other@1 (a low-tier model)
    approved."""
    manifest = small.manifest
    for version, state in (("1", "approved"), ("2", "promoted"), ("3", "blocked")):
        admit(engine, manifest.model_copy(update={"model_version": version}), small.policy, state)
    low = parse_policy(
        {
            **small.document(),
            "metadata": {"name": "impact-low", "version": 1},
            "appliesTo": {"riskTier": "low", "targets": ["production"]},
        }
    )
    ref = PolicyRef(name="impact-low", version=1, risk_tier="low", sha256=low.content_hash)
    other = manifest.model_copy(update={"model_name": "other", "policy": ref})
    admit(engine, other, low, "approved")
    return engine


def test_the_service_judges_admitted_versions_the_draft_covers(
    admitted: Engine, small: Small
) -> None:
    events = len(audit_trail(admitted))
    report = policy_impact(SqlUnits(admitted), small.policy)
    assert [(v.model, v.version, v.state) for v in report.versions] == [
        ("small", "1", "approved"),
        ("small", "2", "promoted"),
    ]
    for version in report.versions:
        assert_judged_the_same(version, small.manifest)
        assert version.target == "production" and version.decision_id is not None
    [other] = report.not_covered
    assert (other.model, other.risk_tier) == ("other", "low")
    assert other.reason == "its policy is for risk tier low; the draft for medium"
    assert report.exit_code == 0
    assert (
        policy_impact(SqlUnits(admitted), small.policy, states=("blocked",)).versions[0].version
        == "3"
    )
    assert len(audit_trail(admitted)) == events  # read only


def test_the_command_gates_a_policy_change(
    admitted: Engine, database_url: str, small: Small, tmp_path: Path
) -> None:
    code, output = cli(str(small.policy_path), "--database", database_url)
    assert code == 0, output
    assert "small@1" in output and "small@2" in output and "small@3" not in output
    assert "pass → pass same" in output
    assert "0 of 2 verdict(s) would change" in output
    assert "no verdict would change" in output
    assert "Not covered by the draft:" in output
    assert (
        "other@1 (production, approved, impact-low v1): its policy is for risk tier low" in output
    )

    perf = next(r for r in small.manifest.results if r.type == "performance")
    auc = perf.rules[0].observed
    assert isinstance(auc, float)
    document = small.document()
    document["metadata"]["version"] = 2
    document["checks"][4]["rules"][0]["min"] = round(auc + 0.05, 2)
    tightened = tmp_path / "tightened.yaml"
    tightened.write_text(yaml.safe_dump(document))
    report_path = tmp_path / "impact.json"
    code, output = cli(str(tightened), "--database", database_url, "--json", str(report_path))
    assert code == 1, output
    assert "small@1" in output and "pass → blocked CHANGED" in output
    assert f"perf: roc_auc ≥ {round(auc + 0.05, 2):g} (observed {auc:.4g}) pass → FAIL" in output
    assert "adopting the draft changes 2 verdict(s)" in output
    written = json.loads(report_path.read_text())
    assert (written["changed"], written["exit_code"]) == (2, 1)
    assert [
        (v["model"], v["version"], v["old_verdict"], v["new_verdict"]) for v in written["versions"]
    ] == [("small", "1", "pass", "blocked"), ("small", "2", "pass", "blocked")]
    assert written["not_covered"][0]["model"] == "other"

    # A version judged under a leaner policy of the same tier: the checks it never ran.
    lean = parse_policy(
        {
            **small.document(),
            "metadata": {"name": "impact-lean", "version": 1},
            "checks": small.document()["checks"][2:3] + small.document()["checks"][4:],
        }
    )
    results = [r for r in small.manifest.results if r.type in ("drift", "performance")]
    ref = PolicyRef(name="impact-lean", version=1, risk_tier="medium", sha256=lean.content_hash)
    judged = small.manifest.model_copy(
        update={
            "model_name": "lean",
            "policy": ref,
            "results": results,
            "decision": decide(results),
        }
    )
    admit(admitted, judged, lean, "approved")
    code, output = cli(str(small.policy_path), "--database", database_url)
    assert code == 1, output
    assert "lean@1" in output and "pass → ? RE-RUN" in output
    assert "Versions that need a check the old policy never ran:" in output
    for check, kind in (("fairness", "fairness"), ("shap", "explainability")):
        assert f"lean@1 (production): {check} ({kind}) — the old policy ran no {kind} check" in (
            output
        )
    assert "0 of 3 verdict(s) would change; 1 version(s) need" in output
    assert "the stored evidence cannot tell: re-run the checks" in output


def test_a_bad_draft_is_refused_like_policy_validate(
    admitted: Engine, database_url: str, small: Small, tmp_path: Path
) -> None:
    document = small.document()
    document["checks"][4]["rules"][0]["min"] = "high"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    code, output = cli(str(bad), "--database", database_url)
    assert code == 2
    assert "checks[4].rules[0].min: must be a number, not 'high'" in output
    validated = runner.invoke(app, ["policy", "validate", str(bad)])
    assert validated.exit_code == 2
    assert runner.invoke(app, ["policy", "impact", str(bad)]).output == validated.output

    code, output = cli(str(tmp_path / "absent.yaml"), "--database", database_url)
    assert code == 2 and "absent.yaml" in output
    code, output = cli(str(small.policy_path), "--database", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "has no schema" in output
