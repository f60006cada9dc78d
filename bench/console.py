"""Benchmark: the web console's list pages on a large database (issue 5).

    .venv/bin/python bench/console.py [--database sqlite
        | --database postgresql://postgres@127.0.0.1:5432/test] [--repeat 30] [--warmup 3]
        [--keep DIR | --reuse DIR]

1. Seeds a fresh database (a SQLite file in a temporary directory, or a new PostgreSQL
   database on the server the URL names, dropped at the end) with bulk inserts:
   10,000 models (3 risk tiers, 40 owners), 10 versions each, one promotion request per
   version in a mix of states (latest versions: some awaiting approval, blocked, waiver
   requested; older ones mostly expired, rejected, promoted), the 3 shipped policies pinned,
   the signatures those states imply, and 100,000 audit events chained with
   `governance.domain.audit.next_event` (the chain is verified). Then `initialise` (keys,
   access rules, admin) and the people who read the pages: a model risk officer, a business
   owner, an auditor, a chief risk officer and a data scientist.
2. Serves the real app (`create_app(settings, run_jobs=False)`) through Litestar's
   TestClient, signed in through the console's /login form, and fetches every list page:
   a warm-up, then `--repeat` timed requests. Server time is taken inside the app (around
   its ASGI handler); in the same requests the Browse / audit_page call and the Jinja2
   render are timed on their own.
3. Next to each page: the same SQL statements the page ran (captured from the engine; the
   session and access-rule lookups left out), replayed directly with SQLAlchemy's
   `exec_driver_sql` and fetched → page ÷ SQL; and the naive query a list page would run
   (one join, ORDER BY, OFFSET, COUNT over the join), checked to return the same rows as
   the page's service call, and timed.
4. `/audit/verify` once (the chain check the audit page loads after it shows), then the
   queue again with 10,000 requests awaiting approval (older requests set back to
   awaiting_approval for the measurement, and put back after).

Prints the table and writes bench/out/console-<backend>.json. `--keep DIR` keeps the seeded
home directory (and PostgreSQL database); `--reuse DIR` measures it again without seeding
(migrations are applied first, so a new index is measured on the same data).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import platform
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, bindparam, event, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from governance.bootstrap import initialise, open_governance  # noqa: E402
from governance.config import Settings  # noqa: E402
from governance.connectors.files import load_policy  # noqa: E402
from governance.domain.audit import ChainedEvent, next_event, verify_chain  # noqa: E402
from governance.resources import PACKAGED_POLICIES  # noqa: E402
from governance.services.people import SYSTEM  # noqa: E402
from governance.store.database import make_engine, upgrade  # noqa: E402
from governance.store.repository import audit_trail  # noqa: E402
from governance.store.tables import (  # noqa: E402
    AuditEventRow,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
    Signature,
    UtcDateTime,
)

OUT = ROOT / "bench" / "out"
MODELS, VERSIONS, EVENTS = 10_000, 10, 100_000
QUEUE_AWAITING = 10_000
BATCH = 5_000
SEED = 20_261_205
TARGET_MS = 100.0
PASSWORD = "bench-console-passphrase"
ADMIN_PASSWORD = "bench-admin-passphrase"

# The people who sign in, and the names that fill the data (signers, submitters, owners).
PEOPLE = {
    "maria": ("Maria Rossi", "model_risk_officer"),
    "bob": ("Bob Stone", "business_owner"),
    "alice": ("Alice Chen", "auditor"),
    "carol": ("Carol Diaz", "chief_risk_officer"),
    "dave": ("Dave Okafor", "data_scientist"),
}
RISK_OFFICERS = ["maria", "omar", "priya", "quentin", "rosa"]
OWNERS = ["bob", *(f"owner{i:02d}" for i in range(1, 40))]
SCIENTISTS = ["dave", *(f"scientist{i:02d}" for i in range(1, 30))]
RISK_CHIEFS = ["carol", "wei"]
TEAMS = ["credit", "fraud", "churn", "pricing", "marketing", "claims", "kyc", "collections"]
USES = ["score", "risk", "propensity", "ranker", "classifier", "forecast"]
TIERS = [("low", 0.40), ("medium", 0.35), ("high", 0.25)]
QUORUM = {"high": ["model_risk_officer", "business_owner"], "medium": ["model_risk_officer"]}
QUORUM_LOW = ["business_owner"]
EXPIRES_DAYS = {"low": 730, "medium": 365, "high": 365}
# Final states: the newest version of a model, and the nine before it.
LATEST_MIX = [
    ("awaiting_approval", 0.22), ("promoted", 0.35), ("blocked", 0.10),
    ("waiver_requested", 0.03), ("approved", 0.05), ("waived", 0.02), ("rejected", 0.10),
    ("checking", 0.02), ("submitted", 0.01), ("revoked", 0.03), ("expired", 0.07),
]  # fmt: skip
OLDER_MIX = [
    ("expired", 0.55), ("rejected", 0.20), ("blocked", 0.15), ("revoked", 0.05),
    ("promoted", 0.05),
]  # fmt: skip
AUTH_TABLES = ("user_session", "user_account", "casbin_rule", "api_token")


# --- seeding ------------------------------------------------------------------------------


def _pick(rng: random.Random, mix: list[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in mix], [w for _, w in mix])[0]


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


@dataclass
class Seeded:
    counts: dict[str, int]
    seconds: dict[str, float]
    models: list[str]
    now: datetime


@dataclass
class Life:
    """One request's history: its row, its signatures and its audit events."""

    row: dict[str, Any]
    signatures: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[datetime, str, str, str, dict[str, Any]]] = field(default_factory=list)


