"""Registered CI builders: the Ed25519 public keys whose signed provenance of gate evidence a
policy may accept instead of the service re-computing the checks. Only an admin registers
or revokes one; each change is one transaction with its audit event."""

from __future__ import annotations

import re
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from governance.domain import attestation
from governance.domain.errors import ConflictError, InputError, NotFoundError
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import BUILDER_NAME
from governance.services.people import Principal
from governance.signing import key_name, verifier
from governance.store.repository import append_audit, in_transaction
from governance.store.tables import Builder, utcnow

# Longer than any PEM of an Ed25519 public key (113 bytes); a larger body is not one.
MAX_PEM = 4096


class Builders:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, actor: Principal, name: str, public_key_pem: str) -> dict[str, Any]:
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

        def work(session: Session) -> dict[str, Any]:
            if session.exec(select(Builder).filter_by(name=name)).first() is not None:
                raise ConflictError(
                    f"builder {name} is registered already (a revoked name is not reused: "
                    "past acceptances name it); register the new key under another name"
                )
            builder = Builder(
                name=name, key_id=key_name(key), public_key=pem, created_by=actor.name
            )
            session.add(builder)
            session.flush()
            append_audit(
                session,
                actor=actor.name,
                action="builder.registered",
                subject=f"builder:{name}",
                payload={"key_id": builder.key_id, "public_key": pem},
            )
            return _view(builder)

        return in_transaction(self._engine, work)

    def revoke(self, actor: Principal, name: str) -> dict[str, Any]:
        def work(session: Session) -> dict[str, Any]:
            builder = session.exec(select(Builder).filter_by(name=name).with_for_update()).first()
            if builder is None:
                raise NotFoundError(f"builder {name}", "list the builders to find its name")
            if builder.revoked_at is not None:
                raise ConflictError(f"builder {name} was revoked already")
            builder.revoked_at, builder.revoked_by = utcnow(), actor.name
            session.add(builder)
            append_audit(
                session,
                actor=actor.name,
                action="builder.revoked",
                subject=f"builder:{name}",
                payload={"key_id": builder.key_id},
            )
            return _view(builder)

        return in_transaction(self._engine, work)

    def list(self) -> list[dict[str, Any]]:
        with Session(self._engine) as session:
            rows = session.exec(select(Builder).order_by(col(Builder.name))).all()
            return [_view(row) for row in rows]


def provenance_verdict(
    session: Session,
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
    builder = session.exec(
        select(Builder)
        .where(col(Builder.key_id).in_([k for k in key_ids if isinstance(k, str)]))
        .where(col(Builder.revoked_at).is_(None))
    ).first()
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


def _view(builder: Builder) -> dict[str, Any]:
    return {
        "name": builder.name,
        "keyId": builder.key_id,
        "publicKey": builder.public_key,
        "createdBy": builder.created_by,
        "createdAt": builder.created_at,
        "revokedAt": builder.revoked_at,
        "revokedBy": builder.revoked_by,
    }
