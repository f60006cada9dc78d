"""Real databases for tests: a SQLite file and a PostgreSQL schema, fresh for every test.

Load with `pytest_plugins = ["tests.db_fixtures"]` in a test module, then ask for
`database_url` (a fresh database at the newest migration; the test runs once per backend),
`engine` (on the same database), `empty_database_url` (a database never migrated, for the
tests of the migrations and of `init`), or `sqlite_url` / `postgres_url` (empty, one
backend). PostgreSQL is never skipped: when the server is down, the tests that need it fail
and say how to start it.

A migrated database is a copy of one migrated once per session (a file copy on SQLite, a
`CREATE DATABASE … TEMPLATE` on PostgreSQL): running the migrations takes about 0.3 s on
SQLite and 0.9 s on PostgreSQL, the copy well under 0.1 s, and most tests want one.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from governance.store.database import make_engine, upgrade

POSTGRES_SERVER = os.environ.get(
    "GOVERNANCE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def _execute(url: str, statement: sql.Composed) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database with a random name for this test session, dropped at its end."""
    name = f"governance_test_{secrets.token_hex(6)}"
    try:
        _execute(POSTGRES_SERVER, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as error:
        message = (
            f"PostgreSQL is not reachable at {POSTGRES_SERVER}: {error}\n"
            f"Start it with: {START_POSTGRES}\n"
            "(or point GOVERNANCE_TEST_POSTGRES at another server's maintenance database)"
        )
        raise pytest.fail.Exception(message, pytrace=False) from None
    yield make_url(POSTGRES_SERVER).set(database=name).render_as_string(hide_password=False)
    drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
    _execute(POSTGRES_SERVER, drop)


def new_postgres_schema(postgres_database: str) -> str:
    """An empty schema of its own in the session database: as good as a fresh database, and
    much cheaper to make. The URL sets the search_path, so every connection lands in it."""
    schema = f"test_{secrets.token_hex(6)}"
    _execute(postgres_database, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = make_url(postgres_database).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """An empty schema of its own (`new_postgres_schema`)."""
    return new_postgres_schema(postgres_database)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'governance.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """An empty database (never migrated) on each backend in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, once per session, for `migrated_sqlite_url` to copy."""
    path = tmp_path_factory.mktemp("template") / "governance.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_database: str) -> Iterator[str]:
    """A PostgreSQL database migrated to head, once per session, for
    `migrated_postgres_url` to copy. Nothing connects to it after the migration: PostgreSQL
    copies a template only while no one is connected to it."""
    name = f"{make_url(postgres_database).database}_template"
    _execute(POSTGRES_SERVER, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    template = make_url(POSTGRES_SERVER).set(database=name).render_as_string(hide_password=False)
    upgrade(template)
    yield name
    drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
    _execute(POSTGRES_SERVER, drop)


@pytest.fixture
def migrated_sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A SQLite file of its own at the newest migration."""
    path = tmp_path / "governance.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def migrated_postgres_url(postgres_template: str) -> Iterator[str]:
    """A PostgreSQL database of its own at the newest migration, dropped after the test."""
    name = f"{postgres_template}_{secrets.token_hex(6)}"
    create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(postgres_template)
    )
    _execute(POSTGRES_SERVER, create)
    yield make_url(POSTGRES_SERVER).set(database=name).render_as_string(hide_password=False)
    drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
    _execute(POSTGRES_SERVER, drop)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database at the newest migration on each backend in turn."""
    url: str = request.getfixturevalue(f"migrated_{request.param}_url")
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test's `database_url`, which is at the newest migration."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
