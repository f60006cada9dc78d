"""Outgoing webhooks on both databases, against a real HTTP receiver on the loopback (which
the admin allow-lists by host and port, plain http): a workflow event reaches it as signed
JSON with a Slack-compatible `text`; a refused delivery is retried after its backoff (a test
clock moves time), ends `failed` after 8 attempts and is sent again when an admin asks; an
unreachable URL is recorded; fan-out never makes a delivery twice. Then the API (bad input,
who may) and the console's admin page. Then server-side request forgery: every form of an
internal address refused when subscribed, a name that resolves to one refused when
delivering, a rebinding resolver unable to move the connection, and the receiver's answer
kept from auditors."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, func, select

from governance.auth.secrets import DigestKey
from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.connectors.adult import TARGET
from governance.domain.errors import InputError
from governance.services.outbound import Outbound
from governance.services.people import SYSTEM, People, Principal
from governance.services.webhooks import MAX_ATTEMPTS, Webhooks, backoff
from governance.services.workflow import Candidate
from governance.store.repository import append_audit, audit_trail, in_transaction
from governance.store.tables import WebhookDelivery, utcnow
from governance.store.uow import SqlUnits
from governance.web.app import create_app
from tests.homes import initialise_home
from tests.service_fixtures import PASSWORD, fast_policies, free_port

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

PEOPLE = {
    "dana": ["data_scientist"],
    "maria": ["model_risk_officer"],
    "bob": ["business_owner"],
    "audrey": ["auditor"],
}
PROBLEM_JSON = "application/problem+json"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Receiver:
    """A webhook receiver: records every request and answers with the next status given
    (the last one again once they run out)."""

    url: str
    answers: list[int] = field(default_factory=lambda: [200])
    received: list[dict[str, Any]] = field(default_factory=list)
    body: bytes = b"noted"

    @property
    def netloc(self) -> str:
        return self.url.split("/")[2]

    def answer(self) -> int:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def start_receiver(address: str = "127.0.0.1", port: int = 0) -> tuple[Receiver, Any]:
    """A receiver listening on `address`; returns it and its server (to shut down)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.received.append({"path": self.path, "headers": headers, "body": body})
            self.send_response(state.answer())
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    state = Receiver(f"http://{address}:{server.server_address[1]}/hook")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server


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
    monkeypatch.setenv("GOVERNANCE_POLICIES", str(fast_policies(tmp_path / "policies")))
    # The receiver is on loopback: allow-listed by host and port, as an admin would.
    monkeypatch.setenv("GOVERNANCE_WEBHOOK_ALLOW_HOSTS", f"chat-proxy.internal,{receiver.netloc}")
    monkeypatch.setenv("GOVERNANCE_WEBHOOK_ALLOW_HTTP", "1")
    settings = Settings.from_env(database_url, tmp_path / "home")
    initialise_home(settings, PASSWORD)
    opened = open_governance(settings)
    for name, roles in PEOPLE.items():
        opened.people.add_user(SYSTEM, name, name.title(), PASSWORD, roles)
    yield opened
    opened.close()


def webhooks_with(
    governance: Governance, clock: Clock, outbound: Outbound | None = None, timeout: float = 10
) -> Webhooks:
    """Another process's view of the same service, on a clock the test moves."""
    key = DigestKey.load_or_create(governance.settings.token_secret)
    settings = governance.settings
    allowed = outbound or Outbound.of(settings.webhook_allow_hosts, settings.webhook_allow_http)
    units = SqlUnits(governance.engine)
    return Webhooks(units, key, clock=clock, outbound=allowed, timeout_seconds=timeout)


def person(people: People, name: str) -> Principal:
    return people.authenticate(people.sign_in(name, PASSWORD, 1).token)


def candidate(demo_dir: Path) -> Candidate:
    return Candidate(
        model="income",
        version="2",
        target="production",
        label=TARGET,
        artifact=demo_dir / "income-reweighed.skops",
        data=demo_dir / "test.parquet",
        reference=demo_dir / "train.parquet",
    )


