"""What the repositories (`governance.services.ports`) answer with: plain records of what
is stored, so the use cases never see a database row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoredPolicy:
    """A policy as it was pinned: its canonical JSON document and the hash of that JSON."""

    name: str
    version: int
    risk_tier: str
    sha256: str
    document: dict[str, Any]


@dataclass(frozen=True)
class StoredDecision:
    """A recorded gate decision: the manifest exactly as stored, the hash recorded with it,
    and the policy row it points at (None when that row is gone)."""

    id: str
    manifest: dict[str, Any]
    manifest_sha256: str
    policy: StoredPolicy | None


@dataclass(frozen=True)
class RequestWithEvidence:
    """A promotion request with what it was judged on: its version, the policy it pinned,
    and its recorded decision's manifest (None when it has no decision)."""

    id: str
    state: str
    target: str
    model: str
    version: str
    policy: StoredPolicy
    decision_id: str | None
    manifest: dict[str, Any] | None
