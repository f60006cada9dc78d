"""Decisions as in-toto Statements (v1) in DSSE envelopes: the approval travels with the
model's bytes, and anyone can check that what is served is what was judged.

Pure: signing and verifying are handed in by the adapter that holds the key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from governance.domain.evidence import EvidenceManifest

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:governance:decision:v1"


def statement(
    manifest: EvidenceManifest,
    decision_id: str | None = None,
    decision: str | None = None,
    signatures: list[dict[str, Any]] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Subject: the model artifact by sha256. Predicate: the decision (the gate's verdict,
    or the workflow's final decision: approved, waived, promoted, revoked), every rule, and
    the people who signed."""
    model = manifest.artifact("model")
    if model is None:
        raise ValueError("an attestation needs the model artifact: it is its subject")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{manifest.model_name}@{manifest.model_version}",
                "digest": {"sha256": model.sha256},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "decision": decision or manifest.decision.verdict.value,
            "verdict": manifest.decision.verdict.value,
            "decisionId": decision_id,
            "summary": manifest.decision.summary,
            "decidedAt": manifest.created_at.isoformat(),
            "policy": manifest.policy.model_dump(mode="json"),
            "rules": [
                {
                    "check": result.id,
                    "rule": rule.rule,
                    "observed": rule.observed,
                    "threshold": rule.threshold,
                    "passed": rule.passed,
                    "severity": rule.severity.value,
                }
                for result in manifest.results
                for rule in result.rules
            ],
            "signatures": signatures or [],
            **({"reason": reason} if reason else {}),
            "evidenceManifestSha256": manifest.sha256,
        },
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def envelope(document: dict[str, Any], key_id: str, signer: Callable[[bytes], bytes]) -> dict:
    payload = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {"keyid": key_id, "sig": base64.b64encode(signer(pae(PAYLOAD_TYPE, payload))).decode()}
        ],
    }


class AttestationError(ValueError):
    """An envelope that vouches for nothing: malformed, or its signature does not hold."""


def verified_statement(
    document: dict[str, Any], verifier: Callable[[bytes, bytes], bool]
) -> dict[str, Any]:
    """The in-toto Statement inside a DSSE envelope whose signature `verifier` accepts;
    AttestationError naming why otherwise. Nothing in the payload is read before the
    signature over it holds."""
    try:
        payload = base64.b64decode(document["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in document["signatures"]]
        payload_type = document["payloadType"]
    except (KeyError, TypeError, ValueError) as exc:
        raise AttestationError(f"not a DSSE envelope: {exc}") from None
    if not isinstance(payload_type, str) or not any(
        verifier(signature, pae(payload_type, payload)) for signature in signatures
    ):
        raise AttestationError(
            "signature: does not verify with this key (the payload was changed, or "
            "another key signed it)"
        )
    inner = json.loads(payload)
    if not isinstance(inner, dict) or inner.get("_type") != STATEMENT_TYPE:
        kind = inner.get("_type") if isinstance(inner, dict) else type(inner).__name__
        raise AttestationError(f"payload: not an in-toto Statement v1 ({kind!r})")
    return inner


def subject_digests(inner: dict[str, Any]) -> dict[str, str | None]:
    """The Statement's subjects: name → sha256."""
    return {
        str(s.get("name")): s.get("digest", {}).get("sha256")
        for s in inner.get("subject", [])
        if isinstance(s, dict)
    }


def verify(
    document: dict[str, Any], artifact_sha256: str, verifier: Callable[[bytes, bytes], bool]
) -> list[str]:
    """Every reason the envelope does not vouch for these bytes; empty when it does."""
    try:
        inner = verified_statement(document, verifier)
    except AttestationError as exc:
        return [str(exc)]
    digests = list(subject_digests(inner).values())
    if artifact_sha256 not in digests:
        return [
            f"artifact: sha256 {artifact_sha256} is not the attested {', '.join(map(str, digests))}"
        ]
    return []


# --- a CI builder's provenance of gate evidence ------------------------------------------

PROVENANCE_TYPE = "urn:governance:gate-evidence:v1"


def provenance_envelope(
    manifest: EvidenceManifest, builder: str, key_id: str, signer: Callable[[bytes], bytes]
) -> dict[str, Any]:
    """What a CI builder signs after `governance gate`: an in-toto Statement whose subject is
    the model's bytes and whose predicate binds the evidence manifest by its sha256."""
    model = manifest.artifact("model")
    if model is None:
        raise ValueError("provenance needs the model artifact: it is its subject")
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{manifest.model_name}@{manifest.model_version}",
                "digest": {"sha256": model.sha256},
            }
        ],
        "predicateType": PROVENANCE_TYPE,
        "predicate": {
            "builder": builder,
            "evidenceManifestSha256": manifest.sha256,
            "policySha256": manifest.policy.sha256,
        },
    }
    return envelope(document, key_id, signer)


def provenance_problems(
    document: Any,
    model_sha256: str,
    manifest_sha256: str,
    builder: str,
    verifier: Callable[[bytes, bytes], bool],
) -> list[str]:
    """Every reason the envelope is not `builder`'s provenance of this model and manifest;
    empty when it is."""
    if not isinstance(document, dict):
        return ["not a DSSE envelope: expected a JSON object"]
    try:
        problems = verify(document, model_sha256, verifier)
        if problems:
            return problems
        inner = json.loads(base64.b64decode(document["payload"]))
        predicate = inner["predicate"] if isinstance(inner.get("predicate"), dict) else {}
    except (AttributeError, TypeError, ValueError) as exc:
        return [f"payload: not an in-toto Statement ({type(exc).__name__})"]
    if inner.get("predicateType") != PROVENANCE_TYPE:
        return [f"predicateType: not {PROVENANCE_TYPE}"]
    if predicate.get("evidenceManifestSha256") != manifest_sha256:
        return ["predicate: names another evidence manifest than the one uploaded"]
    if predicate.get("builder") != builder:
        return ["predicate: names another builder than the key's"]
    return []
