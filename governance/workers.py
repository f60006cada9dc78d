"""`governance worker`: the service's tasks on procrastinate, over the service's PostgreSQL.

Any number of worker processes, on any number of hosts, take jobs from the two queues:
`checks` (a request's check job, in a child process as in the server) and `light` (the
periodic tasks: webhook deliveries, monitors, registry syncs, checkpoints, the expiry
sweep). A process runs one procrastinate worker per queue it serves, so a slow check never
holds up an alert even with a single process.

What makes it survive `kill -9` and restarts:
- every worker writes a heartbeat; a `light` task looks for jobs of workers silent for
  `worker_stalled_seconds` and queues them again, so another worker takes them in seconds;
- a check job that fails for a passing reason (the database restarting, say) is tried again
  with growing waits; after the last try its request is blocked with the reason;
- every effect of a task is taken at most once (one verdict per request, one monitoring run
  per slot, one delivery per event and subscription), in the transaction that makes it;
- SIGTERM stops taking jobs and lets the running ones finish, then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy, exceptions
from procrastinate.worker import Worker
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError

from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.domain.errors import InputError
from governance.services.isolation import keep_priority
from governance.services.tasks import (
    CHECK_ATTEMPTS,
    CHECKS_QUEUE,
    LIGHT_QUEUE,
    QUEUES,
    RUN_CHECKS,
    Periodic,
    schedule,
)
from governance.store.database import current_revision, head_revision
from governance.store.tasks import adopt_orphan_jobs

log = logging.getLogger("governance.worker")

STALLED_SWEEP = Periodic("governance.stalled-jobs", 5.0)
OLD_JOBS = Periodic("governance.old-jobs", 3600.0)
ORPHANS = Periodic("governance.orphan-jobs", 60.0)
KEEP_FINISHED_HOURS = 1  # our job table keeps what the console shows of check jobs


def conninfo(database_url: str) -> str:
    """The libpq form of the service's SQLAlchemy URL (its `options`, such as a
    search_path, kept)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


def task_app(governance: Governance) -> App:
    """The procrastinate app with the service's tasks bound to this process's use cases."""
    settings = governance.settings
    app = App(connector=PsycopgConnector(conninfo=conninfo(settings.database_url)))

    @app.task(
        name=RUN_CHECKS,
        queue=CHECKS_QUEUE,
        pass_context=True,
        retry=RetryStrategy(
            max_attempts=CHECK_ATTEMPTS - 1, exponential_wait=2, retry_exceptions=[DBAPIError]
        ),
    )
    def run_checks(context: JobContext, job_id: int) -> None:
        """Database errors are tried again (a restart, a failover); anything else is a
        fault of this job, and a second run would only run the model's code again: its
        request is blocked with the reason at once."""
        try:
            governance.workflow.run_job(job_id)
        except DBAPIError as exc:
            if context.job.attempts + 1 < CHECK_ATTEMPTS:
                raise
            log.exception("check job %s failed on its last try", job_id)
            governance.workflow.give_up_job(job_id, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("check job %s failed", job_id)
            governance.workflow.give_up_job(job_id, f"{type(exc).__name__}: {exc}")

    for periodic, task in periodic_tasks(governance):
        _every(app, periodic, task)

    @_periodic(app, STALLED_SWEEP)
    async def run_stalled_again(timestamp: int) -> None:
        stalled = await app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=settings.worker_stalled_seconds
        )
        for job in stalled:
            log.warning("job %s (%s) of a silent worker: queued again", job.id, job.task_name)
            with contextlib.suppress(exceptions.ProcrastinateException):  # finished since
                await app.job_manager.retry_job(job)

    @_periodic(app, OLD_JOBS)
    async def forget_old_jobs(timestamp: int) -> None:
        await app.job_manager.delete_old_jobs(nb_hours=KEEP_FINISHED_HOURS)

    def adopt() -> None:
        """Check jobs the job table holds without a live task: left by embedded servers,
        or whose every try failed while the database was away. None is lost."""
        lapsed = settings.check_timeout_seconds + 2 * settings.worker_stalled_seconds
        adopted = adopt_orphan_jobs(governance.engine, RUN_CHECKS, CHECKS_QUEUE, lapsed)
        if adopted:
            log.warning("check jobs without a task, queued again: %s", adopted)

    _every(app, ORPHANS, adopt)
    return app


def _periodic(app: App, periodic: Periodic) -> Callable[[Any], Any]:
    """Register a periodic task on the light queue. Its queueing lock keeps one run
    waiting at most, and its lock keeps two from running at once on any workers."""

    def register(function: Any) -> Any:
        task = app.task(
            name=periodic.name, queue=LIGHT_QUEUE, queueing_lock=periodic.name, lock=periodic.name
        )(function)
        return app.periodic(cron=schedule(periodic.seconds), periodic_id=periodic.name)(task)

    return register


def periodic_tasks(governance: Governance) -> list[tuple[Periodic, Callable[[], object]]]:
    """What the embedded server runs on its threads, as periodic tasks, and the expiry
    sweep its job runner does."""
    tasks = [
        (Periodic(f"governance.{name}", seconds), task)
        for name, seconds, task in governance.periodic()
    ]
    return [*tasks, (Periodic("governance.approval-expiry", 60.0), governance.workflow.expire_due)]


def _every(app: App, periodic: Periodic, task: Callable[[], object]) -> None:
    def run(timestamp: int) -> None:
        task()

    _periodic(app, periodic)(run)


