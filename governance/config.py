"""Settings from the environment: where the database and the data directory live."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path("governance-data")


def data_dir() -> Path:
    """`GOVERNANCE_HOME`, else ./governance-data: the embedded default keeps everything here."""
    return Path(os.environ.get("GOVERNANCE_HOME", DEFAULT_HOME))


def database_url(explicit: str | None = None) -> str | None:
    """An explicit URL, else `GOVERNANCE_DATABASE_URL`; None means: record nothing."""
    return explicit or os.environ.get("GOVERNANCE_DATABASE_URL") or None


def default_database_url() -> str:
    """The embedded default: a SQLite file in the data directory."""
    return f"sqlite:///{(data_dir() / 'governance.db').resolve()}"
