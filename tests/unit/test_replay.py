"""`replay` on the in-memory unit of work: a recorded decision re-run from its files, the
refusals that record nothing, and the replay chained onto the audit trail."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

import governance.connectors.files as files
from governance.connectors.files import sha256_file
from governance.domain.audit import verify_chain
from governance.domain.errors import InputError
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.services.gate import judge
from governance.services.ports import GateRequest
from governance.services.replay import ACTION, replay
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork

POLICY = {
    "apiVersion": "governance/v1",
    "kind": "PromotionPolicy",
    "metadata": {"name": "replay-unit", "version": 1},
    "appliesTo": {"riskTier": "medium", "targets": ["production"]},
    "checks": [
        {
            "id": "perf",
            "type": "performance",
            "rules": [{"metric": "roc_auc", "min": 0.5}, {"metric": "accuracy", "min": 0.5}],
        }
    ],
    "approvals": {"quorum": 1, "roles": ["model_risk_officer"], "expiresAfterDays": 365},
    "waivers": {"allowed": False},
}


@dataclass
class Recorded:
    uow: FakeUnitOfWork
    policy: PromotionPolicy
    manifest: EvidenceManifest
    folder: Path

    def store(self, manifest: EvidenceManifest | None = None, id: str = "d1") -> str:
        evidence = manifest or self.manifest
        self.uow.decisions.stored[id] = samples.decision(evidence, self.policy, id)
        return id


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"age": rng.integers(18, 80, rows), "x": rng.normal(size=rows)})
    frame["label"] = (frame["x"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return frame


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    """A logistic regression judged on 200 generated rows, its decision recorded."""
    train, test = _frame(200, 1), _frame(200, 2)
    test.to_csv(tmp_path / "test.csv", index=False)
    model = LogisticRegression().fit(train[["age", "x"]], train["label"])
    skops.io.dump(model, tmp_path / "model.skops")
    policy = parse_policy(POLICY)
    request = GateRequest(
        policy=Path(),
        data=tmp_path / "test.csv",
        model=tmp_path / "model.skops",
        target="label",
        model_name="small",
        model_version="1",
    )
    found = Recorded(FakeUnitOfWork(), policy, judge(policy, request, files), tmp_path)
    found.store()
    return found


class Blobs:
    """A content store holding copies of files by their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def keep(self, path: Path) -> Path:
        kept = self.root / f"{sha256_file(path)}{path.suffix}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        path.rename(kept)
        return kept

    def stored(self, sha256: str) -> list[Path]:
        return sorted(self.root.glob(f"{sha256}.*"))


def test_a_decision_replays_bit_for_bit_and_the_replay_is_on_the_trail(
    recorded: Recorded,
) -> None:
    outcome = replay(recorded.uow, "d1", source=files, actor="tester")
    assert outcome.reproduced and outcome.differences == [] and outcome.rows
    assert outcome.sources["data"] == recorded.folder / "test.csv"
    [event] = recorded.uow.audit.events()
    assert (event.event.action, event.event.actor) == (ACTION, "tester")
    assert event.event.subject == "model:small@1"
    assert event.event.payload["reproduced"] is True
    assert event.event.payload["manifest_sha256"] == recorded.manifest.sha256
    assert recorded.uow.opened == ["read", "write"] and recorded.uow.commits == 1
    assert verify_chain(recorded.uow.audit.events()) == []


def test_artifacts_gone_from_their_place_are_read_from_the_content_store(
    recorded: Recorded, tmp_path: Path
) -> None:
    blobs = Blobs(tmp_path / "blobs")
    kept = {blobs.keep(recorded.folder / name) for name in ("test.csv", "model.skops")}
    outcome = replay(recorded.uow, "d1", blobs=blobs, source=files)
    assert outcome.reproduced and set(outcome.sources.values()) == kept


def test_a_changed_artifact_is_refused_and_nothing_recorded(recorded: Recorded) -> None:
    data = recorded.folder / "test.csv"
    data.write_text(data.read_text().replace("\n1", "\n0", 1))
    with pytest.raises(InputError, match="the bytes changed after the decision"):
        replay(recorded.uow, "d1", source=files)
    assert recorded.uow.audit.events() == []


def test_an_unknown_decision_is_bad_input(recorded: Recorded) -> None:
    with pytest.raises(InputError, match="is not recorded in this database"):
        replay(recorded.uow, "nope", source=files)


def test_a_manifest_changed_after_the_decision_is_refused(recorded: Recorded) -> None:
    stored = recorded.uow.decisions.stored["d1"]
    changed = {**stored.manifest, "model_version": "2"}
    recorded.uow.decisions.stored["d1"] = replace(stored, manifest=changed)
    with pytest.raises(InputError, match="it was changed after the decision"):
        replay(recorded.uow, "d1", source=files)
    assert recorded.uow.audit.events() == []


def test_a_missing_or_altered_policy_is_refused(recorded: Recorded) -> None:
    stored = recorded.uow.decisions.stored["d1"]
    recorded.uow.decisions.stored["d1"] = replace(stored, policy=None)
    with pytest.raises(InputError, match="which is not stored"):
        replay(recorded.uow, "d1", source=files)
    assert stored.policy is not None
    document = {**stored.policy.document}
    document["approvals"] = {**document["approvals"], "quorum": 2}
    altered = replace(stored.policy, document=document)
    recorded.uow.decisions.stored["d1"] = replace(stored, policy=altered)
    with pytest.raises(InputError, match="the stored document hashes to"):
        replay(recorded.uow, "d1", source=files)
    assert recorded.uow.audit.events() == []


def test_seeds_other_than_the_policy_s_are_refused(recorded: Recorded) -> None:
    recorded.store(recorded.manifest.model_copy(update={"seeds": {"perf": 3}}), id="d2")
    with pytest.raises(InputError, match="seeds: the manifest recorded"):
        replay(recorded.uow, "d2", source=files)


def test_a_manifest_recorded_before_data_sets_keeps_its_hash() -> None:
    """Artifacts gained `files` (a data set's parts). A manifest stored before has no such
    key: parsed and hashed again it must give the hash recorded with it, or every older
    decision would read as tampered with."""
    import hashlib
    import json

    from governance.domain.evidence import EvidenceManifest

    older = {
        "schema_version": 1,
        "created_at": "2026-11-01T10:00:00Z",
        "model_name": "m",
        "model_version": "1",
        "target": "y",
        "task": "classification",
        "positive_label": "1",
        "policy": {"name": "p", "version": 1, "risk_tier": "low", "sha256": "0" * 64},
        "artifacts": [
            {
                "role": "data",
                "uri": "d.parquet",
                "sha256": "1" * 64,
                "format": "parquet",
                "rows": 3,
                "columns": ["y"],
            },
        ],
        "libraries": {},
        "seeds": {},
        "results": [],
        "decision": {"verdict": "pass", "summary": "ok"},
    }
    parsed = EvidenceManifest.model_validate(older)
    stored = json.loads(json.dumps(parsed.model_dump(mode="json")))
    assert "files" not in stored["artifacts"][0]
    canonical = json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert parsed.sha256 == hashlib.sha256(canonical.encode()).hexdigest()
    again = EvidenceManifest.model_validate(stored)
    assert again.sha256 == parsed.sha256
