"""The workflow's answers on the wire: the API's response schemas (web/api) made from the
service's records keep the camelCase keys, their order and their values that the API showed
when the service built the JSON itself, and show nothing more (no envelope, no inputs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec

from governance.domain.records import (
    FinalDecisionRecord,
    ModelDetail,
    PromotionRecord,
    RequestPage,
    SignatureRecord,
    SubmittedRequest,
    VersionRecord,
    WaiverRecord,
)
from governance.web.api.models import ModelWithVersions
from governance.web.api.requests import PromotionRequest, RequestList
from governance.web.api.submissions import Submission
from tests.unit import samples

AT = datetime(2026, 1, 1, tzinfo=UTC)
STAMP = "2026-01-01T00:00:00Z"


def wire(schema: msgspec.Struct) -> dict:
    return json.loads(msgspec.json.encode(schema))


def test_a_request_keeps_its_keys_in_their_order() -> None:
    view = samples.request_view(
        state="waived",
        verdict="fail",
        gate_decision_id="g1",
        evidence_sha256="e" * 64,
        signatures=(SignatureRecord("maria", "Maria R", "mro", "waive", "ok", "e" * 64, True, AT),),
        waiver=WaiverRecord("dana", "the quarter needs it, and more", 5, AT),
        decisions=(FinalDecisionRecord("f1", "waived", {"payload": "secret"}, AT),),
    )
    answer = wire(PromotionRequest.from_record(view))

    assert list(answer) == [
        *["id", "model", "version", "riskTier", "target", "state", "stateReason", "submitter"],
        *["submitterPerson", "policy", "artifactSha256", "expiresAt", "createdAt", "updatedAt"],
        *["owner", "verdict", "decisionSummary", "gateDecisionId", "evidenceSha256", "checks"],
        *["evidence", "approvalRules", "signatures", "waiver", "decisions"],
    ]
    assert answer["policy"] == {
        "name": view.policy.name,
        "version": view.policy.version,
        "sha256": view.policy.sha256,
    }
    assert answer["signatures"] == [
        {
            "username": "maria",
            "fullName": "Maria R",
            "role": "mro",
            "meaning": "waive",
            "comment": "ok",
            "evidenceSha256": "e" * 64,
            "reauthenticated": True,
            "signedAt": STAMP,
        }
    ]
    assert answer["waiver"] == {
        "requestedBy": "dana",
        "justification": "the quarter needs it, and more",
        "days": 5,
        "requestedAt": STAMP,
    }
    assert answer["decisions"] == [{"id": "f1", "decision": "waived", "createdAt": STAMP}]
    assert (answer["stateReason"], answer["expiresAt"], answer["createdAt"]) == (None, None, STAMP)


def test_a_page_of_requests_shows_their_summaries_only() -> None:
    view = samples.request_view()
    extra = {"model_owner": "olga", "decision_id": None, "inputs": {"data": "/srv/d.csv"}}
    request = PromotionRecord(
        **{
            name: extra[name] if name in extra else getattr(view, name)
            for name in PromotionRecord.__dataclass_fields__
        }
    )
    answer = wire(RequestList.from_record(RequestPage((request,), 7, 1, 0)))

    assert (answer["total"], answer["limit"], answer["offset"]) == (7, 1, 0)
    [item] = answer["items"]
    assert list(item) == list(wire(PromotionRequest.from_record(view)))[:14]
    assert "inputs" not in item and "modelOwner" not in item


def test_a_model_and_a_submission() -> None:
    model = ModelDetail("credit", "high", "olga", AT, (VersionRecord("1", "a" * 64, AT),))
    assert wire(ModelWithVersions.from_record(model)) == {
        "name": "credit",
        "riskTier": "high",
        "owner": "olga",
        "createdAt": STAMP,
        "versions": [{"version": "1", "artifactSha256": "a" * 64, "createdAt": STAMP}],
    }
    submitted = SubmittedRequest("r1", "submitted", "p" * 64)
    assert wire(Submission.from_record(submitted)) == {
        "id": "r1",
        "state": "submitted",
        "policySha256": "p" * 64,
    }
