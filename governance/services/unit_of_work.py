"""Running a use case's writes in one unit of work, again when the audit seq was taken."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from governance.domain.audit import AUDIT_ATTEMPTS
from governance.domain.errors import AuditSequenceTakenError
from governance.services.ports import UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")


def run_in_unit_of_work(units: UnitOfWorkFactory, work: Callable[[UnitOfWork], T]) -> T:
    """Run `work` in a new unit of work and commit it; when another writer took the audit
    seq it chained onto, run it again in a fresh one, which chains onto that writer's
    event. `work` must therefore do nothing outside the unit of work."""
    for attempt in range(AUDIT_ATTEMPTS):
        try:
            with units() as uow:
                result = work(uow)
                uow.commit()
                return result
        except AuditSequenceTakenError:
            if attempt == AUDIT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
