"""`governance demo`: the service seeded as an organisation would use it, with real models
on the UCI Adult data judged by the high-risk policy.

One person per role signs in; dana, the data scientist, submits three candidates through
the workflow and their checks run as jobs:

- `income-full` v1 uses every column, sex and race included: **blocked** by the fairness
  rule;
- `income-reweighed` v1 leaves out the protected attributes and their closest proxies
  (relationship, marital status) and is trained with Kamiran–Calders reweighing so that
  sex and income are independent in the training weights: it passes, maria (model risk)
  and bob (business owner) sign, and dana promotes it;
- `income-reweighed` v2, the same design retrained with another seed and judged against
  v1 as champion: it passes and **awaits approval**, for someone to sign in the console.

Running it again finds the candidates by model and version and only reports them.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from governance.auth.secrets import new_password
from governance.bootstrap import Governance, initialise, open_governance
from governance.config import Settings
from governance.connectors import files
from governance.connectors.adult import COLUMNS, SOURCE, TARGET, load_adult
from governance.domain.errors import InputError, UnauthenticatedError
from governance.domain.evidence import EvidenceManifest
from governance.domain.model_card import ModelCard
from governance.domain.records import RequestView
from governance.reports import ci
from governance.resources import PACKAGED_POLICIES
from governance.services.gate import Progress
from governance.services.people import Principal
from governance.services.workflow import Candidate
from governance.store.blobs import CHUNK

POLICIES = PACKAGED_POLICIES
PROXIES = ["sex", "race", "relationship", "marital_status"]
SEED = 0
ENVIRONMENT = "production"
RISK_TIER = "high"
PEOPLE_FILE = "people.json"
ACTOR = "governance demo"


@dataclass(frozen=True)
class DemoModel:
    """A candidate: how its model is trained, and whether the demo has it signed and
    promoted once its checks pass."""

    name: str
    version: str
    features: list[str]
    reweigh: bool
    threshold: float
    limitations: str
    seed: int = SEED
    promote: bool = False


REWEIGHED = DemoModel(
    "income-reweighed",
    "1",
    [c for c in COLUMNS if c not in (TARGET, *PROXIES)],
    True,
    0.4,
    "Leaves out sex, race and their closest proxies, and is trained with reweighing; "
    "other columns (occupation, hours) still carry some of their signal.",
    promote=True,
)
MODELS = [
    DemoModel(
        "income-full",
        "1",
        [c for c in COLUMNS if c != TARGET],
        False,
        0.5,
        "Uses sex, race, relationship and marital status as inputs: it can treat people "
        "differently by a protected attribute.",
    ),
    REWEIGHED,
    replace(REWEIGHED, version="2", seed=SEED + 1, promote=False),
]


@dataclass(frozen=True)
class DemoPerson:
    username: str
    full_name: str
    role: str


# One person per human role. `admin` is the account `governance init` makes.
PEOPLE = [
    DemoPerson("dana", "Dana Scientist", "data_scientist"),
    DemoPerson("maria", "Maria Risk", "model_risk_officer"),
    DemoPerson("bob", "Bob Owner", "business_owner"),
    DemoPerson("carl", "Carl Chief", "chief_risk_officer"),
    DemoPerson("audrey", "Audrey Auditor", "auditor"),
    DemoPerson("admin", "Administrator", "admin"),
]
SUBMITTER = "dana"
SIGNERS = {
    "maria": "Validated the evidence: fairness, explainability, drift, data quality and "
    "performance meet the high-risk policy; the warnings are read and accepted.",
    "bob": "The business accepts this model's outcomes and its warnings for pre-screening.",
}


def model_card(spec: DemoModel) -> ModelCard:
    return ModelCard(
        purpose="Pre-screen applicants by predicting whether annual income exceeds $50,000.",
        intended_use="A demonstration of the gate on public census data; a person reviews "
        "every refusal.",
        out_of_scope_use="Real credit, employment or housing decisions.",
        training_data=f"{SOURCE}: 70% of the 48,842 records, stratified by income.",
        limitations=spec.limitations + " Census data of 1994; US population only.",
        ethical_considerations="Income correlates with sex and race in the data (11% vs 30% "
        "base rates by sex), so an accurate model can still disadvantage a group.",
        contact="model-risk@example.org",
    )


def reweighing(train: pd.DataFrame) -> np.ndarray:
    """Kamiran & Calders (2012): weight = P(sex) P(y) / P(sex, y), so that sex and the
    label are independent in the weighted training data."""
    joint = train.groupby(["sex", TARGET]).size() / len(train)
    p_sex = train["sex"].value_counts(normalize=True)
    p_y = train[TARGET].value_counts(normalize=True)
    keys = pd.MultiIndex.from_frame(train[["sex", TARGET]])
    expected = (
        p_sex.reindex(keys.get_level_values(0)).to_numpy()
        * p_y.reindex(keys.get_level_values(1)).to_numpy()
    )
    return expected / joint.reindex(keys).to_numpy()


def train(spec: DemoModel, data: pd.DataFrame) -> FixedThresholdClassifier:
    categorical = [c for c in spec.features if data[c].dtype == object]
    pipeline: Pipeline = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
            remainder="passthrough",
        ),
        HistGradientBoostingClassifier(random_state=spec.seed),
    )
    weights = reweighing(data) if spec.reweigh else None
    pipeline.fit(
        data[spec.features], data[TARGET], histgradientboostingclassifier__sample_weight=weights
    )
    # The decision threshold is part of the model: predict() is what gets served.
    model = FixedThresholdClassifier(FrozenEstimator(pipeline), threshold=spec.threshold)
    return model.fit(data[spec.features], data[TARGET])


@dataclass(frozen=True)
class DemoRun:
    """A candidate as the service holds it, with the files the demo wrote for it (no
    evidence or reports while it has no gate decision)."""

    model: str
    version: str
    request_id: str
    state: str
    reason: str | None
    decision_id: str | None
    manifest: EvidenceManifest | None
    evidence: Path | None
    reports: list[Path]


@dataclass(frozen=True)
class Demo:
    settings: Settings
    runs: list[DemoRun]
    # Each person with their demo password; None for a user that existed before the demo.
    people: list[tuple[DemoPerson, str | None]]


def run_demo(directory: Path, progress: Progress) -> Demo:
    """Initialise the service in `directory` under the shipped policies, seed the people,
    and take each candidate as far as the demo goes: submit, check, sign, promote, and write
    its evidence and signed reports. What is there already is reused, not done again."""
    settings = replace(Settings.from_env(None, directory), policies=POLICIES)
    work = directory / "demo"
    work.mkdir(parents=True, exist_ok=True)
    saved = _read_passwords(work / PEOPLE_FILE)
    offered = {p.username: saved.get(p.username) or new_password() for p in PEOPLE}
    progress("Preparing the database, signing keys and certificates")
    initialise(settings, offered["admin"])
    governance = open_governance(settings)
    try:
        passwords = _seed_people(governance, offered)
        if {**saved, **passwords} != saved:
            _write_passwords(work / PEOPLE_FILE, {**saved, **passwords})
        runs = _candidates(governance, work, passwords, progress)
    finally:
        governance.close()
    return Demo(settings, runs, [(p, passwords.get(p.username)) for p in PEOPLE])


def _seed_people(governance: Governance, offered: dict[str, str]) -> dict[str, str]:
    """Add whoever is missing; returns the passwords that sign in (a user made before the
    demo keeps a password the demo does not know)."""
    valid = {}
    for person in PEOPLE:
        password = offered[person.username]
        governance.people.ensure_user(person.username, person.full_name, password, [person.role])
        try:
            governance.people.verify_password(person.username, password)
        except UnauthenticatedError:
            continue
        valid[person.username] = password
    return valid


def _read_passwords(path: Path) -> dict[str, str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(
            str(path), f"cannot be read ({exc})", "delete it to start afresh"
        ) from None
    if not isinstance(document, dict):
        raise InputError(str(path), "is not a JSON object", "delete it to start afresh")
    return {str(name): str(password) for name, password in document.items()}


def _write_passwords(path: Path, passwords: dict[str, str]) -> None:
    """Replace the file at once, readable by its owner only (mkstemp makes it 0600)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".people-")
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        json.dump(passwords, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, path)


