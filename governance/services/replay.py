"""The replay use case: re-run a recorded decision from its evidence manifest and show, metric
by metric, whether the same numbers and the same verdict come out.

The artifacts are fetched by their recorded sha256 (from the content-addressed blob store,
else from the recorded location) and refused when the bytes differ; the policy is the
document the decision pinned, refused when its hash differs; the seeds are the recorded
ones. Library versions that differ from the recorded ones are reported, not refused: a
replay under other versions is exactly how one learns whether an upgrade moves a verdict.
The replay is recorded on the audit trail, so a report can cite it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from governance.domain.errors import InputError
from governance.domain.evidence import Artifact, EvidenceManifest
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.verdict import Verdict
from governance.services.gate import judge, policy_seeds, running_versions
from governance.services.ports import (
    ArtifactSource,
    ContentStore,
    Execution,
    GateRequest,
    UnitOfWorkFactory,
)
from governance.services.unit_of_work import run_in_unit_of_work

Progress = Callable[[str], None]

ACTION = "decision.replayed"
DECISION = "(decision)"
# The fields of a rule whose values come from the data; threshold, severity and basis come
# from the policy, which is pinned by its hash.
RULE_FIELDS = ("observed", "passed", "interval", "detail")
# Items of a list in the metrics are named by the first of these keys they carry, so that
# a row reads `ranking[feature=age].mean_abs_shap` rather than `ranking[3].mean_abs_shap`.
ITEM_KEYS = ("label", "column", "feature", "features", "metric", "id")


class _Absent:
    """A value one side has and the other lacks."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class ComparisonRow:
    """One compared value: a rule's observed value or outcome, or one metric."""

    check_id: str
    name: str
    recorded: Any
    replayed: Any
    equal: bool


@dataclass(frozen=True)
class ReplayOutcome:
    decision_id: str
    model_name: str
    model_version: str
    recorded_verdict: Verdict
    replayed_verdict: Verdict
    rows: list[ComparisonRow]
    library_differences: dict[str, tuple[str | None, str | None]]  # name → (recorded, running)
    sources: dict[str, Path]  # artifact role → the file that was read
    recorded: EvidenceManifest
    replayed: EvidenceManifest

    @property
    def differences(self) -> list[ComparisonRow]:
        return [row for row in self.rows if not row.equal]

    @property
    def reproduced(self) -> bool:
        return self.recorded_verdict == self.replayed_verdict and not self.differences


def replay(
    units: UnitOfWorkFactory,
    decision_id: str,
    source: ArtifactSource,
    blobs: ContentStore | None = None,
    actor: str = "governance replay",
    progress: Progress = lambda step: None,
) -> ReplayOutcome:
    """Re-run a recorded decision and compare it with the record, then append a
    `decision.replayed` event to the audit trail.

    Raises `InputError`, recording nothing, when the decision is unknown, its manifest or
    policy no longer hash to what was recorded, an artifact is missing or has other bytes,
    or the seeds would differ."""
    progress("Loading the decision")
    document, recorded, policy = _load(units, decision_id)
    seeds = policy_seeds(policy)
    if seeds != recorded.seeds:
        raise InputError(
            f"decision {decision_id} seeds",
            f"the manifest recorded {recorded.seeds}, but its policy sets {seeds}",
            "replay it with the gate version that made it: this one would use other seeds",
        )
    sources: dict[str, Path] = {}
    for artifact in recorded.artifacts:
        progress(f"Fetching the {artifact.role} by its sha256")
        sources[artifact.role] = fetch(artifact, blobs, source)

    request = GateRequest(
        policy=Path(),  # judged under the pinned document, not a file
        data=sources["data"],
        target=recorded.target,
        model=sources.get("model"),
        reference=sources.get("reference"),
        champion=sources.get("champion"),
        positive_label=recorded.positive_label,
        model_name=recorded.model_name,
        model_version=recorded.model_version,
    )
    replayed = judge(policy, request, source, progress, _execution(recorded, document))
    _same_inputs(recorded, replayed)

    progress("Comparing")
    # Compare what would be stored: the replayed manifest goes through the same JSON
    # encoding as the recorded one (floats round-trip exactly; NaN stays NaN).
    replayed_document = json.loads(json.dumps(replayed.model_dump(mode="json")))
    rows = compare(document, replayed_document)
    outcome = ReplayOutcome(
        decision_id=decision_id,
        model_name=recorded.model_name,
        model_version=recorded.model_version,
        recorded_verdict=recorded.decision.verdict,
        replayed_verdict=replayed.decision.verdict,
        rows=rows,
        library_differences=library_differences(recorded.libraries, running_versions()),
        sources=sources,
        recorded=recorded,
        replayed=replayed,
    )

    progress("Recording the replay")
    run_in_unit_of_work(
        units,
        lambda uow: uow.audit.append(
            actor=actor,
            action=ACTION,
            subject=f"model:{recorded.model_name}@{recorded.model_version}",
            payload={
                "decision_id": decision_id,
                "reproduced": outcome.reproduced,
                "differences": len(outcome.differences),
                "compared": len(rows),
                "recorded_verdict": outcome.recorded_verdict.value,
                "replayed_verdict": outcome.replayed_verdict.value,
                "manifest_sha256": recorded.sha256,
                "library_differences": {
                    name: {"recorded": before, "running": now}
                    for name, (before, now) in outcome.library_differences.items()
                },
            },
        ),
    )
    return outcome