def lifecycle(
    rng: random.Random,
    request_id: str,
    model: dict[str, Any],
    version: dict[str, Any],
    policy: tuple[int, str, str],
    final: str,
    now: datetime,
) -> Life:
    """A request moved through the workflow's states to `final`, with the timestamps,
    signatures and audit events the service would have written on the way."""
    policy_id, policy_label, policy_sha = policy
    tier, owner = model["risk_tier"], model["owner"]
    subject = f"model:{model['name']}@{version['version']}"
    submitter = rng.choice(SCIENTISTS)
    target = "production" if tier == "high" or rng.random() < 0.8 else "staging"
    clock = version["created_at"] + timedelta(minutes=rng.uniform(1, 30))
    created = clock
    limit = now - timedelta(minutes=5)
    life = Life(row={})
    state = "submitted"
    updated, reason, expires = created, None, None

    def later(low: float, high: float) -> datetime:
        nonlocal clock
        clock = min(clock + timedelta(seconds=rng.uniform(low, high)), limit)
        return clock

    def log(moment: datetime, actor: str, action: str, payload: dict[str, Any]) -> None:
        life.events.append((moment, actor, action, subject, payload))

    def move(to: str, actor: str, action: str, why: str | None, **extra: Any) -> None:
        nonlocal state, updated, reason
        moment = clock
        payload = {"request_id": request_id, "from": state, "to": to}
        if why:
            payload["reason"] = why
        payload.update(extra)
        log(moment, actor, f"request.{action}", payload)
        state, updated, reason = to, moment, why

    def sign(username: str, role: str, meaning: str, comment: str) -> None:
        moment = later(3600, 4 * 86400)
        evidence = hashlib.sha256(f"{request_id}/evidence".encode()).hexdigest()
        full = PEOPLE.get(username, (username.title(),))[0]
        life.signatures.append(
            {
                "request_id": request_id,
                "username": username,
                "full_name": full,
                "role": role,
                "meaning": meaning,
                "comment": comment,
                "evidence_sha256": evidence,
                "reauthenticated": True,
                "signed_at": moment,
            }
        )
        log(
            moment,
            username,
            f"signature.{meaning}",
            {
                "request_id": request_id,
                "full_name": full,
                "role": role,
                "meaning": meaning,
                "comment": comment,
                "evidence_sha256": evidence,
            },
        )

    def signer(role: str) -> str:
        pool = {
            "model_risk_officer": RISK_OFFICERS,
            "business_owner": OWNERS,
            "chief_risk_officer": RISK_CHIEFS,
        }[role]
        while True:
            name = rng.choice(pool)
            if name not in (owner, submitter):
                return name

    log(
        created,
        submitter,
        "request.submitted",
        {
            "request_id": request_id,
            "target": target,
            "artifact_sha256": version["artifact_sha256"],
            "policy": policy_label,
            "policy_sha256": policy_sha,
        },
    )
    if final != "submitted":
        later(5, 60)
        move("checking", "governance", "start_checks", None)
    if final not in ("submitted", "checking"):
        later(60, 1800)
        decision = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if final in ("blocked", "waiver_requested", "waived"):
            move(
                "blocked",
                "governance",
                "checks_blocked",
                "fairness: equalized_odds_difference 0.12 is over 0.05",
                decision_id=decision,
                verdict="fail",
                checks_by="governance",
            )
        else:
            move(
                "awaiting_approval",
                "governance",
                "checks_passed",
                "every blocking rule passed",
                decision_id=decision,
                verdict="pass",
                checks_by="governance",
            )
    roles = QUORUM.get(tier, QUORUM_LOW)
    if final == "awaiting_approval" and len(roles) > 1 and rng.random() < 0.4:
        role = rng.choice(roles)
        sign(signer(role), role, "approve", "Validation report reviewed; no findings.")
    if final in ("approved", "promoted", "expired", "revoked"):
        for role in roles:
            name = signer(role)
            sign(name, role, "approve", "Reviewed the evidence; fit for purpose.")
        full = PEOPLE.get(name, (name.title(),))[0]
        expires = clock + timedelta(days=EXPIRES_DAYS[tier])
        move("approved", name, "approve", f"approve by {full} ({role}): fit", role=role)
    if final == "rejected":
        role = roles[0]
        name = signer(role)
        sign(name, role, "reject", "Performance below the champion on the holdout.")
        move("rejected", name, "reject", f"reject by {name} ({role})", role=role)
    if final in ("waiver_requested", "waived"):
        later(3600, 2 * 86400)
        move(
            "waiver_requested",
            submitter,
            "request_waiver",
            "Needed for the quarter-end close; retraining is scheduled.",
            days=30,
        )
    if final == "waived":
        name = signer("chief_risk_officer")
        sign(name, "chief_risk_officer", "waive", "Granted for 30 days, with monitoring.")
        expires = clock + timedelta(days=30)
        move("waived", name, "grant_waiver", f"waive by {name}", role="chief_risk_officer")
    if final in ("promoted", "expired", "revoked"):
        later(600, 86400)
        move("promoted", submitter, "promote", None)
    if final == "expired":
        later(30 * 86400, 200 * 86400)
        move("expired", "governance", "expire", "the approval expired")
    if final == "revoked":
        later(86400, 60 * 86400)
        move("revoked", rng.choice(RISK_OFFICERS), "revoke", "drift over the threshold")
    life.row = {
        "id": request_id,
        "model_version_id": version["id"],
        "target": target,
        "policy_id": policy_id,
        "submitter": submitter,
        "state": state,
        "state_reason": reason,
        "decision_id": None,
        "inputs": {
            "artifact": f"s3://models/{model['name']}/{version['version']}/model.skops",
            "data": f"s3://data/{model['name']}/eval.parquet",
            "reference": f"s3://data/{model['name']}/train.parquet",
            "label": "label",
        },
        "expires_at": expires,
        "created_at": created,
        "updated_at": updated,
    }
    return life


