"""File modes (issue 13, item 10): the data directory holds keys, the database and uploaded
personal data, so only the service's own user may read it: the directory 0700, the
database with its WAL and shared-memory files 0600, the blobs 0400 — whatever the umask."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from governance.bootstrap import initialise, open_governance
from governance.config import Settings
from governance.services.people import SYSTEM


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default: files 0644, directories 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


async def _chunks(payload: bytes) -> AsyncIterator[bytes]:
    yield payload


@pytest.mark.usefixtures("loose_umask")
def test_the_data_directory_is_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings.from_env(None, home)
    initialise(settings, "an-admin-test-passphrase")
    governance = open_governance(settings)
    try:
        governance.workflow.register_model(SYSTEM, "scorer", "low", None)  # a write: WAL
        database = home / "governance.db"
        assert mode(home) == 0o700
        assert mode(database) == 0o600
        for companion in ("governance.db-wal", "governance.db-shm"):
            assert (home / companion).exists(), companion
            assert mode(home / companion) == 0o600, companion
        for key in ("signing-key.pem", "token-digest.key"):
            assert mode(home / key) == 0o600, key
        uploaded = asyncio.run(
            governance.blobs.put("data", "rows.csv", _chunks(b"a,b\n1,2\n"), 1 << 20)
        )
        fetched = tmp_path / "fetched.parquet"
        fetched.write_bytes(b"PAR1 from a registry")
        adopted = governance.blobs.adopt(fetched)
        for blob in (uploaded, adopted):
            assert mode(blob) == 0o400, blob
            assert mode(blob.parent) == 0o700, blob.parent
    finally:
        governance.close()


@pytest.mark.usefixtures("loose_umask")
def test_an_existing_open_data_directory_is_closed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    settings = Settings.from_env(None, home)
    initialise(settings, "an-admin-test-passphrase")
    (home / "governance.db").chmod(0o644)  # as an older version left it
    open_governance(settings).close()
    assert mode(home) == 0o700
    assert mode(home / "governance.db") == 0o600