def breach(governance: Governance, subject: str = "model:income@2") -> None:
    """What production monitoring appends when a window breaches its rules."""
    in_transaction(
        governance.engine,
        lambda session: append_audit(
            session,
            actor="governance",
            action="monitoring.breach",
            subject=subject,
            payload={"reason": "drift share 0.6 > 0.3", "monitor": "drift"},
        ),
    )


def verified(secret: str, request: dict[str, Any]) -> dict[str, Any]:
    """The body, once its signature checks out as the README tells receivers to check it."""
    timestamp = request["headers"]["x-governance-timestamp"]
    signed = timestamp.encode() + b"." + request["body"]
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request["headers"]["x-governance-signature"])
    body: dict[str, Any] = json.loads(request["body"])
    return body


def delivery(governance: Governance, delivery_id: int) -> WebhookDelivery:
    with Session(governance.engine) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row


def deliveries_count(governance: Governance) -> int:
    with Session(governance.engine) as session:
        return int(session.exec(select(func.count()).select_from(WebhookDelivery)).one())


# --- the service --------------------------------------------------------------------------


def test_workflow_events_reach_the_receiver_signed(
    governance: Governance, demo_dir: Path, receiver: Receiver
) -> None:
    clock = Clock()
    webhooks = webhooks_with(governance, clock)
    workflow = governance.workflow
    workflow.register_model(SYSTEM, "income", "high", "dana")  # before anyone subscribed
    events = ["request.submitted", "checks.finished", "signature.needed", "request.promoted"]
    subscribed = webhooks.subscribe(SYSTEM, receiver.url, events)
    assert len(subscribed.secret) == 64
    assert not hasattr(webhooks.list_subscriptions()[0], "secret")  # shown once, never stored

    request_id = workflow.submit(person(governance.people, "dana"), candidate(demo_dir)).id
    later = webhooks.subscribe(SYSTEM, receiver.url + "/later", ["request.submitted"])
    workflow.run_job(workflow.claimable_jobs()[0])
    assert workflow.get_request(request_id).state == "awaiting_approval"

    assert webhooks.tick() == 3
    assert [r["path"] for r in receiver.received] == ["/hook"] * 3  # `later` missed the submit
    bodies = [verified(subscribed.secret, r) for r in receiver.received]
    assert [b["event"] for b in bodies] == [
        "request.submitted",
        "checks.finished",
        "signature.needed",
    ]
    submitted, finished, needed = bodies
    assert submitted["actor"] == "dana" and submitted["subject"] == "model:income@2"
    assert submitted["data"]["request_id"] == request_id
    assert submitted["text"] == "dana submitted income 2 for production"
    assert finished["data"]["verdict"] == "pass"
    assert finished["data"]["request_id"] == request_id
    assert finished["text"] == f"Checks passed for income 2: {finished['data']['summary']}"
    assert needed["data"] == {
        "request_id": request_id,
        "roles": ["model_risk_officer", "business_owner"],
        "remaining": 2,
    }
    assert needed["text"] == (
        "income 2 needs 2 more approvals from: model risk officer, business owner"
    )
    headers = receiver.received[0]["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["x-governance-event"] == "request.submitted"
    assert headers["x-governance-delivery"] == str(submitted["id"])
    assert int(headers["x-governance-timestamp"]) == int(clock.now.timestamp())
    with pytest.raises(AssertionError):  # another secret does not verify
        verified(later.secret, receiver.received[0])

    # One approval of two: the role still needed is named.
    workflow.sign(person(governance.people, "maria"), request_id, "approve", "ok", PASSWORD)
    assert webhooks.tick() == 1
    still = verified(subscribed.secret, receiver.received[-1])
    assert still["data"]["roles"] == ["business_owner"] and still["data"]["remaining"] == 1
    assert still["text"] == "income 2 needs 1 more approval from: business owner"

    # The quorum is met: nothing is needed any more; then the promotion is heard of.
    workflow.sign(person(governance.people, "bob"), request_id, "approve", "ok", PASSWORD)
    workflow.promote(person(governance.people, "dana"), request_id)
    assert webhooks.tick() == 1
    promoted = verified(subscribed.secret, receiver.received[-1])
    assert promoted["event"] == "request.promoted"
    assert promoted["text"] == "income 2 was promoted by dana"

    log = webhooks.list_deliveries()
    assert log.total == 5
    assert {d.status for d in log.items} == {"delivered"}
    assert all(d.attempts == 1 and d.last_status_code == 200 for d in log.items)


def test_fan_out_twice_or_at_once_makes_each_delivery_once(
    governance: Governance, receiver: Receiver
) -> None:
    clock = Clock()
    webhooks = webhooks_with(governance, clock)
    webhooks.subscribe(SYSTEM, receiver.url, ["monitoring.breach"])
    for _ in range(3):
        breach(governance)
    assert webhooks.fan_out() == 3
    assert webhooks.fan_out() == 0
    breach(governance)
    breach(governance)

    # Two processes fan out at the same moment: the cursor's row lock lets one at a time.
    made: list[int] = []
    others = [webhooks_with(governance, clock) for _ in range(2)]
    threads = [threading.Thread(target=lambda w=w: made.append(w.fan_out())) for w in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == [0, 2]
    assert deliveries_count(governance) == 5


def test_a_refused_delivery_is_retried_after_the_backoff(
    governance: Governance, receiver: Receiver
) -> None:
    clock = Clock()
    webhooks = webhooks_with(governance, clock)
    subscribed = webhooks.subscribe(SYSTEM, receiver.url, ["monitoring.breach"])
    breach(governance)
    receiver.answers = [500, 200]

    assert webhooks.tick() == 1
    [first] = webhooks.list_deliveries().items
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
    assert first.last_error == "HTTP 500" and not first.shows_answer
    assert first.last_attempt_at == clock.now and first.last_duration_ms >= 0
    assert first.next_attempt_at == clock.now + timedelta(seconds=30)

    clock.now += timedelta(seconds=29)
    assert webhooks.tick() == 0  # not yet
    clock.now += timedelta(seconds=1)
    assert webhooks.tick() == 1
    [done] = webhooks.list_deliveries(status="delivered").items
    assert (done.attempts, done.last_status_code, done.last_error) == (2, 200, None)
    assert done.delivered_at == clock.now
    first_body, second_body = (verified(subscribed.secret, r) for r in receiver.received)
    assert first_body == second_body  # the same delivery, the same body
    assert first_body["text"] == "Monitoring breach on income 2: drift share 0.6 > 0.3"
    assert webhooks.tick() == 0


def test_a_receiver_that_never_accepts_ends_failed_and_an_admin_retries(
    governance: Governance, receiver: Receiver
) -> None:
    clock = Clock()
    webhooks = webhooks_with(governance, clock)
    webhooks.subscribe(SYSTEM, receiver.url, ["monitoring.breach"])
    breach(governance)
    receiver.answers = [503]
    waits = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert webhooks.tick() == 1, attempt
        [row] = webhooks.list_deliveries().items
        assert row.attempts == attempt
        if row.next_attempt_at:
            waits.append(row.next_attempt_at - clock.now)
        clock.now += backoff(attempt)
    assert waits == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480, 960, 1920)]
    [failed] = webhooks.list_deliveries().items
    assert (failed.status, failed.attempts, failed.last_status_code) == ("failed", 8, 503)
    clock.now += timedelta(days=1)
    assert webhooks.tick() == 0
    assert len(receiver.received) == MAX_ATTEMPTS

    receiver.answers = [204]
    retried = webhooks.redeliver(SYSTEM, failed.id)
    assert (retried.status, retried.attempts) == ("pending", 0)
    assert webhooks.tick() == 1
    assert delivery(governance, failed.id).status == "delivered"
    assert audit_trail(governance.engine)[-1].event.action == "webhook.redelivery_requested"