def seed(engine: Engine, now: datetime) -> Seeded:
    """Bulk-insert the models, versions, policies, requests, signatures and audit events."""
    rng = random.Random(SEED)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    policies = [load_policy(path) for path in sorted(PACKAGED_POLICIES.glob("*.yaml"))]
    policy_rows = [
        {
            "id": index,
            "name": p.metadata.name,
            "version": p.metadata.version,
            "sha256": p.content_hash,
            "risk_tier": p.applies_to.risk_tier,
            "document": json.loads(p.canonical_json()),
            "created_at": now - timedelta(days=800),
        }
        for index, p in enumerate(policies, start=1)
    ]
    by_tier = {
        row["risk_tier"]: (row["id"], f"{row['name']} v{row['version']}", row["sha256"])
        for row in policy_rows
    }
    start = now - timedelta(days=730)
    models, versions = [], []
    for index in range(1, MODELS + 1):
        created = start + timedelta(seconds=rng.uniform(0, 300 * 86400))
        owner = None if rng.random() < 0.05 else rng.choice(OWNERS)
        name = f"{rng.choice(TEAMS)}-{rng.choice(USES)}-{index:05d}"
        models.append(
            {
                "id": index,
                "name": name,
                "risk_tier": _pick(rng, TIERS),
                "owner": owner,
                "created_at": created,
            }
        )
        moments = sorted(
            created + timedelta(seconds=rng.uniform(0, (now - created).total_seconds() - 86400))
            for _ in range(VERSIONS)
        )
        for number, moment in enumerate(moments, start=1):
            versions.append(
                {
                    "id": (index - 1) * VERSIONS + number,
                    "model_id": index,
                    "version": str(number),
                    "artifact_sha256": hashlib.sha256(f"{name}@{number}".encode()).hexdigest(),
                    "artifact_uri": f"s3://models/{name}/{number}/model.skops",
                    "created_at": moment,
                }
            )
    lives = []
    for v in versions:
        model = models[v["model_id"] - 1]
        final = _pick(rng, LATEST_MIX if v["version"] == str(VERSIONS) else OLDER_MIX)
        request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        lives.append(lifecycle(rng, request_id, model, v, by_tier[model["risk_tier"]], final, now))
    seconds["generate rows"] = time.perf_counter() - started

    # The trail: the newest EVENTS events of these histories, chained in time order.
    started = time.perf_counter()
    lives_by_age = sorted(lives, key=lambda life: life.row["created_at"], reverse=True)
    raw: list[tuple[datetime, str, str, str, dict[str, Any]]] = []
    for life in lives_by_age:
        raw.extend(life.events)
        if len(raw) >= EVENTS * 1.2:
            break
    raw.sort(key=lambda e: e[0])
    raw = raw[-EVENTS:]
    head: ChainedEvent | None = None
    audit_rows = []
    for moment, actor, action, subject, payload in raw:
        head = next_event(
            head, time=moment, actor=actor, action=action, subject=subject, payload=payload
        )
        audit_rows.append(
            {**head.event.model_dump(), "prev_hash": head.prev_hash, "hash": head.hash}
        )
    seconds["chain audit events"] = time.perf_counter() - started

    started = time.perf_counter()
    tables: list[tuple[Any, list[dict[str, Any]]]] = [
        (Policy, policy_rows),
        (Model, models),
        (ModelVersion, versions),
        (PromotionRequest, [life.row for life in lives]),
        (Signature, [s for life in lives for s in life.signatures]),
        (AuditEventRow, audit_rows),
    ]
    with engine.begin() as connection:
        for table, rows in tables:
            for batch in _batches(rows):
                connection.execute(insert(table.__table__), batch)  # type: ignore[attr-defined]
        if engine.dialect.name == "postgresql":
            # The ids were given: move the sequences past them, as inserts would have.
            for table in ("policy", "model", "model_version", "signature"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    seconds["bulk insert"] = time.perf_counter() - started
    counts = {table.__tablename__: len(rows) for table, rows in tables}
    return Seeded(counts, seconds, [m["name"] for m in models], now)


def settle(engine: Engine, analyze_sqlite: bool) -> None:
    """PostgreSQL: VACUUM ANALYZE, the state autovacuum reaches a minute after a bulk load.
    SQLite: nothing unless asked (the app never runs ANALYZE)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    elif analyze_sqlite:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def create_pg_database(spec: str) -> str:
    import psycopg
    from psycopg import sql

    server = make_url(spec)
    name = f"governance_console_{secrets.token_hex(6)}"
    maintenance = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parsed = make_url(url)
    maintenance = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(parsed.database or "")
    )
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
        connection.execute(drop)


def make_settings(home: Path, url: str) -> Settings:
    return Settings(
        home=home,
        database_url=url,
        policies=PACKAGED_POLICIES,
        signing_key=home / "signing-key.pem",
    )


def prepare(settings: Settings, analyze_sqlite: bool) -> Seeded:
    """Schema, bulk data, then the service's own set-up and people (their audit events
    chain onto the seeded trail, through the service)."""
    now = datetime.now(UTC).replace(microsecond=0)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        seeded = seed(engine, now)
        started = time.perf_counter()
        initialise(settings, ADMIN_PASSWORD)
        governance = open_governance(settings)
        try:
            for username, (full_name, role) in PEOPLE.items():
                governance.people.add_user(SYSTEM, username, full_name, PASSWORD, [role])
        finally:
            governance.close()
        seeded.seconds["initialise + people"] = time.perf_counter() - started
        started = time.perf_counter()
        trail = audit_trail(engine)
        problems = verify_chain(trail)
        seeded.seconds["verify chain"] = time.perf_counter() - started
        seeded.counts["audit_event (with the people's)"] = len(trail)
        if problems:
            raise SystemExit(f"the seeded audit chain is broken: {problems[:3]}")
        started = time.perf_counter()
        settle(engine, analyze_sqlite)
        seeded.seconds["settle (VACUUM ANALYZE on PostgreSQL)"] = time.perf_counter() - started
    finally:
        engine.dispose()
    return seeded


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Sample:
    server: float = 0.0
    service: float = 0.0
    render: float = 0.0
    statements: list[tuple[str, Any]] = field(default_factory=list)


class Probe:
    """Timers inside the app's process: the ASGI handler (server time), the Browse /
    audit_page calls, Jinja2's render, and the SQL the engine sends (captured to replay)."""

    def __init__(self) -> None:
        self.current: Sample | None = None

    def install(self, app: Any, governance: Any) -> None:
        import jinja2

        import governance.store.repository as repository

        probe = self
        inner = app.asgi_handler

        async def timed(scope: Any, receive: Any, send: Any) -> None:
            started = time.perf_counter()
            try:
                await inner(scope, receive, send)
            finally:
                if probe.current is not None and scope["type"] == "http":
                    probe.current.server += time.perf_counter() - started

        app.asgi_handler = timed

        def timer(function: Callable[..., Any], slot: str) -> Callable[..., Any]:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    if probe.current is not None:
                        elapsed = time.perf_counter() - started
                        setattr(probe.current, slot, getattr(probe.current, slot) + elapsed)

            return wrapped

        browse = governance.browse
        for name in ("queue", "requests", "models", "model_history"):
            setattr(browse, name, timer(getattr(browse, name), "service"))
        repository.audit_page = timer(repository.audit_page, "service")
        with contextlib.suppress(ImportError):  # the audit page's service call
            from governance.services import catalog

            catalog.audit_listing = timer(catalog.audit_listing, "service")  # type: ignore[attr-defined]
        jinja2.Template.render = timer(jinja2.Template.render, "render")  # type: ignore[method-assign]

        @event.listens_for(governance.engine, "before_cursor_execute")
        def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if (
                probe.current is not None
                and not statement.startswith("BEGIN")
                and not any(t in statement for t in AUTH_TABLES)
            ):
                probe.current.statements.append((statement, parameters))

    @contextlib.contextmanager
    def recording(self) -> Iterator[Sample]:
        sample = Sample()
        self.current = sample
        try:
            yield sample
        finally:
            self.current = None


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def replay(engine: Engine, statements: list[tuple[str, Any]], repeat: int) -> list[float]:
    """The page's SQL, run directly: execute and fetch every row, `repeat` times."""
    timings = []
    with engine.connect() as connection:
        for _ in range(2):
            for statement, parameters in statements:
                connection.exec_driver_sql(statement, parameters).fetchall()
        for _ in range(repeat):
            started = time.perf_counter()
            for statement, parameters in statements:
                connection.exec_driver_sql(statement, parameters).fetchall()
            timings.append(time.perf_counter() - started)
            connection.rollback()
    return timings


