"""Production monitoring: prediction logs in, scheduled checks out.

Serving systems send batches of feature rows with the prediction, a timestamp and, once
known, the outcome. A batch is stored once per (model version, batch id) as Parquet in the
content-addressed blob directory, its row and audit event in one transaction. Each
promoted request whose policy sets monitors is checked on the policy's schedule: the
policy's own check of that type, run on the production rows of the window. A breach is
recorded with its audit event (`monitoring.breach`, which the webhooks send as the alert)
and, where the policy says `onBreach: revoke`, the request is revoked in that transaction.

A schedule's slots are counted from the promotion, so which slot is due is known from the
database alone: a restarted process runs the latest missed slot once, and two processes
that see the same slot collide on the run's unique key.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api import types

from governance.checks import Batch, Checks, Scope, Task
from governance.checks.reference import ReferenceProfile, bin_batch, profile, with_bins
from governance.domain import names
from governance.domain.errors import ConflictError, InputError, NotFoundError
from governance.domain.policy import (
    SCHEDULE_SECONDS,
    AnyCheck,
    FairnessCheck,
    Monitor,
    NoRegressionRule,
    PerformanceCheck,
    PerformanceRule,
    PromotionPolicy,
    parse_policy,
)
from governance.domain.records import (
    CheckedData,
    MonitoringRunRecord,
    PredictionBatchRecord,
    ReceivedTotals,
    StoredFile,
)
from governance.domain.results import CheckResult, Status
from governance.domain.workflow import State
from governance.services.people import Principal
from governance.services.ports import (
    ArtifactSource,
    BlobFiles,
    Execution,
    UnitOfWork,
    UnitOfWorkFactory,
    Window,
)
from governance.services.unit_of_work import run_in_unit_of_work
from governance.services.workflow import Workflow

log = logging.getLogger("governance.monitoring")
BATCH_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
PREDICTION, TIMESTAMP, OUTCOME, SCORE = "prediction", "timestamp", "outcome", "score"
LOGGED = (PREDICTION, SCORE, OUTCOME, TIMESTAMP)  # the columns besides the features
SOURCES = ("api", "directory")
ACTOR = "monitoring"
# A run still `running` this long after it started was left by a process that died: the
# next process takes the slot over rather than leave it unfinished forever.
RUN_LEASE = timedelta(hours=1)


@dataclass(frozen=True)
class Schema:
    """What a version's prediction rows hold: the features it was checked on, with
    whether each is numeric (None when the data file could not be read), and how the
    gate read its outputs."""

    features: list[str]
    numeric: dict[str, bool] | None
    task: Task
    positive_label: str | None


@dataclass(frozen=True)
class Target:
    """A promoted request to monitor, with the policy it was judged under."""

    request_id: str
    model_version_id: int
    model: str
    version: str
    policy: PromotionPolicy
    promoted_at: datetime

    @property
    def subject(self) -> str:
        return f"model:{self.model}@{self.version}"


@dataclass(frozen=True)
class PredictionBatch:
    """A stored batch as its readers see it: named by model and version, not by the
    version's row id."""

    model: str
    version: str
    batch_id: str
    source: str
    actor: str
    rows: int
    outcomes: int
    first_at: datetime
    last_at: datetime
    columns: list[str]
    sha256: str
    size_bytes: int
    received_at: datetime

    @classmethod
    def of(cls, batch: PredictionBatchRecord, model: str, version: str) -> Self:
        stored = {f.name: getattr(batch, f.name) for f in fields(PredictionBatch)[2:]}
        return cls(model=model, version=version, **stored)


@dataclass(frozen=True)
class IngestedBatch(PredictionBatch):
    """The answer to an ingest: the stored batch, and whether it was stored before with the
    same rows (`replayed`), so a client's retry is told apart from a new batch."""

    replayed: bool = False

    @classmethod
    def of(
        cls, batch: PredictionBatchRecord, model: str, version: str, replayed: bool = False
    ) -> Self:
        return replace(super().of(batch, model, version), replayed=replayed)


