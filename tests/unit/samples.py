"""Hand-built policies, evidence and stored records for the unit tests: one performance
check, so a verdict turns on one number."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from governance.domain.evidence import Artifact, EvidenceManifest, PolicyRef
from governance.domain.policy import PromotionPolicy, Severity, ThresholdRule, parse_policy
from governance.domain.records import (
    RequestView,
    RequestWithEvidence,
    StoredDecision,
    StoredPolicy,
)
from governance.domain.results import CheckResult, RuleOutcome, status_of
from governance.domain.verdict import decide


def policy(
    version: int = 1, minimum: float = 0.8, tier: str = "medium", targets: tuple[str, ...] = ()
) -> PromotionPolicy:
    return parse_policy(
        {
            "apiVersion": "governance/v1",
            "kind": "PromotionPolicy",
            "metadata": {"name": "unit", "version": version},
            "appliesTo": {"riskTier": tier, "targets": list(targets or ("production",))},
            "checks": [
                {
                    "id": "perf",
                    "type": "performance",
                    "rules": [{"metric": "roc_auc", "min": minimum}],
                }
            ],
            "approvals": {"quorum": 1, "roles": ["model_risk_officer"], "expiresAfterDays": 365},
            "waivers": {"allowed": False},
        }
    )


def stored(pinned: PromotionPolicy) -> StoredPolicy:
    return StoredPolicy(
        name=pinned.metadata.name,
        version=pinned.metadata.version,
        risk_tier=pinned.applies_to.risk_tier,
        sha256=pinned.content_hash,
        document=json.loads(pinned.canonical_json()),
    )


def manifest(pinned: PromotionPolicy, roc_auc: float, version: str = "1") -> EvidenceManifest:
    [check] = pinned.checks
    [threshold] = check.rules
    assert isinstance(threshold, ThresholdRule) and threshold.min is not None
    minimum = threshold.min
    rules = [
        RuleOutcome(
            rule=threshold.label,
            observed=roc_auc,
            threshold=f"≥ {minimum:g}",
            passed=roc_auc >= minimum,
            severity=Severity.BLOCKING,
        )
    ]
    results = [
        CheckResult(
            id="perf",
            type="performance",
            status=status_of(rules),
            summary="stored",
            rules=rules,
            metrics={"rows": 1000, "roc_auc": roc_auc},
        )
    ]
    return EvidenceManifest(
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        model_name="credit",
        model_version=version,
        target="y",
        task="classification",
        policy=PolicyRef(
            name=pinned.metadata.name,
            version=pinned.metadata.version,
            risk_tier=pinned.applies_to.risk_tier,
            sha256=pinned.content_hash,
        ),
        artifacts=[
            Artifact(role="model", uri="file:///m.skops", sha256="0" * 64, format="skops"),
            Artifact(role="data", uri="file:///d.csv", sha256="1" * 64, format="csv"),
        ],
        libraries={},
        seeds={},
        results=results,
        decision=decide(results),
    )


def decision(evidence: EvidenceManifest, pinned: PromotionPolicy, id: str) -> StoredDecision:
    return StoredDecision(
        id=id,
        manifest=evidence.model_dump(mode="json"),
        manifest_sha256=evidence.sha256,
        policy=stored(pinned),
    )


def request(
    pinned: PromotionPolicy,
    evidence: EvidenceManifest | None,
    state: str = "approved",
    target: str = "production",
    id: str = "r1",
) -> RequestWithEvidence:
    document: dict[str, Any] | None = evidence.model_dump(mode="json") if evidence else None
    return RequestWithEvidence(
        id=id,
        state=state,
        target=target,
        model=evidence.model_name if evidence else "credit",
        version=evidence.model_version if evidence else "9",
        policy=stored(pinned),
        decision_id=f"d-{id}" if evidence else None,
        manifest=document,
    )


# --- the workflow's view of a request ---


def request_view(id: str = "r1", state: str = "approved", **changes: Any) -> RequestView:
    """A request as `Workflow.get_request` shows it: credit v1 for production, submitted by
    sam, with no evidence, signature, waiver or decision unless `changes` give them."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    view = RequestView(
        id=id,
        model="credit",
        version="1",
        risk_tier="medium",
        target="production",
        state=state,
        state_reason=None,
        submitter="sam",
        submitter_person="sam",
        policy=stored(policy()),
        artifact_sha256="a" * 64,
        expires_at=None,
        created_at=at,
        updated_at=at,
        owner="olga",
        verdict=None,
        decision_summary=None,
        gate_decision_id=None,
        evidence_sha256=None,
        checks=[],
        evidence={"source": "computed by the service", "mismatches": []},
        approval_rules={},
        signatures=(),
        waiver=None,
        decisions=(),
    )
    return replace(view, **changes)
