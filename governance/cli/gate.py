"""`governance gate`: judge a model version under a policy on this machine, write what CI
reads (JSON, JUnit, Markdown, an attestation, a signed report), or submit it to the
service."""

from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

import governance.connectors.files as files
from governance.cli.common import CONSOLE_MARKS, EXIT, VERDICT_STYLE, err, fail, out, write_report
from governance.cli.common import model_card as read_model_card
from governance.cli.common import settings as configured
from governance.connectors import datasets
from governance.domain import names
from governance.domain.errors import InputError
from governance.domain.evidence import EvidenceManifest
from governance.reports import ci
from governance.services.gate import run_gate
from governance.services.ports import GateRequest

GATE_FIELDS = {
    "policy", "model", "data", "target", "reference", "champion", "prediction_col",
    "score_col", "positive_label", "model_name", "model_version", "json", "junit",
    "markdown", "database", "attest", "key", "executor", "dask", "batch_rows", "exact_rows",
}  # fmt: skip
PATH_FIELDS = (
    "policy", "model", "data", "reference", "champion", "json", "junit", "markdown",
    "attest", "key",
)  # fmt: skip


DATA_FIELDS = ("data", "reference")  # may be fsspec URLs, taken as they are


# How long `gate --submit` waits for the service to re-compute the checks.
SUBMIT_WAIT_SECONDS = 1800.0
DECIDED = ("awaiting_approval", "blocked")


