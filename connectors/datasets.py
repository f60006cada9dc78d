"""Tables read in batches: in memory, streamed from a Parquet data set, or on a Dask cluster.

A data set is a single CSV or Parquet file, or a Parquet data set: a directory (a
hive-partitioned tree included), a glob, or the same at any fsspec URL whose filesystem
package is installed. Its evidence is the sha256 of each file, listed in a canonical order
(by path relative to the data set's root), and the sha256 of that listing.

Each reader hands batches of rows to the caller's function with the index of the batch's
first row, and merges what it returns:
- `MemoryRows`: the whole table is one batch;
- `StreamedRows`: Arrow record batches of at most `batch_rows` rows, one after another, so
  memory depends on the batch size and not on the number of rows;
- `DaskRows`: one partition per Parquet row group range, mapped on the cluster's workers
  and reduced there pairwise (a tree), so only the final summary comes back. The function
  (with the model inside) is one key of the graph, which workers copy from each other.

Every reading failure is an `InputError` naming the file, or the scheduler's address.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from governance.domain.errors import InputError
from governance.domain.evidence import Artifact
from governance.services.ports import Execution, Rows

S = TypeVar("S")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):/+(.*)$")
_GLOB = re.compile(r"[*?\[]")
DASK_CONNECT_SECONDS = 10.0
READ_AS_NEEDED = ds.ParquetFragmentScanOptions(pre_buffer=False)


@dataclass(frozen=True)
class DataSet:
    """Where a data set's files are and what they hold."""

    location: str  # as the user named it
    filesystem: fsspec.AbstractFileSystem
    root: str  # the directory file paths are relative to
    files: list[str]  # full paths on `filesystem`, in canonical order
    single: bool = False  # one file named as such, not a directory or a glob

    @property
    def relative(self) -> list[str]:
        return [
            file[len(self.root) :].lstrip("/") or file.rsplit("/", 1)[-1] for file in self.files
        ]


def location(path: Path | str) -> str:
    """The text the user gave. A URL passed through `Path` lost one slash of `://`."""
    text = str(path)
    match = _URL.match(text)
    if match and len(match.group(1)) > 1:  # not a Windows drive letter
        return f"{match.group(1)}://{match.group(2)}"
    return text


def is_url(text: str) -> bool:
    """An fsspec URL (`s3://…`, `gs://…`, `memory://…`), not a local path."""
    match = _URL.match(text)
    return bool(match and len(match.group(1)) > 1 and "://" in text)


def is_dataset(path: Path | str) -> bool:
    """A directory, a glob or a URL: read with Arrow. A local single file keeps the
    existing reader (CSV or Parquet, in memory)."""
    text = location(path)
    if is_url(text):
        return True
    local = Path(text)
    if local.is_file():
        return False
    return local.is_dir() or _GLOB.search(text) is not None


def find(path: Path | str, role: str) -> DataSet:
    """The data set's Parquet files, in canonical order."""
    text = location(path)
    subject = f"{role} {text}"
    try:
        filesystem, root = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        raise InputError(
            subject,
            f"no filesystem for this URL ({exc})",
            "install the fsspec filesystem package for its scheme (s3fs, gcsfs, adlfs …) "
            "or give a local path",
        ) from None
    try:
        pattern = _GLOB.search(root)
        if filesystem.isfile(root):  # a name with [ or * in it is still that file
            return DataSet(text, filesystem, root.rsplit("/", 1)[0], [root], single=True)
        if filesystem.isdir(root):
            files = sorted(str(f) for f in filesystem.find(root) if _data_file(str(f), root))
            base = root
        elif pattern:
            files = sorted(str(f) for f in filesystem.glob(root) if filesystem.isfile(f))
            base = root[: pattern.start()].rsplit("/", 1)[0]
        else:
            raise InputError(subject, "no such file or directory", "check the path")
    except OSError as exc:
        raise InputError(
            subject, f"cannot be listed ({exc})", "check the path and access"
        ) from None
    if not files:
        raise InputError(
            subject, "holds no Parquet file", "give a directory or glob of .parquet files"
        )
    not_parquet = [f for f in files if not f.lower().endswith((".parquet", ".pq"))]
    if not_parquet:
        raise InputError(
            f"{role} file {not_parquet[0]}",
            "a data set is read as Parquet, and this file is not .parquet",
            "convert it to Parquet, or leave it out of the glob",
        )
    return DataSet(text, filesystem, base.rstrip("/"), files)


