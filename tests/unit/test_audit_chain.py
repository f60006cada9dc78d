"""The audit hash chain, pure: intact, rewritten, deleted and inserted events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governance.domain.audit import ChainedEvent, chain_hash, next_event, verify_chain

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def trail(n: int) -> list[ChainedEvent]:
    events: list[ChainedEvent] = []
    for i in range(n):
        events.append(
            next_event(
                events[-1] if events else None,
                time=T0 + timedelta(seconds=i),
                actor="alice",
                action="gate.decision_recorded",
                subject=f"model:m@{i}",
                payload={"verdict": "pass", "i": i},
            )
        )
    return events


def test_intact_trail() -> None:
    events = trail(5)
    assert [e.event.seq for e in events] == [1, 2, 3, 4, 5]
    assert verify_chain(events) == []


def test_rewritten_event_is_named() -> None:
    events = trail(4)
    forged = events[1].event.model_copy(update={"payload": {"verdict": "blocked", "i": 1}})
    events[1] = events[1].model_copy(update={"event": forged})
    assert verify_chain(events) == ["event 2: content does not match its hash: rewritten"]


def test_deleted_event_is_named() -> None:
    events = trail(4)
    del events[1]
    assert verify_chain(events) == [
        "event 2 missing: deleted",
        "event 3: does not follow the event before it "
        "(an event was inserted, deleted or rewritten before it)",
    ]


def test_inserted_event_is_named() -> None:
    events = trail(3)
    intruder = events[1].event.model_copy(update={"seq": 4, "actor": "mallory"})
    events.append(
        ChainedEvent(event=intruder, prev_hash="ab" * 32, hash=chain_hash("ab" * 32, intruder))
    )
    assert verify_chain(events) == [
        "event 4: does not follow the event before it "
        "(an event was inserted, deleted or rewritten before it)"
    ]


def test_rewriting_and_rehashing_one_event_breaks_the_next() -> None:
    events = trail(3)
    forged = events[0].event.model_copy(update={"actor": "mallory"})
    events[0] = ChainedEvent(
        event=forged, prev_hash=events[0].prev_hash, hash=chain_hash(events[0].prev_hash, forged)
    )
    assert verify_chain(events) == [
        "event 2: does not follow the event before it "
        "(an event was inserted, deleted or rewritten before it)"
    ]
