"""`run_in_unit_of_work`: commits the work, and runs it again when the audit seq was taken."""

from __future__ import annotations

import pytest

from governance.domain.audit import AUDIT_ATTEMPTS, verify_chain
from governance.domain.errors import AuditSequenceTakenError
from governance.services.ports import UnitOfWork
from governance.services.unit_of_work import run_in_unit_of_work
from tests.unit.fakes import FakeUnitOfWork


def append(uow: UnitOfWork) -> int:
    return uow.audit.append(actor="a", action="x.done", subject="s", payload={}).event.seq


def test_the_work_is_committed_and_chained() -> None:
    uow = FakeUnitOfWork()
    assert [run_in_unit_of_work(uow, append) for _ in range(3)] == [1, 2, 3]
    assert uow.commits == 3 and verify_chain(uow.audit.events()) == []


def test_a_taken_seq_runs_the_work_again() -> None:
    uow = FakeUnitOfWork()
    uow.taken = AUDIT_ATTEMPTS - 1
    assert run_in_unit_of_work(uow, append) == 1
    assert uow.commits == 1 and len(uow.audit.events()) == 1


def test_the_last_attempt_gives_up() -> None:
    uow = FakeUnitOfWork()
    uow.taken = AUDIT_ATTEMPTS
    with pytest.raises(AuditSequenceTakenError):
        run_in_unit_of_work(uow, append)
    assert uow.commits == 0 and uow.audit.events() == []


def test_a_failing_use_case_writes_nothing() -> None:
    uow = FakeUnitOfWork()

    def fails(unit: UnitOfWork) -> None:
        append(unit)
        raise ValueError("refused")

    with pytest.raises(ValueError):
        run_in_unit_of_work(uow, fails)
    assert uow.audit.events() == []
