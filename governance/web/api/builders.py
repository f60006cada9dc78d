"""The CI builders: admins register and revoke the Ed25519 keys whose signed provenance a
policy may accept instead of a re-run; admins and auditors list them. Each handler calls
one `Builders` function (governance/services/builders.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Request
from litestar.params import Parameter

from governance.domain.policy import BUILDER_NAME
from governance.web.api.bodies import Camel, CamelResponse
from governance.web.api.operations import delete, get, post
from governance.web.dependencies import as_caller, governance_of, in_thread
from governance.web.guards import permission


class NewBuilder(Camel):
    name: str
    public_key: Annotated[str, msgspec.Meta(max_length=4096)]


class Builder(CamelResponse, frozen=True):
    """A registered builder; revoked ones stay listed with who revoked them and when."""

    name: str
    key_id: str
    public_key: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None


class BuilderController(Controller):
    path = "/builders"
    tags = ("builders",)

    @get("/", opt=permission("builders", "read"))
    async def list_builders(self, request: Request) -> list[Builder]:
        return Builder.from_records(await in_thread(governance_of(request).builders.list))

    @post(
        "/",
        opt=permission("builders", "manage"),
        status_code=201,
        summary="Register a CI builder's Ed25519 public key (PEM)",
    )
    async def add_builder(self, request: Request, data: NewBuilder) -> Builder:
        builders = governance_of(request).builders
        added = await as_caller(request, builders.add, data.name, data.public_key)
        return Builder.from_record(added)

    @delete(
        "/{name:str}",
        opt=permission("builders", "manage"),
        status_code=200,
        summary="Revoke a CI builder: its provenance is no longer accepted",
    )
    async def revoke_builder(
        self, request: Request, name: Annotated[str, Parameter(pattern=BUILDER_NAME)]
    ) -> Builder:
        builders = governance_of(request).builders
        return Builder.from_record(await as_caller(request, builders.revoke, name))
