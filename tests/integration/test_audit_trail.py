"""The audit trail in the database: one event per recorded decision, in the same
transaction; `governance audit verify` finds a changed, a deleted and an inserted row."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy import Engine
from typer.testing import CliRunner

from governance.cli import app
from governance.domain.audit import verify_chain
from governance.store.repository import SqlDecisionRecorder, audit_trail
from tests.integration.test_store import make_manifest, make_policy

pytest_plugins = ["tests.db_fixtures"]
runner = CliRunner()


def record_three(engine: Engine) -> list[str]:
    recorder = SqlDecisionRecorder(engine, actor="cli:alice")
    policy = make_policy()
    return [
        recorder.record(make_manifest(policy, model=f"model-{i}", data_bytes=f"data {i}"), policy)
        for i in range(3)
    ]


def verify(url: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--database", url])
    return result.exit_code, " ".join(result.output.split())


def test_each_decision_appends_one_chained_event(engine: Engine, database_url: str) -> None:
    ids = record_three(engine)
    events = audit_trail(engine)
    assert [e.event.seq for e in events] == [1, 2, 3]
    assert [e.event.payload["decision_id"] for e in events] == ids
    assert {e.event.actor for e in events} == {"cli:alice"}
    assert events[0].event.subject == "model:model-0@1.0.0"
    assert verify_chain(events) == []
    code, output = verify(database_url)
    assert code == 0 and "audit trail intact: 3 events" in output


def test_changed_row_is_detected(engine: Engine, database_url: str) -> None:
    record_three(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("update audit_event set actor = 'mallory' where seq = 2"))
    code, output = verify(database_url)
    assert code == 1
    assert "event 2: content does not match its hash: rewritten" in output


def test_deleted_row_is_detected(engine: Engine, database_url: str) -> None:
    record_three(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("delete from audit_event where seq = 2"))
    code, output = verify(database_url)
    assert code == 1
    assert "event 2 missing: deleted" in output


def test_inserted_row_is_detected(engine: Engine, database_url: str) -> None:
    record_three(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "insert into audit_event"
                " (seq, time, actor, action, subject, payload, prev_hash, hash)"
                " select 4, time, 'mallory', action, subject, payload, :prev, :hash"
                " from audit_event where seq = 1"
            ),
            {"prev": "ab" * 32, "hash": "cd" * 32},
        )
    code, output = verify(database_url)
    assert code == 1
    assert "event 4: does not follow the event before it" in output


def test_concurrent_writers_keep_one_unbroken_chain(engine: Engine) -> None:
    policy = make_policy()
    recorder = SqlDecisionRecorder(engine)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            recorder.record(make_manifest(policy, model=f"m{i}", data_bytes=f"d{i}"), policy)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = audit_trail(engine)
    assert [e.event.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert verify_chain(events) == []
