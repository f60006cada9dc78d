"""The composition root: the one module that knows every adapter. It assembles the
service from its settings (one engine, one access-control enforcer, the use cases on top);
the HTTP app, the CLI and the demo all start from `open_governance`."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

import governance.connectors.files as files
from governance.auth.access import AccessControl
from governance.auth.secrets import DigestKey, Passwords, new_password
from governance.config import Settings
from governance.connectors.registries import open_registries
from governance.connectors.serving import WatchedDirectory, watched
from governance.domain.attestation import envelope, statement
from governance.domain.checkpoint import Checkpoint, CheckpointError, open_note, sign
from governance.domain.errors import InputError
from governance.domain.evidence import EvidenceManifest
from governance.domain.model_card import ModelCard
from governance.domain.policy import PromotionPolicy
from governance.domain.reporting import IssuedReport
from governance.reports import pki
from governance.reports.issuing import Signing
from governance.reports.pki import load_identity
from governance.services import audit
from governance.services.browse import Browse
from governance.services.builders import Builders
from governance.services.catalog import ChainStatus
from governance.services.checkpoints import CheckpointLog
from governance.services.gate import GateOutcome
from governance.services.impact import ImpactReport, policy_impact
from governance.services.isolation import IsolatedChecks
from governance.services.monitoring import ProductionMonitoring
from governance.services.outbound import Outbound
from governance.services.people import People, check_password
from governance.services.policies import PolicyLibrary
from governance.services.ports import Execution, UnitOfWorkFactory
from governance.services.registries import RegistrySync
from governance.services.replay import ReplayOutcome, replay
from governance.services.reports import Reports, local_decision_report, record_report
from governance.services.tasks import QUEUES
from governance.services.webhooks import Webhooks
from governance.services.workflow import Workflow
from governance.signing import (
    PUBLIC,
    create_key,
    key_name,
    load_private,
    load_public,
    raw_public,
    verifier,
)
from governance.store.blobs import BlobStore
from governance.store.database import current_revision, make_engine, upgrade
from governance.store.private import private_directory
from governance.store.registry_links import link_on_submit
from governance.store.repository import SqlDecisionRecorder, audit_trail
from governance.store.tasks import WorkersView, workers_view
from governance.store.uow import SqlUnits


@dataclass
class Governance:
    settings: Settings
    engine: Engine
    access: AccessControl
    people: People
    workflow: Workflow
    blobs: BlobStore
    signing_key: Ed25519PrivateKey
    reports: Reports
    browse: Browse
    chain_status: ChainStatus
    webhooks: Webhooks
    monitoring: ProductionMonitoring
    registries: RegistrySync
    builders: Builders
    checkpoints: CheckpointLog
    units: UnitOfWorkFactory  # the use cases' transactions, over `engine`

    def sign_checkpoint(self, checkpoint: Checkpoint) -> str:
        public = raw_public(self.signing_key.public_key())
        return sign(checkpoint, audit.ORIGIN, public, self.signing_key.sign)

    def audit_proof(self, since_size: int | None, seq: int | None) -> dict[str, Any]:
        events = audit_trail(self.engine)
        since = Checkpoint(audit.ORIGIN, since_size, b"") if since_size else None
        return audit.prove(events, self.sign_checkpoint, since=since, seq=seq)

    def workers(self) -> WorkersView:
        """What Admin → Workers shows, read straight from the tables: the console names no
        engine, mode or queue of its own, so the page cannot disagree with the workers."""
        settings = self.settings
        return workers_view(self.engine, settings.tasks, settings.worker_stalled_seconds, QUEUES)

    def periodic(self) -> list[tuple[str, float, Callable[[], object]]]:
        """The background tasks a serving process runs: (name, every seconds, task)."""
        return [
            ("monitoring", 60.0, self.monitoring.run_due),
            *(("predictions-dir", 5.0, w.scan) for w in self._prediction_directories()),
            ("webhooks", 2.0, self.webhooks.tick),
            ("audit-checkpoints", 30.0, self.checkpoints.tick),
            ("registry-publish", 1.0, self.registries.publish_tick),
            *(
                (f"registry-{name}", seconds, partial(self.registries.tick, name))
                for name, seconds in self.registries.polls.items()
            ),
        ]

    def _prediction_directories(self) -> list[WatchedDirectory]:
        settings = self.settings
        ingest = self.monitoring.ingest
        return watched(settings.predictions_dir, ingest, settings.max_predictions_bytes)

    def close(self) -> None:
        self.engine.dispose()


def open_governance(settings: Settings, job_lease_seconds: float = 300.0) -> Governance:
    """The service over an initialised data directory and database."""
    private_directory(settings.home)
    engine = make_engine(settings.database_url)
    units = SqlUnits(engine, settings.tasks)
    access = AccessControl(engine)
    people = People(
        units,
        access,
        DigestKey.load_or_create(settings.token_secret),
        Passwords(settings.password_hashing),
    )
    key = load_private(settings.signing_key)
    checks = IsolatedChecks(
        settings.check_memory_mb,
        settings.check_timeout_seconds,
        settings.compiled_code,
        execution(settings),
    )
    workflow = Workflow(
        units,
        people,
        PolicyLibrary(settings.policies, files),
        key,
        files,
        job_lease_seconds=job_lease_seconds,
        checks=checks,
        runner=f"{socket.gethostname()}:{os.getpid()}",
    )

    def note(checkpoint: Checkpoint) -> str:
        return sign(checkpoint, audit.ORIGIN, raw_public(key.public_key()), key.sign)

    outbound = Outbound.of(settings.webhook_allow_hosts, settings.webhook_allow_http)
    checkpoints = checkpoint_log(settings, units, key)
    blobs = BlobStore(settings.blobs)
    reports = Reports(
        units,
        lambda: report_signing(settings, key),
        note,
        workflow.get_request,
        files.SKOPS_ONLY,
        blobs,
    )
    return Governance(
        settings,
        engine,
        access,
        people,
        workflow,
        blobs,
        key,
        reports,
        Browse(units, workflow.get_request),
        ChainStatus(units, checkpoints.problems),
        webhooks=Webhooks(
            units,
            DigestKey.load_or_create(settings.token_secret),
            outbound=outbound,
            sign_note=note,
        ),
        monitoring=ProductionMonitoring(
            units, workflow, blobs, files, execution=execution(settings)
        ),
        registries=RegistrySync(
            units,
            link_on_submit,
            workflow,
            reports,
            blobs,
            open_registries(settings.connectors),
            settings.home / "registry-work",
        ),
        builders=Builders(units),
        checkpoints=checkpoints,
        units=units,
    )


def checkpoint_log(
    settings: Settings, units: UnitOfWorkFactory, key: Ed25519PrivateKey | None
) -> CheckpointLog:
    """Where this installation publishes its audit checkpoints and reads them back. Without
    the private key (a CLI run elsewhere) the notes are checked with the public key next to
    it and nothing is published; without either, any published note is reported unchecked."""
    public_path = settings.signing_key.with_name(PUBLIC)
    public = key.public_key() if key else None
    if public is None and public_path.exists():
        public = load_public(public_path)

    def opened(note: str) -> Checkpoint:
        if public is None:
            raise CheckpointError(f"no key to check it: {settings.signing_key} is missing")
        return open_note(note, audit.ORIGIN, raw_public(public), verifier(public))

    def signed(point: Checkpoint) -> str:
        assert key is not None
        return sign(point, audit.ORIGIN, raw_public(key.public_key()), key.sign)

    return CheckpointLog(
        units,
        opened,
        settings.home / "checkpoints",
        sign_note=signed if key else None,
        witness=settings.checkpoint_witness,
        outbound=Outbound.of(settings.webhook_allow_hosts, settings.webhook_allow_http),
        every_events=settings.checkpoint_events,
        every_minutes=settings.checkpoint_minutes,
    )


def report_signing(settings: Settings, key: Ed25519PrivateKey) -> Signing:
    """The report certificate (the organisation's PKCS#12, else the local one) and the
    attestation key; loaded when a report is made, so a replaced certificate is used."""
    identity = load_identity(settings.home, settings.report_pkcs12, settings.report_pkcs12_password)
    return Signing(identity, key, settings.organisation)


def initialise(settings: Settings, admin_password: str | None) -> list[str]:
    """Make the data directory, the schema, the signing key, the default access rules and
    an admin user, each only if missing. Returns what was done, in words."""
    done = []
    if admin_password is not None:  # refused before anything is made
        check_password(admin_password)
    private_directory(settings.home)
    before = current_revision(settings.database_url)
    upgrade(settings.database_url)
    after = current_revision(settings.database_url)
    if before != after:
        done.append(f"database {settings.database_url} migrated to {after}")
    if not settings.signing_key.exists():
        if not settings.default_signing_key:
            raise InputError(
                f"signing key {settings.signing_key}",
                "does not exist",
                "give the path of the organisation's Ed25519 key (PEM), or unset "
                "GOVERNANCE_SIGNING_KEY to have one created",
            )
        private, _ = create_key(settings.home)
        done.append(f"signing key created: {private}")
    if settings.report_pkcs12 is None and not (settings.home / pki.CA_CERT).exists():
        pki.create_authority(settings.home, settings.organisation)
        done.append(
            f"report CA and signing certificate created: give {settings.home / pki.CA_CERT} "
            "to whoever verifies reports"
        )
    PolicyLibrary(settings.policies, files)  # a broken policy stops init, not a later request
    governance = open_governance(settings)
    try:
        governance.access.seed_defaults()
        password = admin_password or new_password()
        if governance.people.ensure_user("admin", "Administrator", password, ["admin"]):
            shown = "as given" if admin_password else password
            done.append(f"admin user created, password: {shown}")
    finally:
        governance.close()
    return done


# --- what the CLI does on this machine, without the service -------------------------------


def decision_recorder(url: str | None, actor: str) -> SqlDecisionRecorder | None:
    """Where a local gate records its decision; None (no database named) records nothing."""
    if url is None:
        return None
    engine = _engine_with_schema(
        url, "has no schema yet", "run `governance db upgrade --database URL`"
    )
    return SqlDecisionRecorder(engine, actor=actor)


def attest_decision(
    settings: Settings, manifest: EvidenceManifest, decision_id: str | None, key: Path | None
) -> dict[str, Any]:
    """A local decision as a signed in-toto attestation (DSSE): with `key`, else with the
    configured signing key, the one the service and the reports sign with."""
    private = load_private(key or settings.signing_key)
    document = statement(manifest, decision_id)
    return envelope(document, key_name(private.public_key()), private.sign)


def local_report(
    settings: Settings,
    outcome: GateOutcome,
    card: ModelCard | None,
    actor: str,
    database_url: str | None,
) -> IssuedReport:
    """The signed report of a local gate run, signed as the service signs (the report
    certificate and the configured signing key); where the decision was recorded, the
    report's sha256 goes on the audit trail too."""
    signing = report_signing(settings, load_private(settings.signing_key))
    manifest, decision_id = outcome.manifest, outcome.decision_id
    report = local_decision_report(manifest, outcome.policy, signing, card, decision_id)
    if database_url is not None and decision_id is not None:
        subject = f"model:{manifest.model_name}@{manifest.model_version}"
        engine = make_engine(database_url)
        try:
            record_report(SqlUnits(engine), actor, report, subject, {"decision_id": decision_id})
        finally:
            engine.dispose()
    return report


def replay_decision(
    settings: Settings,
    decision_id: str,
    blobs: Path | None,
    actor: str,
    progress: Callable[[str], None],
) -> ReplayOutcome:
    """Re-run a recorded decision from the artifacts in `blobs` (else from the paths its
    manifest names) and compare it with the record."""
    engine = _engine_with_schema(
        settings.database_url, "has no schema, so no decisions", "pass --database URL"
    )
    try:
        return replay(
            SqlUnits(engine),
            decision_id,
            files,
            BlobStore(blobs) if blobs else None,
            actor=actor,
            progress=progress,
        )
    finally:
        engine.dispose()


def draft_impact(settings: Settings, draft: PromotionPolicy) -> ImpactReport:
    """The stored decisions judged again under a draft policy; nothing is written."""
    engine = _engine_with_schema(
        settings.database_url, "has no schema, so no decisions", "pass --database URL"
    )
    try:
        return policy_impact(SqlUnits(engine), draft)
    finally:
        engine.dispose()


def _engine_with_schema(url: str, problem: str, fix: str) -> Engine:
    """An engine on a database that answers and holds the schema, else the reason why not."""
    try:
        revision = current_revision(url)
    except Exception as exc:  # noqa: BLE001 - any connection failure reads the same to a user
        raise InputError(
            f"database {url}", f"cannot connect ({type(exc).__name__}: {exc})"
        ) from None
    if revision is None:
        raise InputError(f"database {url}", problem, fix)
    return make_engine(url)


def execution(
    settings: Settings,
    executor: str | None = None,
    dask: str | None = None,
    batch_rows: int | None = None,
    exact_rows: int | None = None,
) -> Execution:
    """How the checks read rows: the settings, with a command's flags over them. A Dask
    address alone chooses Dask."""
    from governance.config import EXECUTORS

    kind = executor or settings.executor
    if kind not in EXECUTORS:
        raise InputError("--executor", f"is {kind!r}", f"use one of {', '.join(EXECUTORS)}")
    scheduler = dask or settings.dask_scheduler
    if dask is not None and executor is None:
        kind = "dask"
    if kind == "dask" and not scheduler:
        raise InputError(
            "--executor dask",
            "needs a Dask scheduler",
            "give --dask tcp://HOST:8786 (or GOVERNANCE_DASK_SCHEDULER), or --dask local",
        )
    for name, value in (("--batch-rows", batch_rows), ("--exact-rows", exact_rows)):
        if value is not None and value < 1:
            raise InputError(name, f"is {value}", "give a number of rows above 0")
    return Execution(
        kind=kind,  # type: ignore[arg-type]  # one of EXECUTORS, checked above
        dask=scheduler if kind == "dask" else None,
        batch_rows=batch_rows or settings.batch_rows,
        exact_rows=exact_rows or settings.exact_rows,
    )
