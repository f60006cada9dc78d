"""Real databases for tests: a SQLite file and a PostgreSQL schema, fresh for every test.

Load with `pytest_plugins = ["tests.db_fixtures"]` in a test module, then ask for
`database_url` (the test runs once per backend), `engine` (the same, migrated to head), or
`sqlite_url` / `postgres_url` for one backend. PostgreSQL is never skipped: when the server
is down, the tests that need it fail and say how to start it.
"""

from __future__ import annotations

import os
import secrets
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


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """An empty schema of its own in the session database: as good as a fresh database, and
    much cheaper to make. The URL sets the search_path, so every connection lands in it."""
    schema = f"test_{secrets.token_hex(6)}"
    _execute(postgres_database, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = make_url(postgres_database).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'governance.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head."""
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
