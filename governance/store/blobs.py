"""Uploaded files in a content-addressed directory: a file is named by its sha256, so the
same bytes are stored once and a stored file can never be silently replaced."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from governance.domain.errors import InputError
from governance.store.private import DIRECTORY

CHUNK = 1024 * 1024
SHA256 = re.compile(r"[0-9a-f]{64}")
# Stored bytes never change (the name is their hash), and they are personal data: readable
# by the service's user only.
BLOB_MODE = 0o400


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str, suffix: str) -> Path:
        return self.root / "sha256" / sha256[:2] / f"{sha256}{suffix}"

    def stored(self, sha256: str) -> list[Path]:
        """The stored files with these bytes (one per suffix they were uploaded under);
        empty for anything that is not a sha256, so a recorded hash never leaves the store."""
        if not SHA256.fullmatch(sha256):
            return []
        folder = self.root / "sha256" / sha256[:2]
        return sorted(folder.glob(f"{sha256}.*")) if folder.is_dir() else []

    def adopt(self, source: Path) -> Path:
        """Move a local file (fetched from a registry) into the store under its sha256; the
        suffix stays, as with uploads."""
        digest = hashlib.sha256()
        with source.open("rb") as stream:
            for block in iter(lambda: stream.read(CHUNK), b""):
                digest.update(block)
        target = self.path_of(digest.hexdigest(), "".join(source.suffixes[-2:]).lower())
        target.parent.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
        if target.exists():
            source.unlink()
        else:
            os.replace(source, target)
            target.chmod(BLOB_MODE)
        return target

    def write(self, sha256: str, suffix: str, payload: bytes) -> Path:
        """Keep bytes made in the service (a batch of predictions as Parquet) under their
        sha256: written to a temporary file and renamed, so a reader never sees half."""
        target = self.path_of(sha256, suffix)
        if target.exists():
            return target
        target.parent.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(payload)
            os.replace(temporary, target)
            target.chmod(BLOB_MODE)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return target

    async def put(self, field: str, name: str, chunks: AsyncIterator[bytes], limit: int) -> Path:
        """Stream an upload to disk, hashing as it goes; refused past `limit` bytes. The
        file keeps its suffix: the readers choose the format by it."""
        suffix = "".join(Path(name).suffixes[-2:]).lower()
        if not suffix or len(suffix) > 16 or not suffix[1:].replace(".", "").isalnum():
            raise InputError(
                field,
                f"file name {name!r} has no usable suffix",
                "name it .csv, .parquet, .skops …",
            )
        self.root.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        descriptor, temporary = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise InputError(
                            field,
                            f"is larger than the limit of {limit // (1024 * 1024)} MiB",
                            "upload a smaller file, or raise GOVERNANCE_MAX_UPLOAD_MB",
                        )
                    digest.update(chunk)
                    stream.write(chunk)
            if size == 0:
                raise InputError(field, "is empty", "upload the file itself")
            target = self.path_of(digest.hexdigest(), suffix)
            target.parent.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
            os.replace(temporary, target)
            target.chmod(BLOB_MODE)
            return target
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