def _data_file(path: str, root: str) -> bool:
    """Spark's and Hive's markers and scratch (_SUCCESS, _metadata, .crc, _temporary/,
    .snapshot/) are not data: any part of the path under the root that starts with _ or .
    is skipped, as Arrow's own discovery skips it."""
    parts = path[len(root) :].strip("/").split("/")
    hidden = any(part.startswith(("_", ".")) for part in parts)
    return not hidden and parts[-1].lower().endswith((".parquet", ".pq"))


def artifact(dataset: DataSet, role: str, rows: int, columns: list[str]) -> Artifact:
    """A single file pinned by its sha256, as the in-memory reader pins it; a data set by
    each file's sha256 in canonical order and the sha256 of that listing."""
    listing = hashlib.sha256()
    files = []
    for path, relative in zip(dataset.files, dataset.relative, strict=True):
        digest = _sha256(dataset, path, role)
        files.append({"path": relative, "sha256": digest})
        listing.update(f"{digest}  {relative}\n".encode())
    single = dataset.single
    return Artifact(
        role=role,  # type: ignore[arg-type]
        uri=dataset.location,
        sha256=files[0]["sha256"] if single else listing.hexdigest(),
        format="parquet" if single else "parquet-dataset",
        rows=rows,
        columns=columns,
        files=None if single else files,
    )


def _sha256(dataset: DataSet, path: str, role: str) -> str:
    digest = hashlib.sha256()
    try:
        with dataset.filesystem.open(path, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"{role} file {path}", f"cannot be read ({exc})", "check it") from None
    return digest.hexdigest()


def open_dataset(dataset: DataSet, role: str) -> ds.Dataset:
    """The Arrow data set, after checking that every file has the first one's schema: a
    part that differs is named before any row is judged."""
    schemas = []
    for path in dataset.files:
        try:
            schemas.append(pq.read_schema(path, filesystem=dataset.filesystem))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(
                f"{role} file {path}",
                f"cannot be read as Parquet ({exc})",
                "check that it is valid",
            ) from None
    first = schemas[0]
    for path, schema in zip(dataset.files[1:], schemas[1:], strict=True):
        if not schema.equals(first):
            raise InputError(
                f"{role} file {path}",
                f"has a different schema from {dataset.files[0]}: {_difference(first, schema)}",
                "give every file of the data set the same columns and types",
            )
    hive = any("=" in part for relative in dataset.relative for part in relative.split("/")[:-1])
    return ds.dataset(
        dataset.files,
        schema=first if not hive else None,
        format="parquet",
        filesystem=dataset.filesystem,
        partitioning="hive" if hive else None,
        partition_base_dir=dataset.root if hive else None,
    )


def _difference(first: pa.Schema, other: pa.Schema) -> str:
    mine, theirs = (
        dict(zip(first.names, first.types, strict=True)),
        dict(zip(other.names, other.types, strict=True)),
    )
    notes = [f"{name} missing" for name in mine if name not in theirs]
    notes += [f"{name} extra" for name in theirs if name not in mine]
    notes += [
        f"{name} is {theirs[name]}, not {mine[name]}"
        for name in mine
        if name in theirs and theirs[name] != mine[name]
    ]
    return "; ".join(notes) or "column order differs"


def nullable_columns(arrow: ds.Dataset, condition: pc.Expression | None = None) -> frozenset[str]:
    """Integer and boolean columns that hold a null somewhere in the data set. pandas reads
    such a column as float64 (or object) when the whole table is read, but a batch without
    a null as int64 (or bool): every batch is widened alike, so no figure depends on how
    the rows were split."""
    candidates = [
        field.name
        for field in arrow.schema
        if pa.types.is_integer(field.type) or pa.types.is_boolean(field.type)
    ]
    nullable = set()
    for name in candidates:
        test = pc.field(name).is_null()
        if arrow.count_rows(filter=test if condition is None else condition & test):
            nullable.add(name)
    return frozenset(nullable)


def frame_of(table: pa.RecordBatch | pa.Table, nullable: frozenset[str]) -> pd.DataFrame:
    """The batch as pandas, with the types the whole data set would have (`nullable_columns`)."""
    frame = table.to_pandas()
    for name in nullable:
        if name in frame.columns and frame[name].dtype.kind in "iub":
            frame[name] = frame[name].astype(object if frame[name].dtype.kind == "b" else "float64")
    return frame


