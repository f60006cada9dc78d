"""The gatekeeper beside a model registry: open a request for each version that asks to be
governed, write every decision back, and keep the governed alias where the decisions say.

Decisions reach the registry from the audit trail (a cursor, moved only once a decision is
written), so a registry that is down delays publishing but loses nothing. The alias guard
runs after publishing has caught up: an alias that points elsewhere than the last promoted
version, or at bytes other than the approved ones, was moved by hand, and is moved back.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from governance.domain import names
from governance.domain.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    UnauthenticatedError,
)
from governance.domain.records import RegistryLinkRecord
from governance.domain.workflow import State
from governance.services.people import Principal
from governance.services.ports import (
    EventSource,
    FileIntake,
    PublishedDecision,
    Registry,
    RegistryVersion,
    SubmissionLink,
    UnitOfWork,
    UnitOfWorkFactory,
)
from governance.services.reports import Reports
from governance.services.unit_of_work import run_in_unit_of_work
from governance.services.workflow import Candidate, Workflow

log = logging.getLogger("governance.registries")

CURSOR = "registry"
BATCH = 500
# A version whose tags are incomplete is looked at again at every sync, so tags set one at
# a time are fine. A version refused once its files were read (a pickled model, a missing
# table, another tier) is not fetched again until someone removes its status tag.
INCOMPLETE = "incomplete"
REFUSED = "refused"


@dataclass
class ConnectorStatus:
    """What an admin sees of a connector: when it last synced, and what went wrong."""

    name: str
    kind: str
    last_sync: datetime | None = None
    last_error: str | None = None
    opened: list[str] = field(default_factory=list)  # request ids, most recent sync
    refused: dict[str, str] = field(default_factory=dict)  # "model@version" -> why

    def snapshot(self) -> ConnectorState:
        """The status as it is now, copied: the next sync changes this one in place."""
        return ConnectorState(
            self.name, self.kind, self.last_sync, self.last_error, [*self.opened], {**self.refused}
        )


@dataclass(frozen=True)
class ConnectorState:
    """A connector's status at one moment, as its readers get it."""

    name: str
    kind: str
    last_sync: datetime | None
    last_error: str | None
    opened: list[str]  # request ids, most recent sync
    refused: dict[str, str]  # "model@version" -> why


@dataclass(frozen=True)
class RestoredAlias:
    """A governed alias the guard put back where the decisions say (`restored` is None when
    no version may hold it), with the holder it found and why."""

    model: str
    alias: str
    found: str | None
    restored: str | None
    why: str


@dataclass(frozen=True)
class SyncOutcome(ConnectorState):
    """A sync's result: the connector's status after it, and the aliases it put back."""

    aliases_restored: list[RestoredAlias]


def connector_principal(name: str) -> Principal:
    return Principal(
        name=f"connector:{name}",
        full_name=f"Registry connector {name}",
        kind="token",
        roles=frozenset({"ci"}),
    )


