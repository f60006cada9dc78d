"""Finding and pinning data sets: files, directories, globs and URLs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest

from governance.connectors import datasets
from governance.domain.errors import InputError
from governance.services.ports import Execution


def _write(path: Path, rows: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": range(rows), "y": [i % 2 for i in range(rows)]}).to_parquet(path)
    return path


def test_a_url_that_went_through_path_keeps_its_scheme() -> None:
    assert datasets.location(Path("s3://bucket/key/part.parquet")) == "s3://bucket/key/part.parquet"
    assert datasets.location("memory://x/y") == "memory://x/y"
    assert datasets.location(Path("relative/dir")) == "relative/dir"
    assert datasets.is_url("gs://b/k") and not datasets.is_url("C:/data/x.parquet")


def test_a_file_named_with_glob_characters_is_that_file(tmp_path: Path) -> None:
    odd = _write(tmp_path / "run[1]" / "data*.parquet")
    assert not datasets.is_dataset(odd)
    found = datasets.find(odd, "data")
    assert found.single and found.files == [str(odd)]


def test_a_single_file_is_pinned_by_its_own_sha256(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.parquet")
    rows = datasets.StreamedRows(datasets.find(path, "data"), "data", 4)
    assert rows.artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rows.artifact.files is None and rows.artifact.format == "parquet"
    assert rows.fold(lambda frame, offset: [(offset, len(frame))], list.__add__) == [
        (0, 4), (4, 4), (8, 2)
    ]  # fmt: skip


def test_a_relative_directory_lists_its_parts_in_order_without_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("b/part-1.parquet", "a/part-0.parquet", "part-2.parquet"):
        _write(tmp_path / "set" / name)
    (tmp_path / "set" / "_SUCCESS").write_text("")
    (tmp_path / "set" / ".part-2.parquet.crc").write_text("")
    monkeypatch.chdir(tmp_path)
    found = datasets.find(Path("set"), "data")
    assert found.relative == ["a/part-0.parquet", "b/part-1.parquet", "part-2.parquet"]
    rows = datasets.StreamedRows(found, "data", 100)
    assert rows.rows == 30 and rows.artifact.format == "parquet-dataset"
    assert [entry["path"] for entry in rows.artifact.files or []] == found.relative


def test_auto_keeps_small_files_in_memory_and_streams_big_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.parquet", rows=50)
    read = lambda p, role: (pd.read_parquet(p), None)  # noqa: E731
    small = datasets.open_rows(path, "data", Execution(kind="auto", exact_rows=50), read)
    big = datasets.open_rows(path, "data", Execution(kind="auto", exact_rows=49), read)
    assert isinstance(small, datasets.MemoryRows) and isinstance(big, datasets.StreamedRows)
    csv = tmp_path / "t.csv"
    csv.write_text("x\n1\n")
    with pytest.raises(InputError, match="only as Parquet"):
        datasets.open_rows(csv, "data", Execution(kind="streamed"), read)


def test_an_unknown_scheme_names_the_fix() -> None:
    with pytest.raises(InputError, match="install the fsspec filesystem package"):
        datasets.find("nosuchscheme://bucket/x", "data")


def test_an_unreadable_part_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "set" / "a.parquet")
    (tmp_path / "set" / "b.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError) as caught:
        datasets.StreamedRows(datasets.find(tmp_path / "set", "data"), "data", 10)
    assert caught.value.subject.endswith(os.sep + "b.parquet")


def test_every_batch_has_the_types_of_the_whole_data_set(tmp_path: Path) -> None:
    """An integer and a boolean column with a null in one file only: pandas reads the
    whole table as float64 and object, and so is every batch, the null-free ones too."""
    folder = tmp_path / "set"
    folder.mkdir()
    first = pd.DataFrame({"band": [1, 2] * 50, "flag": [True, False] * 50})
    second = pd.DataFrame({"band": pd.array([1, None] * 50, dtype="Int64"),
                           "flag": pd.array([True, None] * 50, dtype="boolean")})  # fmt: skip
    first.to_parquet(folder / "a.parquet")
    second.to_parquet(folder / "b.parquet")
    whole = pd.read_parquet(folder)
    rows = datasets.StreamedRows(datasets.find(folder, "data"), "data", 30)
    kinds = rows.fold(
        lambda frame, _: {(str(frame["band"].dtype), str(frame["flag"].dtype))}, set.__or__
    )
    assert rows.nullable == {"band", "flag"}
    assert (
        kinds == {("float64", "object")} == {(str(whole["band"].dtype), str(whole["flag"].dtype))}
    )


def test_a_data_set_at_an_fsspec_url_is_read_and_pinned() -> None:
    """fsspec's in-memory filesystem stands for any installed one (s3fs, gcsfs …): the
    files are listed, pinned by their bytes and streamed through the same reader."""
    import fsspec

    memory = fsspec.filesystem("memory")
    contents = {}
    for index in range(3):
        frame = pd.DataFrame({"x": range(index * 10, index * 10 + 10), "y": [index] * 10})
        with memory.open(f"/lake/set/part-{index}.parquet", "wb") as stream:
            frame.to_parquet(stream)
        contents[f"part-{index}.parquet"] = memory.cat(f"/lake/set/part-{index}.parquet")
    try:
        assert datasets.is_dataset(Path("memory://lake/set"))  # as the CLI's Path gives it
        rows = datasets.StreamedRows(datasets.find(Path("memory://lake/set"), "data"), "data", 7)
        assert rows.rows == 30
        pinned = {entry["path"]: entry["sha256"] for entry in rows.artifact.files or []}
        assert pinned == {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
        total = rows.fold(lambda frame, _: int(frame["x"].sum()), int.__add__)
        assert total == sum(range(30))
    finally:
        memory.rm("/lake", recursive=True)
