"""The three reports as HTML: a promotion decision, an LL144 bias audit, the model inventory.

Input is plain facts gathered by the service (no database here); output is HTML for
`reports.pdf.render`. Regulatory mappings are read from `reports/mappings/*.yaml`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.metadata import version
from typing import Any

import jinja2
import yaml

from governance.domain.model_card import ModelCard
from governance.domain.policy import PromotionPolicy
from governance.domain.records import RequestView, SignatureRecord
from governance.domain.reporting import DecisionFacts
from governance.domain.results import CheckResult
from governance.reports import charts
from governance.reports.ci import observed_text, outcome_word
from governance.resources import packaged

TEMPLATES = packaged("reports", "templates")
MAPPINGS = packaged("reports", "mappings")
VERDICT_CLASS = {"pass": "good", "blocked": "bad", "error": "bad"}
STATE_CLASS = {"approved": "good", "promoted": "good", "waived": "neutral"}


@dataclass(frozen=True)
class Cover:
    """What every report's cover and running header say."""

    organisation: str
    signer: str
    report_id: str
    generated_at: datetime
    manifest_sha256: str
    attachments: list[dict[str, str]]


def decision_html(facts: DecisionFacts, cover: Cover) -> str:
    manifest, request = facts.manifest, facts.request
    checks = [check_view(result, facts.policy) for result in manifest.results]
    sections = {
        "summary": "1. Summary and verdict",
        "model-card": "2. Model card",
        "policy": "3. Policy applied",
        "checks": "4. Checks",
        **{f"check-{c['id']}": f"4.{i} {c['id']}" for i, c in enumerate(checks, start=1)},
        **{
            f"check-{c['type'].replace('_', '-')}": f"4.{i} {c['id']}"
            for i, c in enumerate(checks, start=1)
        },
        "waivers": "5. Waivers",
        "approvals": "6. Approval trail",
        "evidence": "7. Evidence manifest",
        "audit": "8. Audit events",
        "replay": "9. Replay",
        "mappings": "10. Regulatory mapping",
    }
    toc: list[dict[str, Any]] = [
        {"id": key, "title": title.split(". ", 1)[1], "children": []}
        for key, title in sections.items()
        if not key.startswith("check-")
    ]
    toc[3]["children"] = [
        {"id": f"check-{c['id']}", "title": f"{c['id']} ({c['type']})"} for c in checks
    ]
    state = request.state if request else None
    verdict = manifest.decision.verdict.value
    card = facts.model_card or ModelCard()
    return _render(
        "decision.html.j2",
        cover,
        title="Promotion decision report",
        subject=f"{manifest.model_name} v{manifest.model_version}",
        toc=toc,
        sections=sections,
        verdict_line=_verdict_line(verdict, state),
        verdict_class=STATE_CLASS.get(state or "", VERDICT_CLASS.get(verdict, "neutral")),
        decision_summary=manifest.decision.summary,
        state=state,
        state_reason=request.state_reason if request else None,
        model={
            "name": manifest.model_name,
            "version": manifest.model_version,
            "risk_tier": facts.policy.applies_to.risk_tier,
        },
        model_card=card.rows(facts.owner, facts.policy.applies_to.risk_tier),
        target=request.target
        if request
        else (
            "none: a recorded gate decision, not a promotion request"
            if facts.decision_id
            else "none: a local gate run, not a promotion request"
        ),
        request_id=request.id if request else None,
        decision_id=facts.decision_id,
        policy=policy_view(facts.policy),
        checks=checks,
        waiver=_waiver_view(request),
        evidence=_evidence_view(request),
        signatures=[_signature_view(s) for s in request.signatures] if request else [],
        final_decisions=[
            {"id": d.id, "decision": d.decision, "created_at": _time(d.created_at)}
            for d in (request.decisions if request else ())
        ],
        data_artifacts=[a for a in manifest.artifacts if a.role != "model"],
        artifacts=manifest.artifacts,
        libraries=sorted(manifest.libraries.items()),
        seeds=manifest.seeds,
        audit={
            "events": [_event_view(e) for e in facts.audit_events],
            "checkpoint": facts.checkpoint,
            "tree_size": facts.tree_size,
        },
        replays=[_replay_view(r) for r in facts.replays],
        mappings=mappings_for("decision"),
    )