def test_an_unreachable_receiver_is_recorded(governance: Governance) -> None:
    clock = Clock()
    port = free_port()
    webhooks = webhooks_with(governance, clock, Outbound.of([f"127.0.0.1:{port}"], True))
    webhooks.subscribe(SYSTEM, f"http://127.0.0.1:{port}/nobody", ["monitoring.breach"])
    breach(governance)
    assert webhooks.tick() == 1
    [row] = webhooks.list_deliveries().items
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error.startswith("ConnectError")


def test_an_unsubscribed_url_hears_nothing_more(governance: Governance, receiver: Receiver) -> None:
    clock = Clock()
    webhooks = webhooks_with(governance, clock)
    subscribed = webhooks.subscribe(SYSTEM, receiver.url, ["monitoring.breach"])
    breach(governance)
    webhooks.fan_out()
    webhooks.unsubscribe(SYSTEM, subscribed.id)
    breach(governance)
    assert webhooks.tick() == 0  # the pending one is closed, not sent
    [row] = webhooks.list_deliveries().items
    assert (row.status, row.attempts) == ("failed", 0)
    assert row.last_error == "unsubscribed before it was delivered"
    assert receiver.received == []
    actions = [e.event.action for e in audit_trail(governance.engine)]
    assert actions[-3:] == ["monitoring.breach", "webhook.unsubscribed", "monitoring.breach"]


