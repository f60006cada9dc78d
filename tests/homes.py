"""Data directories for tests, made by the real `initialise` with the report CA already in
place.

`initialise` makes a report CA unless the data directory has one: two RSA-3072 keys, about
0.35 s of CPU, in every test that starts from a fresh directory. The CA is not what those
tests are about, so each test process makes one and copies it into the directories it
initialises; `initialise` keeps a CA it finds, as it does when `init` runs again. The tests
of `init` itself (its messages, its file modes) call `initialise` on an empty directory.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from governance.bootstrap import initialise
from governance.config import Settings
from governance.reports import pki
from governance.store.private import private_directory

AUTHORITY_FILES = (pki.CA_CERT, pki.CA_KEY, pki.SIGNER_CERT, pki.SIGNER_KEY)


@functools.cache
def _authority() -> Path:
    """This process's report CA, made once with the real `create_authority`."""
    directory = Path(tempfile.mkdtemp(prefix="governance-test-ca-"))
    atexit.register(shutil.rmtree, directory, True)
    pki.create_authority(directory, Settings.organisation)
    return directory


def initialise_home(settings: Settings, admin_password: str | None) -> list[str]:
    """`initialise(settings, admin_password)` on a data directory that holds this process's
    report CA (unless the settings name an organisation's PKCS#12)."""
    if settings.report_pkcs12 is None:
        private_directory(settings.home)
        for name in AUTHORITY_FILES:
            if not (settings.home / name).exists():
                shutil.copy2(_authority() / name, settings.home / name)
    return initialise(settings, admin_password)
