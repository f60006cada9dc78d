"""The wheel as a platform team installs it: built from the sdist, installed into a clean
virtualenv outside the checkout, and run from another directory, with nothing of the
checkout on the path. `scripts/test` runs this file on every supported Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.processes import start_group, stop_group
from tests.service_fixtures import free_port

REPOSITORY = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")  # pinned in the lock, so in every virtualenv


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    python: Path
    command: Path
    elsewhere: Path  # the working directory: neither the checkout nor the virtualenv
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed `governance` command, from the other directory."""
        return self.execute(str(self.command), *args)

    def execute(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.elsewhere,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def python_prints(self, code: str) -> str:
        done = self.execute(str(self.python), "-c", code)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def _copy_of_the_checkout(destination: Path) -> Path:
    """The files git tracks (and new ones it does not ignore), links kept as links: what a
    clean clone holds, without this checkout's build and egg-info leftovers."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = REPOSITORY / name, destination / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in git
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    source = _copy_of_the_checkout(root / "source")
    dist = root / "dist"
    # `uv build` makes the sdist, then the wheel from the sdist: so the sdist is complete.
    subprocess.run(
        [str(UV), "build", "--quiet", "-o", str(dist), str(source), "--build-constraint",
         str(REPOSITORY / "scripts" / "setup.lock"), "--require-hashes"],
        check=True,
    )  # fmt: skip
    [wheel], [sdist] = dist.glob("*.whl"), dist.glob("*.tar.gz")
    venv = root / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(python), str(wheel),
         "--constraint", str(REPOSITORY / "requirements.lock")],
        check=True,
    )  # fmt: skip
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(root / "home"),
        "GOVERNANCE_HOME": str(root / "data"),
        "GOVERNANCE_ADMIN_PASSWORD": "a wheel-test admin passphrase",
        "GOVERNANCE_PASSWORD_HASHING": "owasp-minimum",
        "MPLCONFIGDIR": str(root / "home" / ".matplotlib"),
    }
    yield Installed(wheel, sdist, python, venv / "bin" / "governance", elsewhere, env)


def test_the_wheel_installs_nothing_at_the_top_level_but_governance(
    installed: Installed,
) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        [top_level] = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert wheel.read(top_level).decode().split() == ["governance"]
        [record] = [n for n in names if n.endswith(".dist-info/RECORD")]
        recorded = {line.split(",")[0] for line in wheel.read(record).decode().splitlines()}
    tops = {name.split("/")[0] for name in recorded if name}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"governance"}
    # What the code finds by importlib.resources is in the wheel.
    for shipped in (
        "governance/policies/medium.yaml",
        "governance/policies/rbac_model.conf",
        "governance/reports/templates/decision.html.j2",
        "governance/reports/mappings/eu-ai-act-annex-iv.yaml",
        "governance/store/migrations/env.py",
        "governance/web/templates/base.html.j2",
        "governance/web/static/htmx-2.0.11.min.js",
        "governance/auth/common-passwords.txt",
        "governance/py.typed",
    ):
        assert shipped in recorded, shipped


def test_the_installed_command_runs_outside_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    where = installed.python_prints("import governance; print(governance.__file__)")
    assert Path(where).is_relative_to(installed.python.parents[1]), where

    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    lines = version.stdout.splitlines()
    assert lines[0] == "governance 0.1.0"
    assert lines[1].startswith(f"Python {'.'.join(map(str, sys.version_info[:3]))} ")
    assert any(line.startswith("fairlearn 0.") for line in lines)
    module = installed.execute(str(installed.python), "-m", "governance", "--version")
    assert module.returncode == 0 and module.stdout == version.stdout, module.stderr

    init = installed.run("init")
    assert init.returncode == 0, init.stdout + init.stderr

    policies = Path(
        installed.python_prints(
            "from governance.resources import PACKAGED_POLICIES; print(PACKAGED_POLICIES)"
        )
    )
    assert policies.is_relative_to(installed.python.parents[1]), policies
    validated = installed.run("policy", "validate", str(policies / "medium.yaml"))
    assert validated.returncode == 0, validated.stdout + validated.stderr

    data, model = _generated_case(tmp_path)
    report = tmp_path / "decision.pdf"
    gated = installed.run(
        "gate", "--policy", str(policies / "medium.yaml"), "--model", str(model),
        "--data", str(data), "--reference", str(data), "--target", "income",
        "--report", str(report),
    )  # fmt: skip
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert "PASS" in gated.stdout
    verified = installed.run("report", "verify", str(report))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        served = start_group(
            [str(installed.command), "serve", "--port", str(port)],
            env=installed.env,
            log=log,
            cwd=installed.elsewhere,
        )
        try:
            assert _healthy(f"http://127.0.0.1:{port}/health", served), (
                tmp_path / "serve.log"
            ).read_text()
        finally:
            stop_group(served)


def _generated_case(directory: Path, rows: int = 2000) -> tuple[Path, Path]:
    """(data, model): rows of two groups whose income follows the hours worked, and a
    logistic regression on age and hours that neither sees nor depends on the group, so the
    medium-risk policy passes."""
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LogisticRegression

    draw = np.random.default_rng(7)
    hours = draw.integers(10, 70, rows)
    frame = pd.DataFrame(
        {
            "age": draw.integers(18, 80, rows),
            "hours": hours,
            "sex": np.where(draw.random(rows) < 0.5, "Female", "Male"),
            "income": (hours + draw.normal(0, 6, rows) > 40).astype(int),
        }
    )
    data, model = directory / "case.csv", directory / "case.skops"
    frame.to_csv(data, index=False)
    features = frame[["age", "hours"]]
    skops.io.dump(LogisticRegression().fit(features, frame["income"]), model)
    return data, model


def _healthy(url: str, served: subprocess.Popen[bytes], seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if served.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
