"""The checkpoint log on the in-memory unit of work: checkpoints recorded on the trail and
published to a file, when they are due, and the trail checked against them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.domain.checkpoint import Checkpoint, open_note, sign
from governance.domain.records import VerifiedChain
from governance.services import audit
from governance.services.checkpoints import LOG_NAME, CheckpointLog
from governance.signing import raw_public, verifier
from tests.unit.fakes import FakeUnitOfWork


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def grow(uow: FakeUnitOfWork, events: int) -> None:
    for number in range(events):
        uow.audit.append(actor="a", action="x.done", subject=f"s{number}", payload={})
    uow.commit()


def checkpoint_log(
    uow: FakeUnitOfWork, home: Path, clock: Clock | None = None, every_events: int = 100
) -> CheckpointLog:
    key = Ed25519PrivateKey.generate()
    public = raw_public(key.public_key())

    def opened(note: str) -> Checkpoint:
        return open_note(note, audit.ORIGIN, public, verifier(key.public_key()))

    return CheckpointLog(
        uow,
        opened,
        home,
        sign_note=lambda point: sign(point, audit.ORIGIN, public, key.sign),
        every_events=every_events,
        every_minutes=10,
        clock=clock or Clock(),
    )


def published(home: Path) -> list[dict[str, object]]:
    lines = (home / LOG_NAME).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_recorded_checkpoint_covers_its_own_event(tmp_path: Path) -> None:
    uow = FakeUnitOfWork()
    grow(uow, 3)
    log = checkpoint_log(uow, tmp_path)
    point = log.record()
    events = uow.audit.events()
    assert events[-1].event.action == audit.CHECKPOINT_ACTION and uow.commits == 2
    assert point == audit.checkpoint(events) and point.size == 4
    [line] = published(tmp_path)
    assert line["size"] == 4 and line["publishedAt"] == "2026-01-01T00:00:00+00:00"


def test_a_taken_seq_chains_the_checkpoint_event_again(tmp_path: Path) -> None:
    uow = FakeUnitOfWork()
    grow(uow, 2)
    uow.taken = 2
    point = checkpoint_log(uow, tmp_path).record()
    assert point.size == 3 and [e.event.seq for e in uow.audit.events()] == [1, 2, 3]


def test_a_checkpoint_is_due_after_n_events_or_m_minutes(tmp_path: Path) -> None:
    uow = FakeUnitOfWork()
    clock = Clock()
    log = checkpoint_log(uow, tmp_path, clock, every_events=3)
    assert log.tick() is None  # an empty trail
    grow(uow, 2)
    assert log.tick() is None  # two events, and no time passed
    grow(uow, 1)
    first = log.tick()
    assert first is not None and first.size == 4  # three events and the checkpoint's own
    assert log.tick() is None
    grow(uow, 1)
    clock.now += timedelta(minutes=10)
    second = log.tick()
    assert second is not None and second.size == 6
    assert [line["size"] for line in published(tmp_path)] == [4, 6]


def test_an_intact_trail_is_checked_and_a_checkpoint_of_it_published(tmp_path: Path) -> None:
    uow = FakeUnitOfWork()
    grow(uow, 3)
    result = checkpoint_log(uow, tmp_path).verify()
    assert result == VerifiedChain(
        intact=True,
        events=3,
        head=uow.audit.events()[-1].hash,
        problems=[],
        checkpoint_published=3,
    )
    assert [line["size"] for line in published(tmp_path)] == [3]
    assert uow.commits == 1  # the check itself writes nothing to the trail


@pytest.mark.parametrize("tamper", ["cut", "rewrite"])
def test_a_cut_or_rewritten_trail_is_caught_by_the_published_checkpoint(
    tmp_path: Path, tamper: str
) -> None:
    uow = FakeUnitOfWork()
    grow(uow, 4)
    log = checkpoint_log(uow, tmp_path)
    assert log.verify().checkpoint_published == 4
    if tamper == "cut":
        del uow.audit.committed[-1]
    else:  # the chain recomputed from a changed first event: only the checkpoint tells
        [first, *rest] = uow.audit.committed
        uow.audit.committed = []
        uow.audit.append(actor="forger", action="x.done", subject="s0", payload={})
        for chained in rest:
            event = chained.event
            uow.audit.append(
                actor=event.actor, action=event.action, subject=event.subject, payload={}
            )
        uow.commit()
        assert first.hash != uow.audit.events()[0].hash
    result = log.verify()
    assert not result.intact and result.checkpoint_published is None
    [problem] = result.problems
    assert ("deleted" if tamper == "cut" else "rewritten below it") in problem