def _load(
    units: UnitOfWorkFactory, decision_id: str
) -> tuple[dict[str, Any], EvidenceManifest, PromotionPolicy]:
    """The stored manifest (as stored, and parsed) and the policy document it pinned, each
    checked against the hash recorded with it."""
    with units(read_only=True) as uow:
        decision = uow.decisions.get(decision_id)
    if decision is None:
        raise InputError(
            f"decision {decision_id}",
            "is not recorded in this database",
            "give the id `governance gate` printed (recorded decision …), and the "
            "database it was recorded in (--database)",
        )
    stored_policy = decision.policy
    document = decision.manifest
    manifest_sha256 = decision.manifest_sha256
    manifest = EvidenceManifest.model_validate(document)
    if manifest.sha256 != manifest_sha256:
        raise InputError(
            f"decision {decision_id} evidence manifest",
            f"hashes to {manifest.sha256}, not the recorded {manifest_sha256}: it was "
            "changed after the decision",
            "restore the manifest from the decision's evidence files or a backup",
        )
    expected = manifest.policy.sha256
    if stored_policy is None or stored_policy.sha256 != expected:
        raise InputError(
            f"policy {manifest.policy.name} v{manifest.policy.version}",
            f"the decision was judged under sha256 {expected}, which is not stored",
            "restore the policy row the decision points at",
        )
    policy = parse_policy(stored_policy.document, source=f"stored policy {expected}")
    if policy.content_hash != expected:
        raise InputError(
            f"policy {manifest.policy.name} v{manifest.policy.version}",
            f"the stored document hashes to {policy.content_hash}, not the recorded {expected}",
            "restore the policy document the decision was judged under",
        )
    return document, manifest, policy


def fetch(artifact: Artifact, blobs: ContentStore | None, source: ArtifactSource) -> Path:
    """The file holding exactly the recorded bytes (as `source` hashes them): from the blob
    store (named by sha256), else at the recorded location. Missing or different bytes are
    refused."""
    if artifact.files is not None:
        return _data_set(artifact)
    candidates = _blob_candidates(artifact, blobs)
    recorded_path = _path_of_uri(artifact.uri)
    if recorded_path is not None:
        candidates.append(recorded_path)
    mismatch = None
    for path in candidates:
        if path.is_file():
            found = source.sha256_file(path)
            if found == artifact.sha256:
                return path
            mismatch = mismatch or (path, found)
    if mismatch is None:
        where = artifact.uri + (f" nor in the blob store {blobs.root}" if blobs else "")
        raise InputError(
            f"{artifact.role} artifact",
            f"not found at {where} (recorded sha256 {artifact.sha256})",
            "put the file back where it was recorded, or pass --blobs with the "
            "content-addressed store that holds it",
        )
    path, found = mismatch
    raise InputError(
        f"{artifact.role} artifact {path}",
        f"has sha256 {found}, but the decision recorded sha256 {artifact.sha256}: the bytes "
        "changed after the decision",
        "restore the exact file the decision was made from (or pass --blobs with the store "
        "that holds it); a replay never runs on other bytes",
    )


