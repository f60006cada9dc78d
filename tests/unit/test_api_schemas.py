"""The typed response schemas of webhooks, monitoring, connectors, audit and admission put
on the wire exactly the keys, in the order, and the values the handlers answered with when
the services built the dicts themselves (issue 14: typed schemas, the same wire)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.serialization import encode_json

from governance.domain.audit import AuditEvent, ChainedEvent
from governance.domain.records import (
    AuditEventPage,
    MonitoringRunRecord,
    PredictionBatchRecord,
    Subscription,
    VerifiedChain,
    WebhookDeliveryRecord,
)
from governance.services.monitoring import IngestedBatch, PredictionBatch
from governance.services.registries import ConnectorState, RestoredAlias, SyncOutcome
from governance.services.webhooks import Delivery, DeliveryLog, NewSubscription
from governance.services.workflow import Admission
from governance.web.api import admission, audit, connectors, monitoring, webhooks

AT = datetime(2026, 12, 7, 3, 4, 5, 123456, tzinfo=UTC)


def wire(answer: object) -> list[tuple[str, Any]]:
    """The answer as its client reads it, keys in order (nested objects as pairs too)."""
    return json.loads(encode_json(answer), object_pairs_hook=list)


SUBSCRIPTION = Subscription(
    1, "https://hooks.test/a", ("request.promoted",), "salt", "ada", True, AT
)


def test_a_subscription_shows_no_salt_and_its_secret_once() -> None:
    listed = [
        ("id", 1),
        ("url", "https://hooks.test/a"),
        ("events", ["request.promoted"]),
        ("active", True),
        ("createdBy", "ada"),
        ("createdAt", "2026-12-07T03:04:05.123456Z"),
    ]
    assert wire(webhooks.Webhook.from_record(SUBSCRIPTION)) == listed
    made = webhooks.NewWebhookAnswer.from_record(NewSubscription.of(SUBSCRIPTION, "s3cret"))
    assert wire(made) == [*listed, ("secret", "s3cret")]


def test_a_delivery_shows_the_receivers_answer_only_to_those_who_manage() -> None:
    row = WebhookDeliveryRecord(
        id=7,
        subscription_id=1,
        event_seq=42,
        event="request.promoted",
        payload={"text": "income 2 was promoted by dana"},
        status="failed",
        attempts=8,
        next_attempt_at=AT,
        created_at=AT,
        last_status_code=503,
        last_error="HTTP 503",
        last_answer="busy",
        last_attempt_at=AT,
        last_duration_ms=12,
    )
    at = "2026-12-07T03:04:05.123456Z"
    head = [
        ("id", 7),
        ("subscriptionId", 1),
        ("url", "https://hooks.test/a"),
        ("event", "request.promoted"),
        ("seq", 42),
        ("status", "failed"),
        ("attempts", 8),
        ("nextAttemptAt", None),  # only while pending
        ("lastStatusCode", 503),
        ("lastError", "HTTP 503"),
    ]
    tail = [
        ("lastAttemptAt", at),
        ("lastDurationMs", 12),
        ("deliveredAt", None),
        ("createdAt", at),
        ("text", "income 2 was promoted by dana"),
    ]
    shown = Delivery.of(row, "https://hooks.test/a", answers=True)
    assert wire(webhooks.WebhookDelivery.from_record(shown)) == [
        *head,
        ("lastAnswer", "busy"),
        *tail,
    ]
    hidden = webhooks.WebhookDelivery.from_record(Delivery.of(row, "https://hooks.test/a"))
    assert wire(hidden) == [*head, *tail]
    page = webhooks.WebhookDeliveries.from_record(DeliveryLog((shown,), 1, 100, 0))
    assert [key for key, _ in wire(page)] == ["items", "total", "limit", "offset"]


def test_a_batch_and_a_run_keep_their_camel_case_keys() -> None:
    stored = PredictionBatchRecord(3, "b-1", "api", "serving", 40, 39, AT, AT, ["x"], "ab", 9, AT)
    keys = ["model", "version", "batchId", "source", "actor", "rows", "outcomes", "firstAt"]
    keys += ["lastAt", "columns", "sha256", "sizeBytes", "receivedAt"]
    batch = monitoring.PredictionBatch.from_record(PredictionBatch.of(stored, "credit", "1"))
    assert [key for key, _ in wire(batch)] == keys
    ingested = IngestedBatch.of(stored, "credit", "1", replayed=True)
    assert wire(monitoring.IngestedBatch.from_record(ingested))[-1] == ("replayed", True)
    assert (ingested.model, ingested.batch_id, ingested.rows) == ("credit", "b-1", 40)

    run = MonitoringRunRecord(5, "r1", "drift", AT, "pass", AT, rows=10, results=[{"a": 1}])
    assert [key for key, _ in wire(monitoring.MonitoringRun.from_record(run))] == [
        "id", "requestId", "monitor", "dueAt", "status", "rows", "windowStart", "windowEnd",
        "summary", "results", "action", "startedAt", "finishedAt",
    ]  # fmt: skip


def test_a_sync_answers_the_status_with_the_aliases_put_back() -> None:
    state = ConnectorState("drop", "FolderRegistry", AT, None, ["r1"], {"m@2": "no label"})
    status = [
        ("name", "drop"),
        ("kind", "FolderRegistry"),
        ("lastSync", "2026-12-07T03:04:05.123456Z"),
        ("lastError", None),
        ("opened", ["r1"]),
        ("refused", [("m@2", "no label")]),
    ]
    assert wire(connectors.Connector.from_record(state)) == status
    alias = RestoredAlias("m", "champion", "2", "1", "m 2 has no valid approval")
    synced = SyncOutcome(**vars(state), aliases_restored=[alias])
    assert wire(connectors.SyncedConnector.from_record(synced)) == [
        *status,
        (
            "aliasesRestored",
            [
                [
                    ("model", "m"),
                    ("alias", "champion"),
                    ("found", "2"),
                    ("restored", "1"),
                    ("why", "m 2 has no valid approval"),
                ]
            ],
        ),
    ]


def test_the_audit_answers_are_the_documents_they_were() -> None:
    chained = [
        ChainedEvent(
            event=AuditEvent(
                seq=seq, time=AT, actor="a", action="x.done", subject="s", payload={"k": [1.5]}
            ),
            prev_hash="0" * 64,
            hash=f"{seq}" * 64,
        )
        for seq in (2, 1)
    ]
    before = {"items": [c.model_dump(mode="json") for c in chained], "total": 2}
    before |= {"limit": 100, "offset": 0}
    page = audit.AuditPage.from_record(AuditEventPage(chained, 2, 100, 0))
    assert encode_json(page) == encode_json(before)

    verified = VerifiedChain(True, 2, "1" * 64, [], checkpoint_published=2)
    assert [key for key, _ in wire(audit.ChainVerified.from_record(verified))] == [
        "intact", "events", "head", "problems", "checkpointPublished",
    ]  # fmt: skip

    bundle: dict[str, Any] = {"checkpoint": "note\n"}
    assert encode_json(msgspec.convert(bundle, audit.AuditProof)) == encode_json(bundle)
    bundle |= {
        "consistency": {"old_size": 1, "proof": ["ab"]},
        "event": chained[1].model_dump(mode="json"),
        "inclusion": ["cd"],
    }
    assert encode_json(msgspec.convert(bundle, audit.AuditProof)) == encode_json(bundle)


def test_the_admission_answer_is_the_dict_it_was() -> None:
    allowed = Admission(True, "promoted", "promoted", "r1", "d1", "ab", AT)
    denied = Admission(False, "no request for this version")
    for answer in (allowed, denied):
        typed = admission.AdmissionAnswer.of(answer)
        assert encode_json(typed) == encode_json(answer.as_dict())
