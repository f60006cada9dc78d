"""The evidence manifest: everything needed to re-run a decision and reach the same verdict."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from governance.domain.results import CheckResult
from governance.domain.verdict import Decision


class Artifact(BaseModel):
    """A file the decision rests on, pinned by its content hash."""

    model_config = ConfigDict(frozen=True)

    role: Literal["model", "data", "reference", "champion"]
    uri: str  # where the maker read it; informative only, never opened by the service
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: str
    rows: int | None = None
    columns: list[str] | None = None
    files: list[dict[str, str]] | None = None  # a data set's files: path and sha256 each

    @model_serializer(mode="wrap")
    def _without_absent_files(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`files` came after decisions were recorded: a single file's artifact is written
        as before, so those decisions' manifests keep the hash recorded with them."""
        document: dict[str, Any] = handler(self)
        if document.get("files") is None:
            document.pop("files", None)
        return document


class PolicyRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    risk_tier: str
    sha256: str


class Reading(BaseModel):
    """How the gate read the rows: what a replay needs to read them the same way. With
    `exact` false, rank statistics were sketched (bins over batches of `batch_rows`)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["memory", "streamed", "dask"]
    batch_rows: int
    exact_rows: int
    exact: bool


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
    reading: Reading | None = None  # absent from manifests recorded before it existed

    @model_serializer(mode="wrap")
    def _without_absent_reading(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Written only when known, so older manifests keep the hash recorded with them."""
        document: dict[str, Any] = handler(self)
        if document.get("reading") is None:
            document.pop("reading", None)
        return document

    def artifact(self, role: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.role == role), None)

    def canonical_json(self) -> str:
        document = self.model_dump(mode="json")
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


# Re-computed figures may differ from submitted ones by floating-point noise at most.
TOLERANCE = 1e-9


def mismatches(
    claimed: list[CheckResult], recomputed: list[CheckResult], tolerance: float = TOLERANCE
) -> list[dict[str, Any]]:
    """Where submitted evidence says something the service's own run does not: each rule's
    observed value (beyond `tolerance`) and outcome, each check's status, and checks that
    one side has and the other lacks. Empty when the evidence holds."""
    found: list[dict[str, Any]] = []

    def differ(check: str, field: str, said: Any, seen: Any) -> None:
        found.append(
            {"check": check, "field": field, "claimed": _json(said), "recomputed": _json(seen)}
        )

    before = {result.id: result for result in claimed}
    after = {result.id: result for result in recomputed}
    for check_id in [*after, *(key for key in before if key not in after)]:
        said, seen = before.get(check_id), after.get(check_id)
        if said is None or seen is None:
            differ(check_id, "check", said is not None, seen is not None)
            continue
        if said.status != seen.status:
            differ(check_id, "status", said.status.value, seen.status.value)
        said_rules = {rule.rule: rule for rule in said.rules}
        seen_rules = {rule.rule: rule for rule in seen.rules}
        for name in [*seen_rules, *(key for key in said_rules if key not in seen_rules)]:
            old, new = said_rules.get(name), seen_rules.get(name)
            if old is None or new is None:
                differ(check_id, f"{name}: rule", old is not None, new is not None)
                continue
            if not _close(old.observed, new.observed, tolerance):
                differ(check_id, f"{name}: observed", old.observed, new.observed)
            if old.passed != new.passed:
                differ(check_id, f"{name}: passed", old.passed, new.passed)
    return found


def _json(value: Any) -> Any:
    """A value as JSON can hold it everywhere (PostgreSQL's JSON has no NaN or infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _close(a: float | str | None, b: float | str | None, tolerance: float) -> bool:
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    if not numbers:
        return a == b
    x, y = float(a), float(b)  # type: ignore[arg-type]
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y or abs(x - y) <= tolerance
