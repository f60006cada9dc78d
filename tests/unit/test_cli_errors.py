"""The CLI's one error handler (`GovernanceGroup`): every domain error a command raises is
printed as one `error:` line naming the problem, with its exit code — 2 for input the
caller can fix, 1 for a refusal or a conflict — and never as a traceback."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from governance.cli.common import GovernanceGroup
from governance.domain.errors import (
    ConflictError,
    ForbiddenError,
    GovernanceError,
    InputError,
    MalformedInputError,
    NotFoundError,
    TooManyAttemptsError,
    UnauthenticatedError,
)

RAISED: dict[str, GovernanceError] = {
    "input": InputError("--model-version", "is '../x'", "use letters, digits, '.', '_' or '-'"),
    "malformed": MalformedInputError("body", "is not JSON"),
    "missing": NotFoundError("request r-1", "list the requests to find its id"),
    "conflict": ConflictError("builder ci is registered already"),
    "forbidden": ForbiddenError("you may not sign your own submission"),
    "unauthenticated": UnauthenticatedError("wrong password"),
    "locked": TooManyAttemptsError("too many failed sign-ins", retry_after=60),
}


def _app() -> typer.Typer:
    app = typer.Typer(cls=GovernanceGroup)

    @app.command()
    def fail(kind: str) -> None:
        raise RAISED[kind]

    @app.command()
    def other() -> None:  # a second command, so Typer keeps `fail` as a subcommand
        pass

    return app


@pytest.mark.parametrize(
    ("kind", "exit_code"),
    [
        ("input", 2),
        ("malformed", 2),
        ("missing", 2),
        ("conflict", 1),
        ("forbidden", 1),
        ("unauthenticated", 1),
        ("locked", 1),
    ],
)
def test_a_domain_error_is_one_line_and_its_exit_code(kind: str, exit_code: int) -> None:
    result = CliRunner().invoke(_app(), ["fail", kind])
    assert result.exit_code == exit_code
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {RAISED[kind].message}"]
