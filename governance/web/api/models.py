"""The model inventory and the promotion policies in force."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request

from governance.domain import names
from governance.web.api.bodies import Camel, Json
from governance.web.api.operations import get, post
from governance.web.dependencies import governance_of, in_thread, principal_of
from governance.web.guards import permission


class NewModel(Camel):
    name: Annotated[str, msgspec.Meta(pattern=names.PATTERN)]
    risk_tier: str
    owner: str | None = None


class ModelController(Controller):
    """Registered models: each with its risk tier and owner."""

    path = "/models"
    tags = ("models",)

    @get("/", opt=permission("models", "read"))
    async def list_models(self, request: Request) -> list[Json]:
        return await in_thread(governance_of(request).workflow.list_models)

    @post("/", opt=permission("models", "register"), status_code=201)
    async def register_model(self, request: Request, data: NewModel) -> Json:
        return await in_thread(
            governance_of(request).workflow.register_model,
            principal_of(request),
            data.name,
            data.risk_tier,
            data.owner,
        )

    @get("/{name:str}", opt=permission("models", "read"))
    async def get_model(self, request: Request, name: str) -> Json:
        return await in_thread(governance_of(request).workflow.get_model, name)


class PolicyController(Controller):
    """The policy documents in force, each with its content hash."""

    path = "/policies"
    tags = ("policies",)

    @get("/", opt=permission("policies", "read"))
    async def list_policies(self, request: Request) -> list[Json]:
        return [
            {
                "name": p.metadata.name,
                "version": p.metadata.version,
                "riskTier": p.applies_to.risk_tier,
                "targets": p.applies_to.targets,
                "sha256": p.content_hash,
                "document": p.model_dump(mode="json", by_alias=True, exclude_none=True),
            }
            for p in governance_of(request).workflow.policies.policies
        ]
