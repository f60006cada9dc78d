"""Webhooks: admins subscribe URLs to events and read the delivery log; auditors read.
Each handler calls one `Webhooks` function (governance/services/webhooks.py)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request
from litestar.params import Parameter

from governance.web.api.bodies import MAX_OFFSET, MAX_ROW_ID, Camel, Json
from governance.web.api.operations import delete, get, post
from governance.web.dependencies import governance_of, in_thread, principal_of
from governance.web.guards import permission

# An id the databases can compare (SQLite refuses a larger integer outright).
Id = Annotated[int, Parameter(ge=1, le=MAX_ROW_ID)]


class NewWebhook(Camel):
    url: str
    events: list[str]


class WebhookController(Controller):
    path = "/webhooks"
    tags = ("webhooks",)

    @get("/", opt=permission("webhooks", "read"))
    async def list_webhooks(self, request: Request) -> list[Json]:
        return await in_thread(governance_of(request).webhooks.list_subscriptions)

    @post(
        "/",
        opt=permission("webhooks", "manage"),
        status_code=201,
        summary="Subscribe a URL to events; the signing secret is in this response only",
    )
    async def subscribe_webhook(self, request: Request, data: NewWebhook) -> Json:
        webhooks = governance_of(request).webhooks
        return await in_thread(webhooks.subscribe, principal_of(request), data.url, data.events)

    @delete("/{subscription_id:int}", opt=permission("webhooks", "manage"))
    async def unsubscribe_webhook(self, request: Request, subscription_id: Id) -> None:
        webhooks = governance_of(request).webhooks
        await in_thread(webhooks.unsubscribe, principal_of(request), subscription_id)

    @get("/deliveries", opt=permission("webhooks", "read"))
    async def list_deliveries(
        self,
        request: Request,
        status: str | None = None,
        subscription: Annotated[int | None, Parameter(ge=1, le=MAX_ROW_ID)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Json:
        """The delivery log, newest first: each event sent to each URL, with its last attempt;
        the start of the receiver's answer only for those who manage webhooks."""
        governance = governance_of(request)
        answers = governance.access.allowed(principal_of(request).subjects, "webhooks", "manage")
        args = (status, subscription, limit, offset, answers)
        return await in_thread(governance.webhooks.list_deliveries, *args)

    @post(
        "/deliveries/{delivery_id:int}/retry",
        opt=permission("webhooks", "manage"),
        status_code=200,
        summary="Send a failed delivery again, with its attempts reset",
    )
    async def retry_delivery(self, request: Request, delivery_id: Id) -> Json:
        webhooks = governance_of(request).webhooks
        return await in_thread(webhooks.redeliver, principal_of(request), delivery_id)