def _candidates(
    governance: Governance, work: Path, passwords: dict[str, str], progress: Progress
) -> list[DemoRun]:
    """Each candidate found (by model and version) or submitted, then moved on as far as
    the demo takes it. The data is prepared only when a candidate is missing."""
    workflow = governance.workflow
    signed_in: dict[str, Principal] = {}

    def person(username: str) -> Principal:
        if username not in signed_in:
            session = governance.people.sign_in(username, _password(passwords, username), 1)
            signed_in[username] = governance.people.authenticate(session.token)
        return signed_in[username]

    found = [_find(governance, spec) for spec in MODELS]
    inputs = _prepare(governance, work, progress) if None in found else None
    runs = []
    for spec, request in zip(MODELS, found, strict=True):
        label = f"{spec.name} v{spec.version}"
        if request is None:
            assert inputs is not None
            request = _submit(governance, spec, work, inputs, person(SUBMITTER), progress)
        if request.state in ("submitted", "checking"):
            progress(f"{label}: running the checks")
            for job_id in workflow.claimable_jobs():
                workflow.run_job(job_id)
            request = workflow.get_request(request.id)
        if spec.promote and request.state == "awaiting_approval":
            signed = {s.username for s in request.signatures}
            for username, comment in SIGNERS.items():
                if username not in signed:
                    progress(f"{label}: signed by {username}")
                    request = workflow.sign(
                        person(username),
                        request.id,
                        "approve",
                        comment,
                        _password(passwords, username),
                    )
        if spec.promote and request.state == "approved":
            progress(f"{label}: promoted by {SUBMITTER}")
            request = workflow.promote(person(SUBMITTER), request.id)
        if request.state == "promoted":
            _first_day_in_production(governance, work, request, lambda: person("maria"), progress)
        runs.append(_evidence(governance, work, spec, request, progress))
    return runs