# --- the API and the console ----------------------------------------------------------------


@dataclass
class App:
    app: Litestar
    client: TestClient[Litestar]
    governance: Governance

    def api(self, who: str) -> dict[str, str]:
        token = self.governance.people.sign_in(who, PASSWORD, 1).token
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(governance: Governance) -> Iterator[App]:
    created = create_app(governance.settings, run_jobs=False)
    with TestClient(created) as client:
        yield App(created, client, governance)


BAD_SUBSCRIPTIONS = [
    ({"url": "ftp://example.com/x", "events": ["request.promoted"]}, "url", "https://"),
    ({"url": "https://", "events": ["request.promoted"]}, "url", "with a host"),
    ({"url": "https://a:b@example.com/", "events": ["request.promoted"]}, "url", "password"),
    ({"url": "https://example.com/", "events": ["request.won"]}, "events", "request.won"),
    ({"url": "https://example.com/", "events": []}, "events", "is empty"),
]


def test_bad_subscriptions_are_refused_naming_the_field(app: App) -> None:
    admin = app.api("admin")
    for body, named, words in BAD_SUBSCRIPTIONS:
        answer = app.client.post("/api/v1/webhooks", json=body, headers=admin)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM_JSON)
        problem = answer.json()
        assert problem["field"] == named and words in problem["detail"] and problem["fix"]
    for huge_id in (2**31, 2**64):  # past PostgreSQL's integer: refused, not a driver error
        huge = app.client.delete(f"/api/v1/webhooks/{huge_id}", headers=admin)
        assert huge.status_code == 400 and huge.headers["content-type"].startswith(PROBLEM_JSON)
        retry = app.client.post(f"/api/v1/webhooks/deliveries/{huge_id}/retry", headers=admin)
        assert retry.status_code == 400, retry.text
    assert app.client.get("/api/v1/webhooks", headers=admin).json() == []
    assert audit_trail(app.governance.engine)[-1].event.action != "webhook.subscribed"