def timed_calls(function: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    result = function()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        timings.append(time.perf_counter() - started)
    return timings, result


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass
class Row:
    label: str
    who: str
    status: int
    server: list[float]
    service: list[float]
    render: list[float]
    sql: list[float]
    statements: int
    naive: list[float] | None
    naive_same: bool | None
    others_busy: float
    note: str = ""

    def ms(self, values: list[float] | None, how: Callable[[list[float]], float]) -> float | None:
        return how(values) * 1000 if values else None


def sign_in(client: Any, username: str, password: str) -> None:
    client.cookies.clear()
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    if form.status_code != 200 or token is None:
        raise SystemExit(f"GET /login answered {form.status_code} without a login_token")
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "login_token": token[1], "next": "/"},
        follow_redirects=False,
    )
    if answer.status_code != 303:
        raise SystemExit(f"POST /login as {username} answered {answer.status_code}")


@dataclass
class Case:
    label: str
    who: str
    path: str
    naive: Callable[[Engine], Any] | None = None
    ours: Callable[[Any], Any] | None = None  # our service call, for the same-rows check
    direct: Callable[[Any], Any] | None = None  # when the page does not exist yet


def measure_case(
    client: Any, probe: Probe, engine: Engine, case: Case, governance: Any, args: Any
) -> Row:
    for _ in range(args.warmup):
        client.get(case.path)
    server, service, render = [], [], []
    statements: list[tuple[str, Any]] = []
    status = 0
    note = ""
    busy0, total0 = cpu_busy()
    own0 = own_cpu()
    listing: Any = None
    for _ in range(args.repeat):
        with probe.recording() as sample:
            answer = client.get(case.path)
        status = answer.status_code
        if status != 200:
            break
        server.append(sample.server)
        service.append(sample.service)
        render.append(sample.render)
        statements = sample.statements
    if status != 200:
        if case.direct is None:
            raise SystemExit(f"GET {case.path} as {case.who} answered {status}")
        note = f"GET {case.path.split('?')[0]} answered {status}: the service call measured"
        server, service, render = [], [], []
        for _ in range(args.repeat):
            with probe.recording() as sample:
                started = time.perf_counter()
                listing = case.direct(governance)
                service.append(time.perf_counter() - started)
            statements = sample.statements
    busy1, total1 = cpu_busy()
    own1 = own_cpu()
    ticks = os.sysconf("SC_CLK_TCK")
    others = max(0.0, (busy1 - busy0) - (own1 - own0) * ticks) / max(1, total1 - total0)
    sql = replay(engine, statements, args.repeat)
    naive_times, same = None, None
    if case.naive is not None:
        naive_times, naive_rows = timed_calls(lambda: case.naive(engine), max(5, args.repeat // 3))
        if case.ours is not None:
            if listing is None:
                listing = case.ours(governance)
            same = naive_rows == _ids(listing)
    return Row(
        case.label,
        case.who,
        status,
        server,
        service,
        render,
        sql,
        len(statements),
        naive_times,
        same,
        others,
        note,
    )


def _ids(listing: dict[str, Any]) -> tuple[int, list[Any]]:
    """(total, the page's keys in order): what a naive query's answer is compared on."""
    items = listing["items"]
    if items and "event" in items[0]:  # audit events
        return listing["total"], [i["event"]["seq"] for i in items]
    key = "id" if items and "id" in items[0] else "name"  # requests, or models
    return listing["total"], [i[key] for i in items]


# --- the naive queries: one join, ORDER BY, OFFSET, COUNT over the join -------------------

NAIVE_JOIN = """
FROM promotion_request r
JOIN model_version v ON r.model_version_id = v.id
JOIN model m ON v.model_id = m.id
JOIN policy p ON r.policy_id = p.id
"""


def naive_requests(where: str, params: dict[str, Any], order: str, offset: int, size: int = 25):
    # datetimes bound as the column stores them (UtcDateTime: text in UTC on SQLite)
    typed = [bindparam(k, type_=UtcDateTime) for k, v in params.items() if isinstance(v, datetime)]

    def run(engine: Engine) -> tuple[int, list[Any]]:
        count = text(f"SELECT count(*) FROM (SELECT r.id {NAIVE_JOIN} WHERE {where}) AS q")
        page = text(
            f"SELECT r.*, v.*, m.*, p.* {NAIVE_JOIN} WHERE {where} ORDER BY {order} "
            f"LIMIT {size} OFFSET {offset}"
        )
        with engine.connect() as connection:
            total = connection.execute(count.bindparams(*typed), params).scalar_one()
            rows = connection.execute(page.bindparams(*typed), params).all()
        return total, [row[0] for row in rows]

    return run


def naive_models(name: str | None, offset: int, size: int = 25):
    where = "m.name LIKE :name" if name else "1 = 1"
    params = {"name": f"%{name}%"} if name else {}

    def run(engine: Engine) -> tuple[int, list[Any]]:
        joined = (
            "FROM model m LEFT OUTER JOIN (SELECT model_id, count(*) AS versions, "
            "max(created_at) AS latest FROM model_version GROUP BY model_id) AS v "
            f"ON v.model_id = m.id WHERE {where}"
        )
        with engine.connect() as connection:
            total = connection.execute(
                text(f"SELECT count(*) FROM (SELECT m.id {joined}) AS q"), params
            ).scalar_one()
            rows = connection.execute(
                text(
                    f"SELECT m.*, v.versions, v.latest {joined} ORDER BY m.name "
                    f"LIMIT {size} OFFSET {offset}"
                ),
                params,
            ).all()
        return total, [row.name for row in rows]

    return run


def naive_audit(action: str | None, offset: int, size: int):
    where = "action = :action" if action else "1 = 1"
    params = {"action": action} if action else {}

    def run(engine: Engine) -> tuple[int, list[Any]]:
        with engine.connect() as connection:
            total = connection.execute(
                text(f"SELECT count(*) FROM audit_event WHERE {where}"), params
            ).scalar_one()
            rows = connection.execute(
                text(
                    f"SELECT * FROM audit_event WHERE {where} ORDER BY seq DESC "
                    f"LIMIT {size} OFFSET {offset}"
                ),
                params,
            ).all()
        return total, [row.seq for row in rows]

    return run


def queue_where(governance: Any, username: str) -> tuple[str, dict[str, Any]]:
    """The queue's rule written out by hand: the policy ids this person may sign for (every
    shipped policy forbids self-approval, so one branch for approvals is enough)."""
    roles = set(governance.access.roles_of(username))
    with governance.engine.connect() as connection:
        pinned = connection.execute(text("SELECT id, sha256 FROM policy")).all()
    by_hash = {p.content_hash: p for p in governance.workflow.policies.policies}
    approvable, waivable = [], []
    for policy_id, sha in pinned:
        policy = by_hash.get(sha)
        if policy is None:
            continue
        if roles & set(policy.approvals.roles):
            approvable.append(policy_id)
        if policy.waivers.allowed and policy.waivers.approver_role in roles:
            waivable.append(policy_id)

    def ids(values: list[int]) -> str:
        return ", ".join(str(v) for v in values) or "NULL"

    where = (
        "(r.submitter != :me AND (m.owner IS NULL OR m.owner != :me) AND ("
        f"(r.state = 'awaiting_approval' AND r.policy_id IN ({ids(approvable)})) OR "
        f"(r.state = 'waiver_requested' AND r.policy_id IN ({ids(waivable)}))))"
        " AND NOT EXISTS (SELECT 1 FROM signature s WHERE s.request_id = r.id "
        "AND s.username = :me)"
    )
    return where, {"me": username}


# --- the run ------------------------------------------------------------------------------


def cases(governance: Any, seeded_models: list[str], now: datetime) -> list[Case]:
    from governance.services.browse import Page, RequestFilter
    from governance.store.repository import audit_page

    since = (now - timedelta(days=90)).date()
    model = seeded_models[4242]
    newest = "r.created_at DESC, r.id"
    mine, mine_params = queue_where(governance, "maria")
    bobs, bob_params = queue_where(governance, "bob")
    audit_size = 100
    return [
        Case(
            "/ (queue, model risk officer)",
            "maria",
            "/",
            naive_requests(mine, mine_params, "r.updated_at, r.id", 0),
            lambda g: g.browse.queue(_principal(g, "maria"), g.workflow.policies.policies, Page(1)),
        ),
        Case(
            "/ (queue, business owner)",
            "bob",
            "/",
            naive_requests(bobs, bob_params, "r.updated_at, r.id", 0),
            lambda g: g.browse.queue(_principal(g, "bob"), g.workflow.policies.policies, Page(1)),
        ),
        Case(
            "/requests",
            "alice",
            "/requests",
            naive_requests("1 = 1", {}, newest, 0),
            lambda g: g.browse.requests(RequestFilter(), Page(1)),
        ),
        Case(
            "/requests?state=awaiting_approval",
            "alice",
            "/requests?state=awaiting_approval",
            naive_requests("r.state = 'awaiting_approval'", {}, newest, 0),
            lambda g: g.browse.requests(RequestFilter(state="awaiting_approval"), Page(1)),
        ),
        Case(
            f"/requests?tier=high&from={since}",
            "alice",
            f"/requests?tier=high&from={since}",
            naive_requests(
                "m.risk_tier = 'high' AND r.created_at >= :since",
                {"since": datetime.combine(since, datetime.min.time(), UTC)},
                newest,
                0,
            ),
            lambda g: g.browse.requests(
                RequestFilter(risk_tier="high", submitted_from=since), Page(1)
            ),
        ),
        Case(
            "/requests?model=… (one model)",
            "alice",
            f"/requests?model={model}",
            naive_requests("m.name = :name", {"name": model}, newest, 0),
            lambda g: g.browse.requests(RequestFilter(model=model), Page(1)),
        ),
        Case(
            "/requests?page=2000 (offset 49,975)",
            "alice",
            "/requests?page=2000",
            naive_requests("1 = 1", {}, newest, 1999 * 25),
            lambda g: g.browse.requests(RequestFilter(), Page(2000)),
        ),
        Case(
            "/models",
            "alice",
            "/models",
            naive_models(None, 0),
            lambda g: g.browse.models(None, None, Page(1)),
            lambda g: g.browse.models(None, None, Page(1)),
        ),
        Case(
            "/models?name=fraud",
            "alice",
            "/models?name=fraud",
            naive_models("fraud", 0),
            lambda g: g.browse.models("fraud", None, Page(1)),
            lambda g: g.browse.models("fraud", None, Page(1)),
        ),
        Case(
            "/models?page=200 (offset 4,975)",
            "alice",
            "/models?page=200",
            naive_models(None, 199 * 25),
            lambda g: g.browse.models(None, None, Page(200)),
            lambda g: g.browse.models(None, None, Page(200)),
        ),
        Case(
            "/models/{name}",
            "alice",
            f"/models/{model}",
            naive_requests("m.name = :name", {"name": model}, newest, 0),
            lambda g: g.browse.model_history(model, Page(1)),
            lambda g: g.browse.model_history(model, Page(1)),
        ),
        Case(
            "/audit",
            "alice",
            "/audit",
            naive_audit(None, 0, audit_size),
            lambda g: audit_page(g.engine, limit=audit_size),
            lambda g: audit_page(g.engine, limit=audit_size),
        ),
        Case(
            "/audit?action=signature.approve",
            "alice",
            "/audit?action=signature.approve",
            naive_audit("signature.approve", 0, audit_size),
            lambda g: audit_page(g.engine, action="signature.approve", limit=audit_size),
            lambda g: audit_page(g.engine, action="signature.approve", limit=audit_size),
        ),
        Case(
            "/audit?page=500 (offset 49,900)",
            "alice",
            "/audit?page=500",
            naive_audit(None, 499 * audit_size, audit_size),
            lambda g: audit_page(g.engine, limit=audit_size, offset=499 * audit_size),
            lambda g: audit_page(g.engine, limit=audit_size, offset=499 * audit_size),
        ),
    ]


def _principal(governance: Any, username: str) -> Any:
    from governance.services.people import Principal

    full_name, _ = PEOPLE[username]
    roles = frozenset(governance.access.roles_of(username))
    return Principal(username, full_name, "user", roles, username)


def set_states(engine: Engine, states: dict[str, str]) -> None:
    """Set these requests' states (request id → state), 500 to an UPDATE."""
    by_state: dict[str, list[str]] = {}
    for request_id, state in states.items():
        by_state.setdefault(state, []).append(request_id)
    with engine.begin() as connection:
        for state, ids in by_state.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join(f":i{n}" for n in range(len(chunk)))
                connection.execute(
                    text(f"UPDATE promotion_request SET state = :state WHERE id IN ({marks})"),
                    {"state": state, **{f"i{n}": value for n, value in enumerate(chunk)}},
                )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE promotion_request"))


def verify_page(client: Any, probe: Probe) -> Row:
    """The chain check the audit page loads after it shows (`/audit/verify`): it reads and
    verifies every event, so it is timed once, not as a list page."""
    sign_in(client, "alice", PASSWORD)
    with probe.recording() as sample:
        answer = client.get("/audit/verify")
    note = f"one request (answered {answer.status_code}); not a list page"
    return Row(
        "/audit/verify (chain check the audit page loads)",
        "alice",
        answer.status_code,
        [sample.server],
        [],
        [sample.render],
        [],
        0,
        None,
        None,
        0.0,
        note,
    )


def awaiting_many(engine: Engine, wanted: int) -> tuple[int, dict[str, str]]:
    """Set older requests back to awaiting_approval until `wanted` await (the queue's worst
    case). Returns how many await now, and the states to put back afterwards."""
    with engine.connect() as connection:
        have = connection.execute(
            text("SELECT count(*) FROM promotion_request WHERE state = 'awaiting_approval'")
        ).scalar_one()
        before = connection.execute(
            text(
                "SELECT id, state FROM promotion_request WHERE state IN ('expired', 'rejected') "
                "ORDER BY id LIMIT :n"
            ),
            {"n": max(0, wanted - have)},
        ).all()
    set_states(engine, {request_id: "awaiting_approval" for request_id, _ in before})
    return have + len(before), {request_id: state for request_id, state in before}


def run_pages(settings: Settings, seeded_models: list[str], now: datetime, args: Any) -> list[Row]:
    from litestar.testing import TestClient

    from governance.web.app import create_app

    app = create_app(settings, run_jobs=False)
    governance = app.state.governance
    probe = Probe()
    probe.install(app, governance)
    direct_engine = make_engine(settings.database_url)
    rows: list[Row] = []
    try:
        with TestClient(app=app, base_url="http://console.local") as client:
            signed_in = None
            all_cases = cases(governance, seeded_models, now)
            for case in all_cases:
                if signed_in != case.who:
                    sign_in(client, case.who, PASSWORD)
                    signed_in = case.who
                row = measure_case(client, probe, direct_engine, case, governance, args)
                rows.append(row)
                print(_line(row), flush=True)
            if args.verify_page:
                rows.append(verify_page(client, probe))
                print(_line(rows[-1]), flush=True)
            awaiting, put_back = awaiting_many(direct_engine, QUEUE_AWAITING)
            try:
                for case in all_cases[:2]:
                    case.label = f"{case.label}, {awaiting:,} awaiting"
                    case.naive = naive_requests(
                        *queue_where(governance, case.who), "r.updated_at, r.id", 0
                    )
                    sign_in(client, case.who, PASSWORD)
                    row = measure_case(client, probe, direct_engine, case, governance, args)
                    rows.append(row)
                    print(_line(row), flush=True)
            finally:
                set_states(direct_engine, put_back)
    finally:
        direct_engine.dispose()
    return rows


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _line(row: Row) -> str:
    median = row.ms(row.server, statistics.median)
    return (
        f"  {row.label:<48} {_fmt(median):>7} ms  (p95 {_fmt(row.ms(row.server, p95))}, "
        f"SQL {_fmt(row.ms(row.sql, statistics.median))}, "
        f"other CPU {row.others_busy:.0%})"
    )


def table(rows: list[Row], backend: str) -> str:
    """The figures as a Markdown table. A page meets the target when its median server time
    is under 100 ms."""
    lines = [
        f"| page ({backend}) | best ms | median ms | p95 ms | Browse / audit call ms "
        "| render ms | SQL directly ms | page ÷ SQL | naive query ms | same rows | < 100 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        median = row.ms(row.server, statistics.median)
        sql = row.ms(row.sql, statistics.median)
        basis = median if median is not None else row.ms(row.service, statistics.median)
        ratio = f"{median / sql:.1f}×" if median is not None and sql else "—"
        verdict = "—" if basis is None else "yes" if basis < TARGET_MS else "**no**"
        same = {True: "yes", False: "**no**", None: "—"}[row.naive_same]
        lines.append(
            f"| {row.label} | {_fmt(row.ms(row.server, min))} | {_fmt(median)} | "
            f"{_fmt(row.ms(row.server, p95))} | "
            f"{_fmt(row.ms(row.service, statistics.median))} | "
            f"{_fmt(row.ms(row.render, statistics.median))} | {_fmt(sql)} | {ratio} | "
            f"{_fmt(row.ms(row.naive, statistics.median))} | {same} | {verdict} |"
        )
    for row in rows:
        if row.note:
            lines.append(f"\n{row.label}: {row.note}")
    return "\n".join(lines)


def versions_line(url: str) -> str:
    names = ["sqlalchemy", "litestar", "jinja2", "psycopg"]
    parts = [f"python {platform.python_version()}"]
    parts += [f"{name} {version(name)}" for name in names]
    parts.append(f"sqlite {sqlite3.sqlite_version}")
    if url.startswith("postgresql"):
        engine = make_engine(url)
        with engine.connect() as connection:
            server = connection.execute(text("SHOW server_version")).scalar_one()
        engine.dispose()
        parts.append(f"postgresql {server.split()[0]}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL server URL")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="seed into this directory and keep it")
    parser.add_argument("--reuse", type=Path, help="measure a directory kept with --keep")
    parser.add_argument("--analyze-sqlite", action="store_true", help="run ANALYZE on SQLite")
    parser.add_argument(
        "--verify-page",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time /audit/verify once (it reads every event)",
    )
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    backend = "sqlite" if args.database == "sqlite" else "postgresql"
    OUT.mkdir(parents=True, exist_ok=True)

    if args.reuse:
        home = args.reuse.resolve()
        kept = json.loads((home / "seeded.json").read_text())
        settings = make_settings(home, kept["database_url"])
        upgrade(settings.database_url)  # a new migration (an index) is measured on the same data
        settle_engine = make_engine(settings.database_url)
        settle(settle_engine, args.analyze_sqlite)
        settle_engine.dispose()
        models, now = kept["models"], datetime.fromisoformat(kept["now"])
        seeded_info = kept["seeded"]
        rows = run_pages(settings, models, now, args)
        report(rows, backend, settings.database_url, seeded_info, args)
        return

    home = (args.keep or Path(tempfile.mkdtemp(prefix="console-bench-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    url = (
        f"sqlite:///{home / 'governance.db'}"
        if args.database == "sqlite"
        else create_pg_database(args.database)
    )
    try:
        settings = make_settings(home, url)
        started = time.perf_counter()
        seeded = prepare(settings, args.analyze_sqlite)
        seeded.seconds["whole set-up"] = time.perf_counter() - started
        seeded_info = {"counts": seeded.counts, "seconds": seeded.seconds}
        print("seeded:", json.dumps(seeded_info, indent=1), flush=True)
        if args.keep:
            (home / "seeded.json").write_text(
                json.dumps(
                    {
                        "database_url": url,
                        "models": seeded.models,
                        "now": seeded.now.isoformat(),
                        "seeded": seeded_info,
                    }
                )
            )
        rows = run_pages(settings, seeded.models, seeded.now, args)
        report(rows, backend, url, seeded_info, args)
    finally:
        if not args.keep:
            if url.startswith("postgresql"):
                drop_pg_database(url)
            shutil.rmtree(home, ignore_errors=True)


def report(rows: list[Row], backend: str, url: str, seeded: Any, args: Any) -> None:
    head = (
        f"\nbackend: {backend}; {args.repeat} timed requests per page after {args.warmup} "
        f"warm-up; machine: {os.cpu_count()} cores\nversions: {versions_line(url)}\n"
    )
    print(head)
    print(table(rows, backend))
    (OUT / f"console-{backend}.json").write_text(
        json.dumps(
            {
                "backend": backend,
                "repeat": args.repeat,
                "seeded": seeded,
                "rows": [
                    {
                        "label": r.label,
                        "who": r.who,
                        "server_ms": [x * 1000 for x in r.server],
                        "service_ms": [x * 1000 for x in r.service],
                        "render_ms": [x * 1000 for x in r.render],
                        "sql_ms": [x * 1000 for x in r.sql],
                        "naive_ms": [x * 1000 for x in r.naive or []],
                        "naive_same": r.naive_same,
                        "statements": r.statements,
                        "others_busy": r.others_busy,
                        "note": r.note,
                    }
                    for r in rows
                ],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
