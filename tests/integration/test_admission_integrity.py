"""Admission believes a signed decision, not a database row (issue 13, item 7).

A database administrator who holds no signing key edits rows: a request's state set to
promoted by SQL, an attestation's payload changed or re-signed with another key, the
version's recorded sha256 pointed at other bytes. Each must end in deny and an integrity
alert on the audit trail (which the webhooks send), once per version and reason; the
normal path still allows."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.linear_model import LogisticRegression
from sqlalchemy import text
from sqlmodel import Session, col, select

from governance.bootstrap import Governance
from governance.connectors.files import sha256_file
from governance.domain import attestation
from governance.services.people import Principal
from governance.services.webhooks import ADMISSION_INTEGRITY_ALERT, events_of
from governance.services.workflow import INTEGRITY_ALERT, Candidate
from governance.store.repository import chained_event
from governance.store.tables import AuditEventRow, FinalDecision
from governance.store.uow import SqlUnits
from tests.service_fixtures import PASSWORD, open_with_people

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

MODEL, TARGET = "scorer", "production"


@dataclass
class World:
    governance: Governance
    people: dict[str, Principal]
    files: Path

    def candidate(self, version: str, seed: int) -> Candidate:
        """A small logistic regression (seeded: other seeds give other bytes) and its data."""
        rng = np.random.default_rng(seed)
        features = rng.normal(size=(600, 3))
        labels = (features[:, 0] + rng.normal(scale=0.5, size=600) > 0).astype(int)
        frame = pd.DataFrame(features, columns=["a", "b", "c"])
        model = LogisticRegression().fit(frame, labels)
        frame["label"] = labels
        artifact = self.files / f"model-{version}.skops"
        data = self.files / f"data-{version}.parquet"
        skops.io.dump(model, artifact)
        frame.to_parquet(data)
        return Candidate(MODEL, version, TARGET, "label", artifact, data)

    def checked(self, version: str, seed: int = 1) -> str:
        """Submitted and checked: awaiting approval (no final decision signed yet)."""
        workflow = self.governance.workflow
        request_id = workflow.submit(self.people["dana"], self.candidate(version, seed)).id
        for job in workflow.claimable_jobs():
            workflow.run_job(job)
        assert workflow.get_request(request_id).state == "awaiting_approval"
        return request_id

    def promoted(self, version: str, seed: int = 1) -> str:
        request_id = self.checked(version, seed)
        workflow = self.governance.workflow
        workflow.sign(self.people["bob"], request_id, "approve", "reviewed", PASSWORD)
        assert workflow.promote(self.people["dana"], request_id).state == "promoted"
        return request_id

    def sql(self, statement: str, **values: Any) -> None:
        """What a database administrator does: a statement outside the service."""
        with self.governance.engine.begin() as connection:
            connection.execute(text(statement), values)
        self.governance.workflow.admission_cache_clear()  # another process, or a restart

    def admission(self, version: str, digest: str | None = None) -> dict[str, Any]:
        return self.governance.workflow.admission(MODEL, version, TARGET, digest).as_dict()

    def alerts(self) -> list[AuditEventRow]:
        with Session(self.governance.engine) as session:
            return list(
                session.exec(
                    select(AuditEventRow)
                    .where(AuditEventRow.action == INTEGRITY_ALERT)
                    .order_by(col(AuditEventRow.seq))
                ).all()
            )

    def envelopes(self, request_id: str) -> list[FinalDecision]:
        with Session(self.governance.engine) as session:
            return list(
                session.exec(
                    select(FinalDecision)
                    .filter_by(request_id=request_id)
                    .order_by(col(FinalDecision.created_at))
                ).all()
            )

    def replace_envelope(self, row: FinalDecision, envelope: dict[str, Any]) -> None:
        with Session(self.governance.engine) as session:
            stored = session.get(FinalDecision, row.id)
            assert stored is not None
            stored.envelope = envelope
            session.add(stored)
            session.commit()
        self.governance.workflow.admission_cache_clear()


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    governance, people = open_with_people(database_url, tmp_path)
    governance.workflow.register_model(people["dana"], MODEL, "low", "dana")
    files = tmp_path / "files"
    files.mkdir()
    yield World(governance, people, files)
    governance.close()


def _payload(envelope: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return document


def _with_payload(envelope: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return {**envelope, "payload": base64.b64encode(raw).decode()}


def test_the_promoted_path_allows_with_its_signed_decision(world: World) -> None:
    request_id = world.promoted("1")
    promoted = world.envelopes(request_id)[-1]
    digest = _payload(promoted.envelope)["subject"][0]["digest"]["sha256"]

    answer = world.admission("1")
    assert answer["decision"] == "allow", answer
    assert answer["decisionId"] == promoted.id
    assert answer["artifactSha256"] == digest
    assert world.admission("1", f"sha256:{digest}")["decision"] == "allow"
    assert world.admission("1", "sha256:" + "0" * 64)["decision"] == "deny"
    assert world.alerts() == []


def test_a_state_set_to_promoted_by_sql_is_denied_and_alerted_once(world: World) -> None:
    request_id = world.checked("1")
    world.sql("UPDATE promotion_request SET state = 'promoted' WHERE id = :id", id=request_id)

    answer = world.admission("1")
    assert answer["decision"] == "deny", answer
    assert answer["decisionId"] is None
    assert "signed" in answer["reason"]
    for _ in range(3):  # a hot path: the same finding is raised once, not per call
        world.governance.workflow.admission_cache_clear()
        assert world.admission("1")["decision"] == "deny"

    alerts = world.alerts()
    assert len(alerts) == 1
    assert alerts[0].subject == f"model:{MODEL}@1"
    assert alerts[0].payload["request_id"] == request_id
    assert alerts[0].payload["state"] == "promoted"
    with SqlUnits(world.governance.engine)(read_only=True) as uow:
        sent = events_of(uow.webhook_trail, chained_event(alerts[0]).event)
    assert [event for event, _, _ in sent] == [ADMISSION_INTEGRITY_ALERT]
    assert f"{MODEL} 1" in sent[0][2]


def test_an_attestation_whose_payload_was_changed_is_denied(world: World) -> None:
    request_id = world.promoted("1")
    promoted = world.envelopes(request_id)[-1]
    document = _payload(promoted.envelope)
    document["predicate"]["expiresAt"] = "2999-01-01T00:00:00+00:00"
    world.replace_envelope(promoted, _with_payload(promoted.envelope, document))

    answer = world.admission("1")
    assert answer["decision"] == "deny", answer
    assert [a.payload["request_id"] for a in world.alerts()] == [request_id]


def test_an_attestation_signed_by_another_key_is_denied(world: World) -> None:
    request_id = world.promoted("1")
    other = Ed25519PrivateKey.generate()
    for row in world.envelopes(request_id):
        forged = attestation.envelope(_payload(row.envelope), "ed25519:forger", other.sign)
        world.replace_envelope(row, forged)

    answer = world.admission("1")
    assert answer["decision"] == "deny", answer
    assert "another key" in answer["reason"] or "signature" in answer["reason"]
    assert len(world.alerts()) == 1


def test_a_version_repointed_at_other_bytes_is_denied_for_those_bytes(world: World) -> None:
    world.promoted("1")
    other = world.candidate("other", seed=2).artifact
    other_digest = sha256_file(other)
    world.sql(
        "UPDATE model_version SET artifact_sha256 = :sha WHERE version = '1'", sha=other_digest
    )

    answer = world.admission("1", f"sha256:{other_digest}")
    assert answer["decision"] == "deny", answer
    assert len(world.alerts()) == 1


def test_another_versions_attestation_copied_in_is_denied(world: World) -> None:
    """Version 1's valid, signed decisions copied onto version 2's request, whose state is
    set to promoted: the signature holds, but it names other bytes and another version."""
    first = world.promoted("1")
    second = world.checked("2", seed=2)
    for number, row in enumerate(world.envelopes(first)):
        world.sql(
            "INSERT INTO final_decision (id, request_id, decision, envelope, created_at) "
            "SELECT :id, :request, decision, envelope, created_at FROM final_decision "
            "WHERE id = :source",
            id=f"copied-{number}",
            request=second,
            source=row.id,
        )
    world.sql("UPDATE promotion_request SET state = 'promoted' WHERE id = :id", id=second)
    digest = sha256_file(world.files / "model-2.skops")

    assert world.admission("2", f"sha256:{digest}")["decision"] == "deny"
    assert world.admission("2")["decision"] == "deny"
    assert world.admission("1")["decision"] == "allow"


def test_a_revocation_rolled_back_by_sql_stays_denied(world: World) -> None:
    request_id = world.promoted("1")
    world.governance.workflow.revoke(world.people["maria"], request_id, "drift in production")
    world.sql("UPDATE promotion_request SET state = 'promoted' WHERE id = :id", id=request_id)

    answer = world.admission("1")
    assert answer["decision"] == "deny", answer
    assert "revoked" in answer["reason"]
    assert len(world.alerts()) == 1