def test_api_admin_manages_auditor_reads_others_are_refused(app: App, receiver: Receiver) -> None:
    admin, auditor, dana = app.api("admin"), app.api("audrey"), app.api("dana")
    body = {"url": receiver.url, "events": ["monitoring.breach"]}
    refused = app.client.post("/api/v1/webhooks", json=body, headers=dana)
    assert refused.status_code == 403 and "dana" in refused.json()["detail"]
    assert app.client.get("/api/v1/webhooks", headers=dana).status_code == 403
    assert app.client.post("/api/v1/webhooks", json=body, headers=auditor).status_code == 403

    created = app.client.post("/api/v1/webhooks", json=body, headers=admin)
    assert created.status_code == 201, created.text
    subscription = created.json()
    assert subscription["secret"] and subscription["createdBy"] == "admin"
    listed = app.client.get("/api/v1/webhooks", headers=auditor)
    assert [s["url"] for s in listed.json()] == [receiver.url]
    assert "secret" not in listed.json()[0]

    breach(app.governance)
    receiver.answers = [500]
    app.governance.webhooks.tick()
    log = app.client.get(
        "/api/v1/webhooks/deliveries",
        params={"status": "pending", "subscription": subscription["id"]},
        headers=auditor,
    ).json()
    assert log["total"] == 1 and log["items"][0]["lastStatusCode"] == 500
    bad = app.client.get("/api/v1/webhooks/deliveries?status=lost", headers=auditor)
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    delivery_id = log["items"][0]["id"]
    retry = app.client.post(f"/api/v1/webhooks/deliveries/{delivery_id}/retry", headers=admin)
    assert retry.status_code == 409 and retry.json()["state"] == "pending"  # not failed
    assert (
        app.client.post(f"/api/v1/webhooks/deliveries/{delivery_id}/retry", headers=auditor)
    ).status_code == 403
    missing = app.client.post("/api/v1/webhooks/deliveries/999999/retry", headers=admin)
    assert missing.status_code == 404

    path = f"/api/v1/webhooks/{subscription['id']}"
    assert app.client.delete(path, headers=dana).status_code == 403
    assert app.client.delete(path, headers=admin).status_code == 204
    assert app.client.delete(path, headers=admin).status_code == 409
    assert app.client.get("/api/v1/webhooks", headers=admin).json()[0]["active"] is False


def console_sign_in(client: TestClient[Litestar], username: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    form = client.get("/login")
    login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert login_token, form.text
    answer = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "login_token": login_token[1]},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert found
    return found[1]


def test_console_page_adds_shows_the_secret_once_and_unsubscribes(
    app: App, receiver: Receiver
) -> None:
    browser = TestClient(app.app)
    csrf = console_sign_in(browser, "admin")
    page = browser.get("/admin/webhooks")
    assert page.status_code == 200
    assert "No webhook yet." in page.text and 'value="signature.needed"' in page.text
    assert 'href="/admin/webhooks"' in browser.get("/admin/users").text  # the admin links

    refused = browser.post("/admin/webhooks", data={"url": receiver.url, "events": "x.y"})
    assert refused.status_code == 403  # no CSRF token: nothing is made
    form = {"url": receiver.url, "events": ["monitoring.breach", "request.revoked"]}
    added = browser.post("/admin/webhooks", data={**form, "csrf_token": csrf})
    assert added.status_code == 201, added.text
    secret = re.search(r'data-testid="webhook-secret">([0-9a-f]{64})<', added.text)
    assert secret
    assert secret[1] not in browser.get("/admin/webhooks").text  # shown once
    [subscription] = app.governance.webhooks.list_subscriptions()
    assert list(subscription.events) == ["request.revoked", "monitoring.breach"]

    breach(app.governance)
    receiver.answers = [500]
    app.governance.webhooks.tick()
    log = browser.get("/admin/webhooks").text
    assert "monitoring.breach" in log and "HTTP 500" in log and "pending" in log
    verified(secret[1], receiver.received[0])

    wrong = browser.post(
        "/admin/webhooks",
        data={"url": "mailto:x@y", "events": "request.revoked", "csrf_token": csrf},
    )
    assert wrong.status_code == 200 and "url: is" in wrong.text  # the flash names the field

    gone = browser.post(f"/admin/webhooks/{subscription.id}/unsubscribe", data={"csrf_token": csrf})
    assert gone.status_code == 200 and "is unsubscribed" in gone.text
    assert app.governance.webhooks.list_subscriptions()[0].active is False

    auditor = TestClient(app.app)
    console_sign_in(auditor, "audrey")
    seen = auditor.get("/admin/webhooks")
    assert seen.status_code == 200 and "Add a webhook" not in seen.text
    assert auditor.post("/admin/webhooks", data=form).status_code == 403


# --- server-side request forgery ------------------------------------------------------------

