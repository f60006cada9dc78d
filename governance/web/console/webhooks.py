"""The webhooks admin page: the subscriptions, a form to add one, and the delivery log.

As with API tokens, a new subscription's signing secret is shown once, in the answer to
the form that made it: never in a redirect, a cookie or a log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from governance.services.webhooks import EVENTS, STATUSES
from governance.web.api.bodies import MAX_ROW_ID
from governance.web.console.admin import Checked, checked
from governance.web.console.base import (
    REFUSALS,
    CsrfOnly,
    Form,
    act,
    can,
    failure_message,
    page,
    redirect,
)
from governance.web.dependencies import as_caller, governance_of, in_thread, principal_of
from governance.web.guards import permission

WEBHOOKS = "/admin/webhooks"
LOG_SIZE = 100
# An id the databases can compare (SQLite refuses a larger integer outright).
Id = Annotated[int, Parameter(ge=1, le=MAX_ROW_ID)]  # a PostgreSQL integer
# What each event means, for the form's checkboxes.
EVENT_PURPOSES = {
    "request.submitted": "a candidate was submitted to the gate",
    "checks.finished": "its checks passed or blocked it",
    "signature.needed": "it waits for an approval or a waiver decision (names the roles)",
    "request.promoted": "it was promoted",
    "request.revoked": "it was revoked",
    "request.expired": "its approval expired",
    "monitoring.breach": "production monitoring found a breach",
    "registry.alias_restored": "a registry alias was put back as governance decided",
    "admission.integrity_alert": "admission found a record no signed decision backs (tampering?)",
    "audit.checkpoint": "a signed checkpoint of the audit trail (keep it: it proves the trail)",
}


@dataclass
class NewWebhookForm:
    url: str
    events: Checked = field(default_factory=list)
    csrf_token: str = ""


@get(WEBHOOKS, opt=permission("webhooks", "read"), name="console-admin-webhooks")
async def webhooks_page(
    request: Request, status: Annotated[str | None, Parameter(query="status")] = None
) -> Template:
    return await _webhooks(request, status if status in STATUSES else None)


@post(WEBHOOKS, opt=permission("webhooks", "manage"), name="console-admin-subscribe")
async def subscribe(request: Request, data: Annotated[NewWebhookForm, Form]) -> Template | Redirect:
    """The secret is in this answer only (201, not cached)."""
    webhooks = governance_of(request).webhooks
    try:
        created = await as_caller(request, webhooks.subscribe, data.url, checked(data.events))
    except REFUSALS as exc:
        return redirect(request, WEBHOOKS, failure_message(exc), kind="error")
    return await _webhooks(request, None, status_code=201, created=created)


@post(
    f"{WEBHOOKS}/{{subscription_id:int}}/unsubscribe",
    opt=permission("webhooks", "manage"),
    name="console-admin-unsubscribe",
)
async def unsubscribe(
    request: Request, subscription_id: Id, data: Annotated[CsrfOnly, Form]
) -> Redirect:
    webhooks = governance_of(request).webhooks
    done = f"Webhook {subscription_id} is unsubscribed: nothing more is sent to it."
    args = (principal_of(request), subscription_id)
    return await act(request, WEBHOOKS, webhooks.unsubscribe, args, done)


@post(
    f"{WEBHOOKS}/deliveries/{{delivery_id:int}}/retry",
    opt=permission("webhooks", "manage"),
    name="console-admin-retry-delivery",
)
async def retry(request: Request, delivery_id: Id, data: Annotated[CsrfOnly, Form]) -> Redirect:
    webhooks = governance_of(request).webhooks
    done = f"Delivery {delivery_id} is sent again within seconds, with its attempts reset."
    args = (principal_of(request), delivery_id)
    return await act(request, WEBHOOKS, webhooks.redeliver, args, done)


async def _webhooks(
    request: Request, status: str | None, status_code: int = 200, **context: Any
) -> Template:
    webhooks = governance_of(request).webhooks
    subscriptions = await in_thread(webhooks.list_subscriptions)
    answers = can(request, "webhooks", "manage")  # a receiver's answer: admins only
    log = await in_thread(webhooks.list_deliveries, status, None, LOG_SIZE, 0, answers)
    return page(
        request,
        "admin_webhooks.html.j2",
        status_code=status_code,
        subscriptions=subscriptions,
        deliveries=log,
        status=status,
        statuses=STATUSES,
        events=[(event, EVENT_PURPOSES[event]) for event in EVENTS],
        **context,
    )


HANDLERS = [webhooks_page, subscribe, unsubscribe, retry]
