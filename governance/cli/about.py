"""`governance --version`: what a bug report needs. The package's version, the Python that
runs it, and the versions of the libraries whose behaviour decides a verdict, a signature or
a report, read from the installed distributions (nothing heavy is imported)."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

KEY_LIBRARIES = (
    "litestar", "sqlmodel", "alembic", "scikit-learn", "fairlearn", "shap", "evidently",
    "lightgbm", "weasyprint", "pyhanko", "pycasbin", "mlflow-skinny",
)  # fmt: skip


def installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def version_lines() -> list[str]:
    implementation = platform.python_implementation()
    return [
        f"governance {installed('governance')}",
        f"Python {platform.python_version()} ({implementation}, {sys.executable})",
        *(f"{name} {installed(name)}" for name in KEY_LIBRARIES),
    ]


def show_version(wanted: bool) -> None:
    if wanted:
        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        is_eager=True,
        callback=show_version,
        help="Show the version, the Python and the key libraries', then exit.",
    ),
]
