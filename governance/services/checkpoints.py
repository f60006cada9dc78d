"""Signed checkpoints of the audit trail, published outside the database, and the trail
checked against them.

Whoever can write the database can cut the trail's tail or rewrite it and recompute every
hash after the change: the chain then looks intact. A checkpoint (size and Merkle root,
signed with the service key) kept somewhere the database's writer cannot reach catches both:
the database must hold at least as many events, and the first `size` of them must be the
same tree (a consistency proof). So the service publishes one every N events or M minutes
(the periodic task `tick`) and at each `verify`:

- appended to `$GOVERNANCE_HOME/checkpoints/published.jsonl` (one JSON line per signed note,
  never rewritten);
- to a witness, when configured: the same file in a directory someone else keeps (another
  host's mount), or POSTed as text to a URL;
- to the webhooks subscribed to `audit.checkpoint`: the periodic checkpoint is recorded on
  the trail as an `audit.checkpoint` event, which the checkpoint itself covers, so cutting
  even that last event is caught.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from governance.domain.audit import ChainedEvent
from governance.domain.checkpoint import Checkpoint, CheckpointError
from governance.domain.errors import InputError
from governance.domain.records import VerifiedChain
from governance.services.audit import (
    CHECKPOINT_ACTION,
    OpenNote,
    SignNote,
    against_published,
    chain_status,
    checkpoint,
    checkpoint_of,
)
from governance.services.outbound import Outbound
from governance.services.ports import UnitOfWork, UnitOfWorkFactory
from governance.services.unit_of_work import run_in_unit_of_work

log = logging.getLogger("governance.checkpoints")

LOG_NAME = "published.jsonl"
EVERY_EVENTS = 100
EVERY_MINUTES = 10.0
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Published:
    """The newest checkpoint found in one place, and where exactly (for the messages)."""

    where: str
    checkpoint: Checkpoint


class CheckpointLog:
    def __init__(
        self,
        units: UnitOfWorkFactory,
        open_note: OpenNote,
        directory: Path,
        sign_note: SignNote | None = None,
        witness: str | None = None,
        outbound: Outbound | None = None,
        every_events: int = EVERY_EVENTS,
        every_minutes: float = EVERY_MINUTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._units = units
        self._open = open_note
        self._sign = sign_note  # None: this process only checks (no private key)
        self._files = [directory / LOG_NAME]
        self._witness_url = witness if witness and "://" in witness else None
        if witness and not self._witness_url:
            self._files.append(Path(witness) / LOG_NAME)
        self._outbound = outbound or Outbound()
        self._every_events = every_events
        self._every = timedelta(minutes=every_minutes)
        self._clock = clock
        self._last: tuple[int, datetime] | None = None  # size and time of the last published

    # --- publishing ----------------------------------------------------------------------

    def tick(self) -> Checkpoint | None:
        """The periodic task: when the trail grew by `every_events` since the last published
        checkpoint, or grew at all and `every_minutes` passed, record and publish one."""
        with self._units(read_only=True) as uow:
            head = uow.audit.head_seq()
        size, at = self._last_published()
        if head <= size:
            return None
        if head - size < self._every_events and self._clock() - at < self._every:
            return None
        return self.record()

    def record(self) -> Checkpoint:
        """An `audit.checkpoint` event on the trail, then the checkpoint that covers it
        published (the webhooks hear of it from the event)."""

        def work(uow: UnitOfWork) -> int:
            chained = uow.audit.append(
                actor="governance",
                action=CHECKPOINT_ACTION,
                subject="audit",
                payload={"covers": "the trail up to and including this event"},
            )
            return chained.event.seq

        seq = run_in_unit_of_work(self._units, work)
        hashes = [c.hash for c in self._events() if c.event.seq <= seq]
        return self.publish(checkpoint_of(hashes))

    def publish(self, point: Checkpoint) -> Checkpoint:
        """Append the signed note to the checkpoint file and the witness. The home file must
        take it (an error propagates); a witness that fails is logged and tried next time."""
        if self._sign is None:
            raise InputError("signing key", "is not available", "publish from the service")
        note = self._sign(point)
        line = json.dumps(
            {"publishedAt": self._clock().isoformat(), "size": point.size, "note": note}
        )
        home, *witnesses = self._files
        _append_line(home, line)
        for path in witnesses:
            try:
                _append_line(path, line)
            except OSError as exc:
                log.error("checkpoint witness %s: cannot append (%s)", path, exc)
        if self._witness_url:
            self._post(note)
        self._last = (point.size, self._clock())
        return point

    def _post(self, note: str) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "governance/1"}
        try:
            with httpx.Client(timeout=TIMEOUT_SECONDS, trust_env=False) as client:
                answer = self._outbound.post(client, str(self._witness_url), note.encode(), headers)
            answer.raise_for_status()
        except (InputError, OSError, httpx.HTTPError) as exc:
            log.error("checkpoint witness %s: not published (%s)", self._witness_url, exc)

    def _last_published(self) -> tuple[int, datetime]:
        if self._last is None:
            found = [p.checkpoint.size for p in self._newest(self._files[:1])[0]]
            self._last = (max(found, default=0), self._clock())
        return self._last

    # --- checking ------------------------------------------------------------------------

    def verify(self) -> VerifiedChain:
        """The whole trail checked: its hash chain, and against the newest checkpoint in the
        checkpoint file and the witness directory. When intact (and this process holds the
        key), a checkpoint of what was checked is published, so the next check starts here."""
        events = self._events()
        status = chain_status(events, self.problems)
        published = None
        if status.intact and events and self._sign is not None:
            if self._last_published()[0] != len(events):
                self.publish(checkpoint(events))
            published = len(events)
        return VerifiedChain(**vars(status), checkpoint_published=published)

    def _events(self) -> list[ChainedEvent]:
        with self._units(read_only=True) as uow:
            return uow.audit.events()

    def problems(self, events: Sequence[ChainedEvent]) -> list[str]:
        newest, problems = self._newest(self._files)
        for published in newest:
            problems += against_published(events, published.checkpoint, published.where)
        return problems

    def _newest(self, files: list[Path]) -> tuple[list[Published], list[str]]:
        """The largest checkpoint in each file, and every line that is no signed checkpoint."""
        newest: list[Published] = []
        problems: list[str] = []
        for path in files:
            best: Published | None = None
            for number, line in enumerate(_lines(path), start=1):
                kind = "checkpoint file" if path == self._files[0] else "witness file"
                where = f"{kind} {path} line {number}"
                try:
                    record = json.loads(line)
                    point = self._open(str(record["note"]))
                except (ValueError, KeyError, TypeError, CheckpointError) as exc:
                    problems.append(f"{where}: not a checkpoint signed by the service ({exc})")
                    continue
                if best is None or point.size > best.checkpoint.size:
                    at = record.get("publishedAt", "?")
                    best = Published(f"{where} (published {at})", point)
            if best is not None:
                newest.append(best)
        return newest, problems


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()]


def _append_line(path: Path, line: str) -> None:
    """One line appended (O_APPEND: concurrent writers never interleave a line), the
    directory and the file readable by the service's user only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as stream:
        stream.write(line + "\n")
