"""The verdict: pure domain rules over check results."""

from __future__ import annotations

from governance.domain.policy import Severity
from governance.domain.results import CheckResult, Status, judge_bounds, status_of
from governance.domain.verdict import Verdict, decide


def result(check_id: str, *rules: tuple[float, Severity], error: bool = False) -> CheckResult:
    outcomes = [
        judge_bounds(f"{check_id} metric ≥ 0.8", observed, 0.8, None, severity)
        for observed, severity in rules
    ]
    return CheckResult(
        id=check_id,
        type="performance",
        status=Status.ERROR if error else status_of(outcomes),
        summary="boom" if error else "ok",
        rules=outcomes,
    )


def test_all_rules_hold() -> None:
    decision = decide(
        [result("a", (0.9, Severity.BLOCKING)), result("b", (0.85, Severity.WARNING))]
    )
    assert decision.verdict is Verdict.PASS
    assert decision.summary == "All 2 checks passed."


def test_warnings_never_block() -> None:
    decision = decide([result("a", (0.9, Severity.BLOCKING), (0.1, Severity.WARNING))])
    assert decision.verdict is Verdict.PASS
    assert [w.check_id for w in decision.warnings] == ["a"]
    assert decision.summary == "All 1 checks passed with 1 warning(s)."


def test_failed_blocking_rule_blocks_and_is_named() -> None:
    decision = decide([result("a", (0.5, Severity.BLOCKING)), result("b", (0.1, Severity.WARNING))])
    assert decision.verdict is Verdict.BLOCKED
    assert [b.check_id for b in decision.blocking] == ["a"]
    assert "a: a metric ≥ 0.8 (observed 0.5)" in decision.summary


def test_a_check_that_could_not_run_fails_closed() -> None:
    decision = decide([result("a", (0.9, Severity.BLOCKING)), result("b", error=True)])
    assert decision.verdict is Verdict.ERROR
    assert decision.errors == ["b: boom"]


def test_undefined_metric_never_passes() -> None:
    outcome = judge_bounds("m ≥ 0.8", float("nan"), 0.8, None, Severity.BLOCKING)
    assert not outcome.passed and outcome.observed is None
