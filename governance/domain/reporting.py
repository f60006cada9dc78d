"""What a report is made of and what comes out: the facts a decision report shows, as the
use case gathers them (`governance.services.reports`) and the renderer lays them out
(`reports.documents`), and the signed report that is handed out and recorded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from governance.domain.evidence import EvidenceManifest
from governance.domain.model_card import ModelCard
from governance.domain.policy import PromotionPolicy
from governance.domain.records import RequestView


@dataclass(frozen=True)
class DecisionFacts:
    """Everything a decision report shows: the evidence and its policy, and, for a decision
    the service recorded, its request, owner, audit events, replays and the trail's
    signed checkpoint."""

    manifest: EvidenceManifest
    policy: PromotionPolicy
    decision_id: str | None
    model_card: ModelCard | None = None
    owner: str | None = None
    request: RequestView | None = None  # the workflow's view of the request, if any
    audit_events: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str | None = None
    tree_size: int | None = None
    replays: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class IssuedReport:
    """A signed report: its sha256 goes on the audit trail, so whoever holds a copy can
    show it is the one that was issued; `manifest_sha256` is that of the embedded evidence."""

    kind: str
    filename: str
    pdf: bytes
    sha256: str
    manifest_sha256: str


def canonical_json(document: dict[str, Any]) -> bytes:
    """The bytes a report embeds its evidence as, so its sha256 is the one recorded
    elsewhere (a manifest's `EvidenceManifest.sha256`)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_sha256(document: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document)).hexdigest()
