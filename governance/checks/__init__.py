"""Checks: pure functions from (model outputs, data, check spec) to a `CheckResult`.

A check never touches the database or the file system. Predictions are computed once per
gate run and shared through `CheckInputs`, because predicting a million rows is the single
most expensive step a check could repeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal

import numpy as np
import pandas as pd

from governance.domain.errors import InputError
from governance.domain.judging import rule_severity as rule_severity  # the checks' import
from governance.domain.policy import AnyCheck
from governance.domain.results import CheckResult, Status

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Champion:
    """The model in production now: its outputs on the same data, or its recorded metrics."""

    y_pred: np.ndarray | None = None
    y_score: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckInputs:
    """Everything a check may read."""

    data: pd.DataFrame
    features: list[str]
    target: str
    y_true: np.ndarray
    y_pred: np.ndarray
    task: Task
    y_score: np.ndarray | None = None
    model: Any | None = None
    reference: pd.DataFrame | None = None
    champion: Champion | None = None


def library_versions(*names: str) -> dict[str, str]:
    return {name: version(name) for name in names}


def run_check(spec: AnyCheck, inputs: CheckInputs) -> CheckResult:
    """Run one check. Bad input propagates as `InputError`; any other failure becomes an
    `error` result so the verdict fails closed instead of the gate crashing."""
    runner = _runners()[spec.type]
    started = time.perf_counter()
    try:
        result = runner(spec, inputs)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as the check's error, never swallowed
        result = CheckResult(
            id=spec.id,
            type=spec.type,
            status=Status.ERROR,
            summary=f"The {spec.type} check could not run: {type(exc).__name__}: {exc}",
        )
    return result.model_copy(update={"duration_seconds": time.perf_counter() - started})


def _runners() -> dict[str, Callable[[Any, CheckInputs], CheckResult]]:
    from governance.checks import data_quality, drift, explainability, fairness, performance

    return {
        "fairness": fairness.run,
        "explainability": explainability.run,
        "drift": drift.run,
        "data_quality": data_quality.run,
        "performance": performance.run,
    }
