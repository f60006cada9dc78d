"""The gate's outputs for CI systems: JUnit XML, Markdown and JSON.

JUnit has one testcase per rule, so a CI server lists every rule and shows each failure
with its observed value against its threshold.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import Severity
from governance.domain.results import RuleOutcome, Status
from governance.domain.verdict import Verdict

VERDICT_WORDS = {
    Verdict.PASS: "PASS",
    Verdict.BLOCKED: "BLOCKED",
    Verdict.ERROR: "ERROR",
}


def observed_text(rule: RuleOutcome) -> str:
    value = rule.observed
    if value is None:
        return "n/a" if rule.passed else "undefined"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    if rule.interval is not None:
        text += f" (CI {rule.interval[0]:.3g}–{rule.interval[1]:.3g})"
    return text


def outcome_word(rule: RuleOutcome) -> str:
    """pass, fail (a blocking rule failed) or warn (a warning rule failed)."""
    if rule.passed:
        return "pass"
    return "fail" if rule.severity is Severity.BLOCKING else "warn"


MARKDOWN_MARKS = {"pass": "✅ pass", "fail": "❌ fail (blocking)", "warn": "⚠️ warning"}


def to_json(manifest: EvidenceManifest) -> str:
    return manifest.model_dump_json(indent=2) + "\n"


def to_junit(manifest: EvidenceManifest) -> str:
    suites = ET.Element(
        "testsuites",
        name=f"governance gate: {manifest.model_name} {manifest.model_version}",
        tests=str(sum(len(r.rules) or 1 for r in manifest.results)),
        failures=str(sum(len(r.failed_rules) for r in manifest.results)),
        errors=str(sum(r.status is Status.ERROR for r in manifest.results)),
    )
    for result in manifest.results:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{result.id} ({result.type})",
            tests=str(len(result.rules) or 1),
            failures=str(len(result.failed_rules)),
            errors=str(int(result.status is Status.ERROR)),
            time=f"{result.duration_seconds:.3f}",
        )
        if result.status is Status.ERROR:
            case = ET.SubElement(suite, "testcase", classname=result.id, name=result.type)
            ET.SubElement(case, "error", message=result.summary, type="CheckError")
            continue
        for rule in result.rules:
            case = ET.SubElement(suite, "testcase", classname=result.id, name=rule.rule)
            body = f"observed {observed_text(rule)}, required {rule.threshold}"
            if rule.detail:
                body += f"; {rule.detail}"
            if rule.basis:
                body += f"; basis: {rule.basis}"
            if not rule.passed:
                if rule.severity is Severity.BLOCKING:
                    ET.SubElement(case, "failure", message=body, type="PolicyViolation")
                else:  # JUnit has no warnings; CI servers show `skipped` without failing
                    ET.SubElement(case, "skipped", message=f"warning: {body}")
            ET.SubElement(case, "system-out").text = body
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def to_markdown(manifest: EvidenceManifest) -> str:
    decision = manifest.decision
    policy = manifest.policy
    lines = [
        f"## Governance gate: {VERDICT_WORDS[decision.verdict]} — "
        f"{manifest.model_name} {manifest.model_version}",
        "",
        decision.summary,
        "",
        f"Policy **{policy.name}** v{policy.version} (risk tier {policy.risk_tier}, "
        f"sha256 `{policy.sha256[:12]}`).",
        "",
        "| check | rule | observed | required | result |",
        "|---|---|---|---|---|",
    ]
    for result in manifest.results:
        if result.status is Status.ERROR:
            lines.append(f"| {result.id} | — | — | — | ⛔ error: {_cell(result.summary)} |")
        for rule in result.rules:
            mark = MARKDOWN_MARKS[outcome_word(rule)]
            lines.append(
                f"| {result.id} | {_cell(rule.rule)} | {_cell(observed_text(rule))} | "
                f"{_cell(rule.threshold)} | {mark} |"
            )
    lines += ["", "### What the checks found", ""]
    lines += [f"- **{r.id}** ({r.type}, {r.status.value}): {r.summary}" for r in manifest.results]
    lines += ["", "<details><summary>Evidence</summary>", ""]
    lines += [f"- {a.role}: `{a.uri}` sha256 `{a.sha256}`" for a in manifest.artifacts]
    lines += [f"- manifest sha256 `{manifest.sha256}`", "", "</details>", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