def _data_set(artifact: Artifact) -> Path:
    """A data set is read again where it was recorded; the judge pins its files again, and
    `_same_inputs` refuses the replay unless every file has the recorded bytes."""
    location = _path_of_uri(artifact.uri)
    if location is None:
        raise InputError(
            f"{artifact.role} data set {artifact.uri}",
            "is at a URL: a replay reads data sets from local paths only",
            "copy its files to a local directory with the same layout and replay there",
        )
    return location


def fetch_stored(artifact: Artifact, blobs: ContentStore | None, source: ArtifactSource) -> Path:
    """The artifact from the content store, by its sha256 (as `source` hashes it), and from
    nowhere else: the service never opens a location a client's manifest names (a `file://`
    URI there is only what the maker saw). The refusal names neither a hash nor a path of
    the server."""
    for path in _blob_candidates(artifact, blobs):
        if path.is_file() and source.sha256_file(path) == artifact.sha256:
            return path
    raise InputError(
        f"{artifact.role} artifact",
        "is not in the service's content store: only files uploaded with a request are read",
        f"submit the request with its {artifact.role} file uploaded",
    )


def _blob_candidates(artifact: Artifact, blobs: ContentStore | None) -> list[Path]:
    """Blobs are named `<sha256><suffix>` (see `BlobStore.path_of`); the readers choose the
    format by the suffix, so a blob with the recorded file's suffix comes first."""
    if blobs is None:
        return []
    found = blobs.stored(artifact.sha256)
    suffix = Path(urlparse(artifact.uri).path).suffix.lower()
    return sorted(found, key=lambda path: path.suffix.lower() != suffix)


