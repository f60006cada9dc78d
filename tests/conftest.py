"""Shared fixtures: the real Adult data set, split once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

# The CLI's width when it does not write to a terminal, which the tests' expectations of
# its tables assume; pytest-xdist's workers set COLUMNS=80.
os.environ["COLUMNS"] = "140"
# Before anything imports numba (it reads this once): every process a test run starts (this
# one, the servers, their check processes, the CLI) keeps the machine code of shap's
# compiled loops in one place, so they are compiled once, not once per check job
# (`checks/explainability.py`). numba checks each entry against the source it came from.
os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"governance-tests-numba-{os.getuid()}")
)
# Passwords hashed with OWASP's minimum argon2id parameters (19 MiB, 2 passes) rather than
# the default RFC 9106 set (64 MiB, 3 passes, 4 lanes): about 0.02 s of CPU per hash or
# check instead of 0.2 s, in every process the tests start. The suite hashes and checks
# passwords over a thousand times. The tests of the setting, and of equal work for unknown
# names, use the default.
os.environ.setdefault("GOVERNANCE_PASSWORD_HASHING", "owasp-minimum")

import pandas as pd
import pytest
from filelock import FileLock
from sklearn.model_selection import train_test_split

from governance.connectors.adult import load_adult

if TYPE_CHECKING:
    from governance.demo import Demo

# Test modules import helpers from this plugin too; rewrite its asserts before they do.
pytest.register_assert_rewrite(
    "tests.db_fixtures", "tests.service_fixtures", "tests.mlflow_fixtures"
)


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    return load_adult()


@pytest.fixture(scope="session")
def adult_split(adult: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): 70/30, stratified by income, fixed seed."""
    train, test = train_test_split(adult, test_size=0.3, random_state=0, stratify=adult["income"])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A directory that takes a minute to make, made once per test run. Under pytest-xdist
    each worker process has session fixtures of its own; the first worker to ask builds the
    directory in the run's shared temporary root, and the others wait for it and use it.
    Whoever uses it reads it and copies what it changes."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        directory = factory.mktemp(name)
        build(directory)
        return directory
    root = factory.getbasetemp().parent  # this run's root, shared by its workers
    directory = root / name
    with FileLock(root / f"{name}.lock"):
        if not (directory / ".built").exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            build(directory)
            (directory / ".built").touch()
    return directory


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory, adult: pd.DataFrame) -> Path:
    """The demo's data and its two real models (version 1 of each), as files: train.parquet,
    test.parquet, income-full.skops (uses sex and race) and income-reweighed.skops (does
    not). Shared by the run's workers: read it, never write to it."""
    import skops.io

    from governance.demo import MODELS, SEED, train

    def build(directory: Path) -> None:
        training, evaluation = train_test_split(
            adult, test_size=0.3, random_state=SEED, stratify=adult["income"]
        )
        training.to_parquet(directory / "train.parquet", index=False)
        evaluation.to_parquet(directory / "test.parquet", index=False)
        evaluation.to_csv(directory / "test.csv", index=False)
        for spec in [s for s in MODELS if s.version == "1"]:
            skops.io.dump(train(spec, training), directory / f"{spec.name}.skops")

    return built_once(tmp_path_factory, "demo", build)


@pytest.fixture(scope="session")
def fast_policy_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policies with smaller samples (`service_fixtures.fast_policies`)."""
    from tests.service_fixtures import fast_policies

    return built_once(tmp_path_factory, "fast-policies", fast_policies)


def _seed_fast_demo(directory: Path, trained: Path | None = None) -> Demo:
    """`run_demo` in `directory` under the shipped policies with smaller samples (the same
    checks and rules, seconds not minutes), its check jobs in this process. A second call
    on the same directory finds everything done and changes nothing. `trained` is a
    `demo_dir`: its version-1 models, trained as the demo trains them, are put where the
    demo reuses a model it trained before, so only version 2 is trained here."""
    from governance import bootstrap
    from governance import demo as demo_module
    from tests.in_process import InProcessChecks
    from tests.service_fixtures import fast_policies

    if trained is not None:
        (directory / "demo").mkdir(parents=True, exist_ok=True)
        for model in trained.glob("*.skops"):
            shutil.copyfile(model, directory / "demo" / f"{model.stem}-v1.skops")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
        patch.setattr(demo_module, "POLICIES", fast_policies(directory / "policies"))
        patch.setattr(bootstrap, "IsolatedChecks", InProcessChecks)
        return demo_module.run_demo(directory, progress=lambda step: None)


@pytest.fixture(scope="session")
def fast_demo_files(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> Path:
    """The fast demo's data directory, made once per run (`built_once`): copy it to use it."""
    return built_once(tmp_path_factory, "fast-demo", lambda d: _seed_fast_demo(d, demo_dir))


@pytest.fixture(scope="session")
def fast_demo(tmp_path_factory: pytest.TempPathFactory, fast_demo_files: Path) -> Demo:
    """The fast demo (`_seed_fast_demo`) in a copy of its own for this worker: the seeded
    service (`demo.Demo`), its candidates checked, signed and promoted as far as the demo
    goes and its signed reports written."""
    directory = tmp_path_factory.mktemp("fast-demo")
    shutil.copytree(fast_demo_files, directory, dirs_exist_ok=True)
    return _seed_fast_demo(directory)


@pytest.fixture
def checks_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service this test opens runs its check jobs in this process (`tests.in_process`)."""
    from governance import bootstrap
    from tests.in_process import InProcessChecks

    monkeypatch.setattr(bootstrap, "IsolatedChecks", InProcessChecks)
