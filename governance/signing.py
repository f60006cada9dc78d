"""The service's Ed25519 signing key, kept as PEM files: the private key readable only by
its owner, the public key for anyone who checks what we signed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from governance.domain.errors import InputError

PRIVATE = "signing-key.pem"
PUBLIC = "signing-key.pub.pem"


def create_key(directory: Path) -> tuple[Path, Path]:
    """Write a new key pair; never overwrite one (signatures made with it would orphan)."""
    private, public = directory / PRIVATE, directory / PUBLIC
    if private.exists():
        raise InputError(
            str(private), "a signing key exists already", "keep it, or move it away first"
        )
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def load_private(path: Path) -> Ed25519PrivateKey:
    key = _load(path, serialization.load_pem_private_key, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(str(path), "is not an Ed25519 private key", "give the service's key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = _load(path, serialization.load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(str(path), "is not an Ed25519 public key", "give the service's public key")
    return key


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_name(key: Ed25519PublicKey) -> str:
    """A short, stable name for a key: the start of the sha256 of its raw bytes."""
    return "ed25519:" + hashlib.sha256(raw_public(key)).hexdigest()[:16]


def verifier(key: Ed25519PublicKey) -> Callable[[bytes, bytes], bool]:
    def verify(signature: bytes, message: bytes) -> bool:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return verify


def _load(path: Path, loader: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return loader(path.read_bytes(), **kwargs)
    except FileNotFoundError:
        raise InputError(str(path), "key file not found", "run `governance audit keygen`") from None
    except (ValueError, TypeError) as exc:
        raise InputError(str(path), f"not a PEM key ({exc})", "give a PEM file") from None