def _path_of_uri(uri: str) -> Path | None:
    """A recorded location: a plain path or a file:// URI (other schemes are not fetched)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
        return None
    return Path(uri)


def _same_inputs(recorded: EvidenceManifest, replayed: EvidenceManifest) -> None:
    """The judge read the files again: they must still be the verified bytes."""
    for artifact in recorded.artifacts:
        read = replayed.artifact(artifact.role)
        if read is None or read.sha256 != artifact.sha256:
            raise InputError(
                f"{artifact.role} artifact {artifact.uri}",
                f"changed while it was replayed (now sha256 {read.sha256 if read else 'none'}, "
                f"recorded {artifact.sha256})",
                "replay again once nothing writes to the file",
            )
    if replayed.seeds != recorded.seeds:
        raise InputError(
            "seeds",
            f"the replay used {replayed.seeds}, the decision recorded {recorded.seeds}",
            "replay it with the gate version that made it",
        )


def library_differences(
    recorded: dict[str, str], running: dict[str, str]
) -> dict[str, tuple[str | None, str | None]]:
    """Each library (and python, platform) whose version is not the recorded one."""
    names = [*recorded, *(name for name in running if name not in recorded)]
    return {
        name: (recorded.get(name), running.get(name))
        for name in names
        if recorded.get(name) != running.get(name)
    }


def _execution(recorded: EvidenceManifest, document: dict[str, Any]) -> Execution:
    """Read the rows as the decision read them: in memory when its figures were exact, in
    batches of the same size with the same sketches when they were not (Dask's reduction
    is replayed streamed: the counts are the same, sums may differ in the last bits)."""
    sampling = _sampling(document)
    reading = recorded.reading
    if reading is None or reading.exact:
        return Execution(sampling=sampling)
    return Execution(
        kind="streamed",
        batch_rows=reading.batch_rows,
        exact_rows=reading.exact_rows,
        sampling=sampling,
    )


def _sampling(document: dict[str, Any]) -> Literal["keys", "frame"]:
    """How the recorded decision drew its explainability sample: by Philox keys (the
    manifest says so), or, before that was recorded, with `DataFrame.sample`."""
    for result in document.get("results", []):
        metrics = result.get("metrics") or {}
        ranked = "ranking" in metrics  # a check that ran: one that errored drew nothing
        if result.get("type") == "explainability" and ranked and "sampling" not in metrics:
            return "frame"
    return "keys"


def compare(recorded: dict[str, Any], replayed: dict[str, Any]) -> list[ComparisonRow]:
    """Row by row: the verdict, then for each check its status and summary, each rule's
    observed value, outcome, interval and detail, and every value in its metrics. Times
    (created_at, duration_seconds) and versions are not compared."""
    rows = [
        _row(DECISION, "verdict", recorded["decision"]["verdict"], replayed["decision"]["verdict"]),
        _row(DECISION, "summary", recorded["decision"]["summary"], replayed["decision"]["summary"]),
    ]
    before = {result["id"]: result for result in recorded["results"]}
    after = {result["id"]: result for result in replayed["results"]}
    for check_id in [*before, *(key for key in after if key not in before)]:
        old, new = before.get(check_id, {}), after.get(check_id, {})
        if not old or not new:
            rows.append(_row(check_id, "check", bool(old) or ABSENT, bool(new) or ABSENT))
            continue
        for field in ("status", "summary"):
            rows.append(_row(check_id, field, old.get(field, ABSENT), new.get(field, ABSENT)))
        old_rules, new_rules = old.get("rules", []), new.get("rules", [])
        for index in range(max(len(old_rules), len(new_rules))):
            old_rule = old_rules[index] if index < len(old_rules) else {}
            new_rule = new_rules[index] if index < len(new_rules) else {}
            label = old_rule.get("rule") or new_rule.get("rule") or f"rules[{index}]"
            for field in RULE_FIELDS:
                rows.append(
                    _row(
                        check_id,
                        f"{label}: {field}",
                        old_rule.get(field, ABSENT),
                        new_rule.get(field, ABSENT),
                    )
                )
        old_metrics = flatten(old.get("metrics", {}), "metrics")
        new_metrics = flatten(new.get("metrics", {}), "metrics")
        added = [key for key in new_metrics if key not in old_metrics and not _described(key)]
        for name in [*old_metrics, *added]:
            rows.append(
                _row(check_id, name, old_metrics.get(name, ABSENT), new_metrics.get(name, ABSENT))
            )
    return rows


def _row(check_id: str, name: str, recorded: Any, replayed: Any) -> ComparisonRow:
    return ComparisonRow(check_id, name, recorded, replayed, identical(recorded, replayed))


# Metrics that describe how a figure was computed, added to the manifest after some
# decisions were recorded: their absence from an older manifest is not a difference.
DESCRIPTIVE = re.compile(r"\.(statistics\b|sketched$|bound$|sampling$)")


def _described(name: str) -> bool:
    return DESCRIPTIVE.search(name) is not None


def flatten(value: Any, path: str) -> dict[str, Any]:
    """Every leaf of a JSON value by its path. Dicts and lists of dicts are opened; a list
    of plain values is one leaf."""
    if isinstance(value, dict) and value:
        leaves: dict[str, Any] = {}
        for key, item in value.items():
            leaves.update(flatten(item, f"{path}.{key}"))
        return leaves
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        names = [_item_name(item, index) for index, item in enumerate(value)]
        if len(set(names)) < len(names):
            names = [f"[{index}]" for index in range(len(value))]
        leaves = {}
        for name, item in zip(names, value, strict=True):
            leaves.update(flatten(item, f"{path}{name}"))
        return leaves
    return {path: value}


def _item_name(item: dict[str, Any], index: int) -> str:
    for key in ITEM_KEYS:
        if key in item and isinstance(item[key], str | int | list):
            shown = ",".join(map(str, item[key])) if isinstance(item[key], list) else item[key]
            return f"[{key}={shown}]"
    return f"[{index}]"


def identical(a: Any, b: Any) -> bool:
    """Exact equality of JSON values: floats with ==, NaN equal to NaN, True not 1."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(identical(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)