INTERNAL_URLS = [
    "http://127.0.0.1:8080/internal-admin",  # plain http, and loopback
    "https://127.0.0.1:5432/",  # the database's port
    "https://127.0.0.2/",  # all of 127/8 is loopback
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://0x7f000001/",  # 127.0.0.1 written in hex,
    "https://2130706433/",  # as one decimal number,
    "https://127.1/",  # shortened,
    "https://0177.0.0.1/",  # in octal
    "https://localhost/",
    "https://app.localhost/",
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "https://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, mapped
    "https://[64:ff9b::a00:1]/",  # 10.0.0.1 through NAT64
    "https://[2002:c0a8:101::]/",  # 192.168.1.1 in 6to4
    "https://[fe80::1]/",
    "https://[fd00:ec2::254]/",  # unique-local (AWS metadata over IPv6)
    "https://[ff02::1]/",
    "https://10.1.2.3/",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",  # carrier-grade NAT
    "https://224.0.0.1/",
    "https://0.0.0.0/",
    "https://[::]/",
    "https://127.0.0.%31/",  # a percent-encoded host
    "http://hooks.example.com/governance",  # a public name, but plain http
    "http://chat-proxy.internal/",  # allow-listed, but plain http is allowed to it only…
]


def test_internal_addresses_are_refused_when_subscribed(app: App) -> None:
    """Every form of a loopback, private, link-local, metadata or unspecified address, and
    plain http, is refused with a problem naming `url` and the fix; nothing is recorded."""
    admin = app.api("admin")
    for url in INTERNAL_URLS[:-1]:
        body = {"url": url, "events": ["request.promoted"]}
        answer = app.client.post("/api/v1/webhooks", json=body, headers=admin)
        assert answer.status_code == 422, (url, answer.text)
        assert answer.headers["content-type"].startswith(PROBLEM_JSON)
        problem = answer.json()
        assert problem["field"] == "url", (url, problem)
        assert "https://" in problem["fix"] or "allow-list" in problem["fix"], (url, problem)
    assert app.client.get("/api/v1/webhooks", headers=admin).json() == []
    # …because GOVERNANCE_WEBHOOK_ALLOW_HTTP is set here: an allow-listed name is accepted.
    body = {"url": INTERNAL_URLS[-1], "events": ["request.promoted"]}
    assert app.client.post("/api/v1/webhooks", json=body, headers=admin).status_code == 201
    strict = Outbound.of(["chat-proxy.internal"])  # without it, https only
    with pytest.raises(InputError, match="plain http"):
        strict.checked("http://chat-proxy.internal/")
    assert strict.checked("https://chat-proxy.internal/hook").host == "chat-proxy.internal"


@dataclass
class Resolver:
    """A resolver hook for names under `.test`: each lookup takes the next answer (the last
    one again once they run out; an empty one: the name does not resolve). Other names go to
    the system resolver."""

    answers: list[list[str]] = field(default_factory=lambda: [[]])
    lookups: list[str] = field(default_factory=list)

    def answer(self, host: str) -> list[str]:
        self.lookups.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    hook = Resolver()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not str(host).endswith(".test"):
            return real(host, port, *args, **kwargs)
        answer = hook.answer(str(host))
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        family = {False: socket.AF_INET, True: socket.AF_INET6}
        return [(family[":" in a], socket.SOCK_STREAM, 6, "", (a, port)) for a in answer]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return hook


def test_a_name_that_resolves_to_loopback_is_refused_when_delivering(
    governance: Governance, receiver: Receiver, resolver: Resolver
) -> None:
    """Subscribed while the name answered a public address, then pointed at the loopback:
    the delivery is refused with the reason, and no connection is made."""
    port = receiver.netloc.split(":")[1]
    webhooks = webhooks_with(governance, Clock())
    resolver.answers = [["93.184.215.14"]]
    webhooks.subscribe(SYSTEM, f"https://hooks.example.test:{port}/hook", ["monitoring.breach"])
    resolver.answers = [["93.184.215.14", "127.0.0.1"]]  # every address counts, not the first
    breach(governance)
    assert webhooks.tick() == 1
    [row] = webhooks.list_deliveries().items
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 0, None)
    assert "127.0.0.1: a loopback address" in row.last_error
    assert receiver.received == []


