"""The framework's floor for bench/admission.py: a bare Litestar app, no middleware, no
guard, no state, served by the same uvicorn as `governance serve`.

    .venv/bin/python -m uvicorn bare_app:app --app-dir bench --workers 2 --port 8001 \
        --log-level warning

- `GET /bare` returns a small constant JSON dict: the floor the ratios are taken against.
- `GET /bare/{model}/{version}?target=…&digest=…` has the admission route's shape (two path
  parameters, two query parameters, a sync handler run on the event loop) and returns a
  dict of the admission answer's size: the floor for that shape, without auth or cache.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get

ANSWER = {
    "decision": "allow",
    "reason": "promoted; valid until 2028-11-28T00:00:00+00:00",
    "state": "promoted",
    "requestId": "00000000-0000-0000-0000-000000000000",
    "decisionId": "00000000-0000-0000-0000-000000000000",
    "artifactSha256": "0" * 64,
}


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, str]:
    return {"status": "ok"}


@get("/bare/{model:str}/{version:str}", sync_to_thread=False)
def shaped(
    model: str, version: str, target: str = "production", digest: str | None = None
) -> dict[str, Any]:
    return ANSWER


app = Litestar(route_handlers=[bare, shaped], debug=False)
