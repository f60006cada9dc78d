"""`governance replay`: re-run a recorded decision and compare it value by value."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from governance.cli.common import DatabaseOption, err, out, settings


def replay(
    decision_id: Annotated[str, typer.Argument(help="The id of a recorded decision.")],
    database: DatabaseOption = None,
    blobs: Annotated[
        Path | None,
        typer.Option(
            help="Content-addressed blob store to fetch artifacts from by sha256 "
            "(default: the data directory's blobs/, when it exists)."
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show every compared value, not only differences.")
    ] = False,
) -> None:
    """Re-run a recorded decision from its evidence manifest (same bytes, policy and seeds)
    and compare metric by metric. Exit 0 reproduced, 1 not reproduced, 2 bad input."""
    from governance.bootstrap import replay_decision

    chosen = settings(database)
    blob_root = blobs or (chosen.blobs if chosen.blobs.is_dir() else None)
    with err.status("Starting the replay") as status:
        outcome = replay_decision(
            chosen, decision_id, blob_root, f"cli:{getpass.getuser()}", status.update
        )
    shown = outcome.rows if show_all else outcome.differences
    if shown:
        table = Table(
            title=f"replay of {outcome.model_name} {outcome.model_version} "
            f"(decision {outcome.decision_id})"
        )
        for column in ("check", "value", "recorded", "replayed", "equal"):
            table.add_column(column)
        for row in shown:
            table.add_row(
                escape(row.check_id),
                escape(row.name),
                escape(_replay_value(row.recorded)),
                escape(_replay_value(row.replayed)),
                "[green]=[/]" if row.equal else "[red]≠[/]",
            )
        out.print(table)
    equal = len(outcome.rows) - len(outcome.differences)
    out.print(f"{equal} of {len(outcome.rows)} compared values equal")
    out.print(
        f"verdict: recorded {outcome.recorded_verdict.value}, "
        f"replayed {outcome.replayed_verdict.value}"
    )
    for name, (recorded, running) in outcome.library_differences.items():
        out.print(
            f"[yellow]library {escape(name)}:[/] recorded {escape(str(recorded))}, "
            f"running {escape(str(running))}"
        )
    if outcome.reproduced:
        out.print("[bold green]reproduced bit for bit[/]")
        raise typer.Exit(0)
    out.print(f"[bold red]NOT reproduced: {len(outcome.differences)} differences[/]")
    raise typer.Exit(1)


def _replay_value(value: Any) -> str:
    """Floats in full (repr round-trips), text as is, anything else as compact JSON."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except TypeError:
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "…"
