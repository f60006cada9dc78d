"""Webhooks: admins subscribe URLs to events and read the delivery log; auditors read.
Each handler calls one `Webhooks` function (governance/services/webhooks.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

import msgspec
from litestar import Controller, Request
from litestar.params import Parameter

from governance.services.webhooks import Delivery, DeliveryLog
from governance.web.api.bodies import MAX_OFFSET, MAX_ROW_ID, Camel, CamelResponse
from governance.web.api.operations import delete, get, post
from governance.web.dependencies import as_caller, governance_of, in_thread, principal_of
from governance.web.guards import permission

# An id the databases can compare (SQLite refuses a larger integer outright).
Id = Annotated[int, Parameter(ge=1, le=MAX_ROW_ID)]


class NewWebhook(Camel):
    url: str
    events: list[str]


class Webhook(CamelResponse, frozen=True):
    """A subscription: the URL and the events it wants; unsubscribed ones stay listed."""

    id: int
    url: str
    events: list[str]
    active: bool
    created_by: str
    created_at: datetime


class NewWebhookAnswer(Webhook, frozen=True):
    """A new subscription with its signing secret, shown in this answer only."""

    secret: str


class WebhookDelivery(CamelResponse, frozen=True, kw_only=True):
    """One event sent to one URL, with its last attempt. `lastAnswer`, the start of the
    receiver's answer, is there only for those who manage webhooks."""

    id: int
    subscription_id: int
    url: str
    event: str
    seq: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_answer: str | msgspec.UnsetType | None = msgspec.UNSET  # kw_only: a default midway
    last_attempt_at: datetime | None
    last_duration_ms: int | None
    delivered_at: datetime | None
    created_at: datetime
    text: str | None

    @classmethod
    def from_record(cls, record: object) -> Self:
        assert isinstance(record, Delivery)
        fields = {name: getattr(record, name) for name in cls.__struct_fields__}
        if not record.shows_answer:
            fields["last_answer"] = msgspec.UNSET
        return cls(**fields)


class WebhookDeliveries(CamelResponse, frozen=True):
    """A page of the delivery log, newest first."""

    items: list[WebhookDelivery]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_record(cls, record: object) -> Self:
        assert isinstance(record, DeliveryLog)
        items = WebhookDelivery.from_records(record.items)
        return cls(items=items, total=record.total, limit=record.limit, offset=record.offset)


class WebhookController(Controller):
    path = "/webhooks"
    tags = ("webhooks",)

    @get("/", opt=permission("webhooks", "read"))
    async def list_webhooks(self, request: Request) -> list[Webhook]:
        return Webhook.from_records(
            await in_thread(governance_of(request).webhooks.list_subscriptions)
        )

    @post(
        "/",
        opt=permission("webhooks", "manage"),
        status_code=201,
        summary="Subscribe a URL to events; the signing secret is in this response only",
    )
    async def subscribe_webhook(self, request: Request, data: NewWebhook) -> NewWebhookAnswer:
        webhooks = governance_of(request).webhooks
        args = (principal_of(request), data.url, data.events)
        return NewWebhookAnswer.from_record(await in_thread(webhooks.subscribe, *args))

    @delete("/{subscription_id:int}", opt=permission("webhooks", "manage"))
    async def unsubscribe_webhook(self, request: Request, subscription_id: Id) -> None:
        webhooks = governance_of(request).webhooks
        await as_caller(request, webhooks.unsubscribe, subscription_id)

    @get("/deliveries", opt=permission("webhooks", "read"))
    async def list_deliveries(
        self,
        request: Request,
        status: str | None = None,
        subscription: Annotated[int | None, Parameter(ge=1, le=MAX_ROW_ID)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> WebhookDeliveries:
        """The delivery log, newest first: each event sent to each URL, with its last attempt;
        the start of the receiver's answer only for those who manage webhooks."""
        governance = governance_of(request)
        answers = governance.access.allowed(principal_of(request).subjects, "webhooks", "manage")
        args = (status, subscription, limit, offset, answers)
        return WebhookDeliveries.from_record(
            await in_thread(governance.webhooks.list_deliveries, *args)
        )

    @post(
        "/deliveries/{delivery_id:int}/retry",
        opt=permission("webhooks", "manage"),
        status_code=200,
        summary="Send a failed delivery again, with its attempts reset",
    )
    async def retry_delivery(self, request: Request, delivery_id: Id) -> WebhookDelivery:
        webhooks = governance_of(request).webhooks
        redelivered = await as_caller(request, webhooks.redeliver, delivery_id)
        return WebhookDelivery.from_record(redelivered)
