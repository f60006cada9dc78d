"""Registered CI builders: the Ed25519 public keys whose signed provenance of gate evidence a
policy may accept instead of the service re-computing the checks. Only an admin registers
or revokes one; each change is one transaction with its audit event."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from governance.domain import attestation
from governance.domain.errors import ConflictError, InputError
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import BUILDER_NAME
from governance.domain.records import RegisteredBuilder
from governance.services.people import Principal
from governance.services.ports import BuilderKeys, UnitOfWork, UnitOfWorkFactory
from governance.services.revocation import to_revoke
from governance.services.unit_of_work import run_in_unit_of_work
from governance.signing import key_name, verifier

# Longer than any PEM of an Ed25519 public key (113 bytes); a larger body is not one.
MAX_PEM = 4096


class Builders:
    def __init__(
        self, units: UnitOfWorkFactory, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._units = units
        self._clock = clock

    def add(self, actor: Principal, name: str, public_key_pem: str) -> RegisteredBuilder:
        if not re.fullmatch(BUILDER_NAME, name):
            raise InputError(
                "name",
                f"is {name[:80]!r}",
                "use lower case letters, digits, '.', '_' or '-' (at most 63), as policies "
                "name it in evidence.trustedBuilders",
            )
        key = _public_key(public_key_pem)
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

        def work(uow: UnitOfWork) -> RegisteredBuilder:
            if uow.builders.get(name) is not None:
                raise ConflictError(
                    f"builder {name} is registered already (a revoked name is not reused: "
                    "past acceptances name it); register the new key under another name"
                )
            builder = uow.builders.add(
                name=name, key_id=key_name(key), public_key=pem, created_by=actor.name
            )
            uow.audit.append(
                actor=actor.name,
                action="builder.registered",
                subject=f"builder:{name}",
                payload={"key_id": builder.key_id, "public_key": pem},
            )
            return builder

        return run_in_unit_of_work(self._units, work)

    def revoke(self, actor: Principal, name: str) -> RegisteredBuilder:
        def work(uow: UnitOfWork) -> RegisteredBuilder:
            what, fix = f"builder {name}", "list the builders to find its name"
            to_revoke(uow.builders.get(name), what, fix)
            builder = uow.builders.revoke(name, by=actor.name, at=self._clock())
            uow.audit.append(
                actor=actor.name,
                action="builder.revoked",
                subject=f"builder:{name}",
                payload={"key_id": builder.key_id},
            )
            return builder

        return run_in_unit_of_work(self._units, work)

    def list(self) -> list[RegisteredBuilder]:
        with self._units(read_only=True) as uow:
            return uow.builders.all()


def provenance_verdict(
    builders: BuilderKeys,
    envelope: Any,
    manifest: EvidenceManifest,
    model_sha256: str,
    trusted: tuple[str, ...],
) -> tuple[str | None, str]:
    """(the builder whose verified provenance the policy accepts, or None; why, in words).
    The envelope's key must be a registered, unrevoked builder's, its signature must verify,
    its subject must be these model bytes, its predicate this manifest; and the policy must
    name that builder."""
    if envelope is None:
        return None, "none uploaded"
    signatures = envelope.get("signatures") if isinstance(envelope, dict) else None
    key_ids = [s.get("keyid") for s in signatures or [] if isinstance(s, dict)]
    builder = builders.unrevoked_with_key([k for k in key_ids if isinstance(k, str)])
    if builder is None:
        return None, "refused: not signed by a registered builder"
    problems = attestation.provenance_problems(
        envelope,
        model_sha256,
        manifest.sha256,
        builder.name,
        verifier(_public_key(builder.public_key)),
    )
    if problems:
        return None, f"refused: {problems[0]}"
    if builder.name not in trusted:
        return None, f"verified, but the policy does not accept builder {builder.name}"
    return builder.name, "verified"


def _public_key(pem: str) -> Ed25519PublicKey:
    fix = "send the builder's Ed25519 public key as PEM (SubjectPublicKeyInfo)"
    if len(pem) > MAX_PEM:
        raise InputError("publicKey", "is too long for an Ed25519 public key", fix)
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        raise InputError("publicKey", "is not a PEM public key", fix) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("publicKey", f"is a {type(key).__name__}, not Ed25519", fix)
    return key
