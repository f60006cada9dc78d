"""Setting up and running the service: `governance init`, `serve`, `demo` and `db upgrade`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from governance import config
from governance.cli.common import (
    STATE_STYLE,
    VERDICT_STYLE,
    DatabaseOption,
    err,
    fail,
    open_service,
    out,
)
from governance.cli.common import settings as configured
from governance.reports import ci

db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    database: Annotated[
        str | None,
        typer.Option(
            help="Database URL (default: GOVERNANCE_DATABASE_URL, else the embedded SQLite file)."
        ),
    ] = None,
) -> None:
    """Create or migrate the database schema to the newest revision."""
    from governance.store.database import current_revision, upgrade

    url = configured(database).database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(url)
    except Exception as exc:  # noqa: BLE001
        fail(f"database {url}: migration failed ({type(exc).__name__}: {exc})")
    out.print(f"database {escape(url)} at revision {current_revision(url)}")


def init(
    database: DatabaseOption = None,
    admin_password_env: Annotated[
        str,
        typer.Option(help="Environment variable holding the admin's password (else generated)."),
    ] = "GOVERNANCE_ADMIN_PASSWORD",
) -> None:
    """Create the data directory, migrate the database, create the signing key, the default
    access rules and an admin user. Safe to run again: it only adds what is missing."""
    from governance.bootstrap import initialise

    settings = configured(database)
    done = initialise(settings, os.environ.get(admin_password_env) or None)
    for line in done or ["nothing to do: already initialised"]:
        out.print(f"[green]✓[/] {escape(line)}")
    out.print(f"data directory: {escape(str(settings.home.resolve()))}")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    database: DatabaseOption = None,
) -> None:
    """Serve the API (/api/v1, OpenAPI at /schema/openapi.json) with uvicorn."""
    settings = configured(database)
    open_service(database).close()  # refuse to start on a database init has not made
    _serve(settings, host, port, workers)


def _serve(settings: config.Settings, host: str, port: int, workers: int) -> None:
    """Run the API and console until stopped. Each worker builds the app from the
    environment, so these settings are handed on through it."""
    import uvicorn

    os.environ["GOVERNANCE_HOME"] = str(settings.home)
    os.environ["GOVERNANCE_DATABASE_URL"] = settings.database_url
    os.environ["GOVERNANCE_POLICIES"] = str(settings.policies)
    config.settings.cache_clear()  # a single worker runs in this process: read them again
    out.print(f"serving http://{host}:{port}/  (OpenAPI: http://{host}:{port}/schema/openapi.json)")
    uvicorn.run(
        "governance.web.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        # A worker imports the checks' libraries before it answers uvicorn's health check;
        # on a busy machine that takes longer than the default 5 s.
        timeout_worker_healthcheck=60,
    )


def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where to write data, models and evidence.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    serving: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API and console afterwards.")
    ] = True,
) -> None:
    """Seed the service with people for every role and three real models on the UCI Adult
    data (one blocked, one promoted, one awaiting approval), then serve the API and the
    console. Safe to run again: what exists is reused."""
    from governance.demo import run_demo

    directory = data_dir or configured().home
    with err.status("Starting the demo") as status:
        seeded = run_demo(directory, progress=status.update)
    _show_demo(seeded, directory)
    if serving:
        _serve(seeded.settings, host, port, workers=1)


def _show_demo(seeded: Any, directory: Path) -> None:
    """Each candidate with its state, verdict and files; the people with their passwords."""
    for run in seeded.runs:
        style = STATE_STYLE.get(run.state, "bold")
        out.print(
            f"[bold]{escape(run.model)} v{escape(run.version)}[/]: [{style}]{run.state}[/]  "
            f"(request {run.request_id})"
        )
        if run.manifest is not None:
            decision = run.manifest.decision
            out.print(
                f"  checks: [{VERDICT_STYLE[decision.verdict]}]"
                f"{ci.VERDICT_WORDS[decision.verdict]}[/] {escape(decision.summary)} "
                f"(decision {run.decision_id})"
            )
        if run.reason and (run.manifest is None or run.reason != run.manifest.decision.summary):
            out.print(f"  {escape(run.reason)}")
        if run.evidence is not None:
            out.print(
                f"  evidence: {escape(str(run.evidence))}/ (manifest.json, junit.xml, summary.md)"
            )
        for report in run.reports:
            out.print(f"  signed report: {escape(str(report))}")
    people = Table("user", "name", "role", "password", title="People (demo passwords)")
    for person, password in seeded.people:
        shown = escape(password) if password else "[dim](set before the demo)[/]"
        people.add_row(person.username, escape(person.full_name), person.role, shown)
    out.print(people)
    out.print(f"Passwords kept in {escape(str(directory / 'demo' / 'people.json'))} (mode 600)")
    out.print(f"Decisions recorded in {escape(seeded.settings.database_url)}")
    ca = directory / "report-ca.pem"
    out.print(f"Verify a report: governance report verify FILE.pdf --trust {escape(str(ca))}")
