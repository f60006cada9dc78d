"""Signed checkpoints published outside the database, on both databases: cutting the last 1
or 5 events after a checkpoint was published, or rewriting an event below it with every
later hash recomputed, fails `verify` (the service, the CLI and the API) naming the
checkpoint and the missing events; a trail that only grew stays intact. The periodic task
publishes every N events or M minutes, to the home's checkpoint file, the witness directory,
a witness URL and the webhooks subscribed to `audit.checkpoint`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from typer.testing import CliRunner

from governance.bootstrap import Governance, open_governance
from governance.cli import app as cli_app
from governance.config import Settings
from governance.domain.audit import chain_hash
from governance.domain.checkpoint import Checkpoint, open_note
from governance.services import audit
from governance.services.checkpoints import LOG_NAME, CheckpointLog
from governance.services.outbound import Outbound
from governance.services.people import SYSTEM
from governance.signing import raw_public, verifier
from governance.store.repository import append_audit, audit_trail, in_transaction
from governance.web.app import create_app
from tests.homes import initialise_home
from tests.integration.test_webhooks import Clock, Receiver, start_receiver
from tests.service_fixtures import PASSWORD, fast_policies

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")
runner = CliRunner()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state, server = start_receiver()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def governance(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> Iterator[Governance]:
    home = tmp_path / "home"
    monkeypatch.setenv("GOVERNANCE_HOME", str(home))  # the CLI's too
    monkeypatch.setenv("GOVERNANCE_POLICIES", str(fast_policies(tmp_path / "policies")))
    monkeypatch.setenv("GOVERNANCE_CHECKPOINT_EVENTS", "5")
    monkeypatch.setenv("GOVERNANCE_CHECKPOINT_WITNESS", str(tmp_path / "witness"))
    monkeypatch.setenv("GOVERNANCE_WEBHOOK_ALLOW_HOSTS", receiver.netloc)
    monkeypatch.setenv("GOVERNANCE_WEBHOOK_ALLOW_HTTP", "1")
    settings = Settings.from_env(database_url, home)
    initialise_home(settings, PASSWORD)
    opened = open_governance(settings)
    yield opened
    opened.close()


def grow(governance: Governance, count: int) -> int:
    """`count` more events on the trail; returns the last seq."""
    for n in range(count):
        in_transaction(
            governance.engine,
            lambda session, n=n: append_audit(
                session, actor="dana", action="model.registered", subject=f"model:m{n}", payload={}
            ),
        )
    return audit_trail(governance.engine)[-1].event.seq


def opened(governance: Governance, note: str) -> Checkpoint:
    public = governance.signing_key.public_key()
    return open_note(note, audit.ORIGIN, raw_public(public), verifier(public))


def published(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / LOG_NAME).read_text().splitlines()]


def cli_verify(governance: Governance) -> tuple[int, str]:
    url = governance.settings.database_url
    result = runner.invoke(cli_app, ["audit", "verify", "--database", url])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize("cut", [1, 5])
def test_cutting_the_tail_after_a_published_checkpoint_fails_verify(
    governance: Governance, tmp_path: Path, cut: int
) -> None:
    token = governance.people.sign_in("admin", PASSWORD, 1).token  # an event, made first
    grow(governance, 8)
    size = governance.checkpoints.record().size
    assert audit_trail(governance.engine)[-1].event.action == "audit.checkpoint"
    assert size == audit_trail(governance.engine)[-1].event.seq  # it covers its own event
    with governance.engine.begin() as connection:
        connection.execute(sa.text("delete from audit_event where seq > :n"), {"n": size - cut})

    result = governance.checkpoints.verify()
    assert result.intact is False and result.checkpoint_published is None
    missing = f"event {size}" if cut == 1 else f"events {size - cut + 1}–{size}"
    home_file = governance.settings.home / "checkpoints" / LOG_NAME
    [in_home, at_witness] = result.problems  # the chain alone looks intact
    assert str(home_file) in in_home and str(tmp_path / "witness" / LOG_NAME) in at_witness
    for problem in (in_home, at_witness):
        assert f"covers {size} events, the database holds {size - cut}" in problem
        assert f"{cut} event(s) missing ({missing}): deleted" in problem

    code, output = cli_verify(governance)
    assert code == 1 and f"{cut} event(s) missing ({missing})" in output, output
    with TestClient(create_app(governance.settings, run_jobs=False)) as client:
        answer = client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json()["intact"] is False
    assert any(missing in problem for problem in answer.json()["problems"])


def test_a_rewrite_below_the_checkpoint_fails_verify(governance: Governance) -> None:
    """A forger who rewrites event 2 and recomputes every later hash keeps the chain intact;
    the published checkpoint's tree no longer matches."""
    grow(governance, 3)
    size = governance.checkpoints.record().size
    events = audit_trail(governance.engine)
    prev = events[0].hash
    with governance.engine.begin() as connection:
        for chained in events[1:]:
            event = chained.event
            if event.seq == 2:
                event = event.model_copy(update={"actor": "mallory"})
            digest = chain_hash(prev, event)
            connection.execute(
                sa.text(
                    "update audit_event set actor = :actor, prev_hash = :prev, hash = :hash"
                    " where seq = :seq"
                ),
                {"actor": event.actor, "prev": prev, "hash": digest, "seq": event.seq},
            )
            prev = digest
    result = governance.checkpoints.verify()
    assert result.intact is False
    assert len(result.problems) == 2  # the checkpoint file and the witness
    assert all(
        f"the first {size} events are not the ones the published checkpoint covers" in problem
        for problem in result.problems
    )
    code, output = cli_verify(governance)
    assert code == 1 and "rewritten below it" in output


