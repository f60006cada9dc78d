"""Submitting a candidate for promotion: the one endpoint that takes files, so it has its
own body limit (router.py). The service either runs the checks itself on the data sent,
or takes the evidence manifest of checks already run (`gate --submit`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, Request
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body
from pydantic import ValidationError

from governance.domain.errors import InputError, first_problem
from governance.domain.evidence import EvidenceManifest
from governance.domain.model_card import ModelCard
from governance.services.workflow import Candidate
from governance.web.api.bodies import CamelResponse, MiB, refuse_nul
from governance.web.api.operations import post
from governance.web.api.requests import PromotionRequest
from governance.web.dependencies import as_caller, governance_of
from governance.web.guards import permission
from governance.web.problems import on_form_not_utf8

MAX_EVIDENCE_BYTES = 16 * MiB
MAX_PROVENANCE_BYTES = 1 * MiB


@dataclass
class SubmitForm:
    """A candidate: the model file, and either the data to check it on (the service runs
    the checks) or the evidence manifest of checks already run (`gate --submit`)."""

    model: str
    version: str
    artifact: UploadFile
    target: str = "production"
    label: str | None = None
    data: UploadFile | None = None
    reference: UploadFile | None = None
    champion: UploadFile | None = None
    positive_label: str | None = None
    evidence: UploadFile | None = None
    provenance: UploadFile | None = None  # a CI builder's DSSE envelope over the evidence
    model_card: str | None = None  # a JSON object: purpose, intendedUse, limitations, …

    def __post_init__(self) -> None:
        refuse_nul(vars(self).items())


class Submission(CamelResponse, frozen=True):
    """A request just opened: its checks are queued, under the policy pinned for it."""

    id: str
    state: str
    policy_sha256: str


class SubmissionController(Controller):
    """POST /requests: the files stored as blobs, the request recorded, its checks queued."""

    path = "/requests"
    tags = ("requests",)

    @post(
        "/",
        opt=permission("requests", "submit"),
        status_code=202,
        summary="Submit a model version for promotion; its checks run as a job",
        exception_handlers={UnicodeDecodeError: on_form_not_utf8},
    )
    async def submit(
        self,
        request: Request,
        data: Annotated[SubmitForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Submission | PromotionRequest:
        """A request whose checks the service runs answers as a `Submission`; one submitted
        with evidence answers as the whole request (checked already, if a builder vouched)."""
        governance = governance_of(request)
        limit = governance.settings.max_upload_bytes
        stored = {}
        for field in ("artifact", "data", "reference", "champion"):
            upload = getattr(data, field)
            if upload is None:
                continue
            if not isinstance(upload, UploadFile):
                raise InputError(field, "is not a file part", f"send {field} as a file upload")
            stored[field] = await governance.blobs.put(
                field, upload.filename or "", _chunks(upload), limit
            )
        if data.evidence is not None:
            raw = await data.evidence.read(MAX_EVIDENCE_BYTES + 1)
            if len(raw) > MAX_EVIDENCE_BYTES:
                raise InputError("evidence", "is larger than 16 MiB", "upload the gate's manifest")
            manifest = _manifest(raw)
            candidate = _candidate(data, stored, manifest.target, manifest.positive_label)
            provenance = await _provenance(data.provenance)
            created = await as_caller(
                request, governance.workflow.submit_evidence, candidate, manifest, provenance
            )
            request.app.state.jobs.notify()  # the re-run, unless a trusted builder vouched
            return PromotionRequest.from_record(created)
        if "data" not in stored or not data.label:
            missing = "data" if "data" not in stored else "label"
            raise InputError(
                missing,
                "is required when the service runs the checks",
                "send the evaluation data and its label column, or an evidence manifest",
            )
        candidate = _candidate(data, stored, data.label, data.positive_label)
        submitted = await as_caller(request, governance.workflow.submit, candidate)
        request.app.state.jobs.notify()
        return Submission.from_record(submitted)


def _candidate(
    data: SubmitForm, stored: dict[str, Path], label: str, positive_label: str | None
) -> Candidate:
    """The candidate the form and its stored files name. Its label column and positive class
    are the form's when the service runs the checks, the manifest's when evidence comes with
    it (the checks ran on those)."""
    return Candidate(
        model=data.model,
        version=data.version,
        target=data.target,
        label=label,
        artifact=stored["artifact"],
        data=stored.get("data"),
        reference=stored.get("reference"),
        champion=stored.get("champion"),
        positive_label=positive_label,
        model_card=_model_card(data.model_card),
    )


def _manifest(raw: bytes) -> EvidenceManifest:
    try:
        return EvidenceManifest.model_validate_json(raw)
    except ValidationError as exc:
        raise InputError(
            "evidence",
            f"is not an evidence manifest ({first_problem(exc)}; {exc.error_count()} error(s))",
            "upload the JSON that `governance gate --json` writes",
        ) from None


async def _provenance(upload: UploadFile | None) -> Any:
    """The builder's DSSE envelope as JSON, or None. Whether it holds is the workflow's
    question: one that does not means the checks are re-computed, not a refusal."""
    if upload is None:
        return None
    if not isinstance(upload, UploadFile):
        raise InputError("provenance", "is not a file part", "send provenance as a file upload")
    raw = await upload.read(MAX_PROVENANCE_BYTES + 1)
    if len(raw) > MAX_PROVENANCE_BYTES:
        raise InputError("provenance", "is larger than 1 MiB", "upload the DSSE envelope")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InputError(
            "provenance", "is not JSON", "upload the DSSE envelope `gate --builder-key` signs"
        ) from None


def _model_card(raw: str | None) -> ModelCard | None:
    if not raw:
        return None
    try:
        return ModelCard.model_validate_json(raw)
    except ValidationError as exc:
        raise InputError(
            "model_card",
            f"is not a model card ({first_problem(exc)})",
            "send a JSON object with any of purpose, intendedUse, outOfScopeUse, trainingData, "
            "limitations, ethicalConsiderations, contact (text)",
        ) from None


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(MiB):
        yield chunk
