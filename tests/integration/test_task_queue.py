"""The TaskQueue adapters on a real PostgreSQL: a check task is queued in the transaction
that opens its request, and only if it commits; one request never has two queued; jobs left
in the job table by embedded tasks are handed to the workers when a worker starts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.connectors.adult import TARGET
from governance.domain.errors import ConflictError
from governance.services.people import SYSTEM
from governance.services.tasks import CHECKS_QUEUE, RUN_CHECKS
from governance.services.workflow import Candidate
from governance.store.tasks import adopt_orphan_jobs
from tests.homes import initialise_home
from tests.service_fixtures import PASSWORD

pytestmark = pytest.mark.postgres
pytest_plugins = ["tests.db_fixtures"]


def opened(url: str, home: Path, tasks: str) -> Governance:
    settings = replace(Settings.from_env(url, home), tasks=tasks)
    initialise_home(settings, PASSWORD)
    return open_governance(settings)


def candidate(demo_dir: Path, version: str) -> Candidate:
    return Candidate("income", version, "production", TARGET,
                     demo_dir / "income-reweighed.skops", demo_dir / "test.parquet")  # fmt: skip


def queued(governance: Governance) -> list[tuple[str, str, str, str]]:
    with governance.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT task_name, queue_name, lock, status FROM procrastinate_jobs ORDER BY id")
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_the_check_task_is_queued_with_the_request_or_not_at_all(
    postgres_url: str, tmp_path: Path, demo_dir: Path
) -> None:
    governance = opened(postgres_url, tmp_path / "home", "workers")
    try:
        governance.workflow.register_model(SYSTEM, "income", "high", None)
        request_id = governance.workflow.submit(SYSTEM, candidate(demo_dir, "1")).id
        assert queued(governance) == [(RUN_CHECKS, CHECKS_QUEUE, request_id, "todo")]

        def fail(*_: object) -> None:
            raise RuntimeError("the submission fails after its task was queued")

        with pytest.raises(RuntimeError):
            governance.workflow.submit(SYSTEM, candidate(demo_dir, "2"), also=fail)
        assert len(queued(governance)) == 1  # rolled back with the request
        assert governance.workflow.list_requests(model="income").total == 1

        with governance.units() as uow, pytest.raises(ConflictError, match="queued already"):
            uow.tasks.defer(RUN_CHECKS, {"job_id": 1}, queue=CHECKS_QUEUE, lock=request_id)
    finally:
        governance.close()


def test_the_workers_take_over_the_jobs_left_without_a_task(
    postgres_url: str, tmp_path: Path, demo_dir: Path
) -> None:
    embedded = opened(postgres_url, tmp_path / "home", "embedded")
    try:
        embedded.workflow.register_model(SYSTEM, "income", "high", None)
        first = embedded.workflow.submit(SYSTEM, candidate(demo_dir, "1")).id
        second = embedded.workflow.submit(SYSTEM, candidate(demo_dir, "2")).id
        assert queued(embedded) == []  # the server's own runner would take them
        adopted = adopt_orphan_jobs(embedded.engine, RUN_CHECKS, CHECKS_QUEUE, 600)
        assert len(adopted) == 2
        assert [row[2] for row in queued(embedded)] == [first, second]
        assert adopt_orphan_jobs(embedded.engine, RUN_CHECKS, CHECKS_QUEUE, 600) == []

        # A job whose every try failed (its task `failed`) while its row says running:
        # queued again once any check would have ended, not before.
        with embedded.engine.begin() as connection:
            connection.execute(text("UPDATE procrastinate_jobs SET status = 'failed'"))
            connection.execute(
                text("UPDATE job SET status = 'running', claimed_at = now() - interval '5 min'")
            )
        assert adopt_orphan_jobs(embedded.engine, RUN_CHECKS, CHECKS_QUEUE, 600) == []
        assert len(adopt_orphan_jobs(embedded.engine, RUN_CHECKS, CHECKS_QUEUE, 60)) == 2
    finally:
        embedded.close()