def _first_day_in_production(
    governance: Governance,
    work: Path,
    request: RequestView,
    analyst: Callable[[], Principal],
    progress: Progress,
) -> None:
    """The promoted version's first day: the serving system logs its predictions on the
    held-out split (with the outcomes that came back), and each monitor the policy sets
    runs once, so the console has production monitoring to show."""
    monitoring = governance.monitoring
    if monitoring.runs(request.id):
        return
    label = f"{request.model} v{request.version}"
    progress(f"{label}: a day of production predictions, then the policy's monitors")
    served = pd.read_parquet(work / "test.parquet")
    model, _ = files.load_model(governance.blobs.path_of(request.artifact_sha256, ".skops"))
    features = served.drop(columns=[TARGET])
    inputs = features[list(model.feature_names_in_)]
    logs = features.assign(
        prediction=model.predict(inputs),
        score=model.predict_proba(inputs)[:, 1],
        outcome=served[TARGET],
        timestamp=datetime.now(UTC) - timedelta(hours=1),
    )
    monitoring.ingest("serving", request.model, request.version, "demo-day-1", logs)
    for monitor in governance.browse.request_detail(request.id).policy.monitoring.monitors:
        outcome = monitoring.run_now(analyst(), request.id, monitor)
        progress(f"{label}: production {monitor} check: {outcome.status}")


def _password(passwords: dict[str, str], username: str) -> str:
    if username not in passwords:
        raise InputError(
            f"user {username}",
            f"existed before the demo, so its {PEOPLE_FILE} holds no password for them",
            "run the demo with a new --data-dir",
        )
    return passwords[username]


def _find(governance: Governance, spec: DemoModel) -> RequestView | None:
    """The newest request for this model version, with its checks and signatures."""
    listed = governance.workflow.list_requests(model=spec.name, limit=500).items
    found = next(
        (r.id for r in listed if r.version == spec.version and r.target == ENVIRONMENT),
        None,
    )
    return None if found is None else governance.workflow.get_request(found)


@dataclass(frozen=True)
class _Inputs:
    training: pd.DataFrame
    data: Path
    reference: Path


