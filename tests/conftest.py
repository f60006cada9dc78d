"""Shared fixtures: the real Adult data set, split once per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from connectors.adult import load_adult

# Test modules import helpers from this plugin too; rewrite its asserts before they do.
pytest.register_assert_rewrite("tests.service_fixtures", "tests.mlflow_fixtures")


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    return load_adult()


@pytest.fixture(scope="session")
def adult_split(adult: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): 70/30, stratified by income, fixed seed."""
    train, test = train_test_split(adult, test_size=0.3, random_state=0, stratify=adult["income"])
    return train.reset_index(drop=True), test.reset_index(drop=True)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory, adult: pd.DataFrame):
    """The demo's data and its two real models (version 1 of each), as files: train.parquet,
    test.parquet, income-full.skops (uses sex and race) and income-reweighed.skops (does
    not)."""
    import skops.io

    from governance.demo import MODELS, SEED, train

    directory = tmp_path_factory.mktemp("demo")
    training, evaluation = train_test_split(
        adult, test_size=0.3, random_state=SEED, stratify=adult["income"]
    )
    training.to_parquet(directory / "train.parquet", index=False)
    evaluation.to_parquet(directory / "test.parquet", index=False)
    evaluation.to_csv(directory / "test.csv", index=False)
    for spec in [s for s in MODELS if s.version == "1"]:
        skops.io.dump(train(spec, training), directory / f"{spec.name}.skops")
    return directory


@pytest.fixture(scope="session")
def fast_demo(tmp_path_factory: pytest.TempPathFactory):
    """`run_demo` once for the session, under the shipped policies with smaller samples
    (the same checks and rules, seconds not minutes): the seeded service (`demo.Demo`), its
    candidates checked, signed and promoted as far as the demo goes and its signed reports
    written."""
    from governance import demo as demo_module
    from tests.service_fixtures import fast_policies

    directory = tmp_path_factory.mktemp("fast-demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
        patch.setattr(demo_module, "POLICIES", fast_policies(directory / "policies"))
        return demo_module.run_demo(directory, progress=lambda step: None)
