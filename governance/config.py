"""Settings from the environment: where the database, the data directory, the keys and the
policies live. Every setting has an embedded default, so a bare machine runs the demo."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("governance-data")
PACKAGED_POLICIES = Path(__file__).resolve().parent.parent / "policies"
MIB = 1024 * 1024


def data_dir() -> Path:
    """`GOVERNANCE_HOME`, else ./governance-data: the embedded default keeps everything here."""
    return Path(os.environ.get("GOVERNANCE_HOME", DEFAULT_HOME))


def database_url(explicit: str | None = None) -> str | None:
    """An explicit URL, else `GOVERNANCE_DATABASE_URL`; None means: record nothing."""
    return explicit or os.environ.get("GOVERNANCE_DATABASE_URL") or None


def default_database_url() -> str:
    """The embedded default: a SQLite file in the data directory."""
    return f"sqlite:///{(data_dir() / 'governance.db').resolve()}"


@dataclass(frozen=True)
class Settings:
    """What the service needs to run. `from_env` reads `GOVERNANCE_*` variables."""

    home: Path
    database_url: str
    policies: Path
    max_upload_bytes: int = 512 * MIB
    max_json_bytes: int = 1 * MIB
    session_hours: int = 8

    @property
    def blobs(self) -> Path:
        return self.home / "blobs"

    @property
    def token_secret(self) -> Path:
        """The key of the keyed digests that stand in for token and session secrets."""
        return self.home / "token-digest.key"

    @classmethod
    def from_env(cls, database: str | None = None, home: Path | None = None) -> Settings:
        home = home or data_dir()
        return cls(
            home=home,
            database_url=database_url(database)
            or f"sqlite:///{(home / 'governance.db').resolve()}",
            policies=Path(os.environ.get("GOVERNANCE_POLICIES", PACKAGED_POLICIES)),
            max_upload_bytes=int(os.environ.get("GOVERNANCE_MAX_UPLOAD_MB", 512)) * MIB,
        )
