"""Signed checkpoints of the audit log, in the C2SP signed-note form used by transparency
logs: a text body (origin, tree size, base64 root hash) and signature lines. Pure: the
signing and verifying functions are handed in by the adapter that holds the keys.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

ED25519 = b"\x01"  # the signed-note algorithm byte for Ed25519
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key hint of signed notes: SHA-256(name, newline, algorithm, key)."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


def sign(
    checkpoint: Checkpoint, name: str, public_key: bytes, signer: Callable[[bytes], bytes]
) -> str:
    signature = signer(checkpoint.body().encode())
    encoded = base64.b64encode(key_id(name, public_key) + signature).decode()
    return f"{checkpoint.body()}\n{SIGNATURE_PREFIX}{name} {encoded}\n"


class CheckpointError(ValueError):
    """A note that is malformed, or not signed by the expected key."""


def open_note(
    note: str, name: str, public_key: bytes, verifier: Callable[[bytes, bytes], bool]
) -> Checkpoint:
    """Parse a signed note and check it carries a valid signature by `name`'s key."""
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise CheckpointError("not a signed note: no blank line before the signatures")
    body += "\n"
    lines = body.splitlines()
    if len(lines) < 3:
        raise CheckpointError("not a checkpoint: expected origin, size and root hash")
    try:
        checkpoint = Checkpoint(lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True))
    except ValueError as exc:
        raise CheckpointError(f"not a checkpoint: {exc}") from None
    if checkpoint.body() != body:
        raise CheckpointError("the checkpoint body is not in canonical form")
    wanted = key_id(name, public_key)
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            continue
        signer_name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        if signer_name == name and raw[:4] == wanted:
            if verifier(raw[4:], body.encode()):
                return checkpoint
            raise CheckpointError(f"the signature by {name} does not verify: the note was changed")
    raise CheckpointError(f"no signature by {name} with this key")