def bias_audit_html(
    audit: dict[str, Any], subject: str, model: dict[str, Any], cover: Cover
) -> str:
    tables = [
        {
            **table,
            "id": f"ll144-{table['dimension']}",
            "chart": charts.impact_ratios(
                table["categories"], f"Impact ratios by {table['column']}"
            ),
        }
        for table in audit["tables"]
    ]
    sections = {
        "ll144-summary": "1. Summary",
        "ll144-data": "2. Data",
        **{t["id"]: f"{i}. By {t['column']}" for i, t in enumerate(tables, start=3)},
        "ll144-four-fifths": f"{len(tables) + 3}. Four-fifths comparison",
        "mappings": f"{len(tables) + 4}. Regulatory mapping",
    }
    toc = [{"id": k, "title": v.split(". ", 1)[1], "children": []} for k, v in sections.items()]
    return _render(
        "bias_audit.html.j2",
        cover,
        title="Bias audit (NYC Local Law 144)",
        subject=subject,
        toc=toc,
        sections=sections,
        audit=audit,
        four_fifths=audit["four_fifths_flagged"],
        tables=tables,
        model=model,
        mappings=mappings_for("bias-audit"),
    )


def inventory_html(models: list[dict[str, Any]], cover: Cover) -> str:
    sections = {"inventory": "1. Models", "mappings": "2. Regulatory mapping"}
    toc = [{"id": k, "title": v.split(". ", 1)[1], "children": []} for k, v in sections.items()]
    return _render(
        "inventory.html.j2",
        cover,
        title="Model inventory",
        subject=f"{len(models)} models",
        toc=toc,
        sections=sections,
        models=models,
        mappings=mappings_for("inventory"),
    )