class ProductionMonitoring:
    def __init__(
        self,
        units: UnitOfWorkFactory,
        workflow: Workflow,
        blobs: BlobFiles,
        source: ArtifactSource,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        execution: Execution | None = None,
    ) -> None:
        self._units = units
        self._workflow = workflow
        self._blobs = blobs
        self._source = source
        self._clock = clock
        self._execution = execution or Execution()  # its batch and exact-row sizes
        self._numeric_kinds: dict[str, dict[str, bool] | None] = {}

    # --- ingest ------------------------------------------------------------------------

    def ingest(
        self,
        actor: str,
        model: str,
        version: str,
        batch_id: str,
        frame: pd.DataFrame,
        source: str = "api",
        raw_sha256: str | None = None,
    ) -> IngestedBatch:
        """Store one batch. The same batch id with the same rows answers the stored batch
        (`replayed`); with other rows it is refused, and nothing is stored."""
        names.checked_model_version(model, version)
        if not BATCH_ID.match(batch_id or ""):
            raise InputError(
                "batchId",
                f"is {batch_id[:140]!r}" if batch_id else "is missing",
                "use 1 to 128 letters, digits, '.', '_', ':' or '-'",
            )
        if source not in SOURCES:
            raise InputError("source", f"is {source!r}", f"use one of {', '.join(SOURCES)}")
        version_id, schema = self._schema(model, version)
        rows = _validated(frame, schema)
        payload = _parquet(rows)
        sha256 = hashlib.sha256(payload).hexdigest()
        with self._units(read_only=True) as uow:
            existing = uow.monitoring.batch(version_id, batch_id)
        if existing is not None:
            return _replayed(existing, sha256, model, version)
        self._blobs.write(sha256, ".parquet", payload)  # before the row: an orphan is harmless
        stamps = rows[TIMESTAMP]
        outcomes = int(rows[OUTCOME].notna().sum()) if OUTCOME in rows else 0
        batch = PredictionBatchRecord(
            model_version_id=version_id,
            batch_id=batch_id,
            source=source,
            actor=actor,
            rows=len(rows),
            outcomes=outcomes,
            first_at=stamps.min().to_pydatetime(),
            last_at=stamps.max().to_pydatetime(),
            columns=[str(c) for c in rows.columns],
            sha256=sha256,
            size_bytes=len(payload),
            received_at=self._clock(),
        )

        def work(uow: UnitOfWork) -> IngestedBatch:
            found = uow.monitoring.batch(version_id, batch_id)
            if found is not None:
                return _replayed(found, sha256, model, version)
            if not uow.monitoring.add_batch(batch):  # another writer took the batch id now
                taken = uow.monitoring.batch(version_id, batch_id)
                assert taken is not None
                return _replayed(taken, sha256, model, version)
            uow.audit.append(
                actor=actor,
                action="predictions.ingested",
                subject=f"model:{model}@{version}",
                payload={
                    "batch_id": batch_id,
                    "source": source,
                    "rows": batch.rows,
                    "outcomes": outcomes,
                    "first_at": batch.first_at.isoformat(),
                    "last_at": batch.last_at.isoformat(),
                    "sha256": sha256,
                    **({"upload_sha256": raw_sha256} if raw_sha256 else {}),
                },
            )
            return IngestedBatch.of(batch, model, version, replayed=False)

        return run_in_unit_of_work(self._units, work)

    def batches(self, model: str, version: str, limit: int = 100) -> list[PredictionBatch]:
        """A version's batches, newest first."""
        with self._units(read_only=True) as uow:
            version_id = _version(uow, model, version)
            batches = uow.monitoring.batches(version_id, limit)
        return [PredictionBatch.of(b, model, version) for b in batches]

    def received(self, model: str, version: str) -> ReceivedTotals:
        """What a version's serving sent so far, in one query: batches, rows, rows with an
        outcome, and the latest prediction's time."""
        with self._units(read_only=True) as uow:
            return uow.monitoring.received(_version(uow, model, version))

    def _schema(self, model: str, version: str) -> tuple[int, Schema]:
        """The columns a version's rows must have, from the data its checks ran on."""
        with self._units(read_only=True) as uow:
            version_id = _version(uow, model, version)
            data = uow.monitoring.checked_data(version_id)
        if data is None:
            raise ConflictError(
                f"{model} {version} has not been checked yet, so the columns its "
                "predictions must carry are unknown: submit it for promotion first"
            )
        features = [c for c in data.columns if c != data.target]
        return version_id, Schema(
            features=features,
            numeric=self._numeric(data),
            task=data.task,  # type: ignore[arg-type]
            positive_label=data.positive_label,
        )

    def _numeric(self, data: CheckedData) -> dict[str, bool] | None:
        """Which of the checked data's columns hold numbers, read once per data set."""
        if data.sha256 not in self._numeric_kinds:
            path = self._stored(StoredFile(data.sha256, data.uri, data.format))
            kinds = _numeric_columns(path, data.format) if path else None
            self._numeric_kinds[data.sha256] = kinds
        return self._numeric_kinds[data.sha256]

    def _stored(self, data: StoredFile) -> Path | None:
        """The data set's bytes in the content store, by sha256, first. Uploaded evidence is
        accepted only with its files uploaded, so the recorded location is reached only for
        files the service itself was handed (a registry's or an in-process submission)."""
        found = self._blobs.stored(data.sha256)
        return found[0] if found else Path(data.uri)

    # --- scheduled checks --------------------------------------------------------------

    def run_due(self, now: datetime | None = None) -> list[MonitoringRunRecord]:
        """Run every monitor whose latest slot has passed and has no run yet; slots missed
        while no process ran are not run one by one, only the latest."""
        now = now or self._clock()
        done = []
        for target in self._targets():
            for kind, monitor in target.policy.monitoring.monitors.items():
                period = timedelta(seconds=SCHEDULE_SECONDS[monitor.schedule])
                slots = (now - target.promoted_at) // period
                if slots < 1:
                    continue
                due_at = target.promoted_at + slots * period
                if self._settled(target.request_id, kind, due_at, now):
                    continue
                run = self._run(target, kind, monitor, due_at)
                if run is not None:
                    done.append(run)
        return done

    def run_now(self, actor: Principal, request_id: str, monitor: str) -> MonitoringRunRecord:
        """One monitor of one promoted request, now, on the window that ends now."""
        target = next(iter(self._targets(request_id)), None)
        if target is None:
            with self._units(read_only=True) as uow:
                state = uow.monitoring.request_state(request_id)
            if state is None:
                raise NotFoundError(f"request {request_id}", "list the requests to find its id")
            if state == State.PROMOTED.value:
                raise InputError(
                    "monitor",
                    "the request's policy sets no production monitoring",
                    "add a `monitoring` section to the policy; it applies to later requests",
                )
            raise ConflictError(
                f"request {request_id} is {state}: only a promoted version is monitored",
                state,
            )
        monitors = target.policy.monitoring.monitors
        if monitor not in monitors:
            named = ", ".join(monitors) or "none"
            raise InputError(
                "monitor",
                f"is {monitor!r}, which the request's policy does not set (it sets {named})",
                "name one of the policy's monitors",
            )
        run = self._run(target, monitor, monitors[monitor], self._clock(), actor.name)
        if run is None:
            raise ConflictError(f"the {monitor} check of request {request_id} is running now")
        return run

    def runs(self, request_id: str, limit: int = 100) -> list[MonitoringRunRecord]:
        """A request's monitoring runs, newest slot first."""
        with self._units(read_only=True) as uow:
            if uow.monitoring.request_state(request_id) is None:
                raise NotFoundError(f"request {request_id}", "list the requests to find its id")
            return list(uow.monitoring.runs(request_id, limit))

    def _targets(self, request_id: str | None = None) -> list[Target]:
        with self._units(read_only=True) as uow:
            promoted = uow.monitoring.promoted(request_id)
        targets = []
        for request in promoted:
            policy = parse_policy(request.policy_document)
            if not policy.monitoring.monitors:
                continue
            targets.append(
                Target(
                    request.request_id,
                    request.model_version_id,
                    request.model,
                    request.version,
                    policy,
                    request.promoted_at,
                )
            )
        return targets

    def _run(
        self, target: Target, kind: str, monitor: Monitor, due_at: datetime, actor: str = ACTOR
    ) -> MonitoringRunRecord | None:
        """Claim the slot, check outside any transaction, then record the outcome (and
        the revocation) in one. None when another process has the slot."""
        run_id = self._claim(target.request_id, kind, due_at)
        if run_id is None:
            return None
        window = timedelta(days=target.policy.monitoring.window)
        start, end = due_at - window, due_at
        try:
            status, rows, summary, results = self._check(target, kind, start, end)
        except InputError as exc:
            status, rows, summary, results = Status.ERROR.value, 0, exc.message, []
        except Exception as exc:  # recorded as the run's error, not left running
            log.exception("the %s check of request %s failed", kind, target.request_id)
            status, rows, summary, results = "error", 0, f"{type(exc).__name__}: {exc}", []
        revoke = status == "breach" and monitor.on_breach == "revoke"
        action = None if status != "breach" else ("revoked" if revoke else "alerted")

        def work(uow: UnitOfWork) -> MonitoringRunRecord:
            run = replace(
                uow.monitoring.run(run_id),
                status=status,
                rows=rows,
                summary=summary,
                results=results,
                window_start=start,
                window_end=end,
                finished_at=self._clock(),
                action=action,
            )
            if revoke and not self._workflow.revoke_within(
                uow, target.request_id, actor, f"production {kind} breach: {summary}"
            ):
                run = replace(run, action="alerted")  # revoked or expired meanwhile
            uow.monitoring.save_run(run)
            uow.audit.append(
                actor=actor,
                action="monitoring.breach" if status == "breach" else "monitoring.checked",
                subject=target.subject,
                payload={
                    "request_id": target.request_id,
                    "monitor": kind,
                    "status": status,
                    "due_at": due_at.isoformat(),
                    "rows": rows,
                    "summary": summary,
                    "action": run.action,
                },
            )
            return run

        try:
            return run_in_unit_of_work(self._units, work)
        finally:
            if revoke:
                self._workflow.admission_cache_clear()

    def _settled(self, request_id: str, kind: str, due_at: datetime, now: datetime) -> bool:
        """The slot has a run already (finished, or running within its lease): read first,
        so the minutely tick does not attempt an insert the unique key refuses."""
        with self._units(read_only=True) as uow:
            run = uow.monitoring.slot(request_id, kind, due_at)
        return run is not None and (run.status != "running" or run.started_at > now - RUN_LEASE)

    def _claim(self, request_id: str, kind: str, due_at: datetime) -> int | None:
        """Insert the slot's run as `running`, committed, so no other process takes it; or
        take over one a dead process left running past its lease."""
        now = self._clock()
        with self._units() as uow:
            run_id = uow.monitoring.add_run(request_id, kind, due_at, now)
            if run_id is not None:
                uow.commit()
                return run_id
        with self._units() as uow:
            taken = uow.monitoring.slot(request_id, kind, due_at, lock=True)
            if taken is None or taken.status != "running" or taken.started_at > now - RUN_LEASE:
                return None
            uow.monitoring.save_run(replace(taken, started_at=now))
            uow.commit()
            return taken.id

    def _check(
        self, target: Target, kind: str, start: datetime, end: datetime
    ) -> tuple[str, int, str, list[dict[str, Any]]]:
        """The policy's check of this kind on the window's rows: (status, rows, summary,
        results). The window is read as a data set, in batches, never as one frame."""
        _, schema = self._schema(target.model, target.version)
        labelled = kind in ("performance", "fairness")
        window = self._window(target.model_version_id, start, end, _text(schema), labelled)
        minimum = target.policy.monitoring.minimum_rows
        spec = next(c for c in target.policy.checks if c.type == kind)
        notes: list[str] = ["rows with an outcome only"] if labelled else []
        rows = window.rows
        if rows < minimum:
            return (
                "insufficient",
                rows,
                f"{rows} usable production rows in the window ({', '.join(notes) or 'all'}"
                f"); the policy asks for {minimum} before judging",
                [],
            )
        result: CheckResult | str
        if kind == "drift":
            result = self._drift(target, spec, schema, window, notes)
        elif kind == "performance":
            assert isinstance(spec, PerformanceCheck)
            result = _performance(spec, schema, window, notes)
        else:
            assert isinstance(spec, FairnessCheck)
            result = _fairness(spec, schema, window, notes)
        if isinstance(result, str):
            return "insufficient", rows, result, []
        status = {Status.FAIL: "breach", Status.ERROR: "error"}.get(result.status, "pass")
        summary = result.summary + (f" ({'; '.join(notes)})" if notes else "")
        return status, rows, summary, [result.model_dump(mode="json")]

    def _drift(
        self,
        target: Target,
        spec: AnyCheck,
        schema: Schema,
        window: Window,
        notes: list[str],
    ) -> CheckResult:
        with self._units(read_only=True) as uow:
            reference_set, given = uow.monitoring.reference(target.request_id)
        if not given:
            notes.append("no reference was given at submission: compared with the evaluation data")
        path = self._stored(reference_set)
        assert path is not None
        reference = _reference(self._source, path, reference_set.format, _text(schema))
        profiled = profile(reference, exact=window.exact)
        if not window.exact:  # the Wasserstein distance then needs the reference's bins
            numeric = [name for name, column in profiled.columns.items() if column.numeric]
            profiled = with_bins(profiled, bin_batch(reference, profiled, numeric))
        return _judge(spec, schema, window, profiled)

    def _window(
        self, version_id: int, start: datetime, end: datetime, text: list[str], labelled: bool
    ) -> Window:
        """The version's rows logged in (start, end] (with an outcome, if `labelled`)."""
        with self._units(read_only=True) as uow:
            files = uow.monitoring.batch_files(version_id, start, end)
        paths = [self._blobs.path_of(sha256, ".parquet") for sha256 in files]
        return self._source.open_window(paths, start, end, text, labelled, self._execution)


