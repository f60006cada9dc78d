"""The audit trail as a hash chain: each event's hash covers its content and the hash of
the event before it, so a changed, deleted or inserted row breaks the chain.

The chain alone cannot tell a row appended by a forger who recomputed the hashes, nor a
trimmed tail: signed checkpoints over the Merkle tree (`governance.domain.merkle`) do that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

GENESIS = "0" * 64
# Concurrent writers each chain onto the head they read; all but one lose the seq and run
# again. Ten attempts outlast any burst the service sees without looping forever.
AUDIT_ATTEMPTS = 10


class AuditEvent(BaseModel):
    """One state change: who did what to which thing, with the details."""

    model_config = ConfigDict(frozen=True)

    seq: int
    time: datetime
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]

    def canonical(self) -> bytes:
        document = self.model_dump(mode="json")
        document["time"] = self.time.astimezone(UTC).isoformat(timespec="microseconds")
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()


class ChainedEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: AuditEvent
    prev_hash: str
    hash: str


def chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + event.canonical()).hexdigest()


def next_event(
    head: ChainedEvent | None,
    *,
    time: datetime,
    actor: str,
    action: str,
    subject: str,
    payload: dict[str, Any],
) -> ChainedEvent:
    """The event that follows `head` (None: the first event of the trail)."""
    event = AuditEvent(
        seq=head.event.seq + 1 if head else 1,
        time=time,
        actor=actor,
        action=action,
        subject=subject,
        payload=payload,
    )
    prev_hash = head.hash if head else GENESIS
    return ChainedEvent(event=event, prev_hash=prev_hash, hash=chain_hash(prev_hash, event))


def verify_chain(events: Sequence[ChainedEvent]) -> list[str]:
    """Every break in the chain, in words; an empty list means intact. `events` in seq order."""
    problems: list[str] = []
    expected_seq, expected_prev = 1, GENESIS
    for chained in events:
        seq = chained.event.seq
        if seq > expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}–{seq - 1}"
            problems.append(f"event {missing} missing: deleted")
        elif seq < expected_seq:
            problems.append(f"event {seq} out of order or duplicated")
        if chained.prev_hash != expected_prev:
            problems.append(
                f"event {seq}: does not follow the event before it "
                "(an event was inserted, deleted or rewritten before it)"
            )
        if chain_hash(chained.prev_hash, chained.event) != chained.hash:
            problems.append(f"event {seq}: content does not match its hash: rewritten")
        expected_seq, expected_prev = seq + 1, chained.hash
    return problems