@cache
def _mappings() -> tuple[dict[str, Any], ...]:
    documents = []
    for path in sorted(MAPPINGS.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        missing = {"id", "name", "citation", "reports", "items"} - set(document)
        if missing:
            raise ValueError(f"{path}: missing {', '.join(sorted(missing))}")
        documents.append(document)
    return tuple(documents)


def mappings_for(report: str) -> list[dict[str, Any]]:
    """Every framework whose mapping file lists this report kind."""
    return [m for m in _mappings() if report in m["reports"]]


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["data_uri"] = data_uri
    return environment


def data_uri(svg: str) -> str:
    """An SVG as an image of its own: ids inside one chart never clash with another's."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _render(template: str, cover: Cover, **context: Any) -> str:
    return (
        _environment()
        .get_template(template)
        .render(
            css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
            organisation=cover.organisation,
            signer=cover.signer,
            report_id=cover.report_id,
            generated_at=_time(cover.generated_at),
            manifest_sha256=cover.manifest_sha256,
            attachments=cover.attachments,
            version=version("governance"),
            **context,
        )
    )


def _verdict_line(verdict: str, state: str | None) -> str:
    words = {
        "pass": "PASSED every blocking check",
        "blocked": "BLOCKED by policy",
        "error": "ERROR: the checks could not run",
    }
    line = f"Checks: {words.get(verdict, verdict)}"
    if state:
        line += f" · Workflow: {state.upper().replace('_', ' ')}"
    return line


def policy_view(policy: PromotionPolicy) -> dict[str, Any]:
    approvals, waivers = policy.approvals, policy.waivers
    rules = []
    for check in policy.checks:
        for rule in check.rules:
            rules.append(
                {
                    "check": check.id,
                    "type": check.type,
                    "severity": (getattr(rule, "severity", None) or check.severity).value,
                    "rule": rule.label,
                    "basis": getattr(rule, "basis", None),
                }
            )
    return {
        "name": policy.metadata.name,
        "version": policy.metadata.version,
        "sha256": policy.content_hash,
        "risk_tier": policy.applies_to.risk_tier,
        "targets": policy.applies_to.targets,
        "regulations": policy.metadata.regulations,
        "description": policy.metadata.description,
        "rules": rules,
        "approvals": (
            f"{approvals.quorum} signature(s) from {', '.join(approvals.roles)}"
            + ("; each from a different role" if approvals.distinct_roles else "")
            + ("; no one signs their own model" if approvals.forbid_self_approval else "")
            + f"; an approval expires after {approvals.expires_after_days} days"
        ),
        "waivers": (
            f"allowed, granted by {waivers.approver_role}, for at most {waivers.max_days} days"
            if waivers.allowed
            else "not allowed"
        ),
    }


def check_view(result: CheckResult, policy: PromotionPolicy) -> dict[str, Any]:
    spec = next((c for c in policy.checks if c.id == result.id), None)
    charts_, tables = _figures(result, spec)
    return {
        "id": result.id,
        "type": result.type,
        "status": result.status.value,
        "summary": result.summary,
        "duration": result.duration_seconds,
        "libraries": result.library_versions,
        "rules": [
            {
                "rule": rule.rule,
                "observed": observed_text(rule),
                "threshold": rule.threshold,
                "outcome": outcome_word(rule),
                "basis": rule.basis,
                "detail": rule.detail,
            }
            for rule in result.rules
        ],
        "charts": charts_,
        "tables": tables,
    }


def _figures(result: CheckResult, spec: Any) -> tuple[list[dict], list[dict]]:
    """Charts and metric tables for one check, by its type."""
    metrics = result.metrics
    if result.type == "fairness":
        figures, tables = [], []
        for grouping in metrics.get("groupings", []):
            name = " × ".join(grouping["features"])
            figures.append(
                {
                    "svg": charts.fairness_groups(grouping, f"Selection rate by {name}"),
                    "caption": f"Selection rate per {name} group; dashed: four-fifths line.",
                }
            )
            if len(grouping["groups"]) <= 12:
                figures.append(
                    {
                        "svg": charts.error_rates(grouping, f"Error rates by {name}"),
                        "caption": f"True and false positive rates per {name} group: "
                        "what equalized odds compares.",
                    }
                )
            tables.append(_group_table(grouping, name))
        return figures, tables
    if result.type == "explainability":
        ranking = metrics.get("ranking", [])
        prohibited: set[str] = set()
        top_k = None
        for rule in getattr(spec, "rules", []):
            inner = getattr(rule, "prohibited_in_top_k", None)
            if inner is not None:
                prohibited |= set(inner.features)
                top_k = inner.k
        return (
            [
                {
                    "svg": charts.shap_ranking(ranking, prohibited, top_k),
                    "caption": f"Mean |SHAP| over {metrics.get('sample_size')} rows "
                    f"({metrics.get('explainer')}).",
                }
            ],
            [
                _table(
                    "Feature ranking",
                    ["Rank", "Feature", "Mean |SHAP|"],
                    [True, False, True],
                    [[e["rank"], e["feature"], f"{e['mean_abs_shap']:.5f}"] for e in ranking],
                )
            ],
        )
    if result.type == "drift":
        columns = metrics.get("columns", [])
        return (
            [
                {
                    "svg": charts.drift_columns(columns),
                    "caption": f"{metrics.get('drifted_columns')} of "
                    f"{metrics.get('tested_columns')} columns drifted; reference "
                    f"{metrics.get('reference_rows', 0):,} rows, current "
                    f"{metrics.get('current_rows', 0):,} rows.",
                }
            ],
            [
                _table(
                    "Drift per column",
                    ["Column", "Kind", "Test", "Statistic", "Threshold", "Drift"],
                    [False, False, False, True, True, False],
                    [
                        [
                            c["column"],
                            c["kind"],
                            c["stattest"],
                            _number(c["statistic"]),
                            f"{c['threshold']:g}",
                            "yes" if c["drifted"] else "no",
                        ]
                        for c in columns
                    ],
                )
            ],
        )
    if result.type == "performance":
        names = [k for k, v in metrics.items() if isinstance(v, float)]
        champion = metrics.get("champion") or {}
        rows = [[n, _number(metrics[n]), _number(champion.get(n))] for n in names]
        return (
            [
                {
                    "svg": charts.performance_vs_champion(metrics, names),
                    "caption": f"On {metrics.get('rows', 0):,} rows"
                    + (
                        f"; champion: {metrics.get('champion_source')}"
                        if champion
                        else "; no champion given"
                    ),
                }
            ],
            [_table("Metrics", ["Metric", "Candidate", "Champion"], [False, True, True], rows)],
        )
    if result.type == "data_quality":
        columns = metrics.get("columns", [])
        if not columns:
            return [], []
        keys = [k for k in columns[0] if k != "column"]
        return [], [
            _table(
                "Per column",
                ["Column", *keys],
                [False, *[True] * len(keys)],
                [[c["column"], *[_number(c[k]) for k in keys]] for c in columns],
            )
        ]
    return [], []


def _group_table(grouping: dict[str, Any], name: str) -> dict[str, Any]:
    return _table(
        f"Groups by {name}",
        ["Group", "Rows", "Selection rate", "TPR", "FPR", "Accuracy", "Impact ratio"],
        [False, True, True, True, True, True, True],
        [
            [
                g["label"] + (" (too few rows)" if g["excluded"] else ""),
                f"{g['count']:,}",
                _number(g["selection_rate"]),
                _number(g["true_positive_rate"]),
                _number(g["false_positive_rate"]),
                _number(g["accuracy"]),
                _number(g["impact_ratio"]),
            ]
            for g in grouping["groups"]
        ],
    )


def _table(title: str, labels: list[str], numeric: list[bool], rows: list[list]) -> dict:
    return {
        "title": title,
        "columns": [
            {"label": label, "num": num} for label, num in zip(labels, numeric, strict=True)
        ],
        "rows": rows,
    }


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _evidence_view(request: RequestView | None) -> dict[str, Any] | None:
    """How a request's evidence was checked: re-computed by the service (with each figure
    the submitter claimed otherwise), or accepted from a trusted builder."""
    evidence = request.evidence if request else None
    if not evidence:
        return None
    return {
        "source": evidence["source"],
        "claimed_sha256": evidence.get("claimedSha256"),
        "provenance": evidence.get("provenance"),
        "mismatches": evidence.get("mismatches", []),
    }


def _waiver_view(request: RequestView | None) -> dict[str, Any] | None:
    waiver = request.waiver if request else None
    if request is None or waiver is None:
        return None
    granted = request.state == "waived" or any(d.decision == "waived" for d in request.decisions)
    return {
        "requested_by": waiver.requested_by,
        "requested_at": _time(waiver.created_at),
        "days": waiver.days,
        "justification": waiver.justification,
        "granted": "granted" if granted else None,
    }


def _signature_view(signature: SignatureRecord) -> dict[str, Any]:
    return {
        "full_name": signature.full_name,
        "username": signature.username,
        "role": signature.role,
        "meaning": signature.meaning,
        "comment": signature.comment,
        "signed_at": _time(signature.signed_at),
        "reauthenticated": signature.reauthenticated,
        "evidence_sha256": signature.evidence_sha256,
    }


def _event_view(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "time": _time(event["time"])}


def _replay_view(event: dict[str, Any]) -> dict[str, Any]:
    payload = event["payload"]
    differing = payload.get("library_differences") or {}
    return {
        "time": _time(event["time"]),
        "actor": event["actor"],
        "reproduced": payload.get("reproduced"),
        "differences": payload.get("differences", 0),
        "libraries": ", ".join(f"{k}: {v}" for k, v in differing.items()),
    }


def _time(value: datetime | str) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S")
