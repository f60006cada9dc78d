"""The task catalogue: periodic tasks' cron schedules, and the setting that says where
tasks run."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import croniter
import pytest

from governance.config import Settings
from governance.domain.errors import InputError
from governance.services.tasks import schedule
from governance.workers import conninfo, parse_queues


@pytest.mark.parametrize(
    ("seconds", "cron", "gap"),
    [(1, "* * * * * *", 1), (2, "* * * * * */2", 2), (5, "* * * * * */5", 5),
     (7, "* * * * * */6", 6), (30, "* * * * * */30", 30), (60, "* * * * * 0", 60),
     (600, "*/10 * * * * 0", 600), (3600, "0 * * * * 0", 3600),
     (7 * 3600, "0 */6 * * * 0", 6 * 3600)],
)  # fmt: skip
def test_a_period_becomes_an_evenly_spaced_cron_schedule(
    seconds: float, cron: str, gap: float
) -> None:
    assert schedule(seconds) == cron
    runs = croniter.croniter(cron, datetime(2026, 12, 7, tzinfo=UTC))
    instants = [runs.get_next(float) for _ in range(5)]
    assert {b - a for a, b in itertools.pairwise(instants)} == {gap}


def test_workers_need_postgresql(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
    monkeypatch.delenv("GOVERNANCE_CONFIG", raising=False)
    monkeypatch.setenv("GOVERNANCE_TASKS", "workers")
    with pytest.raises(InputError) as refused:
        Settings.from_env()
    assert refused.value.subject == "GOVERNANCE_TASKS" and "PostgreSQL" in refused.value.message
    settings = Settings.from_env("postgresql+psycopg://u@db:5432/governance")
    assert settings.tasks == "workers" and settings.worker_heartbeat_seconds == 2.5
    monkeypatch.setenv("GOVERNANCE_TASKS", "celery")
    with pytest.raises(InputError) as unknown:
        Settings.from_env("postgresql+psycopg://u@db:5432/governance")
    assert "embedded, workers" in unknown.value.fix


def test_a_worker_serves_the_queues_it_is_named() -> None:
    assert parse_queues("checks") == ("checks",)
    assert parse_queues(" light , checks,light") == ("light", "checks")
    for bad in ("", "checks,heavy", ","):
        with pytest.raises(InputError) as refused:
            parse_queues(bad)
        assert refused.value.subject == "--queues" and "checks, light" in refused.value.fix


def test_the_worker_connects_where_the_service_does() -> None:
    url = "postgresql+psycopg://gov:s3cret@db:5433/prod?options=-csearch_path%3Dtenant"
    assert conninfo(url) == "postgresql://gov:s3cret@db:5433/prod?options=-csearch_path%3Dtenant"


def test_the_stalled_period_has_a_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVERNANCE_WORKER_STALLED_SECONDS", "0.01")
    with pytest.raises(InputError) as refused:
        Settings.from_env("postgresql+psycopg://u@db:5432/governance")
    assert refused.value.subject == "GOVERNANCE_WORKER_STALLED_SECONDS"
    assert "4 or more" in refused.value.fix


def test_the_queue_schema_in_the_migrations_is_the_installed_procrastinate_s() -> None:
    """Migration 0010 applies procrastinate 3.10.0's schema as kept beside it; an upgraded
    procrastinate needs its SQL migrations as new revisions first (and this test then
    fails until they are written)."""
    from procrastinate.schema import SchemaManager

    from governance.store.database import MIGRATIONS

    kept = (MIGRATIONS / "procrastinate-3.10.0-schema.sql").read_text(encoding="utf-8")
    assert kept == SchemaManager.get_schema()


def test_a_stopping_worker_keeps_its_heartbeat_until_its_job_ends() -> None:
    """procrastinate's own worker stops its heartbeat before it waits for the running
    jobs, so a check longer than the stalled period, finishing after SIGTERM, was taken
    for abandoned and run again elsewhere. Ours keeps the heartbeat to the end (on
    procrastinate's in-memory connector: no database, no process)."""
    import asyncio

    from procrastinate import App
    from procrastinate.testing import InMemoryConnector
    from procrastinate.worker import Worker

    from governance.workers import _Worker

    async def stalled_while_stopping(kind: type[Worker]) -> bool:
        app = App(connector=InMemoryConnector())
        started = asyncio.Event()

        @app.task(name="slow")
        async def slow() -> None:
            started.set()
            await asyncio.sleep(1.5)

        async with app.open_async():
            await slow.defer_async()
            worker = kind(app, concurrency=1, wait=True, install_signal_handlers=False,
                          update_heartbeat_interval=0.1, stalled_worker_timeout=100)  # fmt: skip
            running = asyncio.create_task(worker.run())
            await started.wait()
            worker.stop()
            await asyncio.sleep(1.0)  # the job goes on, well past the stalled period
            stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=0.5)
            await running
        return bool(list(stalled))

    assert asyncio.run(stalled_while_stopping(Worker)), "procrastinate's own changed"
    assert not asyncio.run(stalled_while_stopping(_Worker))