# --- checks on production rows ---------------------------------------------------------


def _text(schema: Schema) -> list[str]:
    """The features that hold text. They are read as categories: Arrow decodes each
    distinct value once instead of making a Python string per row, which halves reading
    and speeds the drift counts (bench/RESULTS.md, production monitoring)."""
    numeric = schema.numeric or {}
    return [name for name in schema.features if numeric.get(name) is False]


def _reference(source: ArtifactSource, path: Path, kind: str, text: list[str]) -> pd.DataFrame:
    """The reference set; Parquet read with the text columns as dictionaries (`_text`)."""
    if kind != "parquet":
        return source.read_table(path, "reference")[0]
    try:
        return pq.read_table(path, read_dictionary=text).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(
            f"reference file {path.name}",  # the blob's hash, not where the store is
            f"cannot be read as Parquet ({type(exc).__name__}: {exc})",
            "restore the file the request was checked with",
        ) from None


def _judge(
    spec: AnyCheck, schema: Schema, window: Window, reference: ReferenceProfile | None = None
) -> CheckResult:
    """One check folded over the window's batches."""
    scores = window.has_values(SCORE) and schema.task == "classification"
    scope = Scope(
        columns=window.columns,
        features=schema.features,
        target=OUTCOME,
        task=schema.task,
        rows=window.rows,
        scores=scores,
        reference=reference,
        exact=window.exact,
    )
    checks = Checks([spec], scope)
    state = window.fold(_Batches(checks, schema, scores), checks.merge)
    assert state is not None  # _check judges only windows with rows
    return checks.finalize(state)[0]