def _gate_config(path: Path) -> dict[str, Any]:
    """A gate config file holds the same fields as the options (kebab-, snake- or camelCase);
    relative paths in it are relative to the file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        fail(f"gate config {path}: cannot be read ({exc}). Fix: give a YAML file")
    if not isinstance(document, dict):
        fail(f"gate config {path}: must be a mapping of option names to values")
    settings: dict[str, Any] = {}
    for key, value in document.items():
        name = "".join(f"_{c.lower()}" if c.isupper() else c for c in str(key)).replace("-", "_")
        if name not in GATE_FIELDS:
            fail(f"gate config {path}: unknown key {key!r}. Fix: use one of {sorted(GATE_FIELDS)}")
        settings[name] = value
    for name in PATH_FIELDS:
        value = settings.get(name)
        if value is not None and not (name in DATA_FIELDS and datasets.is_url(str(value))):
            settings[name] = path.parent / str(value)
    return settings


def gate(
    policy: Annotated[Path | None, typer.Option(help="Policy YAML file.")] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model: .skops (safe) or .joblib (trusted).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Evaluation data with the target: CSV or Parquet.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Name of the target column.")] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Reference (training) data for drift and data quality.")
    ] = None,
    champion: Annotated[
        Path | None, typer.Option(help="The production model, or a JSON file of its metrics.")
    ] = None,
    prediction_col: Annotated[
        str | None, typer.Option(help="Judge predictions already in the data instead of a model.")
    ] = None,
    score_col: Annotated[
        str | None, typer.Option(help="Column of positive-class scores, with --prediction-col.")
    ] = None,
    positive_label: Annotated[
        str | None, typer.Option(help="The positive class (default: the greater label).")
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="Name to record (default: the model file's stem).")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option(help="Version to record (default: sha256 prefix).")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the evidence manifest as JSON.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(help="Write JUnit XML: one testcase per rule.")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown summary.")] = None,
    database: Annotated[
        str | None,
        typer.Option(help="Record the decision in this database (or GOVERNANCE_DATABASE_URL)."),
    ] = None,
    attest: Annotated[
        Path | None,
        typer.Option(help="Write the decision as a signed in-toto attestation (DSSE) here."),
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="Ed25519 key for --attest (default: the data directory's).")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write the signed PDF decision report here (needs `governance init`)."),
    ] = None,
    model_card: Annotated[
        Path | None,
        typer.Option(help="Model card YAML for --report: purpose, intendedUse, limitations, …"),
    ] = None,
    submit: Annotated[
        bool,
        typer.Option(
            "--submit",
            help="Upload the evidence to the service and open a promotion request; the exit "
            "code is then the service's verdict. Token from GOVERNANCE_TOKEN.",
        ),
    ] = False,
    server: Annotated[
        str | None, typer.Option(help="The service's URL for --submit (or GOVERNANCE_SERVER).")
    ] = None,
    environment: Annotated[
        str, typer.Option(help="Target environment of the promotion request, with --submit.")
    ] = "production",
    builder_key: Annotated[
        Path | None,
        typer.Option(
            help="With --submit: sign the evidence's provenance (in-toto, DSSE) with this CI "
            "builder's Ed25519 key; a policy that trusts the builder then skips the re-run."
        ),
    ] = None,
    builder: Annotated[
        str | None, typer.Option(help="The builder's registered name, with --builder-key.")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            help="How rows are read: auto, memory, streamed or dask (or GOVERNANCE_EXECUTOR)."
        ),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            help="Run the checks on this Dask scheduler (tcp://HOST:8786), or 'local' for a "
            "cluster on this machine (or GOVERNANCE_DASK_SCHEDULER)."
        ),
    ] = None,
    batch_rows: Annotated[
        int | None, typer.Option(help="Rows per streamed batch or Dask partition.")
    ] = None,
    exact_rows: Annotated[
        int | None,
        typer.Option(help="Up to this many rows, rank statistics are exact; beyond, sketched."),
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML file with any of these options.")
    ] = None,
) -> None:
    """Judge a model version under a policy. Exit 0 pass, 1 blocked, 2 bad input."""
    given = {
        k: v
        for k, v in locals().items()
        if v is not None
        and k not in ("config_file", "submit", "server", "environment", "builder_key", "builder")
    }
    settings = _gate_config(config_file) if config_file else {}
    settings.update({("json" if k == "json_path" else k): v for k, v in given.items()})
    for required in ("policy", "data", "target"):
        if settings.get(required) is None:
            fail(f"--{required} is required (on the command line or in --config)")
    for signed in ("attest", "report"):  # a report embeds the attestation
        if settings.get(signed) is not None and settings.get("model") is None:
            fail(
                f"--{signed} needs --model: an attestation's subject is the model file's "
                f"sha256; pass --model, or drop --{signed} when judging predictions in the data"
            )
    server = server or os.environ.get("GOVERNANCE_SERVER")
    token = os.environ.get("GOVERNANCE_TOKEN")
    if submit and (not server or not token or not settings.get("model")):
        fail(
            "--submit needs --server (or GOVERNANCE_SERVER), an API token in GOVERNANCE_TOKEN, "
            "and --model"
        )
    if (builder_key is None) != (builder is None) or (builder_key and not submit):
        fail("--builder-key and --builder go together, with --submit")
    request = GateRequest(
        policy=Path(settings["policy"]),
        data=Path(settings["data"]),
        target=str(settings["target"]),
        model=_path(settings.get("model")),
        reference=_path(settings.get("reference")),
        champion=_path(settings.get("champion")),
        prediction_col=settings.get("prediction_col"),
        score_col=settings.get("score_col"),
        positive_label=_text(settings.get("positive_label")),
        model_name=_text(settings.get("model_name")),
        model_version=_text(settings.get("model_version")),
    )
    for option in ("model_name", "model_version"):  # recorded and submitted: one name rule
        if request_value := getattr(request, option):
            names.checked(f"--{option.replace('_', '-')}", request_value)
    _warn_pickles(request.model, request.champion)
    from governance.bootstrap import decision_recorder, execution  # not one of `locals()`

    chosen = configured(_text(settings.get("database")))
    database = chosen.database_url if chosen.database_configured else None
    how = execution(
        chosen,
        _text(settings.get("executor")),
        _text(settings.get("dask")),
        _count(settings.get("batch_rows")),
        _count(settings.get("exact_rows")),
    )
    recorder = decision_recorder(database, f"cli:{getpass.getuser()}")
    if submit and any(
        datasets.is_dataset(path) for path in (request.data, request.reference) if path
    ):
        fail(
            "--submit uploads single files, and --data or --reference is a data set "
            "(a directory, a glob or a URL). Fix: submit one Parquet file each, or judge "
            "here without --submit"
        )
    try:
        with err.status("Starting the gate") as status:
            outcome = run_gate(
                request, files, recorder, progress=lambda step: status.update(step), execution=how
            )
    finally:
        datasets.close_clients()
    manifest = outcome.manifest
    show_decision(manifest)
    for path, render in (
        (settings.get("json"), ci.to_json),
        (settings.get("junit"), ci.to_junit),
        (settings.get("markdown"), ci.to_markdown),
    ):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(render(manifest), encoding="utf-8")
            err.print(f"wrote {escape(str(path))}")
    if outcome.decision_id:
        err.print(f"recorded decision {outcome.decision_id}")
    if settings.get("attest") is not None:
        _write_attestation(
            manifest, outcome.decision_id, Path(settings["attest"]), _path(settings.get("key"))
        )
    if settings.get("report") is not None:
        _write_local_report(
            outcome,
            Path(settings["report"]),
            _path(settings.get("model_card")),
            database,
        )
    if submit:
        assert server is not None and token is not None
        inputs = {role: _path(settings.get(role)) for role in ("data", "reference", "champion")}
        provenance = _provenance(manifest, builder_key, builder) if builder_key else None
        raise typer.Exit(
            _submit(
                server,
                token,
                environment,
                Path(settings["model"]),
                manifest,
                inputs,
                provenance,
            )
        )
    raise typer.Exit(EXIT[manifest.decision.verdict])


def _submit(
    server: str,
    token: str,
    environment: str,
    model: Path,
    manifest: EvidenceManifest,
    inputs: dict[str, Path | None],
    provenance: dict[str, Any] | None,
) -> int:
    """Open the promotion request with this run's evidence and the files it was made from
    (the service re-computes the checks from them unless the policy trusts the builder that
    signed `provenance`), and wait for its verdict: exit 0 awaiting approval, 1 blocked
    (or an evidence mismatch), 2 when the service refuses the upload."""
    import httpx

    form = {
        "model": manifest.model_name,
        "version": manifest.model_version,
        "target": environment,
    }
    upload: dict[str, tuple[str, bytes]] = {
        "artifact": (model.name, model.read_bytes()),
        "evidence": ("manifest.json", ci.to_json(manifest).encode()),
        **{role: (path.name, path.read_bytes()) for role, path in inputs.items() if path},
    }
    if provenance is not None:
        upload["provenance"] = ("provenance.json", json.dumps(provenance).encode())
    base = f"{server.rstrip('/')}/api/v1/requests"
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
            response = client.post(base, data=form, files=upload)
            body = _json_or_text(response)
            if response.status_code >= 400:
                detail = body.get("detail", response.text) if isinstance(body, dict) else body
                fail(f"the service refused the submission ({response.status_code}): {detail}")
            err.print(f"promotion request {body['id']}: the service checks the evidence …")
            deadline = time.monotonic() + SUBMIT_WAIT_SECONDS
            while body["state"] not in DECIDED and time.monotonic() < deadline:
                time.sleep(1.0)
                body = client.get(f"{base}/{body['id']}").raise_for_status().json()
    except httpx.HTTPError as exc:
        fail(f"--server {server}: cannot reach the service ({type(exc).__name__}: {exc})")
    state = body["state"]
    err.print(f"promotion request {body['id']} is {state}: {body.get('stateReason') or ''}")
    evidence = body.get("evidence") or {}
    if evidence.get("source"):
        err.print(f"  evidence {evidence['source']}")
    err.print(f"  {base}/{body['id']}")
    return 0 if state == "awaiting_approval" else 1


def _provenance(manifest: EvidenceManifest, key_path: Path, builder: str | None) -> dict:
    """The builder's signed provenance of this run's evidence (in-toto Statement, DSSE)."""
    from governance.domain.attestation import provenance_envelope
    from governance.signing import key_name, load_private

    assert builder is not None
    try:
        key = load_private(key_path)
    except InputError as exc:
        fail(f"--builder-key: {exc.message}")
    return provenance_envelope(manifest, builder, key_name(key.public_key()), key.sign)


def _json_or_text(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _write_attestation(
    manifest: EvidenceManifest, decision_id: str | None, path: Path, key: Path | None
) -> None:
    from governance.bootstrap import attest_decision

    try:
        document = attest_decision(configured(), manifest, decision_id, key)
    except ValueError as exc:
        fail(f"--attest: {exc}")
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    err.print(f"wrote attestation {escape(str(path))}")


def _write_local_report(
    outcome: Any, path: Path, card_path: Path | None, database: str | None
) -> None:
    """Sign the local run's report; where the decision was recorded, record the report too."""
    from governance.bootstrap import local_report

    card = read_model_card(card_path) if card_path else None
    report = local_report(configured(), outcome, card, f"cli:{getpass.getuser()}", database)
    write_report(report, path)


