"""The gate over batches: any split of the rows gives the in-memory figures.

Counts are exact, so every figure is equal (to 1e-12) however the rows are split, even
when a group is absent from most batches and a category occurs in one batch only; with the
rank statistics sketched (`exact_rows` below the data's size), those lie within their
stated bound and the verdicts do not change."""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import governance.connectors.files as files
from governance.connectors.datasets import MemoryRows
from governance.domain.evidence import EvidenceManifest
from governance.services.gate import judge
from governance.services.ports import Execution, GateRequest

POLICIES = Path(__file__).resolve().parents[2] / "policies"


class SplitRows(MemoryRows):
    """A frame handed over in the given slices, as a streamed reader would."""

    def __init__(self, frame: pd.DataFrame, cuts: list[int]) -> None:
        super().__init__(frame, _artifact(frame))
        self.cuts = cuts

    def fold(self, function, merge, columns=None):  # type: ignore[no-untyped-def]
        frame = self.frame if columns is None else self.frame[columns]
        bounds = [0, *self.cuts, len(frame)]
        state = None
        for start, end in pairwise(bounds):
            part = function(frame.iloc[start:end].reset_index(drop=True), start)
            state = part if state is None else merge(state, part)
        return state


def _artifact(frame: pd.DataFrame) -> Any:
    from governance.domain.evidence import Artifact

    return Artifact(role="data", uri="memory", sha256="0" * 64, format="parquet", rows=len(frame))


class SplitSource:
    """The local files, with tables split into batches."""

    def __init__(self, tables: dict[str, tuple[pd.DataFrame, list[int]]]) -> None:
        self.tables = tables

    def open_rows(self, path: Path, role: str, execution: Execution) -> MemoryRows:
        frame, cuts = self.tables[role]
        return SplitRows(frame, cuts)

    def __getattr__(self, name: str) -> Any:
        return getattr(files, name)


@pytest.fixture(scope="module")
def sorted_data(demo_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    test = pd.read_parquet(demo_dir / "test.parquet")
    # sorted by race: each race's rows sit in few batches, absent from the others
    test = test.sort_values("race", kind="stable").reset_index(drop=True)
    return test, pd.read_parquet(demo_dir / "train.parquet")


def _judge(
    demo_dir: Path, data: pd.DataFrame, reference: pd.DataFrame, cuts: list[int], exact_rows: int
) -> EvidenceManifest:
    request = GateRequest(
        policy=POLICIES / "high.yaml",
        data=Path("test"),
        reference=Path("train"),
        target="income",
        model=demo_dir / "income-reweighed.skops",
        champion=demo_dir / "income-reweighed.skops",  # measured on the same rows
    )
    source = SplitSource({"data": (data, cuts), "reference": (reference, [5000, 20000])})
    policy = files.load_policy(request.policy)
    execution = Execution(kind="streamed", exact_rows=exact_rows)
    return judge(policy, request, source, execution=execution)  # type: ignore[arg-type]


def _differences(one: Any, other: Any, path: str = "") -> list[str]:
    if isinstance(one, dict):
        skipped = {"duration_seconds", "statistics", "sketched", "bound"}
        return [
            difference
            for key in sorted(set(one) | set(other), key=str)
            if key not in skipped
            for difference in (
                _differences(one.get(key), other.get(key), f"{path}/{key}")
                if key in one and key in other
                else [f"{path}/{key} missing"]
            )
        ]
    if isinstance(one, list):
        if len(one) != len(other):
            return [f"{path}: {len(one)} items, {len(other)}"]
        return [
            d
            for i, (a, b) in enumerate(zip(one, other, strict=True))
            for d in _differences(a, b, f"{path}[{i}]")
        ]
    if isinstance(one, float) and isinstance(other, (int, float)):
        close = math.isclose(one, other, rel_tol=1e-12, abs_tol=1e-12)
        return [] if close else [f"{path}: {one!r} != {other!r}"]
    return [] if one == other else [f"{path}: {one!r} != {other!r}"]


@pytest.fixture(scope="module")
def in_memory(demo_dir: Path, sorted_data: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
    data, reference = sorted_data
    return _judge(demo_dir, data, reference, [], 10**9).model_dump(mode="json")


@pytest.mark.parametrize(
    "cuts",
    [[1], [700, 701, 5000, 9999], list(range(1000, 14000, 1000))],
    ids=["one-row-first", "uneven", "fourteen"],
)
def test_exact_figures_equal_in_memory_however_split(
    demo_dir: Path, sorted_data, in_memory: dict[str, Any], cuts: list[int]
) -> None:
    data, reference = sorted_data
    split = _judge(demo_dir, data, reference, cuts, 10**9).model_dump(mode="json")
    assert _differences(in_memory["results"], split["results"]) == []
    assert split["decision"] == in_memory["decision"]


def test_sketched_figures_lie_within_their_bounds_and_verdicts_hold(
    demo_dir: Path, sorted_data, in_memory: dict[str, Any]
) -> None:
    data, reference = sorted_data
    sketched = _judge(demo_dir, data, reference, [3000, 8000, 11000], 1000).model_dump(mode="json")
    assert sketched["decision"] == in_memory["decision"]
    exact = {result["id"]: result for result in in_memory["results"]}
    rank_figures = 0
    for result in sketched["results"]:
        before = exact[result["id"]]
        assert result["status"] == before["status"], result["id"]
        if result["type"] == "drift":
            for column, reference_column in zip(
                result["metrics"]["columns"], before["metrics"]["columns"], strict=True
            ):
                assert column["drifted"] == reference_column["drifted"]
                gap = abs(column["statistic"] - reference_column["statistic"])
                assert gap <= column["bound"] + 1e-12, column
                rank_figures += column["sketched"]
        elif result["type"] == "performance":
            bounds = {s["statistic"]: s for s in result["metrics"]["statistics"]}
            pairs = (
                ("roc_auc", result["metrics"], before["metrics"]),
                ("champion roc_auc", result["metrics"]["champion"], before["metrics"]["champion"]),
            )
            for statistic, figures, exact_figures in pairs:
                assert bounds[statistic]["method"] == "sketch"
                gap = abs(figures["roc_auc"] - exact_figures["roc_auc"])
                assert gap <= bounds[statistic]["bound"] + 1e-12
                for name in ("accuracy", "precision", "recall", "f1"):
                    assert figures[name] == pytest.approx(exact_figures[name], abs=1e-12)
            rank_figures += 1
        else:
            assert _differences(before["metrics"], result["metrics"]) == [], result["id"]
    assert rank_figures >= 4  # the sketches were used, not skipped


def test_a_category_in_one_batch_only_is_counted_once(demo_dir: Path, sorted_data) -> None:
    """Sanity of the data above: some categories occur in a single batch."""
    data, _ = sorted_data
    cuts = [0, 3000, 8000, 11000, len(data)]
    where = {
        value: sum((data["native_country"].iloc[a:b] == value).any() for a, b in pairwise(cuts))
        for value in data["native_country"].dropna().unique()
    }
    assert any(count == 1 for count in where.values())
    races = [set(data["race"].iloc[a:b]) for a, b in pairwise(cuts)]
    assert any(len(present) < data["race"].nunique() for present in races)
