"""Registered CI builders on the in-memory unit of work: registering and revoking, each with
its audit event, and the provenance a policy may accept from them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.domain import attestation
from governance.domain.audit import verify_chain
from governance.domain.errors import ConflictError, InputError, NotFoundError
from governance.services.builders import Builders, provenance_verdict
from governance.services.people import SYSTEM
from governance.signing import key_name
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork

REVOKED_AT = datetime(2026, 3, 4, tzinfo=UTC)


def pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def builders(uow: FakeUnitOfWork) -> Builders:
    return Builders(uow, clock=lambda: REVOKED_AT)


def test_a_builder_is_registered_then_revoked_each_on_the_trail(
    uow: FakeUnitOfWork, builders: Builders
) -> None:
    key = Ed25519PrivateKey.generate()
    added = builders.add(SYSTEM, "ci.main", pem(key))
    assert (added.name, added.key_id, added.created_by) == (
        "ci.main",
        key_name(key.public_key()),
        "governance",
    )
    assert added.revoked_at is None
    revoked = builders.revoke(SYSTEM, "ci.main")
    assert (revoked.revoked_at, revoked.revoked_by) == (REVOKED_AT, "governance")
    assert [b.name for b in builders.list()] == ["ci.main"]
    events = uow.audit.events()
    assert [(e.event.action, e.event.subject) for e in events] == [
        ("builder.registered", "builder:ci.main"),
        ("builder.revoked", "builder:ci.main"),
    ]
    assert events[0].event.payload == {"key_id": added.key_id, "public_key": added.public_key}
    assert verify_chain(events) == []


def test_a_name_is_never_registered_twice_nor_revoked_twice(
    uow: FakeUnitOfWork, builders: Builders
) -> None:
    builders.add(SYSTEM, "ci", pem(Ed25519PrivateKey.generate()))
    builders.revoke(SYSTEM, "ci")
    with pytest.raises(ConflictError, match="is registered already"):
        builders.add(SYSTEM, "ci", pem(Ed25519PrivateKey.generate()))
    with pytest.raises(ConflictError, match="was revoked already"):
        builders.revoke(SYSTEM, "ci")
    with pytest.raises(NotFoundError):
        builders.revoke(SYSTEM, "nobody")
    assert len(uow.audit.events()) == 2


def test_a_taken_audit_seq_registers_the_builder_once(
    uow: FakeUnitOfWork, builders: Builders
) -> None:
    uow.taken = 1
    builders.add(SYSTEM, "ci", pem(Ed25519PrivateKey.generate()))
    assert list(uow.builders.stored) == ["ci"] and len(uow.audit.events()) == 1


@pytest.mark.parametrize(
    ("name", "key", "problem"),
    [
        ("Not A Name", pem(Ed25519PrivateKey.generate()), "name: is 'Not A Name'"),
        ("ci", "not a key", "publicKey: is not a PEM public key"),
        ("ci", "x" * 5000, "publicKey: is too long"),
    ],
)
def test_bad_input_registers_nothing(
    uow: FakeUnitOfWork, builders: Builders, name: str, key: str, problem: str
) -> None:
    with pytest.raises(InputError, match=problem):
        builders.add(SYSTEM, name, key)
    assert uow.builders.stored == {} and uow.audit.events() == []


def test_provenance_is_accepted_from_a_trusted_unrevoked_builder_only(
    uow: FakeUnitOfWork, builders: Builders
) -> None:
    key = Ed25519PrivateKey.generate()
    builders.add(SYSTEM, "ci", pem(key))
    pinned = samples.policy()
    manifest = samples.manifest(pinned, 0.9)
    model = manifest.artifact("model")
    assert model is not None
    envelope = attestation.provenance_envelope(manifest, "ci", key_name(key.public_key()), key.sign)

    def verdict(trusted: tuple[str, ...] = ("ci",), sha256: str = model.sha256) -> tuple:
        return provenance_verdict(uow.builders, envelope, manifest, sha256, trusted)

    assert verdict() == ("ci", "verified")
    assert verdict(trusted=()) == (None, "verified, but the policy does not accept builder ci")
    assert verdict(sha256="f" * 64)[0] is None
    assert provenance_verdict(uow.builders, None, manifest, model.sha256, ("ci",)) == (
        None,
        "none uploaded",
    )
    builders.revoke(SYSTEM, "ci")
    assert verdict() == (None, "refused: not signed by a registered builder")
