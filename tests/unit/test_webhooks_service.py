"""Outgoing webhooks on the in-memory unit of work: a subscription with its event, the
fan-out of new audit events into deliveries, sending with retries, and the refusals."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from governance.auth.secrets import DigestKey
from governance.domain.errors import ConflictError, InputError, NotFoundError
from governance.domain.records import FinishedChecks
from governance.services.people import SYSTEM
from governance.services.webhooks import (
    CURSOR,
    SECRET_PURPOSE,
    Webhooks,
    backoff,
    sign_body,
)
from tests.unit import samples
from tests.unit.fakes import FakeUnitOfWork

KEY = DigestKey(b"w" * 32)
URL = "https://hooks.example/in"


@dataclass
class Receiver:
    """The outbound side: every URL allowed, every POST answered with `status`."""

    status: int = 200
    posts: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def checked(self, url: str) -> Any:
        return SimpleNamespace(url=url)

    def post(
        self, client: httpx.Client, url: str, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        self.posts.append((url, content, headers))
        return httpx.Response(self.status, text="thanks\x07")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def webhooks(uow: FakeUnitOfWork, clock: Clock, receiver: Receiver) -> Webhooks:
    return Webhooks(uow, KEY, clock=clock, outbound=receiver)  # type: ignore[arg-type]


def happened(uow: FakeUnitOfWork, action: str, subject: str, **payload: Any) -> None:
    """An event another use case appended and committed."""
    with uow:
        uow.audit.append(actor="maria", action=action, subject=subject, payload=payload)
        uow.commit()


def test_a_subscription_is_recorded_with_its_secret_shown_once(
    webhooks: Webhooks, uow: FakeUnitOfWork
) -> None:
    happened(uow, "request.submitted", "model:income@1", request_id="r0")
    made = webhooks.subscribe(SYSTEM, URL, ["request.promoted", "request.submitted"])
    assert list(made.events) == ["request.submitted", "request.promoted"]  # in EVENTS order
    assert made.secret == KEY.derive(SECRET_PURPOSE, uow.webhook_subscriptions.stored[1].salt)
    event = uow.audit.committed[-1].event
    assert (event.action, event.subject) == ("webhook.subscribed", "webhook:1")
    assert event.payload == {"url": URL, "events": list(made.events)}
    assert uow.cursors.position(CURSOR) == 2  # fan-out starts here: the history is nobody's
    [listed] = webhooks.list_subscriptions()
    assert not hasattr(listed, "secret") and listed.active
    with pytest.raises(InputError):
        webhooks.subscribe(SYSTEM, URL, ["no.such.event"])


def test_new_events_fan_out_to_the_subscriptions_that_want_them(
    webhooks: Webhooks, uow: FakeUnitOfWork
) -> None:
    assert webhooks.fan_out() == 0  # nobody subscribed: the cursor starts at the head
    webhooks.subscribe(SYSTEM, URL, ["request.submitted", "signature.needed", "checks.finished"])
    webhooks.subscribe(SYSTEM, URL + "2", ["request.promoted"])
    uow.webhook_trail.policies["r1"] = samples.stored(samples.policy()).document
    uow.webhook_trail.checks[("income", "1", "d1")] = FinishedChecks("r1", "pass", "1 passed")
    happened(uow, "request.submitted", "model:income@1", request_id="r1", target="production")
    happened(uow, "gate.decision_recorded", "model:income@1", decision_id="d1")
    happened(uow, "request.checks_passed", "model:income@1", request_id="r1")
    happened(uow, "gate.decision_recorded", "model:income@9", decision_id="ci")  # no request

    assert webhooks.fan_out() == 3
    made = sorted(uow.webhook_deliveries.stored.values(), key=lambda d: d.event_seq)
    assert [(d.subscription_id, d.event) for d in made] == [
        (1, "request.submitted"),
        (1, "checks.finished"),
        (1, "signature.needed"),
    ]
    assert made[0].payload["text"] == "maria submitted income 1 for production"
    assert made[1].payload["data"]["summary"] == "1 passed"
    assert made[2].payload["data"] == {
        "request_id": "r1",
        "roles": ["model_risk_officer"],
        "remaining": 1,
    }
    assert uow.cursors.position(CURSOR) == uow.audit.head_seq()
    assert webhooks.fan_out() == 0


def test_a_due_delivery_is_signed_sent_and_recorded(
    webhooks: Webhooks, uow: FakeUnitOfWork, receiver: Receiver, clock: Clock
) -> None:
    made = webhooks.subscribe(SYSTEM, URL, ["request.submitted"])
    happened(uow, "request.submitted", "model:income@1", request_id="r1")
    assert webhooks.tick() == 1
    [(url, body, headers)] = receiver.posts
    assert url == URL and headers["X-Governance-Event"] == "request.submitted"
    timestamp = int(headers["X-Governance-Timestamp"])
    assert headers["X-Governance-Signature"] == sign_body(made.secret, timestamp, body)
    [delivery] = uow.webhook_deliveries.stored.values()
    assert (delivery.status, delivery.delivered_at, delivery.last_status_code) == (
        "delivered",
        clock.now,
        200,
    )
    log = webhooks.list_deliveries(answers=True)
    assert log.total == 1 and log.items[0].last_answer == "thanks"
    [hidden] = webhooks.list_deliveries().items
    assert not hidden.shows_answer and hidden.last_answer is None
    assert webhooks.list_deliveries(status="pending").total == 0
    with pytest.raises(InputError):
        webhooks.list_deliveries(status="lost")
    with pytest.raises(ConflictError):
        webhooks.redeliver(SYSTEM, delivery.id)  # only a failed one


def test_a_refused_delivery_waits_fails_and_is_redelivered(
    webhooks: Webhooks, uow: FakeUnitOfWork, receiver: Receiver, clock: Clock
) -> None:
    receiver.status = 500
    webhooks.subscribe(SYSTEM, URL, ["request.submitted"])
    happened(uow, "request.submitted", "model:income@1", request_id="r1")
    assert webhooks.tick() == 1
    [delivery] = uow.webhook_deliveries.stored.values()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 500")
    assert delivery.next_attempt_at == clock.now + backoff(1)
    assert webhooks.tick() == 0  # not due yet
    clock.now += timedelta(days=1)
    with uow:  # as if its attempts were spent
        uow.webhook_deliveries.save(replace(delivery, status="failed", attempts=8))
        uow.commit()
    again = webhooks.redeliver(SYSTEM, delivery.id)
    assert again.status == "pending" and again.attempts == 0
    assert uow.audit.committed[-1].event.action == "webhook.redelivery_requested"
    with pytest.raises(NotFoundError):
        webhooks.redeliver(SYSTEM, 99)


def test_an_unsubscribed_url_hears_nothing_more(
    webhooks: Webhooks, uow: FakeUnitOfWork, receiver: Receiver
) -> None:
    webhooks.subscribe(SYSTEM, URL, ["request.submitted"])
    happened(uow, "request.submitted", "model:income@1", request_id="r1")
    webhooks.fan_out()
    gone = webhooks.unsubscribe(SYSTEM, 1)
    assert not gone.active
    assert uow.audit.committed[-1].event.payload == {"url": URL}
    assert webhooks.deliver_due() == 0 and receiver.posts == []
    [delivery] = uow.webhook_deliveries.stored.values()
    assert delivery.status == "failed"
    assert delivery.last_error == "unsubscribed before it was delivered"
    with pytest.raises(ConflictError):
        webhooks.unsubscribe(SYSTEM, 1)
    with pytest.raises(ConflictError):
        webhooks.redeliver(SYSTEM, delivery.id)
    with pytest.raises(NotFoundError):
        webhooks.unsubscribe(SYSTEM, 2)
