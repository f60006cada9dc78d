"""The gate on Parquet data sets: in memory, streamed and on a real Dask LocalCluster (two
worker processes) it gives the same figures; bad data sets, a file that disappears while it
is read, a worker killed with SIGKILL and an unreachable scheduler."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

import governance.connectors.files as files
from governance.cli import app
from governance.connectors import datasets
from governance.domain.errors import InputError
from governance.services.gate import judge
from governance.services.ports import Execution, GateRequest

runner = CliRunner()
CUTS = [0, 1000, 4000, 9000, 12000]  # uneven files; sorted by race, most lack some races


@pytest.fixture(scope="module")
def data_sets(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's evaluation data sorted by race: as one file, and as five Parquet files
    of several row groups each; the training data as one file and as three."""
    root = tmp_path_factory.mktemp("datasets")
    test = pd.read_parquet(demo_dir / "test.parquet")
    test = test.sort_values("race", kind="stable").reset_index(drop=True)
    test.to_parquet(root / "test.parquet")
    (root / "test").mkdir()
    bounds = [*CUTS, len(test)]
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        test.iloc[start:end].to_parquet(root / "test" / f"part-{index}.parquet", row_group_size=700)
    (root / "test" / "_SUCCESS").write_text("")  # a marker Spark leaves: not data
    train = pd.read_parquet(demo_dir / "train.parquet")
    train.to_parquet(root / "train.parquet")
    (root / "train").mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(train)), 3)):
        train.iloc[part].to_parquet(root / "train" / f"p{index}.parquet")
    return root


def gate(
    demo_dir: Path, policies: Path, data: Path, reference: Path, *extra: str
) -> tuple[int, str, dict[str, Any]]:
    evidence = data.parent / f"evidence-{abs(hash((str(data), extra)))}.json"
    result = runner.invoke(
        app,
        [
            "gate",
            "--policy", str(policies / "high.yaml"),
            "--model", str(demo_dir / "income-reweighed.skops"),
            "--data", str(data),
            "--reference", str(reference),
            "--target", "income",
            "--json", str(evidence),
            *extra,
        ],
    )  # fmt: skip
    manifest = json.loads(evidence.read_text()) if evidence.exists() else {}
    return result.exit_code, result.output, manifest


