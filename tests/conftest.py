"""Shared fixtures: the real Adult data set, split once per test session."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from connectors.adult import load_adult


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    return load_adult()


@pytest.fixture(scope="session")
def adult_split(adult: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): 70/30, stratified by income, fixed seed."""
    train, test = train_test_split(adult, test_size=0.3, random_state=0, stratify=adult["income"])
    return train.reset_index(drop=True), test.reset_index(drop=True)
