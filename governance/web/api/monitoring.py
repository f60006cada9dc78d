"""The production side of the API: prediction logs in (JSON or Parquet), a version's
batches, a request's monitoring runs, and a monitor run on demand.

The ingest endpoint reads its body itself, up to its own limit
(`GOVERNANCE_MAX_PREDICTIONS_MB`), so that an oversized batch is refused with the limit
named, before anything is parsed or stored."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from typing import Annotated, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from litestar import Controller, Request, Response
from litestar.params import Parameter

from governance.domain.errors import InputError
from governance.web.api.bodies import CamelResponse, MiB
from governance.web.api.operations import get, post
from governance.web.dependencies import as_caller, governance_of, in_thread, principal_of
from governance.web.guards import permission

PARQUET = "application/vnd.apache.parquet"


class BodyError(InputError):
    """The body cannot be read as a batch at all: too large (413) or not parseable (400).
    An `InputError` with its own status, so problems.py answers it like any other."""

    def __init__(self, status: int, field: str, problem: str, fix: str) -> None:
        self.status = status
        super().__init__(field, problem, fix)


class PredictionBatch(CamelResponse, frozen=True):
    """A stored batch of a version's production predictions."""

    model: str
    version: str
    batch_id: str
    source: str
    actor: str
    rows: int
    outcomes: int
    first_at: datetime
    last_at: datetime
    columns: list[str]
    sha256: str
    size_bytes: int
    received_at: datetime


class IngestedBatch(PredictionBatch, frozen=True):
    """The stored batch; `replayed` when the batch id was stored before with these rows."""

    replayed: bool


class MonitoringRun(CamelResponse, frozen=True):
    """One slot of one production check: `running`, then its status, summary and results,
    and what it did on a breach (`alerted`, `revoked`)."""

    id: int
    request_id: str
    monitor: str
    due_at: datetime
    status: str
    rows: int
    window_start: datetime | None
    window_end: datetime | None
    summary: str
    results: list[dict[str, Any]]
    action: str | None
    started_at: datetime
    finished_at: datetime | None


class PredictionController(Controller):
    """A model version's production predictions, logged by the serving side."""

    path = "/models/{name:str}/versions/{version:str}/predictions"
    tags = ("serving",)

    @post(
        "/",
        opt=permission("predictions", "ingest"),
        status_code=201,
        summary="Log a batch of production predictions (JSON rows, or a Parquet body with "
        "?batchId=); the same batch id with the same rows answers the stored batch",
        request_max_body_size=None,  # read below against the configured limit, named in the 413
    )
    async def ingest_predictions(
        self,
        request: Request,
        name: str,
        version: str,
        batch_id: Annotated[str | None, Parameter(query="batchId", max_length=128)] = None,
    ) -> Response[IngestedBatch]:
        governance = governance_of(request)
        body = await _body(request, governance.settings.max_predictions_bytes)
        parquet = request.headers.get("content-type", "").split(";")[0].strip() == PARQUET
        frame, batch_id = await in_thread(parquet_batch if parquet else json_batch, body, batch_id)
        stored = await in_thread(
            governance.monitoring.ingest,
            principal_of(request).name,
            name,
            version,
            batch_id,
            frame,
            "api",
            hashlib.sha256(body).hexdigest(),
        )
        return Response(
            IngestedBatch.from_record(stored), status_code=200 if stored.replayed else 201
        )

    @get(
        "/",
        opt=permission("predictions", "read"),
        summary="A version's batches of production predictions, newest first",
    )
    async def list_predictions(
        self,
        request: Request,
        name: str,
        version: str,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[PredictionBatch]:
        monitoring = governance_of(request).monitoring
        return PredictionBatch.from_records(
            await in_thread(monitoring.batches, name, version, limit)
        )


class MonitoringController(Controller):
    """A promoted request's production checks: their runs, and one run on demand."""

    path = "/requests/{request_id:str}/monitoring"
    tags = ("serving",)

    @get(
        "/",
        opt=permission("monitoring", "read"),
        summary="A promoted request's production checks, newest first",
    )
    async def list_monitoring(
        self,
        request: Request,
        request_id: str,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[MonitoringRun]:
        return MonitoringRun.from_records(
            await in_thread(governance_of(request).monitoring.runs, request_id, limit)
        )

    @post(
        "/{monitor:str}",
        opt=permission("monitoring", "run"),
        status_code=200,
        summary="Run one of the policy's production checks now, on the window ending now",
    )
    async def run_monitor(self, request: Request, request_id: str, monitor: str) -> MonitoringRun:
        monitoring = governance_of(request).monitoring
        run = await as_caller(request, monitoring.run_now, request_id, monitor)
        return MonitoringRun.from_record(run)


async def _body(request: Request, limit: int) -> bytes:
    too_large = BodyError(
        413,
        "body",
        f"is larger than the limit of {limit / MiB:g} MiB for one batch",
        "send the predictions in smaller batches, or raise GOVERNANCE_MAX_PREDICTIONS_MB",
    )
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def json_batch(body: bytes, batch_id: str | None) -> tuple[pd.DataFrame, str]:
    """{"batchId": ..., "rows": [{column: value, ...}, ...]}; NaN and Infinity refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not a JSON number")

    try:
        document = json.loads(body, parse_constant=refuse)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(
            400,
            "body",
            f"is not valid JSON ({exc})",
            'send {"batchId": "...", "rows": [{...}, ...]}, or Parquet with Content-Type '
            f"{PARQUET}",
        ) from None
    if not isinstance(document, dict):
        raise BodyError(400, "body", "is not a JSON object", 'send {"batchId": ..., "rows": [...]}')
    unknown = sorted(set(document) - {"batchId", "rows"})
    if unknown:
        raise BodyError(400, unknown[0], "is not a field of a batch", "send only batchId and rows")
    rows = document.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise BodyError(400, "rows", "is not a list of objects", "send one object per prediction")
    given = document.get("batchId")
    if not isinstance(given, str) or (batch_id is not None and batch_id != given):
        raise BodyError(
            400,
            "batchId",
            "is missing or not text" if batch_id is None else "differs from ?batchId=",
            "name the batch once, in the body",
        )
    return pd.DataFrame.from_records(rows), given


def parquet_batch(body: bytes, batch_id: str | None) -> tuple[pd.DataFrame, str]:
    if batch_id is None:
        raise BodyError(400, "batchId", "is missing", "name the batch with ?batchId=")
    try:
        table = pq.read_table(io.BytesIO(body))
    except (pa.ArrowException, OSError) as exc:
        raise BodyError(
            400, "body", f"is not a Parquet file ({exc})", "send the file pandas or pyarrow wrote"
        ) from None
    if table.num_rows == 0:
        raise InputError("rows", "the batch has no rows", "send at least one prediction")
    return table.to_pandas(), batch_id