def differences(one: Any, other: Any, path: str = "") -> list[str]:
    """Every figure that differs by more than 1e-12 (durations and bounds aside)."""
    if isinstance(one, dict):
        skipped = {"duration_seconds", "statistics", "sketched", "bound"}
        keys = sorted(set(one) | set(other), key=str)
        return [
            d
            for key in keys
            if key not in skipped
            for d in (
                differences(one[key], other[key], f"{path}/{key}")
                if key in one and key in other
                else [f"{path}/{key} missing"]
            )
        ]
    if isinstance(one, list):
        if len(one) != len(other):
            return [f"{path}: {len(one)} items against {len(other)}"]
        pairs = zip(one, other, strict=True)
        return [d for i, (a, b) in enumerate(pairs) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(one, float) and isinstance(other, (int, float)):
        return (
            []
            if math.isclose(one, other, rel_tol=1e-12, abs_tol=1e-12)
            else [f"{path}: {one} {other}"]
        )
    return [] if one == other else [f"{path}: {one!r} {other!r}"]


@pytest.fixture(scope="module")
def in_memory(demo_dir: Path, fast_policy_files: Path, data_sets: Path) -> dict[str, Any]:
    code, output, manifest = gate(
        demo_dir, fast_policy_files, data_sets / "test.parquet", data_sets / "train.parquet",
        "--executor", "memory",
    )  # fmt: skip
    assert code in (0, 1), output
    return manifest


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[None]:
    yield
    datasets.close_clients()


@pytest.mark.parametrize(
    "how",
    [
        ("--executor", "streamed", "--batch-rows", "1500"),
        ("--dask", "local", "--batch-rows", "1500"),
    ],
    ids=["streamed", "dask"],
)
def test_a_data_set_gives_the_in_memory_figures(
    demo_dir: Path, fast_policy_files: Path, data_sets: Path, in_memory, local_cluster, how
) -> None:
    code, output, manifest = gate(
        demo_dir, fast_policy_files, data_sets / "test", data_sets / "train", *how
    )
    assert code in (0, 1), output
    assert differences(in_memory["results"], manifest["results"]) == []
    assert manifest["decision"] == in_memory["decision"]
    for result in manifest["results"]:  # nothing sketched: the data is small enough to keep
        assert all(s["method"] != "sketch" for s in result["metrics"]["statistics"])


@pytest.mark.parametrize(
    "how", [("--executor", "streamed"), ("--dask", "local")], ids=["streamed", "dask"]
)
def test_sketched_figures_stay_within_their_bounds(
    demo_dir: Path, fast_policy_files: Path, data_sets: Path, in_memory, local_cluster, how
) -> None:
    code, output, manifest = gate(
        demo_dir, fast_policy_files, data_sets / "test", data_sets / "train",
        *how, "--batch-rows", "2500", "--exact-rows", "1000",
    )  # fmt: skip
    assert code in (0, 1), output
    assert manifest["decision"] == in_memory["decision"]
    exact = {result["id"]: result for result in in_memory["results"]}
    sketched = 0
    for result in manifest["results"]:
        assert result["status"] == exact[result["id"]]["status"]
        if result["type"] == "drift":
            before = exact[result["id"]]["metrics"]["columns"]
            for column, exact_column in zip(result["metrics"]["columns"], before, strict=True):
                assert column["drifted"] == exact_column["drifted"]
                assert (
                    abs(column["statistic"] - exact_column["statistic"]) <= column["bound"] + 1e-12
                )
                sketched += column["sketched"]
        if result["type"] == "performance":
            bound = next(s for s in result["metrics"]["statistics"] if s["statistic"] == "roc_auc")
            assert bound["method"] == "sketch"
            gap = abs(result["metrics"]["roc_auc"] - exact[result["id"]]["metrics"]["roc_auc"])
            assert gap <= bound["bound"]
            sketched += 1
    assert sketched >= 4


def test_evidence_pins_each_file_in_canonical_order(
    demo_dir: Path, fast_policy_files: Path, data_sets: Path
) -> None:
    code, output, manifest = gate(
        demo_dir,
        fast_policy_files,
        data_sets / "test",
        data_sets / "train",
        "--executor",
        "streamed",
    )
    assert code in (0, 1), output
    data = next(a for a in manifest["artifacts"] if a["role"] == "data")
    assert [f["path"] for f in data["files"]] == [f"part-{i}.parquet" for i in range(5)]
    listing = hashlib.sha256()
    for entry in data["files"]:
        digest = hashlib.sha256((data_sets / "test" / entry["path"]).read_bytes()).hexdigest()
        assert entry["sha256"] == digest
        listing.update(f"{digest}  {entry['path']}\n".encode())
    assert data["sha256"] == listing.hexdigest()
    assert data["rows"] == 14653
    # a glob names the same files, so the same data set
    code, output, by_glob = gate(
        demo_dir, fast_policy_files, data_sets / "test" / "part-*.parquet", data_sets / "train",
        "--executor", "streamed",
    )  # fmt: skip
    assert code in (0, 1), output
    assert next(a for a in by_glob["artifacts"] if a["role"] == "data")["sha256"] == data["sha256"]


@pytest.fixture(scope="module")
def hive_tree(data_sets: Path) -> Path:
    """The evaluation data partitioned by a `month` column that lives only in the paths."""
    test = pd.read_parquet(data_sets / "test.parquet")
    test["month"] = np.arange(len(test)) % 3 + 1
    ds.write_dataset(
        pa.Table.from_pandas(test, preserve_index=False),
        data_sets / "hive",
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("month", pa.int64())]), flavor="hive"),
    )
    return data_sets / "hive"


