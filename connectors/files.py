"""Local files: policies (YAML), data (CSV, Parquet), models (skops, joblib), champion metrics.

Every failure becomes an `InputError` that names the file and says how to fix it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from governance.connectors import datasets
from governance.domain.errors import InputError
from governance.domain.evidence import Artifact
from governance.domain.policy import PolicyError, PromotionPolicy, parse_policy
from governance.services.ports import Execution, Rows

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
MODEL_FORMATS = {".skops": "skops", ".joblib": "joblib", ".pkl": "joblib"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputError(f"{what} {path}", "file not found", "check the path")
    if not path.is_file():
        raise InputError(f"{what} {path}", "is not a file", "give the path of a file")
    return path


def _kind(path: Path, role: str, formats: dict[str, str], what: str, fix: str) -> str:
    """The file's format by its suffix, once it is known to exist."""
    _existing(path, f"{role} file")
    kind = formats.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{role} file {path}", f"unsupported {what} {path.suffix!r}", fix)
    return kind


def load_policy(path: Path) -> PromotionPolicy:
    """Parse and validate a policy file; `PolicyError` lists every problem by its path."""
    _existing(path, "policy")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PolicyError(str(path), ["not a text file: a policy is UTF-8 YAML"]) from None
    return parse_policy_text(text, str(path))


def parse_policy_text(text: str, source: str) -> PromotionPolicy:
    """A policy from its YAML text (a file, or a draft pasted in the console)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError(source, [f"{where}not valid YAML ({exc})"]) from None
    return parse_policy(document, source=source)


def read_table(path: Path, role: str = "data") -> tuple[pd.DataFrame, Artifact]:
    """Read CSV or Parquet. An empty table is bad input: nothing can be judged on it."""
    kind = _kind(path, role, TABLE_FORMATS, "format", "give a .csv or .parquet file")
    # hashlib releases the GIL: hash the file on a second thread while it is parsed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(sha256_file, path)
        frame = _parse(path, kind, role)
        sha256 = digest.result()
    if frame.empty:
        raise InputError(f"{role} file {path}", "has no rows", "give a data set with rows")
    artifact = Artifact(
        role=role,  # type: ignore[arg-type]
        uri=str(path),
        sha256=sha256,
        format=kind,
        rows=len(frame),
        columns=[str(c) for c in frame.columns],
    )
    return frame, artifact


def open_rows(path: Path, role: str, execution: Execution) -> Rows:
    """A file or a Parquet data set, read in batches as `execution` says."""
    return datasets.open_rows(path, role, execution, read_table)


def open_window(
    paths: list[Path],
    start: datetime,
    end: datetime,
    text: list[str],
    labelled: bool,
    execution: Execution,
) -> datasets.WindowRows:
    """Logged prediction batches in (start, end], read in batches."""
    return datasets.WindowRows.of(paths, start, end, text, labelled, execution)


def _parse(path: Path, kind: str, role: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - every reader error means the same to the user
        raise InputError(
            f"{role} file {path}",
            f"cannot be read as {kind.upper()} ({type(exc).__name__}: {exc})",
            f"check that it is a valid {kind.upper()} file",
        ) from None


def load_model(path: Path, role: str = "model") -> tuple[Any, Artifact]:
    """Load a scikit-learn-compatible estimator.

    skops files are safe to load: only types on skops' trusted list are built, and the
    loader refuses anything else. joblib/pickle files can run arbitrary code when loaded:
    load them only from a source you trust (your own training pipeline).
    """
    kind = _kind(
        path, role, MODEL_FORMATS, "model format",
        "save the model with skops (.skops, safe) or joblib (.joblib, trusted input only)",
    )  # fmt: skip
    try:
        model = _load_skops(path) if kind == "skops" else _load_joblib(path)
    except (InputError, MemoryError):  # out of memory is not a fault of the file
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(
            f"{role} file {path}",
            f"is not a readable {kind} model ({type(exc).__name__}: {exc})",
            f"give a model saved with {kind}",
        ) from None
    if not callable(getattr(model, "predict", None)):
        raise InputError(
            f"{role} file {path}",
            f"holds a {type(model).__name__}, not a model with a predict() method",
            "save the fitted estimator itself",
        )
    artifact = Artifact(role=role, uri=str(path), sha256=sha256_file(path), format=kind)  # type: ignore[arg-type]
    return model, artifact


# Types skops does not trust by default but that hold only data (arrays, numbers, a model
# string) and run no code when loaded: the tree predictors of scikit-learn's and LightGBM's
# gradient boosting. Anything else still has to be reviewed by a person.
SAFE_EXTRA_TYPES = frozenset(
    {
        "collections.OrderedDict",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
    }
)


def _load_skops(path: Path) -> Any:
    import skops.io

    found = skops.io.get_untrusted_types(file=path)
    untrusted = [name for name in found if name not in SAFE_EXTRA_TYPES]
    if untrusted:
        raise InputError(
            f"model file {path}",
            f"contains types skops does not trust: {', '.join(untrusted)}",
            "review them, then save the model with joblib if you trust its source",
        )
    return skops.io.load(path, trusted=found)


def _load_joblib(path: Path) -> Any:
    import joblib

    return joblib.load(path)


PICKLE_FIX = (
    "save the model with skops (skops.io.dump(model, 'model.skops')) and upload the .skops "
    "file; a pickle is accepted only from a registry connector with allowPickle"
)


def refuse_pickle(path: Path, field: str) -> None:
    """Refuse a model file from a party the service does not trust unless it is a skops
    archive: a joblib or pickle file (whatever its name) runs any code it holds when it
    is loaded. Only the bytes are read here, never unpickled."""
    with path.open("rb") as stream:
        head = stream.read(2)
    if path.suffix.lower() in (".joblib", ".pkl", ".pickle") or head[:1] == b"\x80":
        raise InputError(
            field, "is a joblib/pickle file, which runs any code it holds when loaded", PICKLE_FIX
        )
    if path.suffix.lower() != ".skops" or not zipfile.is_zipfile(path):
        raise InputError(field, "is not a skops model file (.skops)", PICKLE_FIX)


def load_metrics(path: Path) -> tuple[dict[str, float], Artifact]:
    """A champion's recorded metrics: a JSON object of metric name → number."""
    _existing(path, "champion metrics")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            f"champion metrics {path}", f"not valid JSON ({exc})", 'write e.g. {"roc_auc": 0.91}'
        ) from None
    if not isinstance(document, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in document.values()
    ):
        raise InputError(
            f"champion metrics {path}",
            "must be a JSON object of metric names to numbers",
            'write e.g. {"roc_auc": 0.91}',
        )
    artifact = Artifact(role="champion", uri=str(path), sha256=sha256_file(path), format="json")
    return {str(k): float(v) for k, v in document.items()}, artifact


class SkopsOnly:
    """The local files as an `ArtifactSource` that loads no pickle: what the service's
    check process reads a client's upload with."""

    load_policy = staticmethod(load_policy)
    parse_policy_text = staticmethod(parse_policy_text)
    read_table = staticmethod(read_table)
    open_rows = staticmethod(open_rows)
    open_window = staticmethod(open_window)

    @staticmethod
    def load_model(path: Path, role: str = "model") -> tuple[Any, Artifact]:
        refuse_pickle(path, role)
        return load_model(path, role)

    load_metrics = staticmethod(load_metrics)
    sha256_file = staticmethod(sha256_file)
    refuse_pickle = staticmethod(refuse_pickle)


SKOPS_ONLY = SkopsOnly()
