"""The `governance` command. Each command parses its options, calls one service function
and formats its result; a domain error becomes its message and exit code in one place
(`common.GovernanceGroup`).

Exit codes: 0 pass, 1 blocked by policy (or refused), 2 bad input or usage (and a gate that
errored).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import NoReturn

import typer
from rich.markup import escape

from governance.cli import (
    audit,
    gate,
    monitoring,
    people,
    policy,
    replay,
    reports,
    server,
    worker,
)
from governance.cli.about import VersionOption
from governance.cli.common import GovernanceGroup, err

app = typer.Typer(
    name="governance",
    help="A policy-driven gatekeeper between ML training and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=GovernanceGroup,
)
for command in (gate.gate, server.demo, server.init, server.serve, worker.worker, replay.replay):
    app.command()(command)
for name, group in {
    "policy": policy.policy_app,
    "db": server.db_app,
    "audit": audit.audit_app,
    "attest": audit.attest_app,
    "connectors": monitoring.connectors_app,
    "user": people.user_app,
    "token": people.token_app,
    "builder": people.builder_app,
    "report": reports.report_app,
    "monitor": monitoring.monitor_app,
    "predictions": monitoring.predictions_app,
}.items():
    app.add_typer(group, name=name)


@app.callback()
def governance(version: VersionOption = False) -> None:
    """A policy-driven gatekeeper between ML training and serving."""


def main() -> None:
    # Everything imported so far lives until exit: keep the collector from walking it
    # again and again while a million-row gate allocates.
    gc.freeze()
    code: int | str | None
    try:
        app()
        code = 0
    except SystemExit as exit_:  # how click ends every command
        code = exit_.code
    except Exception as exc:
        if os.environ.get("GOVERNANCE_DEBUG"):
            raise
        problem = escape(f"{type(exc).__name__}: {exc}")
        err.print(f"[bold red]internal error:[/] {problem} (GOVERNANCE_DEBUG=1 shows where)")
        code = 2
    _exit_now(code)


def _exit_now(code: int | str | None) -> NoReturn:
    """Exit without freeing a million rows' worth of objects one by one (half a second after
    a large gate); every file we wrote is closed already. mypy ends the same way."""
    if isinstance(code, str):
        err.print(code)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
