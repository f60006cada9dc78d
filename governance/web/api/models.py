"""The model inventory and the promotion policies in force."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request

from governance.domain import names
from governance.domain.policy import PromotionPolicy
from governance.web.api.bodies import Camel, CamelResponse, NestedResponse
from governance.web.api.operations import get, post
from governance.web.dependencies import as_caller, governance_of, in_thread
from governance.web.guards import permission


class NewModel(Camel):
    name: Annotated[str, msgspec.Meta(pattern=names.PATTERN)]
    risk_tier: str
    owner: str | None = None


class Model(NestedResponse, frozen=True):
    """A registered model: its risk tier picks the policy, its owner may not approve it."""

    name: str
    risk_tier: str
    owner: str | None
    created_at: datetime


class ModelVersion(CamelResponse, frozen=True):
    """A version of a model: one artifact for good, named by its sha256."""

    version: str
    artifact_sha256: str
    created_at: datetime


class ModelWithVersions(Model, frozen=True):
    """A registered model and every version registered under it, oldest first."""

    versions: list[ModelVersion]


class Policy(CamelResponse, frozen=True):
    """A policy in force: what it applies to, the hash of its canonical JSON, and the
    document itself."""

    name: str
    version: int
    risk_tier: str
    targets: list[str]
    sha256: str
    document: dict[str, Any]

    @classmethod
    def of(cls, policy: PromotionPolicy) -> Policy:
        return cls(
            name=policy.metadata.name,
            version=policy.metadata.version,
            risk_tier=policy.applies_to.risk_tier,
            targets=policy.applies_to.targets,
            sha256=policy.content_hash,
            document=policy.model_dump(mode="json", by_alias=True, exclude_none=True),
        )


class ModelController(Controller):
    """Registered models: each with its risk tier and owner."""

    path = "/models"
    tags = ("models",)

    @get("/", opt=permission("models", "read"))
    async def list_models(self, request: Request) -> list[Model]:
        return Model.from_records(await in_thread(governance_of(request).workflow.list_models))

    @post("/", opt=permission("models", "register"), status_code=201)
    async def register_model(self, request: Request, data: NewModel) -> Model:
        registered = await as_caller(
            request,
            governance_of(request).workflow.register_model,
            data.name,
            data.risk_tier,
            data.owner,
        )
        return Model.from_record(registered)

    @get("/{name:str}", opt=permission("models", "read"))
    async def get_model(self, request: Request, name: str) -> ModelWithVersions:
        model = await in_thread(governance_of(request).workflow.get_model, name)
        return ModelWithVersions.from_record(model)


class PolicyController(Controller):
    """The policy documents in force, each with its content hash."""

    path = "/policies"
    tags = ("policies",)

    @get("/", opt=permission("policies", "read"))
    async def list_policies(self, request: Request) -> list[Policy]:
        return [Policy.of(p) for p in governance_of(request).workflow.policies.policies]