class _Batches:
    def __init__(self, checks: Checks, schema: Schema, scores: bool) -> None:
        self.checks, self.schema, self.scores = checks, schema, scores

    def __call__(self, rows: pd.DataFrame, offset: int) -> Any:
        schema = self.schema
        has_outcome = OUTCOME in rows and bool(rows[OUTCOME].notna().all())
        batch = Batch(
            data=rows,
            y_true=_encoded(rows[OUTCOME], schema) if has_outcome else np.empty(0),
            y_pred=_encoded(rows[PREDICTION], schema),
            y_score=rows[SCORE].to_numpy(float) if self.scores else None,
            offset=offset,
        )
        return self.checks.partial(batch)


def _performance(
    spec: PerformanceCheck, schema: Schema, window: Window, notes: list[str]
) -> CheckResult | str:
    """The performance floors on the rows with outcomes; `noRegression` needs a champion
    scored on the same rows, which production does not have, so it is left out."""
    scores = window.has_values(SCORE)
    kept: list[PerformanceRule | NoRegressionRule] = []
    for rule in spec.rules:
        if isinstance(rule, NoRegressionRule):
            notes.append(f"'{rule.label}' skipped: no champion is scored in production")
        elif rule.metric == "roc_auc" and not scores:
            notes.append(f"'{rule.label}' skipped: no `score` column was logged")
        else:
            kept.append(rule)
    if not kept:
        return "no performance rule can be judged on production rows: " + "; ".join(notes)
    return _judge(spec.model_copy(update={"rules": kept}), schema, window)


