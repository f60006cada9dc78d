"""The policies the service applies: every YAML file in the policies directory, validated
when the service starts, so a broken policy stops the start instead of a request."""

from __future__ import annotations

from pathlib import Path

from governance.domain.errors import InputError
from governance.domain.policy import PromotionPolicy
from governance.services.ports import ArtifactSource


class PolicyLibrary:
    def __init__(self, directory: Path, source: ArtifactSource) -> None:
        """`source` parses each file, so the library reads policies the way the gate does."""
        self.directory = directory
        self.policies = [source.load_policy(path) for path in sorted(directory.glob("*.yaml"))]
        if not self.policies:
            raise InputError(
                str(directory), "holds no policy (*.yaml)", "set GOVERNANCE_POLICIES to a folder"
            )

    def resolve(self, risk_tier: str, target: str) -> PromotionPolicy:
        """The newest policy for this risk tier and target environment."""
        fitting = [
            p
            for p in self.policies
            if p.applies_to.risk_tier == risk_tier and target in p.applies_to.targets
        ]
        if not fitting:
            targets = sorted(
                {
                    t
                    for p in self.policies
                    if p.applies_to.risk_tier == risk_tier
                    for t in p.applies_to.targets
                }
            )
            raise InputError(
                "target",
                f"no policy for risk tier {risk_tier} and target {target!r}",
                f"use one of {', '.join(targets)}" if targets else f"add a {risk_tier} policy",
            )
        return max(fitting, key=lambda p: p.metadata.version)
