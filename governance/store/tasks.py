"""The two `TaskQueue` adapters, and what the console shows of the workers.

Embedded: the job table row that `Promotions.enqueue` wrote is the queue, and the server's
own job runner takes it; nothing more to write. Workers: a procrastinate job, inserted by
procrastinate's own `procrastinate_defer_jobs_v1` in the caller's transaction, so the job
exists if and only if the change that asked for it commits (its insert trigger wakes a
listening worker at commit)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from governance.domain.errors import ConflictError

_DEFER = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, :lock, :lock,"
    " CAST(:args AS jsonb), NULL)]::procrastinate_job_to_defer_v1[])"
)


class EmbeddedTaskQueue:
    """The server process runs what the job table holds (`services.jobs.JobRunner`)."""

    def defer(self, task: str, args: dict[str, Any], *, queue: str, lock: str) -> None:
        return None


class ProcrastinateTaskQueue:
    """A procrastinate job in the unit of work's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def defer(self, task: str, args: dict[str, Any], *, queue: str, lock: str) -> None:
        values = {
            "queue": queue,
            "task": task,
            "lock": lock,
            "args": json.dumps(args),
        }
        try:
            with self._session.begin_nested():
                self._session.execute(_DEFER, values)
        except IntegrityError as exc:  # the queueing lock: one queued job per subject
            raise ConflictError(f"a {task} job for {lock} is queued already", "queued") from exc


_ORPHANS = text(
    "SELECT j.id, j.request_id FROM job j"
    " WHERE (j.status = 'queued' OR (j.status = 'running' AND j.claimed_at < :lapsed))"
    " AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs p WHERE p.task_name = :task"
    "  AND p.lock = j.request_id AND p.status IN ('todo', 'doing'))"
    " ORDER BY j.id"
)
# The advisory lock key of the adopters ("orphans"): one at a time on the whole fleet.
ADOPTERS_LOCK = int.from_bytes(b"orphans", "big")


def adopt_orphan_jobs(engine: Engine, task: str, queue: str, lapsed_seconds: float) -> list[int]:
    """Queue again the check jobs that the job table holds without a live task: queued
    while the service ran its tasks embedded (switching to workers loses none), or still
    `running` after any check would have ended (`lapsed_seconds`) with no task waiting or
    running, as when every try failed while the database was away. Returns their ids."""
    lapsed = datetime.now(UTC) - timedelta(seconds=lapsed_seconds)
    adopted = []
    with Session(engine) as session, session.begin():
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADOPTERS_LOCK})
        orphans = session.execute(_ORPHANS, {"task": task, "lapsed": lapsed}).tuples().all()
        tasks = ProcrastinateTaskQueue(session)
        for job_id, request_id in orphans:
            with contextlib.suppress(ConflictError):  # queued meanwhile by its request
                tasks.defer(task, {"job_id": job_id}, queue=queue, lock=request_id)
                adopted.append(job_id)
    return adopted


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    waiting: int
    running: int
    failed: int
    succeeded: int


@dataclass(frozen=True)
class WorkerHeartbeat:
    id: int
    last_heartbeat: datetime
    seconds_ago: float
    running: int
    stalled: bool  # silent longer than `worker_stalled_seconds`: its jobs are run again


@dataclass(frozen=True)
class FailedJob:
    id: int
    task: str
    queue: str
    attempts: int
    at: datetime | None


@dataclass(frozen=True)
class WorkersView:
    """What Admin → Workers shows: per queue, the jobs waiting, running and failed; each
    worker's last heartbeat; the latest failures and the last check job's error."""

    mode: str
    queues: list[QueueFigures]
    workers: list[WorkerHeartbeat]
    failures: list[FailedJob]
    last_check_error: str | None


def workers_view(
    engine: Engine, mode: str, stalled_seconds: float, queue_names: tuple[str, ...]
) -> WorkersView:
    """The figures straight from procrastinate's tables (workers mode) and our job table."""
    with engine.connect() as connection:
        last_error = connection.execute(
            text("SELECT error FROM job WHERE error IS NOT NULL ORDER BY finished_at DESC LIMIT 1")
        ).scalar()
        if mode != "workers":
            return WorkersView(mode, [], [], [], last_error)
        counts: dict[str, dict[str, int]] = {q: {} for q in queue_names}
        for queue, status, number in connection.execute(
            text(
                "SELECT queue_name, status, count(*) FROM procrastinate_jobs"
                " GROUP BY queue_name, status"
            )
        ):
            counts.setdefault(queue, {})[str(status)] = int(number)
        queues = [
            QueueFigures(
                queue,
                figures.get("todo", 0),
                figures.get("doing", 0),
                figures.get("failed", 0),
                figures.get("succeeded", 0),
            )
            for queue, figures in sorted(counts.items())
        ]
        workers = [
            WorkerHeartbeat(
                int(row[0]), row[1], float(row[2]), int(row[3]), float(row[2]) > stalled_seconds
            )
            for row in connection.execute(
                text(
                    "SELECT w.id, w.last_heartbeat,"
                    " EXTRACT(EPOCH FROM now() - w.last_heartbeat),"
                    " (SELECT count(*) FROM procrastinate_jobs j"
                    "  WHERE j.worker_id = w.id AND j.status = 'doing')"
                    " FROM procrastinate_workers w ORDER BY w.id"
                )
            )
        ]
        failures = [
            FailedJob(int(row[0]), row[1], row[2], int(row[3]), row[4])
            for row in connection.execute(
                text(
                    "SELECT j.id, j.task_name, j.queue_name, j.attempts,"
                    " (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id)"
                    " FROM procrastinate_jobs j WHERE j.status = 'failed'"
                    " ORDER BY j.id DESC LIMIT 10"
                )
            )
        ]
    return WorkersView(mode, queues, workers, failures, last_error)
