"""Policy impact before adoption: for every model version currently approved, waived or
promoted, would a draft policy change its verdict? Reads the stored evidence and judges it
again under the draft (`governance.domain.impact`); runs no check and writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from governance.domain.evidence import EvidenceManifest
from governance.domain.impact import VersionImpact, impact_on
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.services.ports import UnitOfWorkFactory

ADMITTED_STATES: tuple[str, ...] = ("approved", "waived", "promoted")


@dataclass(frozen=True)
class NotCovered:
    """A version the draft would not judge: its pinned policy is for another risk tier, or
    its request for a target the draft does not apply to."""

    model: str
    version: str
    target: str
    state: str
    policy: str
    policy_version: int
    risk_tier: str
    reason: str
    request_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "target": self.target,
            "state": self.state,
            "policy": {"name": self.policy, "version": self.policy_version},
            "risk_tier": self.risk_tier,
            "reason": self.reason,
            "request_id": self.request_id,
        }


@dataclass(frozen=True)
class ImpactReport:
    draft_name: str
    draft_version: int
    draft_sha256: str
    risk_tier: str
    targets: list[str]
    states: tuple[str, ...]
    versions: list[VersionImpact]
    not_covered: list[NotCovered]

    @property
    def changed(self) -> list[VersionImpact]:
        return [version for version in self.versions if version.changed]

    @property
    def incomplete(self) -> list[VersionImpact]:
        """Versions with a check the old policy never ran or a value never computed."""
        return [version for version in self.versions if not version.complete]

    @property
    def exit_code(self) -> int:
        """0: adopting the draft surprises nobody; 1: a verdict changes, or the stored
        evidence cannot tell (a check or a value is missing)."""
        return 1 if self.changed or self.incomplete else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "draft": {
                "name": self.draft_name,
                "version": self.draft_version,
                "sha256": self.draft_sha256,
                "risk_tier": self.risk_tier,
                "targets": self.targets,
            },
            "states": list(self.states),
            "changed": len(self.changed),
            "incomplete": len(self.incomplete),
            "exit_code": self.exit_code,
            "versions": [version.as_dict() for version in self.versions],
            "not_covered": [version.as_dict() for version in self.not_covered],
        }


def policy_impact(
    units: UnitOfWorkFactory, draft: PromotionPolicy, states: Sequence[str] = ADMITTED_STATES
) -> ImpactReport:
    """Every promotion request in `states` with its pinned policy and evidence, judged again
    under the draft where the draft applies (same risk tier, target among its targets)."""
    tier, targets = draft.applies_to.risk_tier, draft.applies_to.targets
    versions: list[VersionImpact] = []
    not_covered: list[NotCovered] = []
    with units(read_only=True) as uow:  # nothing is added, nothing committed
        requests = uow.requests.with_evidence(states)
    for request in requests:
        policy = request.policy
        reason = _not_covered(policy.risk_tier, request.target, tier, targets)
        if reason is None and request.manifest is None:
            reason = "its request has no recorded decision to judge again"
        if reason is not None:
            not_covered.append(
                NotCovered(
                    model=request.model,
                    version=request.version,
                    target=request.target,
                    state=request.state,
                    policy=policy.name,
                    policy_version=policy.version,
                    risk_tier=policy.risk_tier,
                    reason=reason,
                    request_id=request.id,
                )
            )
            continue
        assert request.manifest is not None and request.decision_id is not None
        old = parse_policy(policy.document, f"stored policy {policy.name} v{policy.version}")
        versions.append(
            impact_on(
                draft,
                EvidenceManifest.model_validate(request.manifest),
                old,
                state=request.state,
                target=request.target,
                request_id=request.id,
                decision_id=request.decision_id,
            )
        )
    return ImpactReport(
        draft_name=draft.metadata.name,
        draft_version=draft.metadata.version,
        draft_sha256=draft.content_hash,
        risk_tier=tier,
        targets=list(targets),
        states=tuple(states),
        versions=versions,
        not_covered=not_covered,
    )


def _not_covered(
    risk_tier: str, target: str, draft_tier: str, draft_targets: list[str]
) -> str | None:
    if risk_tier != draft_tier:
        return f"its policy is for risk tier {risk_tier}; the draft for {draft_tier}"
    if target not in draft_targets:
        return f"it is for target {target}; the draft applies to {', '.join(draft_targets)}"
    return None
