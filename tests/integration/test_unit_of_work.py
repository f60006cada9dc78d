"""The SQL unit of work on real databases: writers that chain onto the same audit head do
not both commit; the loser runs again on the new head, so every event lands once and the
chain stays whole."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine

from governance.domain.audit import verify_chain
from governance.services.ports import UnitOfWork
from governance.services.unit_of_work import run_in_unit_of_work
from governance.store.database import make_engine, upgrade
from governance.store.uow import SqlUnits

pytest_plugins = ["tests.db_fixtures"]

WRITERS = 4


def _write_all(units: SqlUnits, barrier: threading.Barrier | None) -> Counter[int]:
    """Each writer appends one event; with a barrier, all of them read the same head before
    any inserts. Returns how many attempts each writer took."""
    attempts: Counter[int] = Counter()

    def writer(number: int) -> None:
        def work(uow: UnitOfWork) -> None:
            attempts[number] += 1
            if barrier is not None and attempts[number] == 1:
                uow.audit.head_seq()  # the snapshot every writer chains onto
                barrier.wait(timeout=30)
            uow.audit.append(
                actor=f"writer-{number}", action="test.write", subject="race", payload={}
            )

        run_in_unit_of_work(units, work)

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    return attempts


def test_concurrent_writers_each_land_once_on_an_intact_chain(engine: Engine) -> None:
    units = SqlUnits(engine)
    _write_all(units, barrier=None)
    with units(read_only=True) as uow:
        events = uow.audit.events()
    assert verify_chain(events) == []
    actors = sorted(event.event.actor for event in events if event.event.action == "test.write")
    assert actors == [f"writer-{n}" for n in range(WRITERS)]


def test_writers_that_read_the_same_head_chain_one_after_another(postgres_url: str) -> None:
    """PostgreSQL lets every writer read the same head (SQLite queues writers at BEGIN).
    Without the trail's lock all but one lost the seq and ran again, and with many
    writers some ran out of tries; with it each waits its turn and chains onto the head
    as it is then, the first time."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        units = SqlUnits(engine)
        attempts = _write_all(units, barrier=threading.Barrier(WRITERS))
        with units(read_only=True) as uow:
            events = uow.audit.events()
    finally:
        engine.dispose()
    assert sum(attempts.values()) == WRITERS, "no writer should have to run again"
    assert verify_chain(events) == []
    assert [chained.event.seq for chained in events] == list(range(1, len(events) + 1))
    assert Counter(e.event.actor for e in events if e.event.action == "test.write") == Counter(
        {f"writer-{n}": 1 for n in range(WRITERS)}
    )