def test_a_growing_trail_stays_intact_and_is_published_every_n_events(
    governance: Governance, tmp_path: Path
) -> None:
    log = governance.checkpoints
    before = log.record().size
    grow(governance, 4)
    assert log.tick() is None  # 4 < 5 events since the last one, 10 minutes not passed
    grow(governance, 1)
    point = log.tick()
    assert point is not None and point.size == before + 6  # 5 events and its own
    result = log.verify()
    assert result.intact is True and result.problems == []
    assert result.checkpoint_published == point.size  # the same size: not written again
    grow(governance, 2)
    assert log.verify().checkpoint_published == point.size + 2  # verify publishes too
    code, output = cli_verify(governance)
    assert code == 0 and f"{point.size + 2} events" in output, output

    home = published(governance.settings.home / "checkpoints")
    witness = published(tmp_path / "witness")
    assert [line["size"] for line in home] == [line["size"] for line in witness]
    assert home[-1]["size"] == point.size + 2
    latest = opened(governance, witness[-1]["note"])  # signed by the service key
    assert latest == audit.checkpoint(audit_trail(governance.engine))
    assert (governance.settings.home / "checkpoints").stat().st_mode & 0o777 == 0o700


def test_a_checkpoint_is_due_after_m_minutes_of_any_growth(governance: Governance) -> None:
    clock = Clock()
    public = governance.signing_key.public_key()
    log = CheckpointLog(
        governance.units,
        lambda note: open_note(note, audit.ORIGIN, raw_public(public), verifier(public)),
        governance.settings.home / "elsewhere",
        sign_note=governance.sign_checkpoint,
        every_events=1000,
        every_minutes=10,
        clock=clock,
    )
    assert log.tick() is None  # grew, but 10 minutes have not passed
    clock.now += timedelta(minutes=10)
    point = log.tick()
    assert point is not None and log.tick() is None  # nothing new since
    clock.now += timedelta(minutes=30)
    assert log.tick() is None  # time alone publishes nothing
    grow(governance, 1)
    assert log.tick() is not None and point.size < audit_trail(governance.engine)[-1].event.seq


def test_webhooks_and_a_witness_url_hear_of_each_checkpoint(
    governance: Governance, receiver: Receiver, tmp_path: Path
) -> None:
    subscribed = governance.webhooks.subscribe(SYSTEM, receiver.url, ["audit.checkpoint"])
    grow(governance, 2)
    point = governance.checkpoints.record()
    assert governance.webhooks.tick() == 1
    [request] = receiver.received
    body = json.loads(request["body"])
    assert request["headers"]["x-governance-event"] == body["event"] == "audit.checkpoint"
    assert body["data"]["size"] == body["seq"] == point.size
    assert opened(governance, body["data"]["note"]) == point
    assert subscribed.secret

    settings = governance.settings
    to_url = CheckpointLog(
        governance.units,
        lambda note: opened(governance, note),
        tmp_path / "home-2",
        sign_note=governance.sign_checkpoint,
        witness=receiver.url.replace("/hook", "/witness"),
        outbound=Outbound.of(settings.webhook_allow_hosts, settings.webhook_allow_http),
    )
    to_url.publish(point)
    witness = receiver.received[-1]
    assert witness["path"] == "/witness"
    assert opened(governance, witness["body"].decode()) == point
