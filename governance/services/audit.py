"""Checkpoints and proofs over the audit trail, and their offline check.

The Merkle tree's leaves are the chain's event hashes, so a proof about an event also
proves its content: the auditor recomputes the event's hash from what it says.

The hash chain alone cannot see its own tail cut off, nor a forger who rewrites an event and
recomputes every later hash. Checkpoints published outside the database
(governance/services/checkpoints.py) can: `against_published` checks the trail against them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from governance.domain import merkle
from governance.domain.audit import ChainedEvent, chain_hash, verify_chain
from governance.domain.checkpoint import Checkpoint, CheckpointError
from governance.domain.errors import InputError
from governance.domain.records import ChainCheck

ORIGIN = "governance audit log"
# The audit event that records a checkpoint's publication; the checkpoint covers it.
CHECKPOINT_ACTION = "audit.checkpoint"

SignNote = Callable[[Checkpoint], str]
# The trail checked against the checkpoints published outside the database: its problems.
Published = Callable[[Sequence[ChainedEvent]], list[str]]
OpenNote = Callable[[str], Checkpoint]


def chain_status(events: Sequence[ChainedEvent], published: Published | None = None) -> ChainCheck:
    """The audit trail checked, the one way every face checks it (`governance audit verify`,
    the API's verify and the console's chain check): its hash chain, and with `published`
    the trail against the checkpoints published outside the database. Every problem is
    named, in seq order of the chain first."""
    problems = verify_chain(list(events)) + (published(events) if published else [])
    return ChainCheck(
        intact=not problems,
        events=len(events),
        head=events[-1].hash if events else None,
        problems=problems,
    )


def _leaves(events: Sequence[ChainedEvent]) -> list[bytes]:
    return [merkle.leaf_hash(bytes.fromhex(chained.hash)) for chained in events]


def checkpoint(events: Sequence[ChainedEvent]) -> Checkpoint:
    return checkpoint_of([chained.hash for chained in events])


def checkpoint_of(hashes: Sequence[str]) -> Checkpoint:
    """The checkpoint of a trail whose event hashes (hex, in seq order) are `hashes`."""
    return Checkpoint(
        ORIGIN, len(hashes), merkle.root([merkle.leaf_hash(bytes.fromhex(h)) for h in hashes])
    )


def against_published(
    events: Sequence[ChainedEvent], published: Checkpoint, where: str
) -> list[str]:
    """What is wrong with the trail in the database given a checkpoint of it that was
    published `where`: events missing (fewer than it covers), or a different tree at its
    size (the Merkle consistency proof from it to the trail now fails)."""
    if published.size > len(events):
        present = {chained.event.seq for chained in events}
        missing = [seq for seq in range(1, published.size + 1) if seq not in present]
        return [
            f"{where}: the published checkpoint covers {published.size} events, the database "
            f"holds {len(events)}: {len(missing)} event(s) missing ({_ranges(missing)}): deleted"
        ]
    leaves = _leaves(events)
    proof = merkle.consistency_proof(published.size, leaves) if published.size else []
    if published.size and not merkle.verify_consistency(
        published.size, len(leaves), published.root, merkle.root(leaves), proof
    ):
        return [
            f"{where}: the first {published.size} events are not the ones the published "
            "checkpoint covers: the trail was rewritten below it"
        ]
    return []


def _ranges(seqs: Sequence[int]) -> str:
    """`events 3, 7–9` from [3, 7, 8, 9]."""
    spans: list[list[int]] = []
    for seq in seqs:
        if spans and spans[-1][1] == seq - 1:
            spans[-1][1] = seq
        else:
            spans.append([seq, seq])
    text = ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans)
    return f"event{'s' if len(seqs) > 1 else ''} {text}"


def prove(
    events: Sequence[ChainedEvent],
    sign_note: SignNote,
    since: Checkpoint | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """A signed checkpoint of the log now, with a consistency proof from the checkpoint an
    auditor kept and an inclusion proof of one event, as a JSON-able bundle."""
    leaves = _leaves(events)
    bundle: dict[str, Any] = {"checkpoint": sign_note(checkpoint(events))}
    if since is not None:
        if not 0 < since.size <= len(leaves):
            raise InputError(
                "--since", f"names a log of {since.size} events; this one has {len(leaves)}",
                "give a checkpoint of this log",
            )  # fmt: skip
        proof = merkle.consistency_proof(since.size, leaves)
        bundle["consistency"] = {"old_size": since.size, "proof": [p.hex() for p in proof]}
    if seq is not None:
        if not 1 <= seq <= len(events):
            raise InputError("--event", f"no event {seq} (the log has {len(events)})", "give a seq")
        chained = events[seq - 1]
        bundle["event"] = chained.model_dump(mode="json")
        bundle["inclusion"] = [p.hex() for p in merkle.inclusion_proof(seq - 1, leaves)]
    return bundle


def check(bundle: dict[str, Any], open_note: OpenNote, since: Checkpoint | None) -> list[str]:
    """Everything wrong with a proof bundle, offline; an empty list means it holds."""
    try:
        now = open_note(str(bundle["checkpoint"]))
    except (CheckpointError, KeyError) as exc:
        return [f"checkpoint: {exc}"]
    problems = []
    if since is not None:
        consistency = bundle.get("consistency") or {}
        proof = [bytes.fromhex(p) for p in consistency.get("proof", [])]
        if consistency.get("old_size") != since.size or not merkle.verify_consistency(
            since.size, now.size, since.root, now.root, proof
        ):
            problems.append(
                f"consistency: the log of {now.size} events does not extend the kept "
                f"checkpoint of {since.size}: it was rewritten"
            )
    if "event" in bundle:
        chained = ChainedEvent.model_validate(bundle["event"])
        seq = chained.event.seq
        if chain_hash(chained.prev_hash, chained.event) != chained.hash:
            problems.append(f"event {seq}: its content does not match its hash")
        proof = [bytes.fromhex(p) for p in bundle.get("inclusion", [])]
        leaf = merkle.leaf_hash(bytes.fromhex(chained.hash))
        if not merkle.verify_inclusion(leaf, seq - 1, now.size, proof, now.root):
            problems.append(f"event {seq}: not in the signed log of {now.size} events")
    return problems
