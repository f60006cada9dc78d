"""The evidence manifest: everything needed to re-run a decision and reach the same verdict."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from governance.domain.results import CheckResult
from governance.domain.verdict import Decision


class Artifact(BaseModel):
    """A file the decision rests on, pinned by its content hash."""

    model_config = ConfigDict(frozen=True)

    role: Literal["model", "data", "reference", "champion"]
    uri: str
    sha256: str
    format: str
    rows: int | None = None
    columns: list[str] | None = None


class PolicyRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    risk_tier: str
    sha256: str


class EvidenceManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    created_at: datetime
    model_name: str
    model_version: str
    target: str
    task: Literal["classification", "regression"]
    positive_label: str | None = None
    policy: PolicyRef
    artifacts: list[Artifact]
    libraries: dict[str, str]
    seeds: dict[str, int]
    results: list[CheckResult]
    decision: Decision

    def artifact(self, role: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.role == role), None)

    def canonical_json(self) -> str:
        document = self.model_dump(mode="json")
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()
