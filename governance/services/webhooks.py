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
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from governance.auth.secrets import DigestKey
from governance.domain.errors import ConflictError, InputError, NotFoundError
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.workflow import Signature, quorum_reached
from governance.services.audit import CHECKPOINT_ACTION, SignNote, checkpoint_of
from governance.services.outbound import Outbound
from governance.services.people import Principal
from governance.store.repository import append_audit, get_or_insert, in_transaction
from governance.store.tables import (
    AuditEventRow,
    ConsumerCursor,
    GateDecision,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
    WebhookDelivery,
    WebhookSubscription,
    utcnow,
)

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


class Webhooks:
    def __init__(
        self,
        engine: Engine,
        digest_key: DigestKey,
        clock: Callable[[], datetime] = utcnow,
        timeout_seconds: float = TIMEOUT_SECONDS,
        outbound: Outbound | None = None,
        sign_note: SignNote | None = None,
    ) -> None:
        self._engine = engine
        self._key = digest_key
        self._clock = clock
        self._timeout = timeout_seconds
        self._outbound = outbound or Outbound()
        # signs the `audit.checkpoint` deliveries' notes; without it they carry size and root
        self._sign_note = sign_note
        # subscription id → the seq of its `webhook.subscribed` event (never changes)
        self._starts: dict[int, int] = {}

    # --- subscriptions -------------------------------------------------------------------

    def subscribe(self, actor: Principal, url: str, events: list[str]) -> dict[str, Any]:
        """A new subscription; its secret is in this answer only."""
        url = self._outbound.checked(url).url
        wanted = _checked_events(events)
        salt = secrets.token_hex(16)

        def work(session: Session) -> dict[str, Any]:
            row = WebhookSubscription(
                url=url, events=wanted, salt=salt, created_by=actor.name, created_at=self._clock()
            )
            session.add(row)
            session.flush()
            append_audit(
                session,
                actor=actor.name,
                action="webhook.subscribed",
                subject=_subject(row.id),
                payload={"url": url, "events": wanted},
            )
            # Fan-out starts from here if it never ran, so this subscription misses nothing.
            get_or_insert(session, ConsumerCursor, {"name": CURSOR}, seq=_head(session))
            return {**_subscription_dict(row), "secret": self._secret(row)}

        return in_transaction(self._engine, work)

    def unsubscribe(self, actor: Principal, subscription_id: int) -> dict[str, Any]:
        """Stop sending to the URL; what was sent stays in the delivery log."""

        def work(session: Session) -> dict[str, Any]:
            row = _locked_subscription(session, subscription_id)
            if not row.active:
                raise ConflictError(
                    f"webhook {subscription_id} is unsubscribed already", "inactive"
                )
            row.active = False
            session.add(row)
            append_audit(
                session,
                actor=actor.name,
                action="webhook.unsubscribed",
                subject=_subject(subscription_id),
                payload={"url": row.url},
            )
            return _subscription_dict(row)

        return in_transaction(self._engine, work)

    def list_subscriptions(self) -> list[dict[str, Any]]:
        with Session(self._engine) as session:
            rows = session.exec(select(WebhookSubscription).order_by(col(WebhookSubscription.id)))
            return [_subscription_dict(row) for row in rows]

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
            created, more = in_transaction(self._engine, self._fan_out_batch)
            made += created
            if not more:
                return made

    def _behind(self) -> bool:
        """Whether the trail grew past the cursor: read without the write lock, which the
        fan-out then takes only when there is something to read."""
        with Session(self._engine) as session:
            cursor = session.get(ConsumerCursor, CURSOR)
            return cursor is None or _head(session) > cursor.seq

    def _fan_out_batch(self, session: Session) -> tuple[int, bool]:
        cursor = session.exec(
            select(ConsumerCursor).where(ConsumerCursor.name == CURSOR).with_for_update()
        ).first()
        if cursor is None:  # nobody ever subscribed: nothing before now is anyone's
            get_or_insert(session, ConsumerCursor, {"name": CURSOR}, seq=_head(session))
            return 0, False
        rows = session.exec(
            select(AuditEventRow)
            .where(col(AuditEventRow.seq) > cursor.seq)
            .order_by(col(AuditEventRow.seq))
            .limit(BATCH)
        ).all()
        if not rows:
            return 0, False
        subscriptions = self._active(session)
        created = 0
        now = self._clock()
        for row in rows:
            for event, data, text in self._events_of(session, row):
                for subscription in subscriptions:
                    if event in subscription.events and row.seq > self._starts[subscription.id]:
                        session.add(_delivery(subscription.id, row, event, data, text, now))
                        created += 1
        cursor.seq = rows[-1].seq
        session.add(cursor)
        return created, len(rows) == BATCH

    def _events_of(
        self, session: Session, row: AuditEventRow
    ) -> list[tuple[str, dict[str, Any], str]]:
        if row.action != CHECKPOINT_ACTION:
            return events_of(session, row)
        # The checkpoint covers the trail up to and including the event that records it.
        hashes = session.exec(
            select(AuditEventRow.hash)
            .where(col(AuditEventRow.seq) <= row.seq)
            .order_by(col(AuditEventRow.seq))
        ).all()
        checkpoint = checkpoint_of(hashes)
        root = base64.b64encode(checkpoint.root).decode()
        data: dict[str, Any] = {"size": checkpoint.size, "root": root}
        if self._sign_note is not None:
            data["note"] = self._sign_note(checkpoint)
        text = f"Audit trail checkpoint: {checkpoint.size} events, root {root}"
        return [(AUDIT_CHECKPOINT, data, text)]

    def _active(self, session: Session) -> list[WebhookSubscription]:
        subscriptions = list(session.exec(select(WebhookSubscription).filter_by(active=True)))
        for subscription in subscriptions:
            if subscription.id not in self._starts:
                start = session.exec(
                    select(func.min(AuditEventRow.seq))
                    .where(col(AuditEventRow.subject) == _subject(subscription.id))
                    .where(col(AuditEventRow.action) == "webhook.subscribed")
                ).one()
                self._starts[subscription.id] = start or 0
        return subscriptions

    def deliver_due(self) -> int:
        """Send every pending delivery that is due, each claimed first so that no two
        processes send it at once; returns how many were attempted."""
        now = self._clock()
        with Session(self._engine) as session:
            due = session.exec(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == "pending")
                .where(col(WebhookDelivery.next_attempt_at) <= now)
                .order_by(col(WebhookDelivery.next_attempt_at))
                .limit(DUE_BATCH)
            ).all()
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

    def _claim(self, delivery_id: int) -> tuple[WebhookDelivery, WebhookSubscription] | None:
        """The delivery and its subscription if this process took it: under the row lock it is
        still pending and due, and its next attempt moves past the claim, so another process
        that looked at the same moment finds it not due."""

        def work(session: Session) -> tuple[WebhookDelivery, WebhookSubscription] | None:
            now = self._clock()  # not the batch's start: the sends before this one took time
            delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None or delivery.status != "pending" or delivery.next_attempt_at > now:
                return None
            delivery.next_attempt_at = now + timedelta(seconds=CLAIM_SECONDS)
            session.add(delivery)
            session.flush()
            subscription = session.get(WebhookSubscription, delivery.subscription_id)
            assert subscription is not None  # a foreign key
            session.expunge_all()
            return delivery, subscription

        return in_transaction(self._engine, work)

    def _send(
        self, client: httpx.Client, delivery: WebhookDelivery, subscription: WebhookSubscription
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

        def work(session: Session) -> None:
            delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            assert delivery is not None
            now = self._clock()
            delivery.attempts += 0 if final else 1
            delivery.last_status_code = status_code
            delivery.last_error = error[:MAX_ERROR_LENGTH] if error else None
            delivery.last_answer = answer
            if started is not None:
                delivery.last_attempt_at = now
                delivery.last_duration_ms = round((time.monotonic() - started) * 1000)
            if error is None:
                delivery.status, delivery.delivered_at = "delivered", now
            elif final or delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = "failed"
            else:
                delivery.next_attempt_at = now + backoff(delivery.attempts)
            session.add(delivery)

        in_transaction(self._engine, work)

    def list_deliveries(
        self,
        status: str | None = None,
        subscription_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
        answers: bool = False,
    ) -> dict[str, Any]:
        """The delivery log, newest first, with the total for pagination; with the start of
        each receiver's answer only when `answers` (for admins: an auditor reading the log
        must not read what an internal service said)."""
        if status is not None and status not in STATUSES:
            raise InputError("status", f"is {status!r}", f"use one of {', '.join(STATUSES)}")
        conditions = [
            condition
            for condition, wanted in (
                (col(WebhookDelivery.status) == status, status is not None),
                (col(WebhookDelivery.subscription_id) == subscription_id, subscription_id),
            )
            if wanted
        ]
        with Session(self._engine) as session:
            total = session.exec(
                select(func.count()).select_from(WebhookDelivery).where(*conditions)
            ).one()
            rows = session.exec(
                select(WebhookDelivery, WebhookSubscription.url)
                .join(WebhookSubscription)
                .where(*conditions)
                .order_by(col(WebhookDelivery.id).desc())
                .offset(offset)
                .limit(limit)
            ).all()
            items = [_delivery_dict(delivery, url, answers) for delivery, url in rows]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    def redeliver(self, actor: Principal, delivery_id: int) -> dict[str, Any]:
        """A failed delivery gets its attempts again, from now (after the receiver is fixed)."""

        def work(session: Session) -> dict[str, Any]:
            delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None:
                raise NotFoundError(f"delivery {delivery_id}", "list the deliveries to find its id")
            if delivery.status != "failed":
                raise ConflictError(
                    f"delivery {delivery_id} is {delivery.status}: only a failed one is retried",
                    delivery.status,
                )
            subscription = session.get(WebhookSubscription, delivery.subscription_id)
            assert subscription is not None
            if not subscription.active:
                raise ConflictError(
                    f"webhook {subscription.id} is unsubscribed: subscribe the URL again",
                    "inactive",
                )
            delivery.status, delivery.attempts = "pending", 0
            delivery.next_attempt_at = self._clock()
            session.add(delivery)
            append_audit(
                session,
                actor=actor.name,
                action="webhook.redelivery_requested",
                subject=_subject(subscription.id),
                payload={"delivery_id": delivery_id, "event": delivery.event},
            )
            return _delivery_dict(delivery, subscription.url)

        return in_transaction(self._engine, work)

    def _secret(self, subscription: WebhookSubscription) -> str:
        return self._key.derive(SECRET_PURPOSE, subscription.salt)


# --- events from the audit trail -----------------------------------------------------------


def events_of(session: Session, row: AuditEventRow) -> list[tuple[str, dict[str, Any], str]]:
    """The webhook events one audit event stands for: (event, data, one line of text).

    A delivery is one audit event for one subscription (the table's unique key), so the
    checks' end is told from the decision they recorded, and `signature.needed` from the
    request's move to awaiting approval, which the same transaction appends next."""
    name = _name(row.subject)
    payload = row.payload
    reason = f": {payload['reason']}" if payload.get("reason") else ""
    found: list[tuple[str, dict[str, Any], str]] = []
    if row.action == "gate.decision_recorded":
        found.extend(_checks_finished(session, row))
    elif row.action == "request.checks_blocked" and "decision_id" not in payload:
        found.append((CHECKS_FINISHED, payload, f"The checks of {name} could not run{reason}"))
    elif row.action == "request.checks_passed":
        found.extend(_still_needed(session, row, signed=[]))
    elif row.action == "signature.approve":
        found.extend(_still_needed(session, row, signed=_approvals_so_far(session, row)))
    elif row.action == "request.request_waiver":
        found.extend(_waiver_needed(session, row))
    elif row.action in ONE_TO_ONE:
        event = ONE_TO_ONE[row.action]
        found.append((event, payload, _text(event, row, name, reason)))
    return found


def _text(event: str, row: AuditEventRow, name: str, reason: str) -> str:
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


def _checks_finished(session: Session, row: AuditEventRow) -> list[tuple[str, dict[str, Any], str]]:
    """checks.finished, when the recorded decision is a request's (not a CI gate's alone)."""
    decision_id = row.payload["decision_id"]
    model, _, version = row.subject.removeprefix("model:").partition("@")
    request = session.exec(
        select(PromotionRequest)
        .join(ModelVersion)
        .join(Model)
        .where(col(Model.name) == model, col(ModelVersion.version) == version)
        .where(col(PromotionRequest.decision_id) == decision_id)
    ).first()
    decision = session.get(GateDecision, decision_id)
    if request is None or decision is None:
        return []
    data = {**row.payload, "request_id": request.id, "summary": decision.summary}
    outcome = "passed" if decision.verdict == "pass" else "blocked"
    text = f"Checks {outcome} for {_name(row.subject)}: {decision.summary}"
    return [(CHECKS_FINISHED, data, text)]


def _still_needed(
    session: Session, row: AuditEventRow, signed: list[Signature]
) -> list[tuple[str, dict[str, Any], str]]:
    """signature.needed, naming the roles that may still sign, unless the quorum is met."""
    request_id = row.payload["request_id"]
    rules = _policy_of(session, request_id).approvals
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


def _waiver_needed(session: Session, row: AuditEventRow) -> list[tuple[str, dict[str, Any], str]]:
    request_id = row.payload["request_id"]
    role = _policy_of(session, request_id).waivers.approver_role
    data = {"request_id": request_id, "roles": [role], "remaining": 1, "waiver": True}
    text = f"{_name(row.subject)} needs a waiver decision from: {str(role).replace('_', ' ')}"
    return [(SIGNATURE_NEEDED, data, text)]


def _approvals_so_far(session: Session, row: AuditEventRow) -> list[Signature]:
    """The approvals of this event's request up to and including it, from the trail."""
    events = session.exec(
        select(AuditEventRow)
        .where(col(AuditEventRow.subject) == row.subject)
        .where(col(AuditEventRow.action) == "signature.approve")
        .where(col(AuditEventRow.seq) <= row.seq)
    ).all()
    request_id = row.payload["request_id"]
    return [
        Signature(e.actor, e.payload["role"])
        for e in events
        if e.payload.get("request_id") == request_id
    ]


def _policy_of(session: Session, request_id: str) -> PromotionPolicy:
    request = session.get(PromotionRequest, request_id)
    assert request is not None  # the trail names only requests that exist
    policy = session.get(Policy, request.policy_id)
    assert policy is not None
    return parse_policy(policy.document)


def _delivery(
    subscription_id: int,
    row: AuditEventRow,
    event: str,
    data: dict[str, Any],
    text: str,
    now: datetime,
) -> WebhookDelivery:
    body = {
        "event": event,
        "seq": row.seq,
        "occurredAt": row.time.isoformat(),
        "actor": row.actor,
        "subject": row.subject,
        "data": data,
        "text": text,
    }
    return WebhookDelivery(
        subscription_id=subscription_id,
        event_seq=row.seq,
        event=event,
        payload=body,
        status="pending",
        next_attempt_at=now,
        created_at=now,
    )


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


def _locked_subscription(session: Session, subscription_id: int) -> WebhookSubscription:
    row = session.exec(
        select(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFoundError(f"webhook {subscription_id}", "list the webhooks to find its id")
    return row


def _head(session: Session) -> int:
    return int(session.exec(select(func.coalesce(func.max(AuditEventRow.seq), 0))).one())


def _subject(subscription_id: int | None) -> str:
    return f"webhook:{subscription_id}"


def _name(subject: str) -> str:
    """`model:income@2` as people read it: `income 2`."""
    return subject.removeprefix("model:").replace("@", " ")


def _subscription_dict(row: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": row.events,
        "active": row.active,
        "createdBy": row.created_by,
        "createdAt": row.created_at,
    }


def _excerpt(text: str) -> str | None:
    """The start of an answer that is safe to show: printable characters only (no control
    or bidirectional characters), at most ANSWER_EXCERPT of them."""
    kept = "".join(c for c in text if c.isprintable()).strip()[:ANSWER_EXCERPT]
    return kept or None


def _delivery_dict(row: WebhookDelivery, url: str, answers: bool = False) -> dict[str, Any]:
    shown = {"lastAnswer": row.last_answer} if answers else {}
    return {
        "id": row.id,
        "subscriptionId": row.subscription_id,
        "url": url,
        "event": row.event,
        "seq": row.event_seq,
        "status": row.status,
        "attempts": row.attempts,
        "nextAttemptAt": row.next_attempt_at if row.status == "pending" else None,
        "lastStatusCode": row.last_status_code,
        "lastError": row.last_error,
        **shown,
        "lastAttemptAt": row.last_attempt_at,
        "lastDurationMs": row.last_duration_ms,
        "deliveredAt": row.delivered_at,
        "createdAt": row.created_at,
        "text": row.payload.get("text"),
    }