def _prepare(governance: Governance, work: Path, progress: Progress) -> _Inputs:
    """The 70/30 split, written as files and stored as blobs, as an upload would be."""
    progress(f"Loading the Adult census data ({SOURCE})")
    adult = load_adult()
    training, evaluation = train_test_split(
        adult, test_size=0.3, random_state=SEED, stratify=adult[TARGET]
    )
    training.to_parquet(work / "train.parquet", index=False)
    evaluation.to_parquet(work / "test.parquet", index=False)
    return _Inputs(
        training,
        _store(governance, "data", work / "test.parquet"),
        _store(governance, "reference", work / "train.parquet"),
    )


def _submit(
    governance: Governance,
    spec: DemoModel,
    work: Path,
    inputs: _Inputs,
    submitter: Principal,
    progress: Progress,
) -> RequestView:
    workflow = governance.workflow
    if spec.name not in {m.name for m in workflow.list_models()}:
        workflow.register_model(submitter, spec.name, RISK_TIER, submitter.name)
    model_path = work / f"{spec.name}-v{spec.version}.skops"
    if model_path.exists():  # trained by an earlier run that stopped before it submitted
        progress(f"Reusing {model_path.name}, trained before")
    else:
        progress(f"Training {spec.name} v{spec.version}")
        _dump_whole(train(spec, inputs.training), model_path)
    candidate = Candidate(
        model=spec.name,
        version=spec.version,
        target=ENVIRONMENT,
        label=TARGET,
        artifact=_store(governance, "artifact", model_path),
        data=inputs.data,
        reference=inputs.reference,
        champion=_champion(governance, spec.name),
        model_card=model_card(spec),
    )
    progress(f"{spec.name} v{spec.version}: submitted by {submitter.name}")
    created = workflow.submit(submitter, candidate)
    return workflow.get_request(created.id)


def _dump_whole(model: FixedThresholdClassifier, path: Path) -> None:
    """Write the model file whole or not at all: a run stopped mid-write leaves no file
    that the next run would take for a trained model."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".model-", suffix=".skops")
    os.close(descriptor)
    try:
        skops.io.dump(model, temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _champion(governance: Governance, name: str) -> Path | None:
    """The model in production: the artifact of the newest promoted version, if any."""
    promoted = governance.workflow.list_requests(state="promoted", model=name, limit=1).items
    if not promoted:
        return None
    stored = governance.blobs.path_of(promoted[0].artifact_sha256, ".skops")
    return stored if stored.exists() else None


def _store(governance: Governance, field: str, path: Path) -> Path:
    """Put a file where the service keeps uploads (content-addressed), as the API does."""
    return asyncio.run(
        governance.blobs.put(field, path.name, _chunks(path), governance.settings.max_upload_bytes)
    )


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            yield chunk


def _evidence(
    governance: Governance,
    work: Path,
    spec: DemoModel,
    request: RequestView,
    progress: Progress,
) -> DemoRun:
    """The manifest, JUnit and Markdown files of the request's gate decision, and its signed
    decision report and LL144 bias audit, made again only when the request changed since."""
    run = DemoRun(
        spec.name,
        spec.version,
        request.id,
        request.state,
        request.state_reason,
        request.gate_decision_id,
        None,
        None,
        [],
    )
    if run.decision_id is None:
        return run
    manifest = EvidenceManifest.model_validate(governance.workflow.manifest(run.request_id))
    folder = work / "evidence" / f"{spec.name}-v{spec.version}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, render in (
        ("manifest.json", ci.to_json),
        ("junit.xml", ci.to_junit),
        ("summary.md", ci.to_markdown),
    ):
        (folder / name).write_text(render(manifest), encoding="utf-8")
    reports = sorted(folder.glob("*.pdf"))
    if len(reports) < 2 or any(_modified(p) < request.updated_at for p in reports):
        progress(f"{spec.name} v{spec.version}: signed decision report and bias audit")
        for report in (
            governance.reports.decision(ACTOR, request_id=run.request_id),
            governance.reports.bias_audit(
                ACTOR, run.decision_id, source=f"{SOURCE}, the 30% held-out evaluation split"
            ),
        ):
            (folder / report.filename).write_bytes(report.pdf)
        reports = sorted(folder.glob("*.pdf"))
    return replace(run, manifest=manifest, evidence=folder, reports=reports)


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
