"""Benchmark: production monitoring. Ingest throughput and the drift monitor on 1M rows.

    .venv/bin/python bench/monitoring.py [--rows N] [--batch N] [--repeat N] [--database URL]

1. Generates (seeded) a reference set of N rows (10 numeric features, 4 categorical ones
   and a binary label) and N production rows of the same features, a tenth of them
   shifted, with a prediction, a score, an outcome and a timestamp; sets up a service
   (SQLite file unless --database names another) with one promoted request whose policy
   monitors drift, its evaluation data the reference file.
2. Ingest: the same batch of `--batch` rows as JSON and as Parquet bytes, through
   `ProductionMonitoring.ingest` (parse, validate, write the Parquet blob, one
   transaction) and through the HTTP endpoint (Litestar's TestClient, in-process), next
   to parsing the same bytes directly (`json.loads` + `pandas.DataFrame.from_records`,
   `pyarrow.parquet.read_table` + `to_pandas`). Rows per second, best of `--repeat`.
3. Monitoring: all N production rows ingested as Parquet batches, then the drift monitor
   run on them (`run_now`: read the window's batches, read the reference file, the drift
   check, record) next to the drift check run directly on the same two frames in memory.

Prints a table; paste it into bench/RESULTS.md ("Production monitoring").
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlmodel import Session

from governance.bootstrap import Governance, initialise, open_governance
from governance.checks import CheckInputs, drift
from governance.config import Settings
from governance.domain.evidence import Artifact, EvidenceManifest, PolicyRef
from governance.domain.policy import DriftCheck, parse_policy
from governance.domain.records import MonitoringRunRecord
from governance.domain.results import CheckResult, RuleOutcome, Severity, Status
from governance.domain.verdict import decide
from governance.services.people import SYSTEM
from governance.store.repository import in_transaction, record_decision
from governance.store.tables import FinalDecision, GateDecision, PromotionRequest

SEED = 20_261_129
NUMERIC = [f"x{i}" for i in range(10)]
LEVELS = {
    "region": ["north", "south", "east", "west", "centre", "islands"],
    "channel": ["branch", "online", "phone"],
    "product": [f"p{i:02d}" for i in range(12)],
    "group": ["A", "B", "C", "D"],
}
MODEL = "bench-monitored"
INGESTED, MONITORED = "1", "2"  # one version takes the ingest batches, one the 1M rows
POLICY = {
    "apiVersion": "governance/v1",
    "kind": "PromotionPolicy",
    "metadata": {"name": "bench-monitoring", "version": 1},
    "appliesTo": {"riskTier": "medium", "targets": ["production"]},
    "checks": [{"id": "drift", "type": "drift", "rules": [{"driftShare": {"max": 0.3}}]}],
    "approvals": {"quorum": 1, "roles": ["model_risk_officer"], "expiresAfterDays": 365},
    "waivers": {"allowed": False},
    "monitoring": {"drift": {"schedule": "daily", "onBreach": "alert"}, "minRows": 200},
}


def features(rows: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    columns: dict[str, Any] = {
        name: rng.normal(shift if i < 3 else 0.0, 1.0, rows) for i, name in enumerate(NUMERIC)
    }
    for name, levels in LEVELS.items():
        columns[name] = pd.Series(
            np.array(levels, dtype=object)[rng.integers(0, len(levels), rows)]
        )
    return pd.DataFrame(columns)


def production(rows: int, rng: np.random.Generator, start: datetime) -> pd.DataFrame:
    frame = features(rows, rng)
    shifted = features(rows // 10, rng, shift=0.5)
    frame.iloc[: rows // 10] = shifted.to_numpy()
    for name in NUMERIC:
        frame[name] = frame[name].astype(float)
    score = rng.random(rows)
    seconds = np.sort(rng.integers(0, 6 * 3600, rows))
    return frame.assign(
        prediction=(score > 0.5).astype(np.int64),
        score=score,
        outcome=rng.integers(0, 2, rows),
        timestamp=pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s"),
    )


def promoted(governance: Governance, reference: Path, columns: list[str], version: str) -> str:
    """A decision on the reference file and a promoted request for it, written directly
    (the bench measures monitoring, not the gate)."""
    policy = parse_policy(POLICY)
    result = CheckResult(
        id="drift",
        type="drift",
        status=Status.PASS,
        summary="stored",
        rules=[
            RuleOutcome(
                rule="share of drifted columns ≤ 0.3",
                observed=0.0,
                threshold="≤ 0.3",
                passed=True,
                severity=Severity.BLOCKING,
                detail="stored",
            )
        ],
    )
    manifest = EvidenceManifest(
        created_at=datetime.now(UTC),
        model_name=MODEL,
        model_version=version,
        target="label",
        task="classification",
        positive_label="1",
        policy=PolicyRef(
            name=policy.metadata.name,
            version=policy.metadata.version,
            risk_tier=policy.applies_to.risk_tier,
            sha256=policy.content_hash,
        ),
        artifacts=[
            Artifact(role="model", uri="file:///bench.skops", sha256="b" * 64, format="skops"),
            Artifact(
                role="data",
                uri=str(reference),
                sha256=uuid4().hex * 2,
                format="parquet",
                rows=0,
                columns=columns,
            ),
        ],
        libraries={},
        seeds={},
        results=[result],
        decision=decide([result]),
    )

    def work(session: Session) -> str:
        decision_id = record_decision(session, manifest, policy, "bench")
        decision = session.get(GateDecision, decision_id)
        assert decision is not None
        request = PromotionRequest(
            id=str(uuid4()),
            model_version_id=decision.model_version_id,
            target="production",
            policy_id=decision.policy_id,
            submitter="bench",
            state="promoted",
            decision_id=decision_id,
            inputs={},
        )
        session.add(request)
        session.flush()
        session.add(
            FinalDecision(id=str(uuid4()), request_id=request.id, decision="promoted", envelope={})
        )
        return request.id

    return in_transaction(governance.engine, work)


def best(repeat: int, work: Callable[[int], object]) -> float:
    times = []
    for attempt in range(repeat):
        started = time.perf_counter()
        work(attempt)
        times.append(time.perf_counter() - started)
    return min(times)


def json_body(batch_id: str, rows: pd.DataFrame) -> bytes:
    frame = rows.assign(timestamp=rows["timestamp"].map(lambda t: t.isoformat()))
    records = frame.to_dict(orient="records")
    return json.dumps({"batchId": batch_id, "rows": records}).encode()


def parquet_body(rows: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    rows.to_parquet(sink, index=False)
    return sink.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default=None)
    options = parser.parse_args()

    from litestar.testing import TestClient

    from governance.web.api.monitoring import json_batch, parquet_batch
    from governance.web.app import create_app

    rng = np.random.default_rng(SEED)
    directory = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    reference = features(options.rows, rng).assign(label=rng.integers(0, 2, options.rows))
    reference_file = directory / "reference.parquet"
    reference.to_parquet(reference_file, index=False)
    start = datetime.now(UTC) - timedelta(hours=12)
    logs = production(options.rows, rng, start)

    settings = replace(
        Settings.from_env(options.database, directory / "home"), max_predictions_bytes=256 << 20
    )
    initialise(settings, "a-long-bench-passphrase")
    governance = open_governance(settings)
    columns = [str(c) for c in reference.columns]
    promoted(governance, reference_file, columns, INGESTED)
    monitoring = governance.monitoring

    batch = logs.iloc[: options.batch]
    as_json, as_parquet = json_body("x", batch), parquet_body(batch)
    rows = len(batch)
    table: list[tuple[str, float, float]] = []

    def ingest(parse: Callable[[bytes, str | None], tuple[pd.DataFrame, str]], body: bytes):
        def work(attempt: int) -> None:
            frame, _ = parse(body, "x")
            monitoring.ingest("bench", MODEL, INGESTED, f"b-{uuid4().hex}", frame, "api")

        return work

    json_direct = best(
        options.repeat, lambda _: pd.DataFrame.from_records(json.loads(as_json)["rows"])
    )
    json_ours = best(options.repeat, ingest(lambda b, i: json_batch(b, None), as_json))
    table.append(
        (f"JSON batch of {rows:,} rows ({len(as_json) / 1e6:.1f} MB)", json_ours, json_direct)
    )
    parquet_direct = best(
        options.repeat, lambda _: pq.read_table(io.BytesIO(as_parquet)).to_pandas()
    )
    parquet_ours = best(options.repeat, ingest(parquet_batch, as_parquet))
    table.append(
        (
            f"Parquet batch of {rows:,} rows ({len(as_parquet) / 1e6:.1f} MB)",
            parquet_ours,
            parquet_direct,
        )
    )

    token = governance.people.create_token(SYSTEM, "bench", ["serving"], 1)["token"]
    url = f"/api/v1/models/{MODEL}/versions/{INGESTED}/predictions"
    with TestClient(app=create_app(settings, run_jobs=False)) as client:
        auth = {"Authorization": f"Bearer {token}"}

        bodies = [
            as_json.replace(b'"batchId": "x"', f'"batchId": "h-{uuid4().hex}"'.encode())
            for _ in range(options.repeat)
        ]

        def http_json(attempt: int) -> None:
            headers = {**auth, "Content-Type": "application/json"}
            response = client.post(url, content=bodies[attempt], headers=headers)
            assert response.status_code == 201, response.text

        def http_parquet(_: int) -> None:
            response = client.post(
                url,
                content=as_parquet,
                params={"batchId": f"h-{uuid4().hex}"},
                headers={**auth, "Content-Type": "application/vnd.apache.parquet"},
            )
            assert response.status_code == 201, response.text

        table.append(
            (
                "  the same JSON batch over HTTP (TestClient)",
                best(options.repeat, http_json),
                json_direct,
            )
        )
        table.append(
            (
                "  the same Parquet batch over HTTP (TestClient)",
                best(options.repeat, http_parquet),
                parquet_direct,
            )
        )

    # another version, whose window holds exactly the N production rows
    request_id = promoted(governance, reference_file, columns, MONITORED)
    loaded = time.perf_counter()
    for number, first in enumerate(range(0, options.rows, options.batch)):
        chunk = logs.iloc[first : first + options.batch]
        monitoring.ingest("bench", MODEL, MONITORED, f"m-{number}", chunk, "api")
    ingest_all = time.perf_counter() - loaded

    spec = next(c for c in parse_policy(POLICY).checks if isinstance(c, DriftCheck))
    feature_names = [*NUMERIC, *LEVELS]

    def direct(data: pd.DataFrame, against: pd.DataFrame) -> Callable[[int], object]:
        inputs = CheckInputs(
            data=data, features=feature_names, target="outcome", y_true=np.empty(0),
            y_pred=data["prediction"].to_numpy(), task="classification", reference=against,
        )  # fmt: skip
        return lambda _: drift.run(spec, inputs)

    as_text = best(options.repeat, direct(logs, reference))
    categories = {name: "category" for name in LEVELS}
    as_categories = best(
        options.repeat, direct(logs.astype(categories), reference.astype(categories))
    )
    results: list[MonitoringRunRecord] = []
    monitor_ours = best(
        options.repeat,
        lambda _: results.append(monitoring.run_now(SYSTEM, request_id, "drift")),
    )
    assert results[-1].rows == options.rows, results[-1]
    label = f"drift monitor: {options.rows:,} production rows vs {options.rows:,} reference rows"
    table.append((f"{label}; check on in-memory frames, text as str", monitor_ours, as_text))
    table.append(("  the same; check on in-memory frames, text as category", monitor_ours,
                  as_categories))  # fmt: skip
    governance.close()

    print(f"rows {options.rows:,}, batch {options.batch:,}, best of {options.repeat}")
    print(
        f"{options.rows:,} rows ingested as {-(-options.rows // options.batch)} Parquet "
        f"batches in {ingest_all:.2f} s"
    )
    print(f"drift: {results[-1].status}: {results[-1].summary}")
    print("| step | ours s | rows/s | library directly s | ours ÷ library |")
    print("|---|---:|---:|---:|---:|")
    for name, ours, library in table:
        counted = options.rows if "drift" in name or "the same;" in name else rows
        print(
            f"| {name} | {ours:.3f} | {counted / ours:,.0f} | {library:.3f} "
            f"| {ours / library:.2f}× |"
        )


if __name__ == "__main__":
    main()
