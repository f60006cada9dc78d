"""`governance policy`: validate policy files, and judge a draft's impact on the stored
decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

import governance.connectors.files as files
from governance.cli.common import (
    CONSOLE_MARKS,
    DatabaseOption,
    err,
    fail,
    out,
    settings,
)
from governance.domain.errors import InputError
from governance.domain.policy import PolicyError, PromotionPolicy

policy_app = typer.Typer(help="Policy-as-code: validate policy files.", no_args_is_help=True)


@policy_app.command("validate")
def policy_validate(
    paths: Annotated[list[Path], typer.Argument(help="Policy YAML files.", show_default=False)],
) -> None:
    """Validate policy files: exit 0 when all are valid, 2 listing every error by its path."""
    invalid = 0
    for path in paths:
        policy = _load_or_list(path)
        if policy is None:
            invalid += 1
            continue
        meta = policy.metadata
        out.print(
            f"[green]✓[/] {escape(str(path))}: {meta.name} v{meta.version}, "
            f"risk tier {policy.applies_to.risk_tier}, {len(policy.checks)} checks, "
            f"sha256 {policy.content_hash[:16]}"
        )
    if invalid:
        raise typer.Exit(2)


@policy_app.command("impact")
def policy_impact(
    path: Annotated[Path, typer.Argument(help="The draft policy YAML file.", show_default=False)],
    database: DatabaseOption = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report as JSON here.")
    ] = None,
) -> None:
    """Would a draft policy change the verdict of any version approved, waived or promoted?
    Judges their stored evidence again under the draft; no check is run, nothing is
    written. Exit 0 no verdict changes and nothing missing, 1 a verdict changes or a check
    or value is missing, 2 bad input."""
    from governance.bootstrap import draft_impact

    draft = _load_or_list(path)
    if draft is None:
        raise typer.Exit(2)
    report = draft_impact(settings(database), draft)
    if json_path is not None:
        try:
            document = json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
            json_path.write_text(document + "\n", encoding="utf-8")
        except OSError as exc:
            fail(f"--json {json_path}: cannot write ({exc.strerror or exc})")
    _show_impact(report)
    raise typer.Exit(report.exit_code)


def _load_or_list(path: Path) -> PromotionPolicy | None:
    """A policy file, or None after listing each of its problems under its path."""
    try:
        return files.load_policy(path)
    except PolicyError as exc:
        err.print(f"[red]✗[/] {escape(str(path))}")
        for problem in exc.problems:
            err.print(f"    {escape(problem)}")
    except InputError as exc:
        err.print(f"[red]✗[/] {escape(exc.message)}")
    return None


def _show_impact(report: Any) -> None:
    """The versions with their old and new verdicts and the rules that flip, then what the
    stored evidence cannot tell, then the versions the draft does not cover."""
    states = ", ".join(report.states)
    out.print(
        f"Draft policy {escape(report.draft_name)} v{report.draft_version} "
        f"(risk tier {escape(report.risk_tier)}, targets {escape(', '.join(report.targets))}, "
        f"sha256 {report.draft_sha256[:16]}) against {len(report.versions)} {states} "
        "version(s), judged again from their stored evidence"
    )
    if report.versions:
        table = Table()
        for column in (
            "model@version",
            "target",
            "state",
            "judged under",
            "verdict",
            "",
            "rules that flip",
        ):
            table.add_column(column)
        for version in report.versions:
            new = version.new_verdict.value if version.new_verdict is not None else "?"
            if version.changed:
                marker = "[bold red]CHANGED[/]"
            elif version.new_verdict is None:
                marker = "[yellow]RE-RUN[/]"
            else:
                marker = "[green]same[/]"
            table.add_row(
                escape(f"{version.model}@{version.version}"),
                escape(version.target or ""),
                escape(version.state or ""),
                escape(f"{version.old_policy} v{version.old_policy_version}"),
                f"{version.old_verdict.value} → {new}",
                marker,
                "\n".join(_impact_flip(rule) for rule in version.flipped) or "—",
            )
        out.print(table)
    missing = [(v, m) for v in report.versions for m in v.missing_checks]
    if missing:
        out.print("\n[bold]Versions that need a check the old policy never ran:[/]")
        for version, check in missing:
            where = f"{version.model}@{version.version} ({version.target or ''})"
            out.print(
                f"  {escape(where)}: {escape(check.check_id)} ({escape(check.type)}) — "
                f"{escape(check.reason)}"
            )
    reruns = [(v, r) for v in report.versions for r in v.needs_rerun]
    if reruns:
        out.print("\n[bold]Values the stored evidence does not hold (re-run the checks):[/]")
        for version, rerun in reruns:
            only = "" if rerun.affects_verdict else " (reported only: the verdict does not use it)"
            out.print(
                f"  {escape(version.model)}@{escape(version.version)}: {escape(rerun.check_id)}: "
                f"{escape(rerun.rule or '(every rule)')} — {escape(rerun.reason)}{only}"
            )
    if report.not_covered:
        out.print("\n[bold]Not covered by the draft:[/]")
        for other in report.not_covered:
            out.print(
                f"  {escape(other.model)}@{escape(other.version)} ({escape(other.target)}, "
                f"{escape(other.state)}, {escape(other.policy)} v{other.policy_version}): "
                f"{escape(other.reason)}"
            )
    changed, incomplete = len(report.changed), len(report.incomplete)
    out.print(
        f"\n{changed} of {len(report.versions)} verdict(s) would change; {incomplete} "
        "version(s) need a check or a value the stored evidence does not hold"
    )
    if report.exit_code == 0:
        out.print("[bold green]no verdict would change[/]")
    elif changed:
        out.print(f"[bold red]adopting the draft changes {changed} verdict(s)[/]")
    else:
        out.print("[bold yellow]the stored evidence cannot tell: re-run the checks[/]")


def _impact_flip(rule: Any) -> str:
    """`check: rule (observed …) pass → FAIL`; a new rule reads `new`, a dropped one
    `dropped`."""
    old = CONSOLE_MARKS[rule.old.value] if rule.old is not None else "new"
    new = CONSOLE_MARKS[rule.new.value] if rule.new is not None else "dropped"
    value = rule.observed
    shown = "undefined" if value is None else f"{value:.4g}" if isinstance(value, float) else value
    named = f"{rule.check_id}: {rule.rule} (observed {shown})"
    return f"{escape(named)} {old} → {new}"