def _path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def _count(value: Any) -> int | None:
    """A row count from an option or the config file."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        fail(f"a row count must be a whole number, not {value!r}")


def _text(value: Any) -> str | None:
    """YAML reads `version: 2` as a number; a label or version is text."""
    return None if value is None else str(value)


def _warn_pickles(*models: Path | None) -> None:
    """The local gate loads joblib files, which only a trusted file should be: say so."""
    for path in models:
        if path is not None and files.MODEL_FORMATS.get(path.suffix.lower()) == "joblib":
            err.print(
                f"[yellow]warning:[/] {escape(path.name)} is a joblib/pickle file: loading it "
                "runs any code it holds. Load only files you trust, or save the model with "
                "skops (.skops), which the service requires."
            )


def show_decision(manifest: EvidenceManifest) -> None:
    policy = manifest.policy
    table = Table(
        title=f"{manifest.model_name} {manifest.model_version} "
        f"under {policy.name} v{policy.version}"
    )
    for column in ("check", "rule", "observed", "required", "result"):
        table.add_column(column)
    for result in manifest.results:
        if not result.rules:
            table.add_row(result.id, "—", "—", "—", f"[red]{result.status.value}[/]")
        for rule in result.rules:
            mark = CONSOLE_MARKS[ci.outcome_word(rule)]
            table.add_row(
                result.id,
                escape(rule.rule),
                escape(ci.observed_text(rule)),
                escape(rule.threshold),
                mark,
            )
    out.print(table)
    for result in manifest.results:
        out.print(f"  [bold]{result.id}[/]: {escape(result.summary)}")
    verdict = manifest.decision.verdict
    word = f"[{VERDICT_STYLE[verdict]}]{ci.VERDICT_WORDS[verdict]}[/]"
    out.print(f"{word} {escape(manifest.decision.summary)}")
