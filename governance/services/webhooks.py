"""Outgoing webhooks: URLs that subscribed to events hear of them as signed JSON POSTs.

Events are read from the audit trail, which every state change appends to in its own
transaction, so nothing a webhook reports can be lost or invented. `fan_out` turns each new
audit event into one delivery per interested subscription and moves a cursor, in one
transaction; `deliver_due` sends what is due, retrying with backoff. A subscription hears
only of the events appended after its own `webhook.subscribed` event: never the history.

Each subscription's HMAC secret is derived from the service's digest key and the row's
salt when a delivery is signed; it is shown once, when the subscription is made.

URLs go through `Outbound` (governance/services/outbound.py) when subscribed and before each
delivery, so an admin's URL cannot make the service reach its own loopback, the private
network or a metadata endpoint. The delivery log keeps each attempt's status and timing for
everyone who may read it; the start of a receiver's answer, sanitised, for admins only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from governance.domain.audit import AuditEvent
from governance.domain.errors import ConflictError, InputError, NotFoundError
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.records import Subscription, WebhookDeliveryRecord
from governance.domain.workflow import Signature, quorum_reached
from governance.services.audit import CHECKPOINT_ACTION, SignNote, checkpoint_of
from governance.services.outbound import Outbound
from governance.services.people import Principal
from governance.services.ports import KeyedSecrets, UnitOfWork, UnitOfWorkFactory, WebhookTrail
from governance.services.unit_of_work import run_in_unit_of_work

REQUEST_SUBMITTED = "request.submitted"
CHECKS_FINISHED = "checks.finished"
SIGNATURE_NEEDED = "signature.needed"
REQUEST_PROMOTED = "request.promoted"
REQUEST_REVOKED = "request.revoked"
REQUEST_EXPIRED = "request.expired"
MONITORING_BREACH = "monitoring.breach"
REGISTRY_ALIAS_RESTORED = "registry.alias_restored"
ADMISSION_INTEGRITY_ALERT = "admission.integrity_alert"
AUDIT_CHECKPOINT = "audit.checkpoint"
EVENTS = (
    REQUEST_SUBMITTED,
    CHECKS_FINISHED,
    SIGNATURE_NEEDED,
    REQUEST_PROMOTED,
    REQUEST_REVOKED,
    REQUEST_EXPIRED,
    MONITORING_BREACH,
    REGISTRY_ALIAS_RESTORED,
    ADMISSION_INTEGRITY_ALERT,
    AUDIT_CHECKPOINT,
)
# Audit actions that are one event each, under the event's name.
ONE_TO_ONE = {
    "request.submitted": REQUEST_SUBMITTED,
    "request.promote": REQUEST_PROMOTED,
    "request.revoke": REQUEST_REVOKED,
    "request.expire": REQUEST_EXPIRED,
    "monitoring.breach": MONITORING_BREACH,
    "registry.alias_restored": REGISTRY_ALIAS_RESTORED,
    "admission.integrity_alert": ADMISSION_INTEGRITY_ALERT,
}
STATUSES = ("pending", "delivered", "failed")

CURSOR = "webhooks"
SECRET_PURPOSE = "webhook"
BATCH = 500
DUE_BATCH = 100
TIMEOUT_SECONDS = 10.0
# A claimed delivery is not due again for this long: time to send it and record the answer.
# A process that dies holding it lets the claim lapse, and the delivery is sent again.
CLAIM_SECONDS = 60
MAX_ATTEMPTS = 8
FIRST_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600
MAX_ERROR_LENGTH = 500
ANSWER_EXCERPT = 64  # printable characters of a receiver's answer kept, for admins


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failure: 30 s, doubled each time, at most an hour."""
    return timedelta(seconds=min(FIRST_BACKOFF_SECONDS * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))


