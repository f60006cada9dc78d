"""The serving side's question before it loads a model version: may it?"""

from __future__ import annotations

from typing import Literal

from litestar import Controller, Request

from governance.services.workflow import Admission
from governance.web.api.bodies import CamelResponse
from governance.web.api.operations import get
from governance.web.dependencies import governance_of
from governance.web.guards import permission


class AdmissionAnswer(CamelResponse, frozen=True):
    """Allow or deny, with the reason, and the request and decision it rests on."""

    decision: Literal["allow", "deny"]
    reason: str
    state: str | None
    request_id: str | None
    decision_id: str | None
    artifact_sha256: str | None

    @classmethod
    def of(cls, admission: Admission) -> AdmissionAnswer:
        """Built field by field, not by `from_record`: on the hot path, and cheaper than the
        dict it replaces (msgspec encodes a struct faster than a dict)."""
        return cls(
            "allow" if admission.allowed else "deny",
            admission.reason,
            admission.state,
            admission.request_id,
            admission.decision_id,
            admission.artifact_sha256,
        )


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
    ) -> AdmissionAnswer:
        # Synchronous on purpose: an answer from the cache takes microseconds, and Litestar
        # runs a sync handler in its thread pool only when told to (sync_to_thread above).
        workflow = governance_of(request).workflow
        return AdmissionAnswer.of(workflow.admission(model, version, target, digest))
