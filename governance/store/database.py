"""Engines and schema migrations for SQLite (the demo default) and PostgreSQL (production)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from governance.resources import packaged
from governance.store.private import DIRECTORY, private_file

MIGRATIONS = packaged("store", "migrations")


def make_engine(url: str) -> Engine:
    """An engine that behaves the same on both backends: `postgresql://` uses psycopg 3, and
    SQLite enforces foreign keys and runs every transaction (DDL included) atomically. A
    PostgreSQL connection is tested as it leaves the pool, so that after the server
    restarts (or a failover) requests find new connections instead of failing once each."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        _private_sqlite(Path(parsed.database))
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _private_sqlite(database: Path) -> None:
    """The database file 0600 before SQLite opens it: SQLite gives its WAL and
    shared-memory files the database file's mode, so they are private too."""
    database.parent.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
    private_file(database)
    for companion in ("-wal", "-shm", "-journal"):
        path = database.with_name(database.name + companion)
        if path.exists():
            private_file(path)


def writing(engine: Engine) -> Engine:
    """The engine for a transaction that will write after it reads. SQLite then takes the
    write lock at BEGIN, so two writers queue instead of one failing half-way (PostgreSQL
    locks rows with SELECT … FOR UPDATE instead, and ignores this option)."""
    return engine.execution_options(writes=True)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 would otherwise begin transactions itself, and never before DDL.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA foreign_keys = ON")
    dbapi_connection.execute("PRAGMA busy_timeout = 30000")
    # Readers never wait for the writer, and the writer never waits for readers.
    dbapi_connection.execute("PRAGMA journal_mode = WAL")


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("writes", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config(url: str) -> Config:
    """Migrations located from the package, so they run from any working directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade(url: str) -> None:
    """Bring the database schema to the newest migration; a no-op when it is already there."""
    command.upgrade(alembic_config(url), "head")


def current_revision(url: str) -> str | None:
    """The migration the database is at, or None for a database never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision(url: str) -> str | None:
    """The migration this code expects the database at."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def ours(name: str | None, type_: str, parent_names: object) -> bool:
    """What alembic compares with the tables' metadata: not procrastinate's own schema,
    which migration 0010 applies from the procrastinate package as it is."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))