def sign_body(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Governance-Signature` value: HMAC-SHA256 over `{timestamp}.{body}`. The
    timestamp is signed too, so a receiver can refuse an old delivery replayed."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _utcnow() -> datetime:
    """The default clock: aware UTC, as the stored times are (tests pass their own)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewSubscription(Subscription):
    """A subscription just made, with its signing secret: the only time the secret is told
    (it is derived again when a delivery is signed, never stored)."""

    secret: str

    @classmethod
    def of(cls, row: Subscription, secret: str) -> NewSubscription:
        return cls(**{f.name: getattr(row, f.name) for f in fields(Subscription)}, secret=secret)


@dataclass(frozen=True)
class Delivery:
    """One line of the delivery log: the delivery with its subscription's URL. The start
    of the receiver's answer is there only when `shows_answer` (for those who manage
    webhooks: an auditor must not read what an internal service said)."""

    id: int
    subscription_id: int
    url: str
    event: str
    seq: int
    status: str
    attempts: int
    next_attempt_at: datetime | None  # only while pending
    last_status_code: int | None
    last_error: str | None
    shows_answer: bool
    last_answer: str | None  # None as well when not shown
    last_attempt_at: datetime | None
    last_duration_ms: int | None
    delivered_at: datetime | None
    created_at: datetime
    text: str | None  # what the event says, as people read it

    @classmethod
    def of(cls, row: WebhookDeliveryRecord, url: str, answers: bool = False) -> Delivery:
        return cls(
            id=row.id,
            subscription_id=row.subscription_id,
            url=url,
            event=row.event,
            seq=row.event_seq,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            shows_answer=answers,
            last_answer=row.last_answer if answers else None,
            last_attempt_at=row.last_attempt_at,
            last_duration_ms=row.last_duration_ms,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
            text=row.payload.get("text"),
        )


@dataclass(frozen=True)
class DeliveryLog:
    """A page of the delivery log, newest first, with the total for pagination."""

    items: tuple[Delivery, ...]
    total: int
    limit: int
    offset: int


class Webhooks:
    def __init__(
        self,
        units: UnitOfWorkFactory,
        digest_key: KeyedSecrets,
        clock: Callable[[], datetime] = _utcnow,
        timeout_seconds: float = TIMEOUT_SECONDS,
        outbound: Outbound | None = None,
        sign_note: SignNote | None = None,
    ) -> None:
        self._units = units
        self._key = digest_key
        self._clock = clock
        self._timeout = timeout_seconds
        self._outbound = outbound or Outbound()
        # signs the `audit.checkpoint` deliveries' notes; without it they carry size and root
        self._sign_note = sign_note
        # subscription id → the seq of its `webhook.subscribed` event (never changes)
        self._starts: dict[int, int] = {}

    # --- subscriptions -------------------------------------------------------------------

    def subscribe(self, actor: Principal, url: str, events: list[str]) -> NewSubscription:
        """A new subscription; its secret is in this answer only."""
        url = self._outbound.checked(url).url
        wanted = _checked_events(events)
        salt = secrets.token_hex(16)

        def work(uow: UnitOfWork) -> NewSubscription:
            row = uow.webhook_subscriptions.add(
                url=url, events=wanted, salt=salt, created_by=actor.name, created_at=self._clock()
            )
            uow.audit.append(
                actor=actor.name,
                action="webhook.subscribed",
                subject=_subject(row.id),
                payload={"url": url, "events": wanted},
            )
            # Fan-out starts from here if it never ran, so this subscription misses nothing.
            uow.webhook_trail.start_cursor(CURSOR, uow.audit.head_seq())
            return NewSubscription.of(row, self._secret(row))

        return run_in_unit_of_work(self._units, work)

    def unsubscribe(self, actor: Principal, subscription_id: int) -> Subscription:
        """Stop sending to the URL; what was sent stays in the delivery log."""

        def work(uow: UnitOfWork) -> Subscription:
            row = uow.webhook_subscriptions.locked(subscription_id)
            if row is None:
                raise NotFoundError(
                    f"webhook {subscription_id}", "list the webhooks to find its id"
                )
            if not row.active:
                raise ConflictError(
                    f"webhook {subscription_id} is unsubscribed already", "inactive"
                )
            row = uow.webhook_subscriptions.deactivate(subscription_id)
            uow.audit.append(
                actor=actor.name,
                action="webhook.unsubscribed",
                subject=_subject(subscription_id),
                payload={"url": row.url},
            )
            return row

        return run_in_unit_of_work(self._units, work)

    def list_subscriptions(self) -> list[Subscription]:
        with self._units(read_only=True) as uow:
            return list(uow.webhook_subscriptions.all())

    # --- deliveries ----------------------------------------------------------------------

    def tick(self) -> int:
        """What the background task runs: new events to deliveries, then send what is due.
        Returns how many deliveries were attempted."""
        self.fan_out()
        return self.deliver_due()

    def fan_out(self) -> int:
        """One delivery per new audit event and subscription that wants it; returns how many
        were made. The cursor row is locked while a batch is read and moved, so two
        processes never make the same delivery (the unique key would refuse it anyway)."""
        if not self._behind():
            return 0
        made = 0
        while True:
            created, more = run_in_unit_of_work(self._units, self._fan_out_batch)
            made += created
            if not more:
                return made

    def _behind(self) -> bool:
        """Whether the trail grew past the cursor: read without the write lock, which the
        fan-out then takes only when there is something to read."""
        with self._units(read_only=True) as uow:
            cursor = uow.webhook_trail.cursor(CURSOR)
            return cursor is None or uow.audit.head_seq() > cursor

    def _fan_out_batch(self, uow: UnitOfWork) -> tuple[int, bool]:
        trail = uow.webhook_trail
        cursor = trail.locked_cursor(CURSOR)
        if cursor is None:  # nobody ever subscribed: nothing before now is anyone's
            trail.start_cursor(CURSOR, uow.audit.head_seq())
            return 0, False
        chained = trail.events_after(cursor, BATCH)
        if not chained:
            return 0, False
        rows = [c.event for c in chained]
        subscriptions = self._active(uow)
        created = 0
        now = self._clock()
        for row in rows:
            for event, data, text in self._events_of(trail, row):
                for subscription in subscriptions:
                    if event in subscription.events and row.seq > self._starts[subscription.id]:
                        uow.webhook_deliveries.add(
                            subscription_id=subscription.id,
                            event_seq=row.seq,
                            event=event,
                            payload=_body(row, event, data, text),
                            now=now,
                        )
                        created += 1
        uow.cursors.advance(CURSOR, rows[-1].seq)
        return created, len(rows) == BATCH

    def _events_of(
        self, trail: WebhookTrail, row: AuditEvent
    ) -> list[tuple[str, dict[str, Any], str]]:
        if row.action != CHECKPOINT_ACTION:
            return events_of(trail, row)
        # The checkpoint covers the trail up to and including the event that records it.
        checkpoint = checkpoint_of(trail.hashes_through(row.seq))
        root = base64.b64encode(checkpoint.root).decode()
        data: dict[str, Any] = {"size": checkpoint.size, "root": root}
        if self._sign_note is not None:
            data["note"] = self._sign_note(checkpoint)
        text = f"Audit trail checkpoint: {checkpoint.size} events, root {root}"
        return [(AUDIT_CHECKPOINT, data, text)]

    def _active(self, uow: UnitOfWork) -> list[Subscription]:
        subscriptions = uow.webhook_subscriptions.active()
        for subscription in subscriptions:
            if subscription.id not in self._starts:
                subject = _subject(subscription.id)
                start = uow.webhook_trail.first_seq(subject, "webhook.subscribed")
                self._starts[subscription.id] = start or 0
        return subscriptions

    def deliver_due(self) -> int:
        """Send every pending delivery that is due, each claimed first so that no two
        processes send it at once; returns how many were attempted."""
        now = self._clock()
        with self._units(read_only=True) as uow:
            due = uow.webhook_deliveries.due(now, DUE_BATCH)
        if not due:
            return 0
        attempted = 0
        # No proxy from the environment: the connection goes to the address that was checked.
        with httpx.Client(timeout=self._timeout, trust_env=False) as client:
            for delivery_id in due:
                claimed = self._claim(delivery_id)
                if claimed is not None:
                    attempted += self._send(client, *claimed)
        return attempted

    def _claim(self, delivery_id: int) -> tuple[WebhookDeliveryRecord, Subscription] | None:
        """The delivery and its subscription if this process took it: under the row lock it is
        still pending and due, and its next attempt moves past the claim, so another process
        that looked at the same moment finds it not due."""

        def work(uow: UnitOfWork) -> tuple[WebhookDeliveryRecord, Subscription] | None:
            now = self._clock()  # not the batch's start: the sends before this one took time
            delivery = uow.webhook_deliveries.locked(delivery_id)
            if delivery is None or delivery.status != "pending" or delivery.next_attempt_at > now:
                return None
            delivery = replace(delivery, next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
            uow.webhook_deliveries.save(delivery)
            subscription = uow.webhook_subscriptions.get(delivery.subscription_id)
            assert subscription is not None  # a foreign key
            return delivery, subscription

        return run_in_unit_of_work(self._units, work)

    def _send(
        self, client: httpx.Client, delivery: WebhookDeliveryRecord, subscription: Subscription
    ) -> bool:
        """Attempt the delivery and record the outcome; False when it is not attempted
        because the URL was unsubscribed meanwhile."""
        if not subscription.active:
            self._record(delivery.id, None, "unsubscribed before it was delivered", final=True)
            return False
        body = json.dumps(
            {"id": delivery.id, **delivery.payload}, separators=(",", ":"), ensure_ascii=False
        ).encode()
        timestamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "governance-webhooks/1",
            "X-Governance-Event": delivery.event,
            "X-Governance-Delivery": str(delivery.id),
            "X-Governance-Timestamp": str(timestamp),
            "X-Governance-Signature": sign_body(self._secret(subscription), timestamp, body),
        }
        started = time.monotonic()
        try:
            response = self._outbound.post(client, subscription.url, body, headers)
        except InputError as exc:  # the address is refused now: nothing was sent
            self._record(delivery.id, None, f"refused: {exc.problem}", final=True)
            return True
        except (OSError, httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: no HTTPError
            self._record(delivery.id, None, f"{type(exc).__name__}: {exc}", started=started)
            return True
        error = None if response.is_success else f"HTTP {response.status_code}"
        answer = _excerpt(response.text)
        self._record(delivery.id, response.status_code, error, started=started, answer=answer)
        return True

    def _record(
        self,
        delivery_id: int,
        status_code: int | None,
        error: str | None,
        final: bool = False,
        started: float | None = None,
        answer: str | None = None,
    ) -> None:
        """One attempt's outcome: delivered, or the error and when to try again, or failed
        when the attempts are spent (or `final`: there is nothing to try again)."""

        def work(uow: UnitOfWork) -> None:
            delivery = uow.webhook_deliveries.locked(delivery_id)
            assert delivery is not None
            now = self._clock()
            attempts = delivery.attempts + (0 if final else 1)
            delivery = replace(
                delivery,
                attempts=attempts,
                last_status_code=status_code,
                last_error=error[:MAX_ERROR_LENGTH] if error else None,
                last_answer=answer,
            )
            if started is not None:
                duration = round((time.monotonic() - started) * 1000)
                delivery = replace(delivery, last_attempt_at=now, last_duration_ms=duration)
            if error is None:
                delivery = replace(delivery, status="delivered", delivered_at=now)
            elif final or attempts >= MAX_ATTEMPTS:
                delivery = replace(delivery, status="failed")
            else:
                delivery = replace(delivery, next_attempt_at=now + backoff(attempts))
            uow.webhook_deliveries.save(delivery)

        run_in_unit_of_work(self._units, work)

    def list_deliveries(
        self,
        status: str | None = None,
        subscription_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
        answers: bool = False,
    ) -> DeliveryLog:
        """The delivery log, newest first, with the total for pagination; with the start of
        each receiver's answer only when `answers` (for admins: an auditor reading the log
        must not read what an internal service said)."""
        if status is not None and status not in STATUSES:
            raise InputError("status", f"is {status!r}", f"use one of {', '.join(STATUSES)}")
        with self._units(read_only=True) as uow:
            found = uow.webhook_deliveries.page(status, subscription_id, limit, offset)
        items = tuple(Delivery.of(delivery, url, answers) for delivery, url in found.items)
        return DeliveryLog(items, found.total, limit, offset)

    def redeliver(self, actor: Principal, delivery_id: int) -> Delivery:
        """A failed delivery gets its attempts again, from now (after the receiver is fixed)."""

        def work(uow: UnitOfWork) -> Delivery:
            delivery = uow.webhook_deliveries.locked(delivery_id)
            if delivery is None:
                raise NotFoundError(f"delivery {delivery_id}", "list the deliveries to find its id")
            if delivery.status != "failed":
                raise ConflictError(
                    f"delivery {delivery_id} is {delivery.status}: only a failed one is retried",
                    delivery.status,
                )
            subscription = uow.webhook_subscriptions.get(delivery.subscription_id)
            assert subscription is not None
            if not subscription.active:
                raise ConflictError(
                    f"webhook {subscription.id} is unsubscribed: subscribe the URL again",
                    "inactive",
                )
            delivery = replace(
                delivery, status="pending", attempts=0, next_attempt_at=self._clock()
            )
            uow.webhook_deliveries.save(delivery)
            uow.audit.append(
                actor=actor.name,
                action="webhook.redelivery_requested",
                subject=_subject(subscription.id),
                payload={"delivery_id": delivery_id, "event": delivery.event},
            )
            return Delivery.of(delivery, subscription.url)

        return run_in_unit_of_work(self._units, work)

    def _secret(self, subscription: Subscription) -> str:
        return self._key.derive(SECRET_PURPOSE, subscription.salt)


# --- events from the audit trail -----------------------------------------------------------


def events_of(trail: WebhookTrail, row: AuditEvent) -> list[tuple[str, dict[str, Any], str]]:
    """The webhook events one audit event stands for: (event, data, one line of text).

    A delivery is one audit event for one subscription (the table's unique key), so the
    checks' end is told from the decision they recorded, and `signature.needed` from the
    request's move to awaiting approval, which the same transaction appends next."""
    name = _name(row.subject)
    payload = row.payload
    reason = f": {payload['reason']}" if payload.get("reason") else ""
    found: list[tuple[str, dict[str, Any], str]] = []
    if row.action == "gate.decision_recorded":
        found.extend(_checks_finished(trail, row))
    elif row.action == "request.checks_blocked" and "decision_id" not in payload:
        found.append((CHECKS_FINISHED, payload, f"The checks of {name} could not run{reason}"))
    elif row.action == "request.checks_passed":
        found.extend(_still_needed(trail, row, signed=[]))
    elif row.action == "signature.approve":
        found.extend(_still_needed(trail, row, signed=_approvals_so_far(trail, row)))
    elif row.action == "request.request_waiver":
        found.extend(_waiver_needed(trail, row))
    elif row.action in ONE_TO_ONE:
        event = ONE_TO_ONE[row.action]
        found.append((event, payload, _text(event, row, name, reason)))
    return found


def _text(event: str, row: AuditEvent, name: str, reason: str) -> str:
    target = f" for {row.payload['target']}" if row.payload.get("target") else ""
    return {
        REQUEST_SUBMITTED: f"{row.actor} submitted {name}{target}",
        REQUEST_PROMOTED: f"{name} was promoted by {row.actor}",
        REQUEST_REVOKED: f"{name} was revoked by {row.actor}{reason}",
        REQUEST_EXPIRED: f"The approval of {name} expired",
        MONITORING_BREACH: f"Monitoring breach on {name}{reason}",
        REGISTRY_ALIAS_RESTORED: f"Registry alias restored for {name}{reason}",
        ADMISSION_INTEGRITY_ALERT: f"Admission refused {name}: no valid signed decision{reason}",
    }[event]


def _checks_finished(trail: WebhookTrail, row: AuditEvent) -> list[tuple[str, dict[str, Any], str]]:
    """checks.finished, when the recorded decision is a request's (not a CI gate's alone)."""
    decision_id = row.payload["decision_id"]
    model, _, version = row.subject.removeprefix("model:").partition("@")
    finished = trail.finished_checks(model, version, decision_id)
    if finished is None:
        return []
    data = {**row.payload, "request_id": finished.request_id, "summary": finished.summary}
    outcome = "passed" if finished.verdict == "pass" else "blocked"
    text = f"Checks {outcome} for {_name(row.subject)}: {finished.summary}"
    return [(CHECKS_FINISHED, data, text)]


def _still_needed(
    trail: WebhookTrail, row: AuditEvent, signed: list[Signature]
) -> list[tuple[str, dict[str, Any], str]]:
    """signature.needed, naming the roles that may still sign, unless the quorum is met."""
    request_id = row.payload["request_id"]
    rules = _policy_of(trail, request_id).approvals
    if quorum_reached(rules, signed):
        return []
    signed_roles = {s.role for s in signed}
    roles = (
        [r for r in rules.roles if r not in signed_roles] if rules.distinct_roles else rules.roles
    )
    remaining = rules.quorum - (len(signed_roles) if rules.distinct_roles else len(signed))
    data = {"request_id": request_id, "roles": roles, "remaining": remaining}
    text = (
        f"{_name(row.subject)} needs {remaining} more approval{'s' if remaining > 1 else ''} "
        f"from: {', '.join(r.replace('_', ' ') for r in roles)}"
    )
    return [(SIGNATURE_NEEDED, data, text)]


def _waiver_needed(trail: WebhookTrail, row: AuditEvent) -> list[tuple[str, dict[str, Any], str]]:
    request_id = row.payload["request_id"]
    role = _policy_of(trail, request_id).waivers.approver_role
    data = {"request_id": request_id, "roles": [role], "remaining": 1, "waiver": True}
    text = f"{_name(row.subject)} needs a waiver decision from: {str(role).replace('_', ' ')}"
    return [(SIGNATURE_NEEDED, data, text)]


def _approvals_so_far(trail: WebhookTrail, row: AuditEvent) -> list[Signature]:
    """The approvals of this event's request up to and including it, from the trail."""
    events = [c.event for c in trail.actions_through(row.subject, "signature.approve", row.seq)]
    request_id = row.payload["request_id"]
    return [
        Signature(e.actor, e.payload["role"])
        for e in events
        if e.payload.get("request_id") == request_id
    ]


def _policy_of(trail: WebhookTrail, request_id: str) -> PromotionPolicy:
    return parse_policy(trail.policy_document(request_id))


def _body(row: AuditEvent, event: str, data: dict[str, Any], text: str) -> dict[str, Any]:
    """What a delivery POSTs (with its id): the event, where it is on the trail, and why."""
    return {
        "event": event,
        "seq": row.seq,
        "occurredAt": row.time.isoformat(),
        "actor": row.actor,
        "subject": row.subject,
        "data": data,
        "text": text,
    }


# --- checks and shapes ---------------------------------------------------------------------


def _checked_events(events: list[str]) -> list[str]:
    if not events:
        raise InputError("events", "is empty", f"name one or more of {', '.join(EVENTS)}")
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise InputError(
            "events", f"names unknown {', '.join(map(repr, unknown))}", f"use {', '.join(EVENTS)}"
        )
    return [e for e in EVENTS if e in events]


def _subject(subscription_id: int | None) -> str:
    return f"webhook:{subscription_id}"


def _name(subject: str) -> str:
    """`model:income@2` as people read it: `income 2`."""
    return subject.removeprefix("model:").replace("@", " ")


def _excerpt(text: str) -> str | None:
    """The start of an answer that is safe to show: printable characters only (no control
    or bidirectional characters), at most ANSWER_EXCERPT of them."""
    kept = "".join(c for c in text if c.isprintable()).strip()[:ANSWER_EXCERPT]
    return kept or None
