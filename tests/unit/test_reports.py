"""The report use cases on the in-memory unit of work: what a decision report and the
inventory are gathered from, the refusals before anything is rendered, and the report's
sha256 on the audit trail (again when another writer took the audit seq)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import governance.connectors.files as files
from governance.domain.audit import verify_chain
from governance.domain.errors import InputError, NotFoundError
from governance.domain.evidence import Artifact
from governance.domain.records import (
    InventoryModel,
    InventoryRequest,
    ReportedRequest,
    RequestView,
)
from governance.domain.reporting import DecisionFacts, IssuedReport, canonical_sha256
from governance.reports import documents
from governance.services.reports import Reports, record_report
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass
class StubRenderer:
    """Lays the reports out as HTML (so the gathered facts are shown) but signs nothing."""

    issued: list[dict[str, Any]] = field(default_factory=list)

    def decision(
        self, facts: DecisionFacts, statement: dict[str, Any], clock: Callable[[], datetime]
    ) -> IssuedReport:
        evidence = facts.manifest.model_dump(mode="json")
        return self._issue("decision", lambda c: documents.decision_html(facts, c), evidence, clock)

    def bias_audit(
        self,
        audit: dict[str, Any],
        title: str,
        model: dict[str, Any],
        evidence: dict[str, Any],
        statement: dict[str, Any],
        clock: Callable[[], datetime],
    ) -> IssuedReport:
        raise AssertionError("not rendered in these tests")

    def inventory(
        self,
        models: list[dict[str, Any]],
        evidence: dict[str, Any],
        statement: dict[str, Any],
        clock: Callable[[], datetime],
    ) -> IssuedReport:
        return self._issue(
            "inventory", lambda c: documents.inventory_html(models, c), evidence, clock
        )

    def _issue(
        self,
        kind: str,
        html: Callable[[documents.Cover], str],
        evidence: dict[str, Any],
        clock: Callable[[], datetime],
    ) -> IssuedReport:
        sha = canonical_sha256(evidence)
        cover = documents.Cover("Org", "CN=test", "id", clock(), sha, [])
        self.issued.append({"kind": kind, "html": html(cover), "evidence": evidence})
        return IssuedReport(kind, f"{kind}.pdf", b"%PDF", "f" * 64, sha)


def reports(
    uow: FakeUnitOfWork, signing: StubRenderer, views: dict[str, RequestView] | None = None
) -> Reports:
    def view(request_id: str) -> RequestView:
        return (views or {})[request_id]

    return Reports(
        uow,
        lambda: signing,
        lambda note: "signed note",
        view,
        files.SKOPS_ONLY,
        clock=lambda: NOW,
    )


@pytest.fixture
def decided() -> FakeUnitOfWork:
    """A recorded decision `d1` of credit v1, owned by alice, with one audit event about it."""
    uow = FakeUnitOfWork()
    pinned = samples.policy()
    uow.decisions.stored["d1"] = samples.decision(samples.manifest(pinned, 0.9), pinned, "d1")
    uow.reports.owners[("credit", "1")] = "alice"
    uow.audit.append(actor="ci", action="gate.decided", subject="model:credit@1", payload={})
    uow.commit()
    uow.console.events["model:credit@1"] = [
        {"seq": 1, "time": NOW, "actor": "ci", "action": "gate.decided", "hash": "h", "payload": {}}
    ]
    uow.commits = 0
    return uow


def test_a_decision_report_is_recorded_on_the_trail(decided: FakeUnitOfWork) -> None:
    signing = StubRenderer()
    report = reports(decided, signing).decision("bob", decision_id="d1")
    [issued] = signing.issued
    assert issued["kind"] == "decision" and "alice" in issued["html"]
    assert report.manifest_sha256 == decided.decisions.stored["d1"].manifest_sha256
    event = decided.audit.committed[-1].event
    assert (event.actor, event.action, event.subject) == ("bob", "report.issued", "model:credit@1")
    assert event.payload == {
        "kind": "decision",
        "sha256": report.sha256,
        "manifest_sha256": report.manifest_sha256,
        "decision_id": "d1",
        "request_id": None,
    }
    assert decided.opened == ["read", "write"]
    verify_chain(decided.audit.committed)


def test_a_request_s_report_shows_the_request_and_its_card(decided: FakeUnitOfWork) -> None:
    decided.reports.requests["r1"] = ReportedRequest(
        "r1", "approved", "d1", {"purpose": "Scores credit applications"}
    )
    view = samples.request_view("r1", "approved")
    signing = StubRenderer()
    reports(decided, signing, {"r1": view}).decision("bob", request_id="r1")
    assert "Scores credit applications" in signing.issued[0]["html"]
    assert decided.audit.committed[-1].event.payload["request_id"] == "r1"
    assert decided.audit.committed[-1].event.payload["decision_id"] == "d1"


@pytest.mark.parametrize(
    ("request_id", "decision_id"), [(None, None), ("r1", "d1")], ids=["neither", "both"]
)
def test_a_report_names_a_request_or_a_decision(
    decided: FakeUnitOfWork, request_id: str | None, decision_id: str | None
) -> None:
    with pytest.raises(InputError, match="neither or both"):
        reports(decided, StubRenderer()).decision("bob", request_id, decision_id)
    assert decided.opened == []


def test_unknown_requests_and_decisions_are_not_found(decided: FakeUnitOfWork) -> None:
    signing = StubRenderer()
    with pytest.raises(NotFoundError, match="request r9"):
        reports(decided, signing).decision("bob", request_id="r9")
    with pytest.raises(NotFoundError, match="decision d9"):
        reports(decided, signing).decision("bob", decision_id="d9")
    with pytest.raises(NotFoundError, match="decision d9"):
        reports(decided, signing).bias_audit("bob", "d9")
    assert signing.issued == [] and decided.commits == 0


def test_a_request_without_evidence_has_no_report(decided: FakeUnitOfWork) -> None:
    decided.reports.requests["r2"] = ReportedRequest("r2", "checking", None, None)
    with pytest.raises(InputError, match="has no evidence yet: it is checking"):
        reports(decided, StubRenderer()).decision("bob", request_id="r2")
    assert decided.commits == 0


def test_a_bias_audit_reads_only_the_content_store(decided: FakeUnitOfWork) -> None:
    """No content store: the recorded artifacts are never read from where the manifest says."""
    with pytest.raises(InputError, match="not in the service's content store"):
        reports(decided, StubRenderer()).bias_audit("bob", "d1")
    assert decided.commits == 0


def test_the_inventory_weighs_requests_waivers_and_verdicts() -> None:
    uow = FakeUnitOfWork()
    later, earlier = NOW + timedelta(days=30), NOW - timedelta(days=1)
    uow.reports.models = [
        InventoryModel(
            "credit",
            "high",
            "alice",
            (
                InventoryRequest("r3", "blocked", "3", None, waiver_asked=True),
                InventoryRequest("r2", "approved", "2", later, waiver_asked=False),
                InventoryRequest("r1", "waived", "1", earlier, waiver_asked=True),
            ),
            "pass",
        ),
        InventoryModel("fraud", "medium", None, (), "fail"),
        InventoryModel("new", "low", None, (), None),
    ]
    signing = StubRenderer()
    reports(uow, signing).inventory("bob")
    [issued] = signing.issued
    assert issued["evidence"]["models"] == [
        {
            "name": "credit",
            "risk_tier": "high",
            "owner": "alice",
            "status": "blocked",
            "approved_version": "2",
            "expires_at": later.strftime("%Y-%m-%d %H:%M"),
            "open_waivers": 2,
        },
        {
            "name": "fraud",
            "risk_tier": "medium",
            "owner": None,
            "status": "gate: fail",
            "approved_version": None,
            "expires_at": None,
            "open_waivers": 0,
        },
        {
            "name": "new",
            "risk_tier": "low",
            "owner": None,
            "status": "registered",
            "approved_version": None,
            "expires_at": None,
            "open_waivers": 0,
        },
    ]
    event = uow.audit.committed[-1].event
    assert (event.subject, event.payload["models"]) == ("inventory", 3)


def test_the_report_is_recorded_again_when_the_audit_seq_was_taken() -> None:
    uow = FakeUnitOfWork()
    uow.taken = 1
    report = IssuedReport("decision", "d.pdf", b"%PDF", "a" * 64, "b" * 64)
    record_report(uow, "bob", report, "model:credit@1", {"decision_id": "d1"})
    [chained] = uow.audit.committed
    assert chained.event.payload == {
        "kind": "decision",
        "sha256": "a" * 64,
        "manifest_sha256": "b" * 64,
        "decision_id": "d1",
    }
    assert uow.opened == ["write", "write"]


@dataclass
class OneBlob:
    """A content store holding one file."""

    path: Path

    @property
    def root(self) -> Path:
        return self.path.parent

    def stored(self, sha256: str) -> list[Path]:
        return [self.path] if files.sha256_file(self.path) == sha256 else []


def test_no_pickle_is_loaded_in_the_report_process(tmp_path: Path) -> None:
    """The report process holds the report key: a stored pickle is refused, not loaded."""
    blob = tmp_path / "model.pkl"
    blob.write_bytes(pickle.dumps({"not": "a model"}))
    pinned = samples.policy()
    evidence = samples.manifest(pinned, 0.9)
    evidence.artifacts[0] = Artifact(
        role="model", uri="file:///m.pkl", sha256=files.sha256_file(blob), format="pickle"
    )
    uow = FakeUnitOfWork()
    uow.decisions.stored["d1"] = samples.decision(evidence, pinned, "d1")
    use_case = Reports(
        uow,
        StubRenderer,
        str,
        lambda _: {},
        files.SKOPS_ONLY,
        OneBlob(blob),
    )
    with pytest.raises(InputError, match="pickle"):
        use_case.bias_audit("bob", "d1")
    assert uow.commits == 0
