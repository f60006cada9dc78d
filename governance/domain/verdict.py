"""The verdict: check results under a policy become pass, blocked or error. Pure."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from governance.domain.policy import Severity
from governance.domain.results import CheckResult, RuleOutcome, Status


class Verdict(StrEnum):
    PASS = "pass"
    BLOCKED = "blocked"
    ERROR = "error"


class BlockingFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    check_id: str
    rule: RuleOutcome


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    summary: str
    blocking: list[BlockingFailure] = []
    warnings: list[BlockingFailure] = []
    errors: list[str] = []


def decide(results: list[CheckResult]) -> Decision:
    """Any check that errored makes the verdict `error` (fail closed); any failed blocking
    rule makes it `blocked`; warnings are reported and never block."""
    errors = [f"{r.id}: {r.summary}" for r in results if r.status is Status.ERROR]
    blocking: list[BlockingFailure] = []
    warnings: list[BlockingFailure] = []
    for result in results:
        for rule in result.failed_rules:
            failure = BlockingFailure(check_id=result.id, rule=rule)
            (blocking if rule.severity is Severity.BLOCKING else warnings).append(failure)
    if errors:
        return Decision(
            verdict=Verdict.ERROR,
            summary=f"{len(errors)} check(s) could not run: " + "; ".join(errors),
            blocking=blocking,
            warnings=warnings,
            errors=errors,
        )
    if blocking:
        named = "; ".join(
            f"{f.check_id}: {f.rule.rule} (observed {_show(f.rule.observed)})" for f in blocking
        )
        return Decision(
            verdict=Verdict.BLOCKED,
            summary=f"Blocked by {len(blocking)} rule(s): {named}",
            blocking=blocking,
            warnings=warnings,
        )
    note = f" with {len(warnings)} warning(s)" if warnings else ""
    return Decision(
        verdict=Verdict.PASS,
        summary=f"All {len(results)} checks passed{note}.",
        warnings=warnings,
    )


def _show(value: float | str | None) -> str:
    if value is None:
        return "undefined"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
