"""Registry sync on the in-memory unit of work: which offered versions are opened (once),
which are refused, how decisions are written back as the audit trail moves, and how the
alias guard puts the governed alias back. The registry, the workflow and the reports are
stand-ins: only what this module reads and writes through its ports is real."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from governance.domain.audit import verify_chain
from governance.domain.errors import NotFoundError
from governance.domain.records import (
    LinkedRequest,
    ModelDetail,
    RegistryLinkRecord,
    SubmittedRequest,
)
from governance.services.ports import FetchedFiles, PublishedDecision, RegistryVersion
from governance.services.registries import CURSOR, INCOMPLETE, REFUSED, RegistrySync
from governance.services.reports import Reports
from governance.services.workflow import Candidate, Workflow
from tests.unit.fakes import FakeUnitOfWork


def offered(version: str, **changes: Any) -> RegistryVersion:
    fields: dict[str, Any] = {
        "connector": "files",
        "model": "fraud",
        "version": version,
        "risk_tier": "medium",
        "target": "production",
        "label": "label",
        "source_uri": f"file:///models/fraud/{version}",
    }
    return RegistryVersion(**(fields | changes))


@dataclass
class StubRegistry:
    """A registry that offers versions, keeps what it is told, and holds one alias."""

    offers: list[RegistryVersion] = field(default_factory=list)
    published: list[tuple[str, PublishedDecision]] = field(default_factory=list)
    holders: dict[str, str | None] = field(default_factory=dict)
    served_sha256: str = "approved"
    name: str = "files"
    alias: str = "production"
    verify_digest: bool = False

    def discover(self) -> list[RegistryVersion]:
        return self.offers

    def fetch(self, version: RegistryVersion, into: Path) -> FetchedFiles:
        (into / "model.onnx").write_bytes(b"model")
        (into / "data.csv").write_text("label\n1\n")
        return FetchedFiles(into / "model.onnx", into / "data.csv")

    def publish(self, version: RegistryVersion, decision: PublishedDecision) -> None:
        self.published.append((version.version, decision))

    def alias_holder(self, model: str) -> str | None:
        return self.holders.get(model)

    def move_alias(self, model: str, version: str | None) -> None:
        self.holders[model] = version

    def model_sha256(self, model: str, version: str, into: Path) -> str:
        return self.served_sha256


@dataclass
class StubWorkflow:
    """The calls into the workflow, as they are made (the workflow has its own tests)."""

    tier: str | None = None  # the governed model's tier, None: not registered yet
    submitted: list[tuple[Candidate, Any]] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)

    def get_model(self, name: str) -> ModelDetail:
        if self.tier is None:
            raise NotFoundError(f"model {name}", "register it")
        return ModelDetail(name, self.tier, None, datetime(2026, 1, 1, tzinfo=UTC), ())

    def register_model(self, actor: Any, name: str, tier: str, owner: str | None) -> None:
        self.registered.append(name)
        self.tier = tier

    def submit(self, actor: Any, candidate: Candidate, also: Any = None) -> SubmittedRequest:
        self.submitted.append((candidate, also))
        return SubmittedRequest(f"req-{candidate.version}", "submitted", "p" * 64)


@dataclass
class Issued:
    filename: str = "decision.pdf"
    pdf: bytes = b"%PDF"
    sha256: str = "report-sha"


class StubReports:
    def __init__(self) -> None:
        self.issued: list[str | None] = []

    def decision(self, actor: str, request_id: str | None = None) -> Issued:
        self.issued.append(request_id)
        return Issued()


class Intake:
    def adopt(self, source: Path) -> Path:
        return source


def link(version: str) -> RegistryLinkRecord:
    return RegistryLinkRecord("files", "fraud", version, f"file:///models/fraud/{version}")


def linked(version: str, state: str, reason: str | None = None) -> LinkedRequest:
    return LinkedRequest(link(version), f"req-{version}", state, f"dec-{version}", reason)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def registry() -> StubRegistry:
    return StubRegistry()


@pytest.fixture
def workflow() -> StubWorkflow:
    return StubWorkflow()


@pytest.fixture
def reports() -> StubReports:
    return StubReports()


@pytest.fixture
def links() -> list[RegistryLinkRecord]:
    return []


@pytest.fixture
def sync(
    uow: FakeUnitOfWork,
    registry: StubRegistry,
    workflow: StubWorkflow,
    reports: StubReports,
    links: list[RegistryLinkRecord],
    tmp_path: Path,
) -> RegistrySync:
    def hook(record: RegistryLinkRecord) -> Any:
        links.append(record)
        return record  # what the workflow's submit is given as `also`

    (tmp_path / "work").mkdir()
    return RegistrySync(
        uow,
        hook,
        cast(Workflow, workflow),
        cast(Reports, reports),
        Intake(),
        [(registry, 60.0)],
        tmp_path / "work",
    )


def test_each_offered_version_is_opened_once(
    uow: FakeUnitOfWork,
    sync: RegistrySync,
    registry: StubRegistry,
    workflow: StubWorkflow,
    links: list[RegistryLinkRecord],
) -> None:
    uow.registry_links.stored = [linked("1", "promoted")]
    registry.offers = [offered("1"), offered("2"), offered("3", status=REFUSED)]

    result = sync.sync("files")

    assert result.opened == ["req-2"]
    assert workflow.registered == ["fraud"]
    [(candidate, also)] = workflow.submitted
    assert (candidate.model, candidate.version, candidate.pickle_allowed) == ("fraud", "2", True)
    assert links == [link("2")] and also == link("2")  # linked in the submit's transaction


def test_a_version_that_cannot_be_governed_is_told_why_once(
    sync: RegistrySync, registry: StubRegistry, workflow: StubWorkflow
) -> None:
    workflow.tier = "high"
    registry.offers = [
        offered("1", problem="no label tag"),
        offered("2", problem="no label tag", status=INCOMPLETE),  # told already
        offered("3"),  # tagged medium, governed high
    ]

    result = sync.sync("files")

    told = [(version, decision.status) for version, decision in registry.published]
    assert told == [("1", INCOMPLETE), ("3", REFUSED)]
    assert set(result.refused) == {"fraud@1", "fraud@2", "fraud@3"}
    assert "risk tier high" in result.refused["fraud@3"]
    assert workflow.submitted == []


def test_decisions_are_written_back_as_the_trail_moves(
    uow: FakeUnitOfWork, sync: RegistrySync, registry: StubRegistry, reports: StubReports
) -> None:
    uow.registry_links.stored = [linked("1", "promoted"), linked("2", "blocked", "roc_auc low")]
    for action, request_id in [
        ("request.submit", "req-2"),
        ("request.promote", "req-1"),
        ("request.submit", "not-from-a-registry"),
        ("builder.register", None),
    ]:
        uow.audit.append(actor="x", action=action, subject="s", payload={"request_id": request_id})
    uow.commit()

    written = sync.publish_pending()

    assert written == 2
    [(first, blocked), (second, promoted)] = registry.published
    assert (first, blocked.status, blocked.serving, blocked.reason) == (
        "2",
        "blocked",
        False,
        "roc_auc low",
    )
    assert (second, promoted.status, promoted.serving) == ("1", "promoted", True)
    assert (promoted.decision_id, promoted.report_sha256) == ("dec-1", "report-sha")
    assert reports.issued == ["req-1"]
    assert uow.cursors.position(CURSOR) == 3  # past the last request event, not beyond
    assert sync.publish_pending() == 0  # nothing new: nothing written again


def test_the_alias_guard_puts_the_alias_back_and_says_so(
    uow: FakeUnitOfWork, sync: RegistrySync, registry: StubRegistry
) -> None:
    uow.registry_links.stored = [linked("1", "promoted"), linked("2", "rejected")]
    registry.holders["fraud"] = "2"

    result = sync.sync("files")

    assert registry.holders["fraud"] == "1"
    [restored] = result.aliases_restored
    assert restored.found == "2" and restored.restored == "1"
    [event] = [c.event for c in uow.audit.events()]
    assert (event.action, event.subject, event.actor) == (
        "registry.alias_restored",
        "model:fraud@2",
        "connector:files",
    )
    assert verify_chain(uow.audit.events()) == []
    assert sync.sync("files").aliases_restored == []  # where it belongs now


def test_the_alias_leaves_bytes_other_than_the_approved_ones(
    uow: FakeUnitOfWork, sync: RegistrySync, registry: StubRegistry
) -> None:
    uow.registry_links.stored = [linked("1", "promoted")]
    uow.registry_links.artifacts["req-1"] = "approved"
    registry.verify_digest = True
    registry.served_sha256 = "tampered"
    registry.holders["fraud"] = "1"

    [restored] = sync.sync("files").aliases_restored

    assert registry.holders["fraud"] is None
    assert "tampered" in restored.why and restored.restored is None