def test_a_hive_partitioned_tree_is_read_with_its_partition_column(
    demo_dir: Path, fast_policy_files: Path, data_sets: Path, hive_tree: Path, local_cluster
) -> None:
    """Streamed and on Dask (whose pieces read files directly) the partition column is
    there, and the figures equal the whole tree read in memory."""
    manifests = {}
    for kind, how in (
        ("memory", ("--executor", "memory")),
        ("streamed", ("--executor", "streamed", "--batch-rows", "3000")),
        ("dask", ("--dask", "local", "--batch-rows", "3000")),
    ):
        code, output, manifest = gate(
            demo_dir, fast_policy_files, hive_tree, data_sets / "train", *how
        )
        assert code in (0, 1), output
        manifests[kind] = manifest
        data = next(a for a in manifest["artifacts"] if a["role"] == "data")
        assert "month" in data["columns"]
        assert sorted({f["path"].split("/")[0] for f in data["files"]}) == [
            "month=1", "month=2", "month=3"
        ]  # fmt: skip
        assert data["rows"] == 14653
    for kind in ("streamed", "dask"):
        assert differences(manifests["memory"]["results"], manifests[kind]["results"]) == []


def test_a_part_with_another_schema_is_named(
    demo_dir: Path, fast_policy_files: Path, data_sets: Path, tmp_path: Path
) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    test = pd.read_parquet(data_sets / "test.parquet")
    test.iloc[:5000].to_parquet(parts / "a.parquet")
    odd = test.iloc[5000:].copy()
    odd["age"] = odd["age"].astype(str)
    odd.to_parquet(parts / "b.parquet")
    for how in (("--executor", "streamed"), ("--dask", "local")):
        code, output, _ = gate(demo_dir, fast_policy_files, parts, data_sets / "train", *how)
        assert code == 2, output
        assert "b.parquet" in output and "age" in output
        assert "Traceback" not in output