class MemoryRows:
    """The whole table in memory: one batch."""

    kind: Literal["memory", "streamed", "dask"] = "memory"

    def __init__(self, frame: pd.DataFrame, artifact: Artifact) -> None:
        self.frame, self.artifact = frame, artifact
        self.columns = [str(c) for c in frame.columns]
        self.rows = len(frame)

    def fold(
        self,
        function: Callable[[pd.DataFrame, int], S],
        merge: Callable[[S, S], S],
        columns: list[str] | None = None,
    ) -> S:
        return function(self.frame if columns is None else self.frame[columns], 0)


def _opened(dataset: DataSet, role: str) -> tuple[ds.Dataset, list[str], frozenset[str]]:
    """The Arrow data set, its columns, and the columns every batch widens."""
    arrow = open_dataset(dataset, role)
    return arrow, list(arrow.schema.names), nullable_columns(arrow)


def _pinned(dataset: DataSet, role: str, rows: int, columns: list[str]) -> Artifact:
    """The evidence of a data set with rows: an empty one is bad input."""
    if rows == 0:
        raise InputError(f"{role} {dataset.location}", "has no rows", "give a data set with rows")
    return artifact(dataset, role, rows, columns)


def fingerprint(dataset: DataSet, role: str) -> dict[str, tuple[Any, ...]]:
    """Each file's size and modification stamp, as its filesystem reports them. The files
    are hashed once and read again by every pass: a file that changes in between would be
    judged on other bytes than the evidence pins."""
    stamps = {}
    for path in dataset.files:
        try:
            info = dataset.filesystem.info(path)
        except FileNotFoundError:
            raise InputError(
                f"{role} file {path}",
                "disappeared while it was read",
                "keep the data set unchanged while the gate reads it, and run again",
            ) from None
        stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("md5")
        stamps[path] = (info.get("size"), str(stamp))
    return stamps


def require_unchanged(dataset: DataSet, role: str, before: dict[str, tuple[Any, ...]]) -> None:
    after = fingerprint(dataset, role)
    for path, stamp in before.items():
        if after.get(path) != stamp:
            raise InputError(
                f"{role} file {path}",
                "changed while it was read: the figures would not be of the bytes the "
                "evidence pins",
                "keep the data set unchanged while the gate reads it, and run again",
            )


