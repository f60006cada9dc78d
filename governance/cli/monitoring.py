"""Production: `governance monitor`, `predictions` and `connectors` (the registries the
gatekeeper watches)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from governance.cli.common import DatabaseOption, fail, open_service, out, service
from governance.domain.errors import GovernanceError

monitor_app = typer.Typer(help="Production monitoring of promoted versions.", no_args_is_help=True)
predictions_app = typer.Typer(help="Production prediction logs.", no_args_is_help=True)
connectors_app = typer.Typer(
    help="Model registries (MLflow, folders) the gatekeeper watches.", no_args_is_help=True
)
RUN_STYLE = {"pass": "green", "breach": "bold red", "insufficient": "yellow", "error": "red"}


@monitor_app.command("run")
def monitor_run(
    request: Annotated[str | None, typer.Option(help="Run this request's monitor now.")] = None,
    monitor: Annotated[str, typer.Option(help="The monitor to run now, with --request.")] = "drift",
    database: DatabaseOption = None,
) -> None:
    """Run the production checks that are due (or, with --request, one now) and print them.
    Exit 1 when a check found a breach."""
    from governance.services.people import SYSTEM

    with service(database) as governance:
        if request is None:
            runs = governance.monitoring.run_due()
        else:
            runs = [governance.monitoring.run_now(SYSTEM, request, monitor)]
    if not runs:
        out.print("nothing is due")
    for run in runs:
        style = RUN_STYLE.get(run.status, "")
        action = f" → {run.action}" if run.action else ""
        out.print(
            f"{escape(run.request_id)} {run.monitor}: [{style}]{run.status}[/]{action} "
            f"({run.rows} rows) {escape(run.summary)}"
        )
    if any(run.status == "breach" for run in runs):
        raise typer.Exit(1)


@predictions_app.command("ingest")
def predictions_ingest(
    model: str,
    version: str,
    file: Annotated[Path, typer.Argument(help="A Parquet file of predictions.")],
    batch_id: Annotated[str | None, typer.Option(help="The batch id (default: file stem).")] = None,
    database: DatabaseOption = None,
) -> None:
    """Log one Parquet batch of production predictions for a model version."""
    import hashlib

    import pandas as pd

    try:
        raw = file.read_bytes()
        frame = pd.read_parquet(file)
    except (OSError, ValueError) as exc:
        fail(f"{file}: cannot be read as Parquet ({exc})")
    with service(database) as governance:
        batch = governance.monitoring.ingest(
            "cli", model, version, batch_id or file.stem, frame, "api",
            hashlib.sha256(raw).hexdigest(),
        )  # fmt: skip
    what = "already stored" if batch.replayed else "stored"
    out.print(f"[green]✓[/] batch {escape(batch.batch_id)}: {batch.rows} rows {what}")


@connectors_app.command("sync")
def connectors_sync(
    name: Annotated[str | None, typer.Argument(help="One connector; all when left out.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Sync now: open requests for new governed versions (`governance serve` runs their
    checks), write decisions back, put the governed alias back where the decisions say.
    Exit 2 when a registry cannot be reached."""
    governance = open_service(database)
    names = [name] if name else governance.registries.names
    if not names:
        governance.close()
        fail("no connectors configured: name a connectors file in GOVERNANCE_CONNECTORS")
    try:
        for each in names:
            outcome = governance.registries.sync(each)
            out.print(f"[green]✓[/] {escape(each)}: {len(outcome.opened)} request(s) opened")
            for key, why in outcome.refused.items():
                out.print(f"  [yellow]refused[/] {escape(key)}: {escape(why)}")
            for restored in outcome.aliases_restored:
                what = f"{restored.model}: {restored.why}"
                out.print(f"  [red]alias restored[/] {escape(what)}")
    except GovernanceError:
        raise  # said by the CLI's one error handler, as every command's
    except Exception as exc:  # noqa: BLE001 - an unreachable registry, said in one line
        fail(f"sync failed: {type(exc).__name__}: {exc}")
    finally:
        governance.close()
