"""`scripts/setup` picks a supported Python, and without one stops at once with exit 2 and a
message that names the supported versions (before it installs anything)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup"
BASH = shutil.which("bash") or "/bin/bash"


def setup(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SETUP)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_no_supported_python_on_the_path_or_in_pyenv(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "ls", "sort"):  # what runs before the Python is chosen
        (tools / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    done = setup({"PATH": str(tools), "PYENV_ROOT": str(tmp_path / "no-pyenv")})
    assert done.returncode == 2, done.stderr
    assert "governance runs on Python 3.13 3.12 3.11, and none was found" in done.stderr
    assert "PYTHON=" in done.stderr


def test_a_named_python_that_is_not_supported(tmp_path: Path) -> None:
    old = tmp_path / "python"
    old.write_text('#!/bin/sh\n[ "$1" = --version ] && echo Python 3.10.13 && exit 0\nexit 1\n')
    old.chmod(0o755)
    done = setup({"PATH": "/usr/bin:/bin", "PYTHON": str(old)})
    assert done.returncode == 2, done.stderr
    assert f"PYTHON={old} is Python 3.10.13; governance runs on Python 3.13 3.12 3.11" in (
        done.stderr
    )
    done = setup({"PATH": "/usr/bin:/bin", "PYTHON": "3.10", "PYENV_ROOT": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert "PYTHON=3.10: no supported Python 3.10 was found" in done.stderr
