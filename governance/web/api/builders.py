"""The CI builders: admins register and revoke the Ed25519 keys whose signed provenance a
policy may accept instead of a re-run; admins and auditors list them. Each handler calls
one `Builders` function (governance/services/builders.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request
from litestar.params import Parameter

from governance.domain.policy import BUILDER_NAME
from governance.web.api.bodies import Camel, Json
from governance.web.api.operations import delete, get, post
from governance.web.dependencies import governance_of, in_thread, principal_of
from governance.web.guards import permission


class NewBuilder(Camel):
    name: str
    public_key: Annotated[str, msgspec.Meta(max_length=4096)]


class BuilderController(Controller):
    path = "/builders"
    tags = ("builders",)

    @get("/", opt=permission("builders", "read"))
    async def list_builders(self, request: Request) -> list[Json]:
        return await in_thread(governance_of(request).builders.list)

    @post(
        "/",
        opt=permission("builders", "manage"),
        status_code=201,
        summary="Register a CI builder's Ed25519 public key (PEM)",
    )
    async def add_builder(self, request: Request, data: NewBuilder) -> Json:
        builders = governance_of(request).builders
        return await in_thread(builders.add, principal_of(request), data.name, data.public_key)

    @delete(
        "/{name:str}",
        opt=permission("builders", "manage"),
        status_code=200,
        summary="Revoke a CI builder: its provenance is no longer accepted",
    )
    async def revoke_builder(
        self, request: Request, name: Annotated[str, Parameter(pattern=BUILDER_NAME)]
    ) -> Json:
        builders = governance_of(request).builders
        return await in_thread(builders.revoke, principal_of(request), name)