def _fairness(
    spec: FairnessCheck, schema: Schema, window: Window, notes: list[str]
) -> CheckResult | str:
    absent = [f for f in spec.sensitive_features if f not in window.columns]
    if absent:
        return f"the sensitive attributes {', '.join(absent)} are not logged with the predictions"
    return _judge(spec, schema, window)


def _encoded(values: pd.Series, schema: Schema) -> np.ndarray:
    """Outputs as the gate reads them: 1 for the positive class, else 0; numbers for a
    regression."""
    if schema.task == "regression":
        return values.to_numpy(float)
    positive = schema.positive_label
    if types.is_bool_dtype(values.dtype):
        return values.to_numpy(bool).astype(np.int64)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        try:
            return (numbers.to_numpy(float) == float(positive or 1)).astype(np.int64)
        except ValueError:
            pass
    return (values.astype(str) == str(positive)).to_numpy().astype(np.int64)


# --- validating a batch ----------------------------------------------------------------


def _validated(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The batch with its columns in the stored order and types, or an InputError that
    names the column (and the row) to fix."""
    if frame.empty:
        raise InputError("rows", "the batch has no rows", "send at least one prediction")
    names = [str(c) for c in frame.columns]
    required = [*schema.features, PREDICTION, TIMESTAMP]
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(
            "columns",
            f"missing {', '.join(missing)}",
            "log every feature the model was checked on, the prediction and the timestamp",
        )
    extra = [c for c in names if c not in required and c not in (OUTCOME, SCORE)]
    if extra:
        raise InputError(
            "columns",
            f"unknown {', '.join(extra[:20])}",
            "drop them, or log them as features of a version checked with them "
            f"(this one has {', '.join(schema.features)})",
        )
    if len(set(names)) != len(names):
        raise InputError("columns", "a column is named twice", "send each column once")
    out: dict[str, pd.Series] = {}
    for name in schema.features:
        out[name] = _feature(frame[name], name, schema)
    for name in (PREDICTION, SCORE, OUTCOME):
        if name in frame:
            out[name] = _output(frame[name], name, required=name == PREDICTION)
    out[TIMESTAMP] = _timestamps(frame[TIMESTAMP])
    return pd.DataFrame(out).reset_index(drop=True)


def _feature(values: pd.Series, name: str, schema: Schema) -> pd.Series:
    """A feature as the model's data holds it: numbers where it had numbers, else text (an
    absent value is missing, not refused)."""
    numeric = (schema.numeric or {}).get(name)
    if types.is_bool_dtype(values.dtype):
        return values
    if types.is_numeric_dtype(values.dtype):
        if numeric is False:
            raise InputError(
                f"column {name!r}",
                "holds numbers, but the model was checked on text in it",
                "log the values as the model's data has them",
            )
        _finite(values, name)
        return values
    kind = types.infer_dtype(values, skipna=True)  # one pass in C, not a call per value
    if numeric:
        if kind not in ("empty", "integer", "floating", "mixed-integer-float", "decimal"):
            row = _first(values, lambda v: not isinstance(v, int | float))
            raise InputError(
                f"column {name!r}",
                f"row {row} holds {values.iloc[row]!r}, but the model was checked on numbers",
                "log numbers in it",
            )
        converted = values.astype(float)
        _finite(converted, name)
        return converted
    if kind == "categorical":
        values = values.astype(object)
        kind = types.infer_dtype(values, skipna=True)
    if kind not in ("empty", "string"):
        row = _first(values, lambda v: not isinstance(v, str))
        raise InputError(
            f"column {name!r}",
            f"row {row} holds {values.iloc[row]!r}, but the model was checked on text in it",
            "log every value of it as text",
        )
    return values.astype(object)


def _first(values: pd.Series, wrong: Callable[[Any], bool]) -> int:
    """The position of the first present value that is wrong (the error path only)."""
    for position, value in enumerate(values):
        if value is not None and value == value and wrong(value):
            return position
    return 0


def _output(values: pd.Series, name: str, required: bool) -> pd.Series:
    if required and values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise InputError(f"column {name!r}", f"row {row} is empty", "log every prediction")
    if types.is_bool_dtype(values.dtype):
        return values
    if types.is_numeric_dtype(values.dtype):
        _finite(values, name)
        return values
    if values.isna().all():  # no outcome known yet
        return values.astype(float)
    kinds = {type(v) for v in values[values.notna()]}
    if kinds <= {int, float} and kinds:
        converted = values.astype(float)
        _finite(converted, name)
        return converted
    if kinds <= {str}:
        return values.astype("string")
    raise InputError(
        f"column {name!r}", "mixes numbers, text or other values", "log one kind of value"
    )


def _finite(values: pd.Series, name: str) -> None:
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isinf(array)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"column {name!r}",
            f"row {row} is {array[row]}",
            "log finite numbers (leave a value out instead)",
        )


def _timestamps(values: pd.Series) -> pd.Series:
    """UTC timestamps; a value without a zone is taken as UTC."""
    if types.is_datetime64_any_dtype(values.dtype):
        parsed = (
            values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        )
    elif types.is_numeric_dtype(values.dtype):
        raise InputError(
            "column 'timestamp'",
            "holds numbers",
            "log ISO 8601 times, e.g. 2026-05-01T12:00:00Z, or a Parquet timestamp column",
        )
    else:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            "column 'timestamp'",
            f"row {row} is {values.iloc[row]!r}, not a time",
            "log ISO 8601 times, e.g. 2026-05-01T12:00:00Z",
        )
    return parsed.astype("datetime64[us, UTC]")


def _parquet(rows: pd.DataFrame) -> bytes:
    """The batch as Parquet; the same rows give the same bytes, so the same batch sent
    again is recognised by its hash."""
    table = pa.Table.from_pandas(rows, preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _numeric_columns(path: Path, kind: str) -> dict[str, bool] | None:
    """Whether each column of the checked data holds numbers (a Parquet schema, or the
    first rows of a CSV); None when the file is gone."""
    try:
        if kind == "parquet":
            schema = pq.read_schema(path)
            return {
                field.name: pa.types.is_integer(field.type)
                or pa.types.is_floating(field.type)
                or pa.types.is_decimal(field.type)
                for field in schema
            }
        head = pd.read_csv(path, nrows=1000)
        return {str(c): bool(types.is_numeric_dtype(head[c].dtype)) for c in head.columns}
    except (OSError, ValueError, pa.ArrowException):
        return None


# --- views -----------------------------------------------------------------------------


def _version(uow: UnitOfWork, model: str, version: str) -> int:
    found = uow.monitoring.version_id(model, version)
    if found is None:
        raise NotFoundError(
            f"model version {model} {version}", "submit the version for promotion first"
        )
    return found


def _replayed(batch: PredictionBatchRecord, sha256: str, model: str, version: str) -> IngestedBatch:
    if batch.sha256 != sha256:
        raise ConflictError(
            f"batch {batch.batch_id} of {model} {version} was stored on "
            f"{batch.received_at.isoformat()} with other rows ({batch.rows}); a batch id is "
            "taken once: send these rows under a new batch id"
        )
    return IngestedBatch.of(batch, model, version, replayed=True)
