"""The registry connectors' endpoints: their status, a sync on demand, and the door a
registry's own webhook knocks on (signed by the registry, not by a bearer token)."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, get, post
from litestar.params import Parameter

from governance.web.api import PUBLIC, Json, _gov, _thread, permission

TAGS = ["connectors"]
Name = Annotated[str, Parameter(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


@get("/connectors", opt=permission("connectors", "read"), tags=TAGS)
async def list_connectors(request: Request) -> list[Json]:
    """Each configured registry: when it last synced, what it opened, what it refused."""
    return _gov(request).registries.status()


@post(
    "/connectors/{name:str}/sync",
    opt=permission("connectors", "sync"),
    status_code=200,
    tags=TAGS,
    summary="Sync one registry now: discover, publish decisions, guard the alias",
)
async def sync_connector(request: Request, name: Name) -> Json:
    result: Json = await _thread(_gov(request).registries.sync, name)
    request.app.state.jobs.notify()
    return result


@post(
    "/connectors/{name:str}/events",
    opt=PUBLIC,
    security=[],
    status_code=202,
    tags=TAGS,
    summary="A registry's webhook (MLflow): verified by its signature, it wakes the sync",
)
async def registry_event(request: Request, name: Name) -> Json:
    body = await request.body()
    _gov(request).registries.accept_event(name, request.headers, body)
    request.app.state.tickers[f"registry-{name}"].notify()
    return {"accepted": True}


CONNECTOR_HANDLERS = [list_connectors, sync_connector, registry_event]
