"""The registry connectors: their status, a sync on demand, and the door a registry's own
webhook knocks on (signed by the registry, not by a bearer token)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from litestar import Controller, Request
from litestar.params import Parameter

from governance.services.registries import SyncOutcome
from governance.web.api.bodies import CamelResponse
from governance.web.api.operations import get, post
from governance.web.dependencies import governance_of, in_thread
from governance.web.guards import PUBLIC, permission

Name = Annotated[str, Parameter(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


class Connector(CamelResponse, frozen=True):
    """A configured registry: its last sync, the requests it opened then, and the versions
    it refused (`model@version` → why)."""

    name: str
    kind: str
    last_sync: datetime | None
    last_error: str | None
    opened: list[str]
    refused: dict[str, str]


class RestoredAlias(CamelResponse, frozen=True):
    """A governed alias put back where the decisions say (`restored` null: nobody's)."""

    model: str
    alias: str
    found: str | None
    restored: str | None
    why: str


class SyncedConnector(Connector, frozen=True):
    """The connector after a sync, with the aliases the sync put back."""

    aliases_restored: list[RestoredAlias]

    @classmethod
    def from_record(cls, record: object) -> Self:
        assert isinstance(record, SyncOutcome)
        restored = RestoredAlias.from_records(record.aliases_restored)
        fields = {name: getattr(record, name) for name in Connector.__struct_fields__}
        return cls(**fields, aliases_restored=restored)


class EventAccepted(CamelResponse, frozen=True):
    accepted: bool


class ConnectorController(Controller):
    path = "/connectors"
    tags = ("connectors",)

    @get("/", opt=permission("connectors", "read"))
    async def list_connectors(self, request: Request) -> list[Connector]:
        """Each configured registry: when it last synced, what it opened, what it refused."""
        return [
            Connector.from_record(state) for state in governance_of(request).registries.status()
        ]

    @post(
        "/{name:str}/sync",
        opt=permission("connectors", "sync"),
        status_code=200,
        summary="Sync one registry now: discover, publish decisions, guard the alias",
    )
    async def sync_connector(self, request: Request, name: Name) -> SyncedConnector:
        result = await in_thread(governance_of(request).registries.sync, name)
        request.app.state.jobs.notify()
        return SyncedConnector.from_record(result)

    @post(
        "/{name:str}/events",
        opt=PUBLIC,
        security=[],
        status_code=202,
        summary="A registry's webhook (MLflow): verified by its signature, it wakes the sync",
    )
    async def registry_event(self, request: Request, name: Name) -> EventAccepted:
        body = await request.body()
        governance_of(request).registries.accept_event(name, request.headers, body)
        request.app.state.tickers[f"registry-{name}"].notify()
        return EventAccepted(accepted=True)
