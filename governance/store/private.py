"""Files only the service's own user may read: the data directory holds the signing and
digest keys, the database and uploaded personal data. Modes are set when a file or
directory is made, whatever the process umask, and tightened on one an older version left
open (only when this user owns it: someone else's directory is theirs to set)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIRECTORY = 0o700
FILE = 0o600


def private_directory(path: Path) -> Path:
    """`path` (and missing parents) made or tightened to 0700."""
    path.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
    _tighten(path, DIRECTORY)
    return path


def private_file(path: Path) -> Path:
    """`path` created empty with 0600 when missing, else tightened to 0600."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE))
    _tighten(path, FILE)
    return path


def _tighten(path: Path, wanted: int) -> None:
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(wanted)
