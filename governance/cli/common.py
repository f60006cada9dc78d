"""What every command shares: the consoles, the option types, the one place a domain error
becomes a message and an exit code, and the way a command reaches the settings and the
service."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from governance import config
from governance.domain.errors import GovernanceError, first_problem
from governance.domain.verdict import Verdict

if TYPE_CHECKING:
    from governance.bootstrap import Governance

# CI logs are not terminals: give tables room instead of rich's 80-column default.
_WIDTH = None if os.isatty(1) else int(os.environ.get("COLUMNS", 140))
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, width=_WIDTH)
EXIT = {Verdict.PASS: 0, Verdict.BLOCKED: 1, Verdict.ERROR: 2}
CONSOLE_MARKS = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "warn": "[yellow]warn[/]"}
VERDICT_STYLE = {Verdict.PASS: "bold green", Verdict.BLOCKED: "bold red", Verdict.ERROR: "bold red"}
STATE_STYLE = {"blocked": "bold red", "promoted": "bold green", "approved": "bold green"}

KeyOption = Annotated[
    Path | None, typer.Option("--key", help="Ed25519 private key (default: the data directory's).")
]
DatabaseOption = Annotated[
    str | None, typer.Option(help="Database URL (default: GOVERNANCE_DATABASE_URL, else SQLite).")
]


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(2)


def refuse(problems: list[str], headline: str) -> NoReturn:
    """A verification that found something: each finding, then exit 1."""
    for problem in problems:
        err.print(f"[red]✗[/] {escape(problem)}")
    err.print(f"[bold red]{escape(headline)}[/]")
    raise typer.Exit(1)


class GovernanceGroup(TyperGroup):
    """The root command. Every command runs inside it, so this is the CLI's one mapping of
    a domain error: its message, then its `exit_code` (2 bad input, 1 refused). It also
    reads the settings afresh for each command, from the environment the command runs in."""

    def invoke(self, ctx: Any) -> Any:
        config.settings.cache_clear()
        try:
            return super().invoke(ctx)
        except GovernanceError as exc:
            err.print(f"[bold red]error:[/] {escape(exc.message)}")
            raise typer.Exit(exc.exit_code) from None


def settings(database: str | None = None) -> config.Settings:
    """The configured settings; `--database`, when given, names the database instead."""
    if database is None:
        return config.settings()
    return config.Settings.from_env(database)  # checked with this database, not another


def open_service(database: str | None) -> Governance:
    """The service over an initialised data directory, or a clear message to run init."""
    from governance.bootstrap import open_governance
    from governance.store.database import current_revision

    chosen = settings(database)
    if current_revision(chosen.database_url) is None:
        fail(f"database {chosen.database_url} is not initialised: run `governance init`")
    return open_governance(chosen)


@contextmanager
def service(database: str | None) -> Iterator[Governance]:
    """`open_service` for one command's work: the service is closed after it, error or not."""
    governance = open_service(database)
    try:
        yield governance
    finally:
        governance.close()


def model_card(path: Path) -> Any:
    """A model card YAML file (`--model-card`), each problem named by its field."""
    from pydantic import ValidationError

    from governance.domain.model_card import ModelCard

    try:
        return ModelCard.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError) as exc:
        fail(f"--model-card {path}: cannot be read ({exc})")
    except ValidationError as exc:
        fail(f"--model-card {path}: {first_problem(exc)}")


def write_report(report: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(report.pdf)
    err.print(f"wrote {report.kind} report {escape(str(path))} (sha256 {report.sha256})")