def test_bad_data_set_locations_are_refused_with_the_fix(
    demo_dir: Path, fast_policy_files: Path, data_sets: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.csv").write_text("x\n1\n")
    cases = {
        tmp_path / "empty": "holds no Parquet file",
        tmp_path / "nothing-*.parquet": "holds no Parquet file",
        tmp_path / "mixed" / "*": "is not .parquet",
    }
    for location, problem in cases.items():
        code, output, _ = gate(
            demo_dir, fast_policy_files, location, data_sets / "train", "--executor", "streamed"
        )
        assert code == 2, output
        assert problem in " ".join(output.split()), output
    code, output, _ = gate(
        demo_dir, fast_policy_files, data_sets / "test", data_sets / "train",
        "--executor", "streamed", "--url-typo",
    )  # fmt: skip
    assert code == 2


@pytest.mark.parametrize("kind", ["streamed", "dask"])
def test_a_file_that_disappears_while_read_is_named_and_nothing_recorded(
    demo_dir: Path,
    fast_policy_files: Path,
    data_sets: Path,
    tmp_path: Path,
    local_cluster,
    kind: str,
) -> None:
    copy = tmp_path / "test"
    copy.mkdir()
    for part in sorted((data_sets / "test").glob("*.parquet")):
        (copy / part.name).write_bytes(part.read_bytes())
    doomed = copy / "part-3.parquet"

    def delete_when_checking(step: str) -> None:
        if step.startswith("Predicting"):
            doomed.unlink()

    request = GateRequest(
        policy=fast_policy_files / "medium.yaml",
        data=copy,
        reference=data_sets / "train.parquet",
        target="income",
        model=demo_dir / "income-reweighed.skops",
    )
    policy = files.load_policy(request.policy)
    execution = Execution(kind=kind, dask="local" if kind == "dask" else None, batch_rows=2000)  # type: ignore[arg-type]
    with pytest.raises(InputError) as caught:
        judge(policy, request, files, delete_when_checking, execution)
    assert "part-3.parquet" in caught.value.subject
    assert "disappeared" in caught.value.problem


@pytest.mark.parametrize("kind", ["streamed", "dask"])
def test_a_file_rewritten_while_read_is_named_not_judged(
    demo_dir: Path,
    fast_policy_files: Path,
    data_sets: Path,
    tmp_path: Path,
    local_cluster,
    kind: str,
) -> None:
    """Other bytes in the same shape, written after the data set was hashed: Dask's pieces
    would read them without a complaint, so the gate compares each file's stamp after
    every pass and refuses to report figures of bytes the evidence does not pin."""
    copy = tmp_path / "test"
    copy.mkdir()
    for part in sorted((data_sets / "test").glob("*.parquet")):
        (copy / part.name).write_bytes(part.read_bytes())
    target = copy / "part-3.parquet"

    def rewrite_when_checking(step: str) -> None:
        if step.startswith("Predicting"):
            frame = pd.read_parquet(target)
            frame["age"] = frame["age"] + 30
            time.sleep(0.01)  # a later modification time, even on a coarse clock
            frame.to_parquet(target, row_group_size=700)

    request = GateRequest(
        policy=fast_policy_files / "medium.yaml",
        data=copy,
        reference=data_sets / "train.parquet",
        target="income",
        model=demo_dir / "income-reweighed.skops",
    )
    policy = files.load_policy(request.policy)
    execution = Execution(kind=kind, dask="local" if kind == "dask" else None, batch_rows=2000)  # type: ignore[arg-type]
    with pytest.raises(InputError) as caught:
        judge(policy, request, files, rewrite_when_checking, execution)
    assert "part-3.parquet" in caught.value.subject
    if kind == "dask":
        assert "changed while it was read" in caught.value.problem


def test_an_unreachable_scheduler_is_named_with_exit_2(
    demo_dir: Path, fast_policy_files: Path, data_sets: Path
) -> None:
    started = time.monotonic()
    code, output, manifest = gate(
        demo_dir, fast_policy_files, data_sets / "test", data_sets / "train",
        "--dask", "tcp://127.0.0.1:9",
    )  # fmt: skip
    assert code == 2, output
    text = " ".join(output.split())
    assert "Dask scheduler tcp://127.0.0.1:9" in text and "cannot be reached" in text
    assert manifest == {}
    assert time.monotonic() - started < 60


class SlowModel:
    """The demo model, a little slower per part, so that a worker dies mid-check."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.classes_ = model.classes_
        self.feature_names_in_ = model.feature_names_in_

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        time.sleep(0.4)
        return self.model.predict_proba(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict(frame)

    def __sklearn_tags__(self) -> Any:
        return self.model.__sklearn_tags__()


class SlowSource:
    def __getattr__(self, name: str) -> Any:
        return getattr(files, name)

    def load_model(self, path: Path, role: str = "model") -> tuple[Any, Any]:
        model, artifact = files.load_model(path, role)
        return SlowModel(model), artifact


def test_a_worker_killed_mid_check_changes_nothing(
    demo_dir: Path, fast_policy_files: Path, data_sets: Path, local_cluster
) -> None:
    """kill -9 of one of the two workers while parts are being judged: Dask runs the lost
    parts again on the other (and the restarted) worker, and the figures are the same."""
    import cloudpickle

    import tests.integration.test_executors as this

    cloudpickle.register_pickle_by_value(this)  # the workers need not import the tests
    policy = files.load_policy(fast_policy_files / "medium.yaml")  # no SHAP: it is slow here
    request = GateRequest(
        policy=fast_policy_files / "medium.yaml",
        data=data_sets / "test",
        reference=data_sets / "train",
        target="income",
        model=demo_dir / "income-reweighed.skops",
    )
    expected = judge(policy, request, files, execution=Execution(kind="memory"))
    execution = Execution(kind="dask", dask="local", batch_rows=700)  # ~21 parts of 0.4 s
    client = datasets.dask_client(execution)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["manifest"] = judge(policy, request, SlowSource(), execution=execution)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _busy(client):
        time.sleep(0.05)
    time.sleep(1.0)  # some parts done, some running
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    got = outcome["manifest"].model_dump(mode="json")
    assert differences(expected.model_dump(mode="json")["results"], got["results"]) == []
    assert victim not in client.run(os.getpid).values()  # it really died


def _busy(client: Any) -> bool:
    return any(client.processing().values())
