"""A watched directory of prediction logs: serving systems that write files rather than call
the API drop one Parquet file per batch at `<dir>/<model>/<version>/<batch-id>.parquet`.

Each file is ingested once (its stem is the batch id, so a file dropped again replays the
stored batch) and then moved out of the way: to `<dir>/done/...` once stored, or to
`<dir>/rejected/...` beside a `.error.txt` that says what is wrong and how to fix it. A
file is left alone while it is being written: names starting with '.' are skipped (write
to `.name`, then rename), and so is a file modified in the last `SETTLE_SECONDS`. When the
database cannot be reached the file stays where it is and is tried again at the next scan.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from governance.domain.errors import ConflictError, InputError, NotFoundError

log = logging.getLogger("governance.predictions")

DONE, REJECTED = "done", "rejected"
SETTLE_SECONDS = 2.0
ACTOR = "predictions-dir"
# ingest(actor, model, version, batch_id, frame, source, raw_sha256) -> the stored batch
Ingest = Callable[[str, str, str, str, pd.DataFrame, str, str], object]


class WatchedDirectory:
    def __init__(self, root: Path, ingest: Ingest, max_bytes: int) -> None:
        self.root = root
        self._ingest = ingest
        self._max_bytes = max_bytes

    def scan(self) -> list[tuple[Path, str]]:
        """Ingest every settled file; returns (file, "done" | "rejected: why") for each."""
        outcomes = []
        for path in self._pending():
            outcome = self._take(path)
            if outcome is not None:
                outcomes.append((path, outcome))
        return outcomes

    def _pending(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        settled = time.time() - SETTLE_SECONDS
        found = []
        for path in sorted(self.root.glob("*/*/*.parquet")):
            model = path.relative_to(self.root).parts[0]
            if model in (DONE, REJECTED) or path.name.startswith("."):
                continue
            try:
                if path.is_file() and path.stat().st_mtime <= settled:
                    found.append(path)
            except FileNotFoundError:  # taken by another process meanwhile
                continue
        return found

    def _take(self, path: Path) -> str | None:
        relative = path.relative_to(self.root)
        model, version = relative.parts[0], relative.parts[1]
        try:
            size = path.stat().st_size
            if size > self._max_bytes:
                raise InputError(
                    str(relative),
                    f"is larger than the limit of {self._max_bytes / (1 << 20):g} MiB "
                    "for one batch",
                    "write smaller files, or raise GOVERNANCE_MAX_PREDICTIONS_MB",
                )
            raw = path.read_bytes()
            frame = _read(raw, relative)
            self._ingest(
                ACTOR,
                model,
                version,
                path.stem,
                frame,
                "directory",
                hashlib.sha256(raw).hexdigest(),
            )
        except FileNotFoundError:
            return None  # another process took it
        except (InputError, ConflictError, NotFoundError) as exc:
            problem = exc.message if isinstance(exc, InputError) else str(exc)
            self._move(relative, REJECTED, problem)
            log.warning("prediction file %s rejected: %s", relative, problem)
            return f"rejected: {problem}"
        self._move(relative, DONE, None)
        return DONE

    def _move(self, relative: Path, into: str, problem: str | None) -> None:
        target = self.root / into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / relative, target)
        if problem is not None:
            note = target.with_name(target.name + ".error.txt")
            note.write_text(problem + "\n", encoding="utf-8")


def _read(raw: bytes, relative: Path) -> pd.DataFrame:
    try:
        return pq.read_table(pa.BufferReader(raw)).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            str(relative),
            f"is not a Parquet file ({exc})",
            "write the batch with pandas' to_parquet or pyarrow",
        ) from None


def watched(root: Path | None, ingest: Ingest, max_bytes: int) -> list[WatchedDirectory]:
    """The configured directory (GOVERNANCE_PREDICTIONS_DIR), or none."""
    return [] if root is None else [WatchedDirectory(root, ingest, max_bytes)]
