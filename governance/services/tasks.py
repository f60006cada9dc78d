"""The tasks the service runs away from a request: their names, their queues and how often
the periodic ones run. Which process runs them is the composition's choice (the embedded
threads of `jobs`, or `governance worker` on procrastinate); what they do is the use cases'.

Two queues, so that a slow check never delays an alert: `checks` holds the heavy check jobs,
`light` everything else (webhook deliveries, monitors, registry syncs, sweeps)."""

from __future__ import annotations

from dataclasses import dataclass

CHECKS_QUEUE = "checks"
LIGHT_QUEUE = "light"
QUEUES = (CHECKS_QUEUE, LIGHT_QUEUE)

# One request's check job: {"job_id": …}; its lock is the request id.
RUN_CHECKS = "governance.checks"
# How often a check job that failed for a passing reason (the database restarting, say) is
# tried, waiting 2, 4, 8, … s between tries; after the last the request is blocked with why.
CHECK_ATTEMPTS = 6


@dataclass(frozen=True)
class Periodic:
    """A task that runs every `seconds`: what is due lives in the database, so a run that
    is missed or fails is made up by the next."""

    name: str
    seconds: float


def schedule(seconds: float) -> str:
    """A cron expression (with croniter's sixth field, seconds) for `seconds`, rounded to a
    period that divides the minute, the hour or the day evenly, so runs are evenly spaced
    and every process computes the same instants."""
    if seconds < 60:
        step = _divisor_at_most(max(int(seconds), 1), 60)
        return f"* * * * * */{step}" if step > 1 else "* * * * * *"
    if seconds < 3600:
        step = _divisor_at_most(int(seconds // 60), 60)
        return f"*/{step} * * * * 0" if step > 1 else "* * * * * 0"
    step = _divisor_at_most(min(int(seconds // 3600), 24), 24)
    return f"0 */{step} * * * 0" if step > 1 else "0 * * * * 0"


def _divisor_at_most(wanted: int, whole: int) -> int:
    return max(d for d in range(1, min(wanted, whole) + 1) if whole % d == 0)
