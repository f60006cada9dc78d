"""The serving side's question before it loads a model version: may it?"""

from __future__ import annotations

from litestar import Controller, Request

from governance.web.api.bodies import Json
from governance.web.api.operations import get
from governance.web.dependencies import governance_of
from governance.web.guards import permission


class AdmissionController(Controller):
    """Allow or deny, with the reason; answered from a cache, so on the hot path."""

    path = "/admission"
    tags = ("serving",)

    @get(
        "/{model:str}/{version:str}",
        opt=permission("admission", "check"),
        sync_to_thread=False,
        summary="May this model version be served? Allow or deny, with the reason",
    )
    def admission(
        self,
        request: Request,
        model: str,
        version: str,
        target: str = "production",
        digest: str | None = None,
    ) -> Json:
        # Synchronous on purpose: an answer from the cache takes microseconds, and Litestar
        # runs a sync handler in its thread pool only when told to (sync_to_thread above).
        workflow = governance_of(request).workflow
        return workflow.admission(model, version, target, digest).as_dict()
