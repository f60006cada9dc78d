"""The CI builder endpoints of the API: admins register and revoke the Ed25519 keys whose
signed provenance a policy may accept instead of a re-run; admins and auditors list them.
Each handler calls one `Builders` function (governance/services/builders.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, delete, get, post
from litestar.params import Parameter

from governance.domain.policy import BUILDER_NAME
from governance.web.api import Camel, Json, _gov, _me, _thread, permission

TAGS = ["builders"]


class NewBuilder(Camel):
    name: str
    public_key: Annotated[str, msgspec.Meta(max_length=4096)]


@get("/builders", opt=permission("builders", "read"), tags=TAGS)
async def list_builders(request: Request) -> list[Json]:
    return await _thread(_gov(request).builders.list)


@post(
    "/builders",
    opt=permission("builders", "manage"),
    status_code=201,
    tags=TAGS,
    summary="Register a CI builder's Ed25519 public key (PEM)",
)
async def add_builder(request: Request, data: NewBuilder) -> Json:
    return await _thread(_gov(request).builders.add, _me(request), data.name, data.public_key)


@delete(
    "/builders/{name:str}",
    opt=permission("builders", "manage"),
    status_code=200,
    tags=TAGS,
    summary="Revoke a CI builder: its provenance is no longer accepted",
)
async def revoke_builder(
    request: Request, name: Annotated[str, Parameter(pattern=BUILDER_NAME)]
) -> Json:
    return await _thread(_gov(request).builders.revoke, _me(request), name)


BUILDER_HANDLERS = [list_builders, add_builder, revoke_builder]
