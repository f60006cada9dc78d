"""The webhook endpoints of the API: admins subscribe URLs to events and read the delivery
log; auditors read. Each handler calls one `Webhooks` function (governance/services)."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, delete, get, post
from litestar.params import Parameter

from governance.web.api import (
    MAX_OFFSET,
    MAX_ROW_ID,
    Camel,
    Json,
    _gov,
    _me,
    _thread,
    permission,
)

TAGS = ["webhooks"]
# An id the databases can compare (SQLite refuses a larger integer outright).
Id = Annotated[int, Parameter(ge=1, le=MAX_ROW_ID)]


class NewWebhook(Camel):
    url: str
    events: list[str]


@get("/webhooks", opt=permission("webhooks", "read"), tags=TAGS)
async def list_webhooks(request: Request) -> list[Json]:
    return await _thread(_gov(request).webhooks.list_subscriptions)


@post(
    "/webhooks",
    opt=permission("webhooks", "manage"),
    status_code=201,
    tags=TAGS,
    summary="Subscribe a URL to events; the signing secret is in this response only",
)
async def subscribe_webhook(request: Request, data: NewWebhook) -> Json:
    return await _thread(_gov(request).webhooks.subscribe, _me(request), data.url, data.events)


@delete("/webhooks/{subscription_id:int}", opt=permission("webhooks", "manage"), tags=TAGS)
async def unsubscribe_webhook(request: Request, subscription_id: Id) -> None:
    await _thread(_gov(request).webhooks.unsubscribe, _me(request), subscription_id)


@get("/webhooks/deliveries", opt=permission("webhooks", "read"), tags=TAGS)
async def list_deliveries(
    request: Request,
    status: str | None = None,
    subscription: Annotated[int | None, Parameter(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
) -> Json:
    """The delivery log, newest first: each event sent to each URL, with its last attempt;
    the start of the receiver's answer only for those who manage webhooks."""
    governance = _gov(request)
    answers = governance.access.allowed(_me(request).subjects, "webhooks", "manage")
    args = (status, subscription, limit, offset, answers)
    return await _thread(governance.webhooks.list_deliveries, *args)


@post(
    "/webhooks/deliveries/{delivery_id:int}/retry",
    opt=permission("webhooks", "manage"),
    status_code=200,
    tags=TAGS,
    summary="Send a failed delivery again, with its attempts reset",
)
async def retry_delivery(request: Request, delivery_id: Id) -> Json:
    return await _thread(_gov(request).webhooks.redeliver, _me(request), delivery_id)


WEBHOOK_HANDLERS = [
    list_webhooks,
    subscribe_webhook,
    unsubscribe_webhook,
    list_deliveries,
    retry_delivery,
]