@dataclass(frozen=True)
class WorkerOptions:
    queues: Sequence[str] = QUEUES
    concurrency: int = 1


def parse_queues(value: str) -> tuple[str, ...]:
    """`checks,light` → the queues, each one we know."""
    queues = tuple(dict.fromkeys(q.strip() for q in value.split(",") if q.strip()))
    unknown = [q for q in queues if q not in QUEUES]
    if not queues or unknown:
        raise InputError(
            "--queues", f"names {', '.join(unknown) or 'no queue'}", f"use {', '.join(QUEUES)}"
        )
    return queues


def run_worker(settings: Settings, options: WorkerOptions) -> None:
    """Serve the queues until SIGTERM or SIGINT, then let running jobs finish and exit."""
    keep_priority()  # `nice governance worker` in a session of its own: the nice holds
    governance = open_governance(settings, job_lease_seconds=0.0)
    try:
        asyncio.run(_serve(governance, options))
    finally:
        governance.close()


async def _serve(governance: Governance, options: WorkerOptions) -> None:
    app = task_app(governance)
    stopping = asyncio.Event()
    running: set[Worker] = set()

    def stop() -> None:
        log.info("stopping: no new jobs; waiting for the running ones")
        stopping.set()
        for worker in list(running):
            worker.stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    async with app.open_async():
        log.info("worker serving %s", ", ".join(options.queues))
        make = functools.partial(_worker, app, governance.settings, options)
        await asyncio.gather(
            *(
                _supervised(functools.partial(make, queue), running, stopping)
                for queue in options.queues
            )
        )


class _Worker(Worker):
    """procrastinate's worker, whose shutdown lets the running jobs finish before it stops
    its side tasks, the heartbeat among them. procrastinate stops the heartbeat first
    (procrastinate-org/procrastinate#1585), so a check longer than the stalled period was
    taken for abandoned while it finished, and run a second time on another worker."""

    async def _shutdown(self, side_tasks: list[asyncio.Task[Any]]) -> None:
        if self._running_jobs:
            await asyncio.wait(self._running_jobs, timeout=self.shutdown_graceful_timeout)
        await super()._shutdown(side_tasks)


def _worker(app: App, settings: Settings, options: WorkerOptions, queue: str) -> Worker:
    """A procrastinate worker for one queue: `concurrency` check jobs at once, or two
    light tasks (a slow webhook receiver does not hold up an alert)."""
    return _Worker(
        app,
        queues=[queue],
        name=f"governance-{queue}",
        concurrency=options.concurrency if queue == CHECKS_QUEUE else 2,
        install_signal_handlers=False,
        update_heartbeat_interval=settings.worker_heartbeat_seconds,
        stalled_worker_timeout=settings.worker_stalled_seconds,
    )


async def _supervised(
    make: Callable[[], Worker], running: set[Worker], stopping: asyncio.Event
) -> None:
    """Run a worker, and a new one whenever it stops by itself: procrastinate stops a
    worker that loses the database (its listener fails). The new one waits for the
    database with growing pauses, registers afresh, and the stalled-job sweep hands the
    old one's unfinished jobs out again."""
    pause = 1.0
    while not stopping.is_set():
        worker = make()
        running.add(worker)
        started = loop_time()
        try:
            await worker.run()
        except Exception as exc:  # noqa: BLE001 - logged; the loop starts a new worker
            log.warning("worker for %s ended: %s: %s", worker.queues, type(exc).__name__, exc)
        finally:
            running.discard(worker)
        if stopping.is_set():
            return
        pause = 1.0 if loop_time() - started > 60 else min(pause * 2, 30.0)
        log.warning("worker for %s stopped by itself; a new one in %.0f s", worker.queues, pause)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=pause)


def loop_time() -> float:
    return asyncio.get_running_loop().time()


@dataclass(frozen=True)
class Health:
    healthy: bool
    lines: list[str]


def health(settings: Settings) -> Health:
    """`governance worker --check`: the database answers and is migrated, and a worker
    that said it is alive recently serves each queue."""
    if settings.tasks != "workers":
        return Health(False, ["GOVERNANCE_TASKS is not 'workers': tasks run in the server"])
    try:
        revision = current_revision(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - any failure means: unhealthy
        return Health(False, [f"database unreachable: {type(exc).__name__}: {exc}"])
    if revision != head_revision(settings.database_url):
        return Health(False, [f"database at migration {revision}: run governance init"])
    return _queue_health(settings)


def _queue_health(settings: Settings) -> Health:
    import psycopg

    lines, healthy = [], True
    with psycopg.connect(conninfo(settings.database_url)) as connection:
        rows: list[Any] = connection.execute(
            "SELECT id, EXTRACT(EPOCH FROM now() - last_heartbeat) FROM procrastinate_workers"
        ).fetchall()
        depth: dict[str, int] = dict(
            connection.execute(
                "SELECT queue_name, count(*) FROM procrastinate_jobs WHERE status = 'todo'"
                " GROUP BY queue_name"
            ).fetchall()
        )
    alive = [row for row in rows if float(row[1]) <= settings.worker_stalled_seconds]
    lines.append(f"{len(alive)} worker(s) alive of {len(rows)} registered")
    for queue in QUEUES:
        lines.append(f"queue {queue}: {depth.get(queue, 0)} waiting")
    if not alive:
        healthy = False
        lines.append("no worker has said it is alive within worker_stalled_seconds")
    return Health(healthy, lines)
