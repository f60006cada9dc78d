"""`governance --version`: the package, the Python and the key libraries, read from the
installed distributions, and nothing else run (no command, no settings read)."""

from __future__ import annotations

import platform
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from governance.cli import app
from governance.cli.about import KEY_LIBRARIES


def test_version_names_the_package_the_python_and_the_key_libraries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOVERNANCE_CONFIG", "/nonexistent/settings.yaml")  # never read
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"governance {version('governance')}"
    assert lines[1].startswith(f"Python {platform.python_version()} (CPython, ")
    assert lines[2:] == [f"{name} {version(name)}" for name in KEY_LIBRARIES]
