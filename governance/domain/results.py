"""What a check reports: each rule's observed value against its threshold, and a status."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from governance.domain.policy import Severity


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    ERROR = "error"


class RuleOutcome(BaseModel):
    """One rule, judged: what was seen, what was required, and whether it held."""

    model_config = ConfigDict(frozen=True)

    rule: str
    observed: float | str | None
    threshold: str
    passed: bool
    severity: Severity
    basis: str | None = None
    detail: str = ""
    interval: tuple[float, float] | None = None


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    status: Status
    summary: str
    rules: list[RuleOutcome] = []
    metrics: dict[str, Any] = {}
    library_versions: dict[str, str] = {}
    duration_seconds: float = 0.0

    @property
    def failed_rules(self) -> list[RuleOutcome]:
        return [rule for rule in self.rules if not rule.passed]


def status_of(rules: list[RuleOutcome]) -> Status:
    """A failed blocking rule fails the check; a failed warning rule only warns."""
    failed = [rule for rule in rules if not rule.passed]
    if any(rule.severity is Severity.BLOCKING for rule in failed):
        return Status.FAIL
    return Status.WARN if failed else Status.PASS


def judge_bounds(
    label: str,
    observed: float,
    minimum: float | None,
    maximum: float | None,
    severity: Severity,
    basis: str | None = None,
    detail: str = "",
    interval: tuple[float, float] | None = None,
) -> RuleOutcome:
    """Judge a value against `min`/`max`. A value that could not be computed (NaN) fails."""
    bounds = []
    if minimum is not None:
        bounds.append(f"≥ {minimum:g}")
    if maximum is not None:
        bounds.append(f"≤ {maximum:g}")
    passed = observed == observed and (  # NaN != NaN: an undefined metric never passes
        (minimum is None or observed >= minimum) and (maximum is None or observed <= maximum)
    )
    return RuleOutcome(
        rule=label,
        observed=observed if observed == observed else None,
        threshold=" and ".join(bounds),
        passed=passed,
        severity=severity,
        basis=basis,
        detail=detail,
        interval=interval,
    )