class StreamedRows:
    """Arrow record batches of a bounded size, read ahead by Arrow while the last one is
    judged."""

    kind: Literal["memory", "streamed", "dask"] = "streamed"

    def __init__(self, dataset: DataSet, role: str, batch_rows: int) -> None:
        self.dataset, self.role, self.batch_rows = dataset, role, batch_rows
        self.stamps = fingerprint(dataset, role)
        self.arrow, self.columns, self.nullable = _opened(dataset, role)
        self.rows = self.arrow.count_rows()
        self.artifact = _pinned(dataset, role, self.rows, self.columns)
        require_unchanged(dataset, role, self.stamps)  # not while it was hashed either

    def fold(
        self,
        function: Callable[[pd.DataFrame, int], S],
        merge: Callable[[S, S], S],
        columns: list[str] | None = None,
    ) -> S:
        state: S | None = None
        offset = 0
        for frame in self.batches(columns):
            partial = function(frame, offset)
            state = partial if state is None else merge(state, partial)
            offset += len(frame)
        assert state is not None  # the data set has rows
        require_unchanged(self.dataset, self.role, self.stamps)
        return state

    def batches(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        # Arrow reads two batches ahead of the one being judged, from one file at a time,
        # without buffering whole row groups first: its defaults (16 batches, 4 files, row
        # groups pre-buffered) held ~0.2 GiB more at the peak (bench/RESULTS.md).
        scanner = self.arrow.scanner(
            columns=columns,
            batch_size=self.batch_rows,
            batch_readahead=2,
            fragment_readahead=1,
            fragment_scan_options=READ_AS_NEEDED,
        )
        try:
            for batch in scanner.to_batches():
                if batch.num_rows:
                    yield frame_of(batch, self.nullable)
        except (OSError, pa.ArrowException) as exc:
            raise _read_error(self.role, self.dataset, exc, self.stamps) from None


def _read_error(
    role: str,
    dataset: DataSet,
    exc: Exception,
    stamps: dict[str, tuple[Any, ...]] | None = None,
) -> InputError:
    """Name the file the reader failed on: one that is gone, one that changed since it was
    hashed (`stamps`), or the one the reader's message names."""
    fix = "keep the data set unchanged while the gate reads it, and run again"
    for path in dataset.files:
        if not dataset.filesystem.exists(path):
            return InputError(f"{role} file {path}", "disappeared while it was read", fix)
    if stamps is not None:
        try:
            require_unchanged(dataset, role, stamps)
        except InputError as changed:
            return changed
    named = next((path for path in dataset.files if path in str(exc)), None)
    subject = f"{role} file {named}" if named else f"{role} {dataset.location}"
    return InputError(subject, f"could not be read ({type(exc).__name__}: {exc})", fix)


@dataclass(frozen=True)
class _Piece:
    """A partition: some row groups of one file, and the index of its first row."""

    path: str
    row_groups: list[int]
    offset: int
    rows: int


class DaskRows:
    """Partitions on a Dask cluster: a map over pieces of the files, reduced on the cluster."""

    kind: Literal["memory", "streamed", "dask"] = "dask"

    def __init__(self, dataset: DataSet, role: str, execution: Execution) -> None:
        self.dataset, self.role, self.execution = dataset, role, execution
        self.stamps = fingerprint(dataset, role)
        self.arrow, self.columns, self.nullable = _opened(dataset, role)
        self.pieces = _pieces(dataset, execution.batch_rows)
        self.rows = sum(piece.rows for piece in self.pieces)
        self.artifact = _pinned(dataset, role, self.rows, self.columns)
        require_unchanged(dataset, role, self.stamps)

    def fold(
        self,
        function: Callable[[pd.DataFrame, int], S],
        merge: Callable[[S, S], S],
        columns: list[str] | None = None,
    ) -> S:
        import dask
        import dask.dataframe as dd
        from distributed import Client

        client: Client = dask_client(self.execution)
        read = _PieceReader(self.dataset, self.arrow.schema, columns, self.role, self.nullable)
        frame = dd.from_map(read, self.pieces, meta=_meta(self.arrow.schema, columns))
        # In the graph, not scattered: a key that a dead worker held is made again from
        # the graph, where scattered data would be lost with it.
        on_cluster = dask.delayed(function, pure=True)
        merged = dask.delayed(merge, pure=True)
        partials = [
            dask.delayed(_apply)(on_cluster, part, piece.offset)
            for part, piece in zip(frame.to_delayed(), self.pieces, strict=True)
        ]
        while len(partials) > 1:  # a tree: every level halves the summaries
            paired = [
                dask.delayed(_merge)(merged, partials[i], partials[i + 1])
                for i in range(0, len(partials) - 1, 2)
            ]
            partials = paired + ([partials[-1]] if len(partials) % 2 else [])
        from distributed.scheduler import KilledWorker

        try:
            result: S = client.compute(partials[0]).result()
        except InputError:
            raise
        except KilledWorker as exc:
            raise InputError(
                f"Dask cluster {self.execution.dask}",
                f"lost the workers running one part again and again ({exc})",
                "give the workers more memory, or smaller parts (--batch-rows)",
            ) from None
        except (OSError, pa.ArrowException) as exc:
            raise _read_error(self.role, self.dataset, exc, self.stamps) from None
        require_unchanged(self.dataset, self.role, self.stamps)
        return result


def _apply(function: Callable[[pd.DataFrame, int], S], frame: pd.DataFrame, offset: int) -> S:
    return function(frame, offset)


def _merge(merge: Callable[[S, S], S], first: S, second: S) -> S:
    return merge(first, second)


class _PieceReader:
    """Reads one piece on a worker (picklable: a class, not a closure), with the hive
    partition values its path names, typed as the data set's schema says."""

    def __init__(
        self,
        dataset: DataSet,
        schema: pa.Schema,
        columns: list[str] | None,
        role: str,
        nullable: frozenset[str],
    ) -> None:
        self.filesystem, self.root = dataset.filesystem, dataset.root
        self.schema, self.columns, self.role, self.nullable = schema, columns, role, nullable

    def __call__(self, piece: _Piece) -> pd.DataFrame:
        partition = self._partition(piece.path)
        wanted = list(self.schema.names) if self.columns is None else self.columns
        stored = [name for name in wanted if name not in partition]
        try:
            with self.filesystem.open(piece.path, "rb") as stream:
                table = pq.ParquetFile(stream).read_row_groups(piece.row_groups, columns=stored)
        except FileNotFoundError:
            raise InputError(
                f"{self.role} file {piece.path}",
                "disappeared while it was read",
                "keep the data set unchanged while the gate reads it, and run again",
            ) from None
        for name in wanted:
            if name in partition:
                field = self.schema.field(name)
                values = pa.array([partition[name]] * piece.rows).cast(field.type)
                table = table.append_column(field, values)
        return frame_of(table.select(wanted), self.nullable)

    def _partition(self, path: str) -> dict[str, str]:
        folders = path[len(self.root) :].strip("/").split("/")[:-1]
        return dict(folder.split("=", 1) for folder in folders if "=" in folder)


def _pieces(dataset: DataSet, batch_rows: int) -> list[_Piece]:
    """Row groups of each file gathered into pieces of about `batch_rows` rows; the
    offsets come from the files' footers, so no row is read to know them."""
    pieces, offset = [], 0
    for path in dataset.files:
        metadata = pq.read_metadata(path, filesystem=dataset.filesystem)
        groups: list[int] = []
        rows = 0
        for index in range(metadata.num_row_groups):
            groups.append(index)
            rows += metadata.row_group(index).num_rows
            if rows >= batch_rows:
                pieces.append(_Piece(path, groups, offset, rows))
                offset, groups, rows = offset + rows, [], 0
        if groups and rows:
            pieces.append(_Piece(path, groups, offset, rows))
            offset += rows
    return [piece for piece in pieces if piece.rows]


def _meta(schema: pa.Schema, columns: list[str] | None) -> pd.DataFrame:
    chosen = schema if columns is None else pa.schema([schema.field(name) for name in columns])
    return chosen.empty_table().to_pandas()


_clients: dict[tuple[str, int, str], Any] = {}
_clients_lock = threading.Lock()


def dask_client(execution: Execution) -> Any:
    """A client of the scheduler at `execution.dask`, or of a LocalCluster for "local";
    one per process, reused by later folds."""
    from distributed import Client, LocalCluster

    address = execution.dask or "local"
    key = (address, execution.dask_workers, execution.dask_memory)
    with _clients_lock:
        client = _clients.get(key)
        if client is not None and client.status == "running":
            return client
        if address == "local":
            cluster = LocalCluster(
                n_workers=execution.dask_workers,
                threads_per_worker=1,
                memory_limit=execution.dask_memory,
                dashboard_address=None,
                processes=True,
            )
            client = Client(cluster)
        else:
            try:
                client = Client(address, timeout=DASK_CONNECT_SECONDS)
            except (OSError, TimeoutError, ValueError) as exc:
                raise InputError(
                    f"Dask scheduler {address}",
                    f"cannot be reached ({type(exc).__name__}: {exc})",
                    "start the scheduler, or give its address as tcp://HOST:8786 "
                    "(--dask or GOVERNANCE_DASK_SCHEDULER), or use --dask local",
                ) from None
        _clients[key] = client
        return client


def close_clients() -> None:
    """Close the clients (and local clusters) this process started."""
    with _clients_lock:
        for client in _clients.values():
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
        _clients.clear()


def open_rows(path: Path, role: str, execution: Execution, read_table: Callable[..., Any]) -> Rows:
    """The table at `path` read as `execution` says. A single local file of at most
    `exact_rows` rows stays in memory under `auto`."""
    kind = execution.kind
    if execution.dask is not None and kind in ("auto", "dask"):
        kind = "dask"
    if kind == "memory" and is_dataset(path):
        dataset = find(path, role)
        try:
            frame = open_dataset(dataset, role).to_table().to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise _read_error(role, dataset, exc) from None
        if frame.empty:
            raise InputError(
                f"{role} {dataset.location}", "has no rows", "give a data set with rows"
            )
        columns = [str(c) for c in frame.columns]
        return MemoryRows(frame, artifact(dataset, role, len(frame), columns))
    if kind == "memory" or (kind == "auto" and not is_dataset(path) and _small(path, execution)):
        frame, table_artifact = read_table(path, role)
        return MemoryRows(frame, table_artifact)
    if not is_dataset(path) and not str(path).lower().endswith((".parquet", ".pq")):
        if kind == "auto":
            frame, table_artifact = read_table(path, role)
            return MemoryRows(frame, table_artifact)
        raise InputError(
            f"{role} file {path}",
            f"is read in batches ({kind}) only as Parquet",
            "convert it to Parquet, or judge it in memory (--executor memory)",
        )
    dataset = find(path, role)
    if kind == "dask":
        return DaskRows(dataset, role, execution)
    return StreamedRows(dataset, role, execution.batch_rows)


def _small(path: Path, execution: Execution) -> bool:
    """Whether a local file is small enough to judge in memory: Parquet by its footer's
    row count; CSV always (it has no footer, and big data is not kept as CSV)."""
    if not str(path).lower().endswith((".parquet", ".pq")) or not Path(path).is_file():
        return True
    try:
        return bool(pq.read_metadata(path).num_rows <= execution.exact_rows)
    except (OSError, pa.ArrowException):
        return True  # read_table names the problem


# The logged prediction batches of production monitoring (services/monitoring.py).
TIMESTAMP, OUTCOME = "timestamp", "outcome"


class WindowRows:
    """Logged prediction batches as one Arrow data set, filtered to a time window and read
    in batches of the settings' `batch_rows`, so a month of a busy model's predictions is never one
    frame. Batches that differ (an integer column where another has floats, no outcome
    yet) are read in their unified schema; text columns as dictionaries, which Arrow
    decodes once per distinct value (bench/RESULTS.md, production monitoring)."""

    def __init__(
        self, dataset: ds.Dataset | None, condition: pc.Expression, execution: Execution
    ) -> None:
        self.dataset, self.condition, self.batch_rows = dataset, condition, execution.batch_rows
        self.rows = 0 if dataset is None else dataset.count_rows(filter=condition)
        self.columns = [] if dataset is None else list(dataset.schema.names)
        self.exact = self.rows <= execution.exact_rows
        self.nullable = frozenset() if dataset is None else nullable_columns(dataset, condition)

    @classmethod
    def of(
        cls,
        paths: list[Path],
        start: datetime,
        end: datetime,
        text: list[str],
        labelled: bool,
        execution: Execution,
    ) -> WindowRows:
        """The rows logged in (start, end]; only those with an outcome when `labelled`."""
        condition = (pc.field(TIMESTAMP) > pd.Timestamp(start)) & (
            pc.field(TIMESTAMP) <= pd.Timestamp(end)
        )
        if not paths:
            return cls(None, condition, execution)
        schemas = [pq.read_schema(str(path)) for path in paths]
        unified = pa.unify_schemas(schemas, promote_options="permissive")
        fields = [
            field.with_type(pa.dictionary(pa.int32(), field.type))
            if field.name in text and pa.types.is_string(field.type)
            else field
            for field in unified
        ]
        if labelled:
            if OUTCOME not in unified.names:
                return cls(None, condition, execution)
            condition &= pc.field(OUTCOME).is_valid()
        parquet = ds.ParquetFileFormat(read_options={"dictionary_columns": text})
        files = [str(path) for path in paths]
        arrow = ds.dataset(files, schema=pa.schema(fields), format=parquet)
        return cls(arrow, condition, execution)

    def fold(
        self, function: Callable[[pd.DataFrame, int], S], merge: Callable[[S, S], S]
    ) -> S | None:
        """`function` of each batch in the window, merged; None for an empty window."""
        if self.dataset is None:
            return None
        state: S | None = None
        offset = 0
        scanner = self.dataset.scanner(
            filter=self.condition,
            batch_size=self.batch_rows,
            batch_readahead=2,
            fragment_readahead=1,
            fragment_scan_options=READ_AS_NEEDED,
        )
        for batch in scanner.to_batches():
            if batch.num_rows:
                partial = function(frame_of(batch, self.nullable), offset)
                state = partial if state is None else merge(state, partial)
                offset += batch.num_rows
        return state

    def has_values(self, column: str) -> bool:
        """Whether every row in the window has a value in `column`."""
        if self.dataset is None or column not in self.columns:
            return False
        return self.dataset.count_rows(filter=self.condition & pc.field(column).is_null()) == 0
