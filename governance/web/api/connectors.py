"""The registry connectors: their status, a sync on demand, and the door a registry's own
webhook knocks on (signed by the registry, not by a bearer token)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request
from litestar.params import Parameter

from governance.web.api.bodies import Json
from governance.web.api.operations import get, post
from governance.web.dependencies import governance_of, in_thread
from governance.web.guards import PUBLIC, permission

Name = Annotated[str, Parameter(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


class ConnectorController(Controller):
    path = "/connectors"
    tags = ("connectors",)

    @get("/", opt=permission("connectors", "read"))
    async def list_connectors(self, request: Request) -> list[Json]:
        """Each configured registry: when it last synced, what it opened, what it refused."""
        return governance_of(request).registries.status()

    @post(
        "/{name:str}/sync",
        opt=permission("connectors", "sync"),
        status_code=200,
        summary="Sync one registry now: discover, publish decisions, guard the alias",
    )
    async def sync_connector(self, request: Request, name: Name) -> Json:
        result: Json = await in_thread(governance_of(request).registries.sync, name)
        request.app.state.jobs.notify()
        return result

    @post(
        "/{name:str}/events",
        opt=PUBLIC,
        security=[],
        status_code=202,
        summary="A registry's webhook (MLflow): verified by its signature, it wakes the sync",
    )
    async def registry_event(self, request: Request, name: Name) -> Json:
        body = await request.body()
        governance_of(request).registries.accept_event(name, request.headers, body)
        request.app.state.tickers[f"registry-{name}"].notify()
        return {"accepted": True}
