"""Checks: from (model outputs, data, check spec) to a `CheckResult`, as mergeable aggregations.

A check that reads rows has three parts: `partial` summarises one batch of rows, `merge`
combines two summaries, and `finalize` gives the result. The same code then judges data in
memory (one batch), streamed from disk in bounded batches, or spread over a Dask cluster,
and gives the same figures: counts merge exactly; rank and distribution statistics are kept
exact while the data is small enough to keep (`Scope.exact`), and otherwise come from
bins with a stated error bound (`sketches`).

A check never touches the database or the file system. Predictions are computed once per
batch and shared through `Batch`, because predicting is the most expensive step a check
could repeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from governance.checks.reference import ReferenceProfile, profile
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
    """Everything a check may read, all rows in memory at once."""

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


@dataclass(frozen=True)
class Scope:
    """What every batch shares, known before the first row is read."""

    columns: list[str]  # the evaluation data's columns
    features: list[str]
    target: str
    task: Task
    rows: int  # rows in the whole evaluation data
    scores: bool = False  # batches carry positive-class scores
    model: Any | None = None
    reference: ReferenceProfile | None = None
    champion_measured: bool = False  # batches carry the champion's outputs
    champion_metrics: dict[str, float] | None = None  # or its recorded metrics
    exact: bool = True  # keep every value a rank statistic needs
    sampling: Literal["keys", "frame"] = "keys"  # ports.Execution.sampling


@dataclass(frozen=True)
class Batch:
    """Some rows of the evaluation data with the model's outputs on them. `offset` is the
    index of the first row in the whole data, so a seeded sample does not depend on how
    the rows were split."""

    data: pd.DataFrame
    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray | None = None
    champion_pred: np.ndarray | None = None
    champion_score: np.ndarray | None = None
    offset: int = 0


class Aggregation(Protocol):
    """One check as a mergeable aggregation over batches of rows."""

    def partial(self, batch: Batch) -> Any: ...

    def merge(self, first: Any, second: Any) -> Any: ...

    def finalize(self, state: Any) -> CheckResult: ...


@dataclass(frozen=True)
class Exactness:
    """How a figure was computed: over every row, or from bins with an error bound."""

    statistic: str
    method: Literal["exact", "sketch", "sample"]
    bound: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "method": self.method, "bound": self.bound}


def library_versions(*names: str) -> dict[str, str]:
    return {name: version(name) for name in names}


def scope_and_batch(inputs: CheckInputs) -> tuple[Scope, Batch]:
    """All rows in memory: the scope and the one batch they make."""
    champion = inputs.champion
    measured = champion is not None and champion.y_pred is not None
    scope = Scope(
        columns=[str(c) for c in inputs.data.columns],
        features=inputs.features,
        target=inputs.target,
        task=inputs.task,
        rows=len(inputs.data),
        scores=inputs.y_score is not None,
        model=inputs.model,
        reference=None if inputs.reference is None else profile(inputs.reference, exact=True),
        champion_measured=measured,
        champion_metrics=None if champion is None or measured else champion.metrics,
    )
    batch = Batch(
        data=inputs.data,
        y_true=inputs.y_true,
        y_pred=inputs.y_pred,
        y_score=inputs.y_score,
        champion_pred=champion.y_pred if measured and champion else None,
        champion_score=champion.y_score if measured and champion else None,
    )
    return scope, batch


def run_check(spec: AnyCheck, inputs: CheckInputs) -> CheckResult:
    """Run one check on rows held in memory: one batch."""
    scope, batch = scope_and_batch(inputs)
    checks = Checks([spec], scope)
    return checks.finalize(checks.partial(batch))[0]


@dataclass
class _Failed:
    """A check that failed on some batch: its result is an error, whatever else merges."""

    summary: str


@dataclass
class _Timed:
    seconds: float
    state: Any


class Checks:
    """Several checks as one aggregation: a batch is summarised once for all of them.

    Bad input raises `InputError`, when the checks are set up (the policy asks for
    something the data cannot give) or from a batch. Any other failure of one check
    becomes that check's `error` result, so the verdict fails closed instead of the gate
    crashing."""

    def __init__(self, specs: Sequence[AnyCheck], scope: Scope) -> None:
        self.specs = list(specs)
        self._aggregations: list[Aggregation | _Failed] = []
        for spec in self.specs:
            try:
                self._aggregations.append(_aggregation(spec, scope))
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported as the check's error
                self._aggregations.append(_failure(spec, exc))

    def partial(self, batch: Batch) -> list[_Timed | _Failed]:
        states: list[_Timed | _Failed] = []
        for spec, aggregation in zip(self.specs, self._aggregations, strict=True):
            if isinstance(aggregation, _Failed):
                states.append(aggregation)
                continue
            started = time.perf_counter()
            try:
                state = aggregation.partial(batch)
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported as the check's error
                states.append(_failure(spec, exc))
                continue
            states.append(_Timed(time.perf_counter() - started, state))
        return states

    def merge(
        self, first: list[_Timed | _Failed], second: list[_Timed | _Failed]
    ) -> list[_Timed | _Failed]:
        merged: list[_Timed | _Failed] = []
        for spec, aggregation, one, other in zip(
            self.specs, self._aggregations, first, second, strict=True
        ):
            if isinstance(one, _Failed) or isinstance(aggregation, _Failed):
                merged.append(one)
            elif isinstance(other, _Failed):
                merged.append(other)
            else:
                started = time.perf_counter()
                try:
                    state = aggregation.merge(one.state, other.state)
                except InputError:
                    raise
                except Exception as exc:  # noqa: BLE001 - reported as the check's error
                    merged.append(_failure(spec, exc))
                    continue
                spent = time.perf_counter() - started
                merged.append(_Timed(one.seconds + other.seconds + spent, state))
        return merged

    def finalize(self, states: list[_Timed | _Failed]) -> list[CheckResult]:
        results = []
        for spec, aggregation, state in zip(self.specs, self._aggregations, states, strict=True):
            results.append(_finalized(spec, aggregation, state))
        return results


def _finalized(
    spec: AnyCheck, aggregation: Aggregation | _Failed, state: _Timed | _Failed
) -> CheckResult:
    if isinstance(state, _Failed) or isinstance(aggregation, _Failed):
        failed = state if isinstance(state, _Failed) else aggregation
        assert isinstance(failed, _Failed)
        return CheckResult(id=spec.id, type=spec.type, status=Status.ERROR, summary=failed.summary)
    started = time.perf_counter()
    try:
        result = aggregation.finalize(state.state)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as the check's error
        result = CheckResult(
            id=spec.id, type=spec.type, status=Status.ERROR, summary=_failure(spec, exc).summary
        )
    seconds = state.seconds + time.perf_counter() - started
    return result.model_copy(update={"duration_seconds": seconds})


def _failure(spec: AnyCheck, exc: Exception) -> _Failed:
    return _Failed(f"The {spec.type} check could not run: {type(exc).__name__}: {exc}")


def _aggregation(spec: AnyCheck, scope: Scope) -> Aggregation:
    return _kinds()[spec.type](spec, scope)


def _kinds() -> dict[str, Callable[[Any, Scope], Aggregation]]:
    from governance.checks import data_quality, drift, explainability, fairness, performance

    return {
        "fairness": fairness.Aggregate,
        "explainability": explainability.Aggregate,
        "drift": drift.Aggregate,
        "data_quality": data_quality.Aggregate,
        "performance": performance.Aggregate,
    }