class RegistrySync:
    """`link` adds a registry link to the workflow's submit transaction (its own store
    hook, since that transaction is the workflow's); the rest of what this reads and writes
    goes through `units`."""

    def __init__(
        self,
        units: UnitOfWorkFactory,
        link: SubmissionLink,
        workflow: Workflow,
        reports: Reports,
        blobs: FileIntake,
        registries: list[tuple[Registry, float]],
        work_dir: Path,
        notify_jobs: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._units = units
        self._link = link
        self._clock = clock
        self._workflow = workflow
        self._reports = reports
        self._blobs = blobs
        self._registries = {registry.name: registry for registry, _ in registries}
        self.polls = {registry.name: seconds for registry, seconds in registries}
        self._work_dir = work_dir
        self.notify_jobs = notify_jobs
        self._status = {
            registry.name: ConnectorStatus(registry.name, type(registry).__name__)
            for registry, _ in registries
        }
        self._lock = threading.Lock()  # one sync at a time in this process

    @property
    def names(self) -> list[str]:
        return list(self._registries)

    def registry(self, name: str) -> Registry:
        try:
            return self._registries[name]
        except KeyError:
            raise NotFoundError(
                f"connector {name}",
                f"configure it in the connectors file (known: {', '.join(self.names) or 'none'})",
            ) from None

    def status(self) -> list[ConnectorState]:
        return [status.snapshot() for status in self._status.values()]

    def sync(self, name: str) -> SyncOutcome:
        """One pass for one connector: discover, publish what was decided, guard the alias.
        A registry that cannot be reached is reported in the status and tried again."""
        registry = self.registry(name)
        status = self._status[name]
        with self._lock:
            try:
                status.opened = self._discover(registry, status)
                self.publish_pending()
                restored = self._guard(registry)
                status.last_error = None
            except Exception as exc:
                status.last_error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                status.last_sync = self._clock()
        return SyncOutcome(**vars(status.snapshot()), aliases_restored=restored)

    def accept_event(self, name: str, headers: Mapping[str, str], body: bytes) -> None:
        """A registry's signed notice that something changed; the caller wakes the sync."""
        registry = self._registries.get(name)
        if not isinstance(registry, EventSource):  # unsigned either way: say no more
            raise UnauthenticatedError(f"connector {name} takes no events")
        registry.verify_event(headers, body)

    def tick(self, name: str) -> None:
        try:
            self.sync(name)
        except Exception:
            log.exception("connector %s: sync failed; trying again at the next poll", name)

    def publish_tick(self) -> None:
        """Every second: write back what was decided since (one query when nothing was),
        so an alias follows a promotion or revocation at once, not at the next poll."""
        if not self._registries:
            return
        with self._lock:
            try:
                self.publish_pending()
            except Exception:
                log.exception("publishing decisions failed; trying again in a second")

    # --- discover ----------------------------------------------------------------------

    def _discover(self, registry: Registry, status: ConnectorStatus) -> list[str]:
        with self._units(read_only=True) as uow:
            known = uow.registry_links.known(registry.name)
        opened = []
        for offered in registry.discover():
            key = (offered.model, offered.version)
            if key in known or offered.status == REFUSED:
                continue
            if offered.problem is not None:
                self._refuse(registry, offered, INCOMPLETE, offered.problem, status)
                continue
            try:
                opened.append(self._open(registry, offered))
            except (InputError, ConflictError) as exc:
                self._refuse(registry, offered, REFUSED, _reason(exc), status)
        if opened:
            self.notify_jobs()
        return opened

    @staticmethod
    def _refuse(
        registry: Registry,
        offered: RegistryVersion,
        verdict: str,
        reason: str,
        status: ConnectorStatus,
    ) -> None:
        status.refused[f"{offered.model}@{offered.version}"] = reason
        if offered.status != verdict:  # said once: our own tags must not wake us again
            refusal = PublishedDecision(status=verdict, serving=False, request_id="", reason=reason)
            registry.publish(offered, refusal)

    def _open(self, registry: Registry, offered: RegistryVersion) -> str:
        names.checked_model_version(offered.model, offered.version)  # before any download
        actor = connector_principal(registry.name)
        self._work_dir.mkdir(parents=True, exist_ok=True)
        fetched_into = Path(tempfile.mkdtemp(prefix="fetch-", dir=self._work_dir))
        try:
            files = registry.fetch(offered, fetched_into)
            model = self._blobs.adopt(files.model)
            data = self._blobs.adopt(files.data)
            reference = self._blobs.adopt(files.reference) if files.reference else None
        finally:
            shutil.rmtree(fetched_into, ignore_errors=True)
        self._ensure_model(actor, offered)

        link = RegistryLinkRecord(
            connector=registry.name,
            registry_model=offered.model,
            registry_version=offered.version,
            source_uri=offered.source_uri,
            run_id=offered.run_id,
        )
        candidate = Candidate(
            model=offered.model,
            version=offered.version,
            target=offered.target,
            label=offered.label,
            artifact=model,
            data=data,
            reference=reference,
            positive_label=offered.positive_label,
            pickle_allowed=True,  # `fetch` refused a pickle unless the connector allows them
        )
        created = self._workflow.submit(actor, candidate, also=self._link(link))
        return created.id

    def _ensure_model(self, actor: Principal, offered: RegistryVersion) -> None:
        try:
            model = self._workflow.get_model(offered.model)
        except NotFoundError:
            self._workflow.register_model(actor, offered.model, offered.risk_tier, offered.owner)
            return
        if model.risk_tier != offered.risk_tier:
            raise ConflictError(
                f"{offered.model} is governed at risk tier {model.risk_tier}, and this "
                f"version's tag says {offered.risk_tier}: a tier changes only with a new model "
                "name",
                "refused",
            )

    # --- publish -----------------------------------------------------------------------

    def publish_pending(self) -> int:
        """Write back the state of every linked request the audit trail moved since the
        cursor; the cursor moves past what was written. Returns how many were written."""
        written = 0
        while True:
            with self._units(read_only=True) as uow:
                after = uow.cursors.position(CURSOR)
                events = uow.audit.actions_after(after, "request.", BATCH)
            if not events:
                return written
            for event in events:
                request_id = event.payload.get("request_id")
                promoted = event.action == "request.promote"
                if request_id and self._publish(request_id, promoted=promoted):
                    written += 1
                self._move_cursor(event.seq)

    def _publish(self, request_id: str, promoted: bool) -> bool:
        with self._units(read_only=True) as uow:
            request = uow.registry_links.of_request(request_id)
        if request is None:
            return False  # not from a registry
        link = request.link
        registry = self._registries.get(link.connector)
        if registry is None:
            log.warning(
                "request %s came from connector %s, no longer configured",
                request.request_id,
                link.connector,
            )
            return False
        state = State(request.state)
        report = report_sha256 = None
        with tempfile.TemporaryDirectory(dir=self._work_dir) as scratch:
            if promoted and state is State.PROMOTED:
                issued = self._reports.decision(
                    f"connector:{registry.name}", request_id=request.request_id
                )
                report = Path(scratch) / issued.filename
                report.write_bytes(issued.pdf)
                report_sha256 = issued.sha256
            registry.publish(
                _as_offered(link),
                PublishedDecision(
                    status=state.value,
                    serving=state is State.PROMOTED,
                    request_id=request.request_id,
                    decision_id=request.decision_id,
                    report=report,
                    report_sha256=report_sha256,
                    reason=request.state_reason,
                ),
            )
        return True

    def _move_cursor(self, seq: int) -> None:
        def work(uow: UnitOfWork) -> None:
            uow.cursors.advance(CURSOR, seq)

        run_in_unit_of_work(self._units, work)

    # --- the alias guard ---------------------------------------------------------------

    def _guard(self, registry: Registry) -> list[RestoredAlias]:
        restored = []
        for model, serving in self._serving_versions(registry.name).items():
            holder = registry.alias_holder(model)
            reason = None
            wanted = serving[0] if serving else None
            if serving is not None and registry.verify_digest:
                # Checked before the alias is put back too: bytes changed in place under a
                # removed alias must not be served again at the next pass.
                try:
                    with tempfile.TemporaryDirectory(dir=self._work_dir) as scratch:
                        now = registry.model_sha256(model, serving[0], Path(scratch))
                    serves = f"serves bytes with sha256 {now}"
                except InputError as exc:  # the model is gone: nothing approved to serve
                    now, serves = None, exc.problem
                if now != serving[1]:
                    wanted = None
                    if holder == serving[0]:
                        reason = f"{model} {holder} {serves}, not the approved {serving[1]}"
            if holder != wanted and reason is None:
                reason = (
                    f"the alias was removed by hand; {model} {wanted} is the promoted version"
                    if holder is None
                    else f"{model} {holder} has no valid approval for this alias"
                )
            if reason is None:
                continue
            registry.move_alias(model, wanted)
            event = {"alias": registry.alias, "found": holder, "restored": wanted, "why": reason}
            self._record_restore(registry.name, model, holder, event)
            restored.append(RestoredAlias(model, registry.alias, holder, wanted, reason))
        return restored

    def _serving_versions(self, connector: str) -> dict[str, tuple[str, str] | None]:
        """Each governed model of this connector → its last promoted version and the
        approved artifact's sha256 (None: nothing may hold the alias)."""
        with self._units(read_only=True) as uow:
            linked = uow.registry_links.of_connector(connector)
        serving: dict[str, tuple[str, str] | None] = {}
        for version in linked:
            serving.setdefault(version.registry_model, None)
            if version.state == State.PROMOTED.value:
                serving[version.registry_model] = (
                    version.registry_version,
                    version.artifact_sha256,
                )
        return serving

    def _record_restore(
        self, connector: str, model: str, holder: str | None, event: dict[str, Any]
    ) -> None:
        def work(uow: UnitOfWork) -> None:
            uow.audit.append(
                actor=f"connector:{connector}",
                action="registry.alias_restored",
                subject=f"model:{model}@{holder}" if holder else f"model:{model}",
                payload={"connector": connector, "model": model, **event},
            )

        run_in_unit_of_work(self._units, work)


def _as_offered(link: RegistryLinkRecord) -> RegistryVersion:
    return RegistryVersion(
        connector=link.connector,
        model=link.registry_model,
        version=link.registry_version,
        risk_tier="",
        target="",
        label="",
        source_uri=link.source_uri,
        run_id=link.run_id,
    )


def _reason(exc: InputError | ConflictError) -> str:
    return exc.message if isinstance(exc, InputError) else str(exc)
