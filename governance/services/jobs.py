"""The in-process executor: one background thread that runs check jobs from the database
and expires lapsed approvals. Jobs live in the database, so any process can take one,
and a job a crash interrupted is taken again once its claim lapses."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from governance.services.workflow import Workflow

log = logging.getLogger("governance.jobs")


class Background:
    """A daemon thread that runs `_loop` until `stop`; `notify` cuts its current wait short."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"governance-{self.name}", daemon=True
        )
        self._thread.start()

    def notify(self) -> None:
        """There is work: look now rather than when the wait ends."""
        self._wake.set()

    def stop(self) -> None:
        """Stop looking for work. What is still running is waited for 5 s at most."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        raise NotImplementedError


class JobRunner(Background):
    """Check jobs, and the sweep that expires lapsed approvals. A job still running when it
    stops is not waited for: its claim lapses and the next process to start takes it again."""

    def __init__(self, workflow: Workflow, poll_seconds: float = 1.0, sweep_seconds: float = 60.0):
        super().__init__("jobs")
        self._workflow = workflow
        self._poll = poll_seconds
        self._sweep = sweep_seconds

    def run_pending(self) -> int:
        """Run every job that can be claimed now; returns how many ran."""
        ran = 0
        for job_id in self._workflow.claimable_jobs():
            if self._stop.is_set():
                break
            try:
                ran += self._workflow.run_job(job_id)
            except Exception:
                log.exception("job %s failed; it will be claimed again after its lease", job_id)
        return ran

    def _loop(self) -> None:
        since_sweep = self._sweep
        while not self._stop.is_set():
            self.run_pending()
            if since_sweep >= self._sweep:
                try:
                    self._workflow.expire_due()
                except Exception:
                    log.exception("expiry sweep failed; trying again at the next one")
                since_sweep = 0.0
            self._wake.wait(self._poll)
            self._wake.clear()
            since_sweep += self._poll


class Ticker(Background):
    """Runs one periodic task (webhook deliveries, production monitoring, registry sync) on
    its own thread, every `seconds` or at once when notified. What is due lives in the
    database, so a restart loses nothing; a failed tick is logged and tried at the next."""

    def __init__(self, name: str, seconds: float, task: Callable[[], object]) -> None:
        super().__init__(name)
        self._seconds = seconds
        self._task = task

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._task()
            except Exception:
                log.exception("%s failed; trying again in %s s", self.name, self._seconds)
            self._wake.wait(self._seconds)
            self._wake.clear()
