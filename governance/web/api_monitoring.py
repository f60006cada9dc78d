"""The production side of the API: prediction logs in (JSON or Parquet), a version's
batches, a request's monitoring runs, and a monitor run on demand.

The ingest endpoint reads its body itself, up to its own limit
(`GOVERNANCE_MAX_PREDICTIONS_MB`), so that an oversized batch is refused with the limit
named, before anything is parsed or stored."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Annotated, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from litestar import Request, Response, get, post
from litestar.params import Parameter

from governance.domain.errors import InputError
from governance.web.api import Json, _gov, _me, _thread, permission
from governance.web.problems import problem

PARQUET = "application/vnd.apache.parquet"
MiB = 1024 * 1024


class BodyError(Exception):
    """The body cannot be read as a batch at all: too large (413) or not parseable (400)."""

    def __init__(self, status: int, field: str, problem: str, fix: str) -> None:
        self.status, self.field, self.problem, self.fix = status, field, problem, fix
        super().__init__(f"{field}: {problem}. Fix: {fix}")


def on_bad_body(_: Request, exc: BodyError) -> Response[dict[str, Any]]:
    return problem(exc.status, str(exc), field=exc.field, fix=exc.fix)


@post(
    "/models/{name:str}/versions/{version:str}/predictions",
    opt=permission("predictions", "ingest"),
    status_code=201,
    tags=["serving"],
    summary="Log a batch of production predictions (JSON rows, or a Parquet body with "
    "?batchId=); the same batch id with the same rows answers the stored batch",
    request_max_body_size=None,  # read below against the configured limit, named in the 413
    exception_handlers={BodyError: on_bad_body},
)
async def ingest_predictions(
    request: Request,
    name: str,
    version: str,
    batch_id: Annotated[str | None, Parameter(query="batchId", max_length=128)] = None,
) -> Response[Json]:
    governance = _gov(request)
    body = await _body(request, governance.settings.max_predictions_bytes)
    parquet = request.headers.get("content-type", "").split(";")[0].strip() == PARQUET
    frame, batch_id = await _thread(_parquet if parquet else _json, body, batch_id)
    stored = await _thread(
        governance.monitoring.ingest,
        _me(request).name,
        name,
        version,
        batch_id,
        frame,
        "api",
        hashlib.sha256(body).hexdigest(),
    )
    return Response(stored, status_code=200 if stored["replayed"] else 201)


@get(
    "/models/{name:str}/versions/{version:str}/predictions",
    opt=permission("predictions", "read"),
    tags=["serving"],
    summary="A version's batches of production predictions, newest first",
)
async def list_predictions(
    request: Request, name: str, version: str, limit: Annotated[int, Parameter(ge=1, le=1000)] = 100
) -> list[Json]:
    return await _thread(_gov(request).monitoring.batches, name, version, limit)


@get(
    "/requests/{request_id:str}/monitoring",
    opt=permission("monitoring", "read"),
    tags=["serving"],
    summary="A promoted request's production checks, newest first",
)
async def list_monitoring(
    request: Request, request_id: str, limit: Annotated[int, Parameter(ge=1, le=1000)] = 100
) -> list[Json]:
    return await _thread(_gov(request).monitoring.runs, request_id, limit)


@post(
    "/requests/{request_id:str}/monitoring/{monitor:str}",
    opt=permission("monitoring", "run"),
    status_code=200,
    tags=["serving"],
    summary="Run one of the policy's production checks now, on the window ending now",
)
async def run_monitor(request: Request, request_id: str, monitor: str) -> Json:
    return await _thread(_gov(request).monitoring.run_now, _me(request), request_id, monitor)


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


def _json(body: bytes, batch_id: str | None) -> tuple[pd.DataFrame, str]:
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


def _parquet(body: bytes, batch_id: str | None) -> tuple[pd.DataFrame, str]:
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


MONITORING_HANDLERS = [ingest_predictions, list_predictions, list_monitoring, run_monitor]
