"""`governance worker`: a process that runs the service's tasks (GOVERNANCE_TASKS=workers)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.markup import escape

from governance.cli.common import DatabaseOption, err, fail, open_service, out
from governance.cli.common import settings as configured
from governance.services.tasks import QUEUES


def worker(
    queues: Annotated[
        str,
        typer.Option(help=f"The queues to take jobs from, comma-separated: {', '.join(QUEUES)}."),
    ] = ",".join(QUEUES),
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Check jobs this process runs at once.")
    ] = 1,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Say whether the database is ready and a worker is alive; exit 0 or 1."
        ),
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Run check jobs, monitors, webhook deliveries, registry syncs and sweeps from the
    queue in PostgreSQL, until SIGTERM (running jobs finish first). Run any number, on any
    number of hosts; the API processes then only queue work (GOVERNANCE_TASKS=workers)."""
    from governance.workers import WorkerOptions, health, parse_queues, run_worker

    settings = configured(database)
    if check:
        verdict = health(settings)
        for line in verdict.lines:
            (out if verdict.healthy else err).print(escape(line))
        raise typer.Exit(0 if verdict.healthy else 1)
    if settings.tasks != "workers":
        fail(
            "GOVERNANCE_TASKS is 'embedded': the server runs the tasks itself. Set "
            "GOVERNANCE_TASKS=workers (with PostgreSQL) for the server and the workers"
        )
    chosen = parse_queues(queues)
    open_service(database).close()  # refuse to start on a database init has not made
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    out.print(f"worker: queues {', '.join(chosen)}, {concurrency} check job(s) at once")
    run_worker(settings, WorkerOptions(chosen, concurrency))
