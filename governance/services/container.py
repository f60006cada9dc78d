"""The service assembled from its settings: one engine, one access-control enforcer, and
the use cases on top. The HTTP app and the CLI both start from `open_governance`."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from connectors.serving import WatchedDirectory, watched
from connectors.settings import open_registries
from governance.auth.access import AccessControl
from governance.auth.secrets import DigestKey
from governance.config import Settings
from governance.domain.checkpoint import Checkpoint, sign
from governance.domain.errors import InputError
from governance.services import audit
from governance.services.browse import Browse
from governance.services.catalog import ChainStatus
from governance.services.isolation import IsolatedChecks
from governance.services.monitoring import ProductionMonitoring
from governance.services.people import People
from governance.services.policies import PolicyLibrary
from governance.services.registries import RegistrySync
from governance.services.reports import Reports, Signing
from governance.services.webhooks import Webhooks
from governance.services.workflow import Workflow
from governance.signing import create_key, load_private, raw_public
from governance.store.blobs import BlobStore
from governance.store.database import current_revision, make_engine, upgrade
from governance.store.repository import audit_trail
from reports import pki
from reports.pki import load_identity


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

    def sign_checkpoint(self, checkpoint: Checkpoint) -> str:
        public = raw_public(self.signing_key.public_key())
        return sign(checkpoint, audit.ORIGIN, public, self.signing_key.sign)

    def audit_proof(self, since_size: int | None, seq: int | None) -> dict[str, Any]:
        events = audit_trail(self.engine)
        since = Checkpoint(audit.ORIGIN, since_size, b"") if since_size else None
        return audit.prove(events, self.sign_checkpoint, since=since, seq=seq)

    def periodic(self) -> list[tuple[str, float, Callable[[], object]]]:
        """The background tasks a serving process runs: (name, every seconds, task)."""
        return [
            ("monitoring", 60.0, self.monitoring.run_due),
            *(("predictions-dir", 5.0, w.scan) for w in self._prediction_directories()),
            ("webhooks", 2.0, self.webhooks.tick),
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
    engine = make_engine(settings.database_url)
    access = AccessControl(engine)
    people = People(engine, access, DigestKey.load_or_create(settings.token_secret))
    key = load_private(settings.signing_key)
    checks = IsolatedChecks(settings.check_memory_mb, settings.check_timeout_seconds)
    workflow = Workflow(
        engine,
        people,
        PolicyLibrary(settings.policies),
        key,
        job_lease_seconds=job_lease_seconds,
        checks=checks,
    )

    def note(checkpoint: Checkpoint) -> str:
        return sign(checkpoint, audit.ORIGIN, raw_public(key.public_key()), key.sign)

    reports = Reports(engine, lambda: report_signing(settings, key), note, settings.blobs)
    return Governance(
        settings,
        engine,
        access,
        people,
        workflow,
        BlobStore(settings.blobs),
        key,
        reports,
        Browse(engine),
        ChainStatus(engine),
        webhooks=Webhooks(engine, DigestKey.load_or_create(settings.token_secret)),
        monitoring=ProductionMonitoring(engine, workflow, BlobStore(settings.blobs)),
        registries=RegistrySync(
            engine,
            workflow,
            reports,
            BlobStore(settings.blobs),
            open_registries(settings.connectors),
            settings.home / "registry-work",
        ),
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
    settings.home.mkdir(parents=True, exist_ok=True)
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
    PolicyLibrary(settings.policies)  # a broken policy stops init, not a later request
    governance = open_governance(settings)
    try:
        governance.access.seed_defaults()
        password = admin_password or secrets.token_urlsafe(12)
        if governance.people.ensure_user("admin", "Administrator", password, ["admin"]):
            shown = "as given" if admin_password else password
            done.append(f"admin user created, password: {shown}")
    finally:
        governance.close()
    return done