def test_a_rebinding_resolver_cannot_move_the_connection(
    governance: Governance, receiver: Receiver, resolver: Resolver
) -> None:
    """The name is resolved once per delivery and the connection goes to that address, the
    name kept in the Host header: a resolver that answers a public address to the check and
    the loopback to whoever asks next never gets the loopback receiver called."""
    port = receiver.netloc.split(":")[1]
    webhooks = webhooks_with(governance, Clock(), timeout=1.0)
    resolver.answers = [[]]  # not resolvable yet: accepted, checked again when delivering
    rebind = webhooks.subscribe(SYSTEM, f"https://rebind.test:{port}/hook", ["monitoring.breach"])
    breach(governance)
    resolver.answers = [["192.0.2.1"], ["127.0.0.1"]]  # TEST-NET-1: refused, it is not public
    assert webhooks.tick() == 1
    [row] = webhooks.list_deliveries().items
    assert row.status == "failed" and "192.0.2.1" in row.last_error
    assert (
        receiver.received == [] and resolver.lookups.count("rebind.test") == 2
    )  # subscribed, delivered
    webhooks.unsubscribe(SYSTEM, rebind.id)

    # An allow-listed name is not judged by its address, but is still resolved once and
    # connected to as resolved: two receivers on one port, at two loopback addresses.
    other, server = start_receiver("127.0.0.2", int(port))
    try:
        allowed = Outbound.of([f"pinned.test:{port}"], allow_http=True)
        pinned = webhooks_with(governance, Clock(), allowed)
        pinned.subscribe(SYSTEM, f"http://pinned.test:{port}/hook", ["monitoring.breach"])
        breach(governance)
        resolver.answers = [["127.0.0.1"], ["127.0.0.2"]]
        assert pinned.tick() == 1
        assert resolver.lookups.count("pinned.test") == 1
        [request] = receiver.received
        assert request["headers"]["host"] == f"pinned.test:{port}"
        assert other.received == []
    finally:
        server.shutdown()
        server.server_close()


def test_auditors_see_status_and_timing_admins_a_short_clean_answer(
    app: App, receiver: Receiver
) -> None:
    """The receiver's answer is not the delivery log's business: an auditor reads status,
    attempts and timing only; an admin the answer's first 64 printable characters."""
    admin, auditor = app.api("admin"), app.api("audrey")
    body = {"url": receiver.url, "events": ["monitoring.breach"]}
    assert app.client.post("/api/v1/webhooks", json=body, headers=admin).status_code == 201
    receiver.answers = [500]
    receiver.body = b"root:x:0:0:\x1b[31mroot\u202e:/root:/bin/bash\n" + b"internal " * 40
    breach(app.governance)
    app.governance.webhooks.tick()

    def log(headers: dict[str, str]) -> dict[str, Any]:
        answer = app.client.get("/api/v1/webhooks/deliveries", headers=headers)
        assert answer.status_code == 200
        [item] = answer.json()["items"]
        return dict(item)

    seen = log(auditor)
    assert (seen["lastStatusCode"], seen["lastError"]) == (500, "HTTP 500")
    assert seen["lastDurationMs"] is not None and seen["lastAttemptAt"]
    assert "lastAnswer" not in seen and "root" not in json.dumps(seen)
    answer = log(admin)["lastAnswer"]
    assert answer.startswith("root:x:0:0:[31mroot") and len(answer) <= 64
    assert all(c.isprintable() for c in answer)

    browser = TestClient(app.app)
    console_sign_in(browser, "audrey")
    page = browser.get("/admin/webhooks").text
    assert "HTTP 500" in page and "root:x" not in page
    admin_browser = TestClient(app.app)
    console_sign_in(admin_browser, "admin")
    assert "root:x:0:0:" in admin_browser.get("/admin/webhooks").text
