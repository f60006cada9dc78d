"""Settings from the environment: where the database, the data directory, the keys and the
policies live. Every setting has an embedded default, so a bare machine runs the demo."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from governance.auth.secrets import DEFAULT_PASSWORD_HASHING, PASSWORD_HASHING
from governance.domain.errors import InputError
from governance.resources import PACKAGED_POLICIES

DEFAULT_HOME = Path("governance-data")
MIB = 1024 * 1024


SETTINGS_FILE_KEYS = (
    "home", "database_url", "policies", "signing_key", "max_upload_mb", "organisation",
    "report_pkcs12", "max_predictions_mb", "predictions_dir", "connectors",
    "webhook_allow_hosts", "webhook_allow_http", "checkpoint_events", "checkpoint_minutes",
    "checkpoint_witness", "check_memory_mb", "check_timeout_seconds", "password_hashing",
    "tasks", "worker_stalled_seconds", "executor", "dask_scheduler", "batch_rows", "exact_rows",
)  # fmt: skip
# Where tasks (check jobs, monitors, webhook deliveries, registry syncs, sweeps) run: in the
# server process (embedded, any database), or on `governance worker` processes (PostgreSQL).
TASK_MODES = ("embedded", "workers")
# Below this a worker's heartbeat (a quarter of it) would be its main work, and a busy
# database's pause would pass for a dead worker.
MIN_STALLED_SECONDS = 4.0
# How the checks read rows (governance.services.ports.Execution).
EXECUTORS = ("auto", "memory", "streamed", "dask")


@dataclass(frozen=True)
class Settings:
    """What the service needs to run: from `GOVERNANCE_*` variables, else from the YAML file
    that `GOVERNANCE_CONFIG` names (its keys: SETTINGS_FILE_KEYS, each shown with its default
    in governance.example.yaml), else the embedded defaults. The PKCS#12 passphrase is a
    secret: only `GOVERNANCE_REPORT_PKCS12_PASSWORD` gives it."""

    home: Path
    database_url: str
    policies: Path
    signing_key: Path
    max_upload_bytes: int = 512 * MIB
    max_json_bytes: int = 1 * MIB
    session_hours: int = 8
    organisation: str = "Governance"
    report_pkcs12: Path | None = None
    report_pkcs12_password: str | None = None
    max_predictions_bytes: int = 64 * MIB  # one batch of prediction logs
    predictions_dir: Path | None = None  # a watched directory of Parquet prediction logs
    connectors: Path | None = None  # the registries to watch (connectors/settings.py)
    # Hosts (`name` or `name:port`) webhooks may reach although they are not public; plain
    # http only to them and only when allowed (governance/services/outbound.py).
    webhook_allow_hosts: tuple[str, ...] = ()
    webhook_allow_http: bool = False
    # Signed checkpoints of the audit trail published outside the database this often, and
    # to this witness (a directory or a URL) too (governance/services/checkpoints.py).
    checkpoint_events: int = 100
    checkpoint_minutes: float = 10.0
    checkpoint_witness: str | None = None
    check_memory_mb: int = 4096  # address-space cap of the process a check job runs in
    check_timeout_seconds: float = 600.0  # ... and how long it may take
    password_hashing: str = DEFAULT_PASSWORD_HASHING  # a name in auth.secrets.PASSWORD_HASHING
    tasks: str = "embedded"  # one of TASK_MODES
    # A worker silent this long is taken for dead, and its running jobs are run again.
    worker_stalled_seconds: float = 10.0
    # How the checks read rows: in memory, streamed in batches of `batch_rows`, or on the
    # Dask scheduler at `dask_scheduler` ("local": a cluster on this machine); rank
    # statistics are exact up to `exact_rows` rows, sketched with a bound beyond.
    executor: str = "auto"
    dask_scheduler: str | None = None
    batch_rows: int = 262_144
    exact_rows: int = 2_000_000
    # Whether a database was named (GOVERNANCE_DATABASE_URL, the settings file or --database)
    # rather than defaulted: a local `governance gate` records its decision only then.
    database_configured: bool = True

    @property
    def blobs(self) -> Path:
        return self.home / "blobs"

    @property
    def compiled_code(self) -> Path:
        """Where check jobs keep the machine code numba compiled for shap's loops, so that
        each fresh check process loads it instead of compiling it again (numba's own
        `NUMBA_CACHE_DIR`, which wins when set)."""
        return Path(os.environ.get("NUMBA_CACHE_DIR") or self.home / "cache" / "numba")

    @property
    def token_secret(self) -> Path:
        """The key of the keyed digests that stand in for token and session secrets."""
        return self.home / "token-digest.key"

    @property
    def default_signing_key(self) -> bool:
        return self.signing_key == self.home / "signing-key.pem"

    @classmethod
    def from_env(cls, database: str | None = None, home: Path | None = None) -> Settings:
        file = _settings_file()

        def pick(name: str) -> Any:
            return os.environ.get(f"GOVERNANCE_{name.upper()}") or file.get(name)

        home = home or Path(pick("home") or DEFAULT_HOME)
        configured = database or pick("database_url")
        return cls(
            home=home,
            database_url=configured or f"sqlite:///{(home / 'governance.db').resolve()}",
            database_configured=bool(configured),
            policies=Path(pick("policies") or PACKAGED_POLICIES),
            signing_key=Path(pick("signing_key") or home / "signing-key.pem"),
            max_upload_bytes=int(pick("max_upload_mb") or 512) * MIB,
            organisation=pick("organisation") or "Governance",
            report_pkcs12=Path(pick("report_pkcs12")) if pick("report_pkcs12") else None,
            report_pkcs12_password=os.environ.get("GOVERNANCE_REPORT_PKCS12_PASSWORD"),
            max_predictions_bytes=int(pick("max_predictions_mb") or 64) * MIB,
            predictions_dir=Path(pick("predictions_dir")) if pick("predictions_dir") else None,
            connectors=Path(pick("connectors")) if pick("connectors") else None,
            webhook_allow_hosts=_names(pick("webhook_allow_hosts")),
            webhook_allow_http=str(pick("webhook_allow_http")).lower() in ("1", "true", "yes"),
            checkpoint_events=_positive("checkpoint_events", pick("checkpoint_events") or 100, int),
            checkpoint_minutes=_positive(
                "checkpoint_minutes", pick("checkpoint_minutes") or 10, float
            ),
            checkpoint_witness=pick("checkpoint_witness") or None,
            check_memory_mb=_positive("check_memory_mb", pick("check_memory_mb") or 4096, int),
            check_timeout_seconds=_positive(
                "check_timeout_seconds", pick("check_timeout_seconds") or 600, float
            ),
            password_hashing=_one_of(
                "password_hashing",
                pick("password_hashing") or DEFAULT_PASSWORD_HASHING,
                PASSWORD_HASHING,
            ),
            tasks=_tasks(pick("tasks") or "embedded", configured),
            worker_stalled_seconds=_at_least(
                "worker_stalled_seconds",
                _positive("worker_stalled_seconds", pick("worker_stalled_seconds") or 10, float),
                MIN_STALLED_SECONDS,
            ),
            executor=_one_of("executor", pick("executor") or "auto", EXECUTORS),
            dask_scheduler=pick("dask_scheduler") or None,
            batch_rows=_positive("batch_rows", pick("batch_rows") or 262_144, int),
            exact_rows=_positive("exact_rows", pick("exact_rows") or 2_000_000, int),
        )

    @property
    def worker_heartbeat_seconds(self) -> float:
        """How often a worker says it is alive: four times within the stalled period."""
        return self.worker_stalled_seconds / 4


@functools.cache
def settings() -> Settings:
    """The settings of this process, read from the environment (and the file
    `GOVERNANCE_CONFIG` names) once: every entry point asks here, so the database, the data
    directory and above all the signing key are the same for every command and request.
    The CLI clears it as each command starts (a command runs in the environment it is
    given); a test that changes `GOVERNANCE_*` variables calls `settings.cache_clear()`."""
    return Settings.from_env()


def _names(value: Any) -> tuple[str, ...]:
    """A list of names: a YAML list, or one comma-separated string (as a variable gives)."""
    names = value if isinstance(value, list) else str(value or "").split(",")
    return tuple(name for name in (str(n).strip() for n in names) if name)


def _positive(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    """A count, a size or a period: a finite number above zero (an infinite timeout would
    let a check job run for ever)."""
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        number = 0
    if not 0 < number < math.inf:
        raise InputError(f"GOVERNANCE_{name.upper()}", f"is {value!r}", "give a number above 0")
    return number


def _at_least(name: str, number: float, least: float) -> float:
    if number < least:
        raise InputError(f"GOVERNANCE_{name.upper()}", f"is {number:g}", f"give {least:g} or more")
    return number


def _one_of(name: str, value: str, choices: Iterable[str]) -> str:
    """A setting that names one of a fixed set of choices."""
    if value not in choices:
        raise InputError(
            f"GOVERNANCE_{name.upper()}", f"is {value!r}", f"use one of {', '.join(choices)}"
        )
    return value


def _tasks(mode: str, database_url: str | None) -> str:
    """Workers share jobs through PostgreSQL (procrastinate): not through SQLite."""
    mode = _one_of("tasks", mode, TASK_MODES)
    if mode == "workers" and not str(database_url or "").startswith("postgresql"):
        raise InputError(
            "GOVERNANCE_TASKS",
            "is 'workers', which needs a PostgreSQL database",
            "set GOVERNANCE_DATABASE_URL=postgresql+psycopg://… or use GOVERNANCE_TASKS=embedded",
        )
    return mode


def _settings_file() -> dict[str, Any]:
    path = os.environ.get("GOVERNANCE_CONFIG")
    if not path:
        return {}
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(
            f"GOVERNANCE_CONFIG={path}", f"cannot be read ({exc})", "name a YAML file"
        ) from None
    unknown = sorted(set(document) - set(SETTINGS_FILE_KEYS)) if isinstance(document, dict) else []
    if not isinstance(document, dict) or unknown:
        raise InputError(
            f"GOVERNANCE_CONFIG={path}",
            f"unknown keys {', '.join(unknown)}" if unknown else "is not a mapping",
            f"use only {', '.join(SETTINGS_FILE_KEYS)}",
        )
    return document
