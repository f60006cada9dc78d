"""The `governance` command. Each command calls one service function and formats its result.

Exit codes: 0 pass, 1 blocked by policy, 2 bad input or usage (and a gate that errored).
"""

from __future__ import annotations

import gc
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import connectors.files as files
from governance import config
from governance.domain import names
from governance.domain.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    UnauthenticatedError,
)
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import PolicyError
from governance.domain.verdict import Verdict
from governance.services.gate import GateRequest, run_gate
from reports import ci

app = typer.Typer(
    name="governance",
    help="A policy-driven gatekeeper between ML training and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Policy-as-code: validate policy files.", no_args_is_help=True)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")
attest_app = typer.Typer(
    help="Signed attestations bound to the model's bytes.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
app.add_typer(attest_app, name="attest")

# CI logs are not terminals: give tables room instead of rich's 80-column default.
_WIDTH = None if os.isatty(1) else int(os.environ.get("COLUMNS", 140))
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, width=_WIDTH)
EXIT = {Verdict.PASS: 0, Verdict.BLOCKED: 1, Verdict.ERROR: 2}
CONSOLE_MARKS = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "warn": "[yellow]warn[/]"}
VERDICT_STYLE = {Verdict.PASS: "bold green", Verdict.BLOCKED: "bold red", Verdict.ERROR: "bold red"}
STATE_STYLE = {"blocked": "bold red", "promoted": "bold green", "approved": "bold green"}


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(2)


def refuse(problems: list[str], headline: str) -> NoReturn:
    """A verification that found something: each finding, then exit 1."""
    for problem in problems:
        err.print(f"[red]✗[/] {escape(problem)}")
    err.print(f"[bold red]{escape(headline)}[/]")
    raise typer.Exit(1)


@policy_app.command("validate")
def policy_validate(
    paths: Annotated[list[Path], typer.Argument(help="Policy YAML files.", show_default=False)],
) -> None:
    """Validate policy files: exit 0 when all are valid, 2 listing every error by its path."""
    invalid = 0
    for path in paths:
        try:
            policy = files.load_policy(path)
        except PolicyError as exc:
            invalid += 1
            err.print(f"[red]✗[/] {escape(str(path))}")
            for problem in exc.problems:
                err.print(f"    {escape(problem)}")
            continue
        except InputError as exc:
            invalid += 1
            err.print(f"[red]✗[/] {escape(exc.message)}")
            continue
        meta = policy.metadata
        out.print(
            f"[green]✓[/] {escape(str(path))}: {meta.name} v{meta.version}, "
            f"risk tier {policy.applies_to.risk_tier}, {len(policy.checks)} checks, "
            f"sha256 {policy.content_hash[:16]}"
        )
    if invalid:
        raise typer.Exit(2)


@policy_app.command("impact")
def policy_impact(
    path: Annotated[Path, typer.Argument(help="The draft policy YAML file.", show_default=False)],
    database: DatabaseOption = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report as JSON here.")
    ] = None,
) -> None:
    """Would a draft policy change the verdict of any version approved, waived or promoted?
    Judges their stored evidence again under the draft; no check is run, nothing is
    written. Exit 0 no verdict changes and nothing missing, 1 a verdict changes or a check
    or value is missing, 2 bad input."""
    from governance.services.impact import policy_impact as judge_draft
    from governance.store.database import current_revision, make_engine
    from governance.store.uow import SqlUnits

    try:
        draft = files.load_policy(path)
    except PolicyError as exc:
        err.print(f"[red]✗[/] {escape(str(path))}")
        for problem in exc.problems:
            err.print(f"    {escape(problem)}")
        raise typer.Exit(2) from None
    except InputError as exc:
        err.print(f"[red]✗[/] {escape(exc.message)}")
        raise typer.Exit(2) from None
    url = config.database_url(database) or config.default_database_url()
    try:
        revision = current_revision(url)
    except Exception as exc:  # noqa: BLE001 - any connection failure reads the same to a user
        fail(f"database {url}: cannot connect ({type(exc).__name__}: {exc})")
    if revision is None:
        fail(f"database {url}: has no schema, so no decisions. Fix: pass --database URL")
    engine = make_engine(url)
    try:
        report = judge_draft(SqlUnits(engine), draft)
    except PolicyError as exc:
        fail(str(exc))
    except InputError as exc:
        fail(exc.message)
    finally:
        engine.dispose()
    if json_path is not None:
        try:
            document = json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
            json_path.write_text(document + "\n", encoding="utf-8")
        except OSError as exc:
            fail(f"--json {json_path}: cannot write ({exc.strerror or exc})")
    _show_impact(report)
    raise typer.Exit(report.exit_code)


def _show_impact(report: Any) -> None:
    """The versions with their old and new verdicts and the rules that flip, then what the
    stored evidence cannot tell, then the versions the draft does not cover."""
    states = ", ".join(report.states)
    out.print(
        f"Draft policy {escape(report.draft_name)} v{report.draft_version} "
        f"(risk tier {escape(report.risk_tier)}, targets {escape(', '.join(report.targets))}, "
        f"sha256 {report.draft_sha256[:16]}) against {len(report.versions)} {states} "
        "version(s), judged again from their stored evidence"
    )
    if report.versions:
        table = Table()
        for column in (
            "model@version",
            "target",
            "state",
            "judged under",
            "verdict",
            "",
            "rules that flip",
        ):
            table.add_column(column)
        for version in report.versions:
            new = version.new_verdict.value if version.new_verdict is not None else "?"
            if version.changed:
                marker = "[bold red]CHANGED[/]"
            elif version.new_verdict is None:
                marker = "[yellow]RE-RUN[/]"
            else:
                marker = "[green]same[/]"
            table.add_row(
                escape(f"{version.model}@{version.version}"),
                escape(version.target or ""),
                escape(version.state or ""),
                escape(f"{version.old_policy} v{version.old_policy_version}"),
                f"{version.old_verdict.value} → {new}",
                marker,
                "\n".join(_impact_flip(rule) for rule in version.flipped) or "—",
            )
        out.print(table)
    missing = [(v, m) for v in report.versions for m in v.missing_checks]
    if missing:
        out.print("\n[bold]Versions that need a check the old policy never ran:[/]")
        for version, check in missing:
            where = f"{version.model}@{version.version} ({version.target or ''})"
            out.print(
                f"  {escape(where)}: {escape(check.check_id)} ({escape(check.type)}) — "
                f"{escape(check.reason)}"
            )
    reruns = [(v, r) for v in report.versions for r in v.needs_rerun]
    if reruns:
        out.print("\n[bold]Values the stored evidence does not hold (re-run the checks):[/]")
        for version, rerun in reruns:
            only = "" if rerun.affects_verdict else " (reported only: the verdict does not use it)"
            out.print(
                f"  {escape(version.model)}@{escape(version.version)}: {escape(rerun.check_id)}: "
                f"{escape(rerun.rule or '(every rule)')} — {escape(rerun.reason)}{only}"
            )
    if report.not_covered:
        out.print("\n[bold]Not covered by the draft:[/]")
        for other in report.not_covered:
            out.print(
                f"  {escape(other.model)}@{escape(other.version)} ({escape(other.target)}, "
                f"{escape(other.state)}, {escape(other.policy)} v{other.policy_version}): "
                f"{escape(other.reason)}"
            )
    changed, incomplete = len(report.changed), len(report.incomplete)
    out.print(
        f"\n{changed} of {len(report.versions)} verdict(s) would change; {incomplete} "
        "version(s) need a check or a value the stored evidence does not hold"
    )
    if report.exit_code == 0:
        out.print("[bold green]no verdict would change[/]")
    elif changed:
        out.print(f"[bold red]adopting the draft changes {changed} verdict(s)[/]")
    else:
        out.print("[bold yellow]the stored evidence cannot tell: re-run the checks[/]")


def _impact_flip(rule: Any) -> str:
    """`check: rule (observed …) pass → FAIL`; a new rule reads `new`, a dropped one
    `dropped`."""
    old = CONSOLE_MARKS[rule.old.value] if rule.old is not None else "new"
    new = CONSOLE_MARKS[rule.new.value] if rule.new is not None else "dropped"
    value = rule.observed
    shown = "undefined" if value is None else f"{value:.4g}" if isinstance(value, float) else value
    named = f"{rule.check_id}: {rule.rule} (observed {shown})"
    return f"{escape(named)} {old} → {new}"


GATE_FIELDS = {
    "policy", "model", "data", "target", "reference", "champion", "prediction_col",
    "score_col", "positive_label", "model_name", "model_version", "json", "junit",
    "markdown", "database", "attest", "key",
}  # fmt: skip
PATH_FIELDS = (
    "policy", "model", "data", "reference", "champion", "json", "junit", "markdown",
    "attest", "key",
)  # fmt: skip


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
        if settings.get(name) is not None:
            settings[name] = path.parent / str(settings[name])
    return settings


@app.command()
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
            try:
                names.checked(f"--{option.replace('_', '-')}", request_value)
            except InputError as exc:
                fail(exc.message)
    _warn_pickles(request.model, request.champion)
    recorder = _recorder(config.database_url(settings.get("database")))
    try:
        with err.status("Starting the gate") as status:
            outcome = run_gate(request, files, recorder, progress=lambda step: status.update(step))
    except PolicyError as exc:
        fail(str(exc))
    except InputError as exc:
        fail(exc.message)
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
            manifest, outcome.decision_id, Path(settings["attest"]), settings.get("key")
        )
    if settings.get("report") is not None:
        _write_local_report(
            outcome,
            Path(settings["report"]),
            _path(settings.get("model_card")),
            config.database_url(settings.get("database")),
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


# How long `gate --submit` waits for the service to re-compute the checks.
SUBMIT_WAIT_SECONDS = 1800.0
DECIDED = ("awaiting_approval", "blocked")


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
    manifest: EvidenceManifest, decision_id: str | None, path: Path, key_path: Any
) -> None:
    from governance.domain.attestation import envelope, statement
    from governance.signing import PRIVATE, key_name, load_private

    try:
        key = load_private(Path(key_path) if key_path else config.data_dir() / PRIVATE)
        document = envelope(statement(manifest, decision_id), key_name(key.public_key()), key.sign)
    except InputError as exc:
        fail(exc.message)
    except ValueError as exc:
        fail(f"--attest: {exc}")
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    err.print(f"wrote attestation {escape(str(path))}")


def _write_local_report(
    outcome: Any, path: Path, card_path: Path | None, database: str | None
) -> None:
    """Sign the local run's report; where the decision was recorded, record the report too."""
    from governance.bootstrap import report_signing
    from governance.services.reports import local_decision_report, record_report
    from governance.signing import load_private
    from governance.store.database import make_engine

    settings = _settings(None)
    try:
        card = _model_card(card_path) if card_path else None
        signing = report_signing(settings, load_private(settings.signing_key))
        report = local_decision_report(
            outcome.manifest, outcome.policy, signing, card, outcome.decision_id
        )
    except InputError as exc:
        fail(exc.message)
    _write_report(report, path)
    if database is not None and outcome.decision_id is not None:
        manifest = outcome.manifest
        subject = f"model:{manifest.model_name}@{manifest.model_version}"
        engine = make_engine(database)
        try:
            record_report(
                engine,
                f"cli:{getpass.getuser()}",
                report,
                subject,
                {"decision_id": outcome.decision_id},
            )
        finally:
            engine.dispose()


def _model_card(path: Path) -> Any:
    from pydantic import ValidationError

    from governance.domain.model_card import ModelCard

    try:
        return ModelCard.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError) as exc:
        fail(f"--model-card {path}: cannot be read ({exc})")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        fail(f"--model-card {path}: {where}: {first['msg']}")


def _write_report(report: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(report.pdf)
    err.print(f"wrote {report.kind} report {escape(str(path))} (sha256 {report.sha256})")


def _path(value: Any) -> Path | None:
    return None if value is None else Path(value)


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


def _recorder(url: str | None) -> Any:
    if url is None:
        return None
    from governance.store.database import current_revision, make_engine
    from governance.store.repository import SqlDecisionRecorder

    try:
        revision = current_revision(url)
    except Exception as exc:  # noqa: BLE001 - any connection failure reads the same to a user
        fail(f"database {url}: cannot connect ({type(exc).__name__}: {exc})")
    if revision is None:
        fail(f"database {url}: has no schema yet. Fix: run `governance db upgrade --database URL`")
    return SqlDecisionRecorder(make_engine(url), actor=f"cli:{getpass.getuser()}")


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


@db_app.command("upgrade")
def db_upgrade(
    database: Annotated[
        str | None,
        typer.Option(
            help="Database URL (default: GOVERNANCE_DATABASE_URL, else the embedded SQLite file)."
        ),
    ] = None,
) -> None:
    """Create or migrate the database schema to the newest revision."""
    from governance.store.database import current_revision, upgrade

    url = config.database_url(database) or config.default_database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(url)
    except Exception as exc:  # noqa: BLE001
        fail(f"database {url}: migration failed ({type(exc).__name__}: {exc})")
    out.print(f"database {escape(url)} at revision {current_revision(url)}")


@audit_app.command("verify")
def audit_verify(
    database: Annotated[
        str | None,
        typer.Option(help="Database URL (default: GOVERNANCE_DATABASE_URL, else the SQLite file)."),
    ] = None,
) -> None:
    """Check the audit trail: its hash chain (a changed event, or one deleted or inserted
    between others) and the newest signed checkpoint published outside the database (events
    cut from the end, or a rewrite with every later hash recomputed). Exit 0 intact, 1
    naming every problem. When intact, a checkpoint of the trail is published."""
    from governance.bootstrap import checkpoint_log
    from governance.signing import PUBLIC, load_private
    from governance.store.database import make_engine
    from governance.store.uow import SqlUnits

    url = config.database_url(database) or config.default_database_url()
    settings = config.Settings.from_env(url, config.data_dir())
    keyless = not settings.signing_key.exists()
    if keyless and not settings.signing_key.with_name(PUBLIC).exists():
        err.print(
            f"[yellow]![/] no signing key in {escape(str(settings.home))}: only the hash chain "
            "is checked; set GOVERNANCE_HOME to check the published checkpoints too"
        )
    try:
        key = None if keyless else load_private(settings.signing_key)
        log = checkpoint_log(settings, SqlUnits(make_engine(url)), key)
        result = log.verify()
    except InputError as exc:
        fail(exc.message)
    except Exception as exc:  # noqa: BLE001
        fail(f"database {url}: cannot read the audit trail ({type(exc).__name__}: {exc})")
    problems, count = result["problems"], result["events"]
    if problems:
        refuse(problems, f"audit trail broken: {len(problems)} problem(s) in {count} events")
    head = result["head"] or "(empty)"
    published = " (checkpoint published)" if result["checkpointPublished"] else ""
    out.print(f"[green]✓[/] audit trail intact: {count} events, head {head}{published}")


KeyOption = Annotated[
    Path | None, typer.Option("--key", help="Ed25519 private key (default: the data directory's).")
]
DatabaseOption = Annotated[
    str | None, typer.Option(help="Database URL (default: GOVERNANCE_DATABASE_URL, else SQLite).")
]


@audit_app.command("keygen")
def audit_keygen(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write the key pair.")
    ] = None,
) -> None:
    """Create the service's Ed25519 signing key (never overwrites one)."""
    from governance.signing import create_key

    try:
        private, public = create_key(directory or config.data_dir())
    except InputError as exc:
        fail(exc.message)
    out.print(f"private key {escape(str(private))} (mode 600); public key {escape(str(public))}")


@audit_app.command("checkpoint")
def audit_checkpoint(
    database: DatabaseOption = None,
    key: KeyOption = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write the note here.")] = None,
) -> None:
    """Sign a checkpoint (size and Merkle root) of the audit log. Keep it: later proofs are
    checked against it."""
    from governance.services.audit import checkpoint

    events, sign_note, _ = _audit_context(database, key)
    note = sign_note(checkpoint(events))
    if output:
        output.write_text(note, encoding="utf-8")
    out.print(note, end="", markup=False, highlight=False)


@audit_app.command("prove")
def audit_prove(
    output: Annotated[Path, typer.Option("--out", help="Write the proof bundle (JSON) here.")],
    since: Annotated[
        Path | None, typer.Option(help="A checkpoint you kept: prove the log extends it.")
    ] = None,
    event: Annotated[
        int | None, typer.Option(help="Prove that this event (seq) is in the log.")
    ] = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
) -> None:
    """Write a signed checkpoint of the log now, with a consistency proof from a kept
    checkpoint and an inclusion proof of one event, for `governance audit check`."""
    from governance.services.audit import prove

    events, sign_note, open_note = _audit_context(database, key)
    try:
        kept = open_note(since.read_text(encoding="utf-8")) if since else None
        bundle = prove(events, sign_note, kept, event)
    except (InputError, ValueError, OSError) as exc:
        fail(exc.message if isinstance(exc, InputError) else f"--since {since}: {exc}")
    output.write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
    out.print(f"wrote {escape(str(output))}")


@audit_app.command("check")
def audit_check(
    bundle_path: Annotated[Path, typer.Argument(help="A proof bundle from `audit prove`.")],
    public_key: Annotated[Path, typer.Option(help="The service's public key (PEM).")],
    since: Annotated[Path | None, typer.Option(help="The checkpoint you kept.")] = None,
) -> None:
    """Check a proof bundle offline, trusting only the public key and your own checkpoint:
    exit 0 when it holds, 1 with the reason when it does not."""
    from governance.domain.checkpoint import CheckpointError
    from governance.services.audit import check

    try:
        open_note = _note_opener(public_key)
        bundle = json.loads(bundle_path.read_text(encoding="utf-8"))
        kept = open_note(since.read_text(encoding="utf-8")) if since else None
    except InputError as exc:
        fail(exc.message)
    except (OSError, ValueError, CheckpointError) as exc:
        fail(f"cannot read the inputs: {exc}")
    problems = check(bundle, open_note, kept)
    if problems:
        refuse(problems, "the proofs do not hold")
    out.print("[green]✓[/] the proofs hold against the signed checkpoint")


def _note_opener(public_key: Path) -> Any:
    from governance.domain.checkpoint import open_note
    from governance.services.audit import ORIGIN
    from governance.signing import load_public, raw_public, verifier

    key = load_public(public_key)
    return lambda note: open_note(note, ORIGIN, raw_public(key), verifier(key))


def _audit_context(database: str | None, key_path: Path | None) -> tuple[Any, Any, Any]:
    """The stored trail, a note signer with the service key, and a note opener."""
    from governance.domain.checkpoint import open_note, sign
    from governance.services.audit import ORIGIN
    from governance.signing import PRIVATE, load_private, raw_public, verifier
    from governance.store.database import make_engine
    from governance.store.repository import audit_trail

    url = config.database_url(database) or config.default_database_url()
    try:
        key = load_private(key_path or config.data_dir() / PRIVATE)
        events = audit_trail(make_engine(url))
    except InputError as exc:
        fail(exc.message)
    except Exception as exc:  # noqa: BLE001
        fail(f"database {url}: cannot read the audit trail ({type(exc).__name__}: {exc})")
    public = raw_public(key.public_key())
    return (
        events,
        lambda checkpoint: sign(checkpoint, ORIGIN, public, key.sign),
        lambda note: open_note(note, ORIGIN, public, verifier(key.public_key())),
    )


@attest_app.command("verify")
def attest_verify(
    attestation: Annotated[Path, typer.Argument(help="A DSSE envelope from `gate --attest`.")],
    artifact: Annotated[Path, typer.Option(help="The model file about to be served.")],
    key: Annotated[Path, typer.Option(help="The service's public key (PEM).")],
) -> None:
    """Check that an attestation is signed by the service and vouches for these exact bytes:
    exit 0 valid, 1 with the reason."""
    from connectors.files import sha256_file
    from governance.domain.attestation import verify
    from governance.signing import load_public, verifier

    try:
        public = load_public(key)
        document = json.loads(attestation.read_text(encoding="utf-8"))
        digest = sha256_file(artifact)
    except InputError as exc:
        fail(exc.message)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the inputs: {exc}")
    problems = verify(document, digest, verifier(public))
    if problems:
        refuse(problems, "the attestation does not vouch for these bytes")
    out.print(f"[green]✓[/] signed by the service and bound to sha256 {digest}")


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where to write data, models and evidence.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    serving: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API and console afterwards.")
    ] = True,
) -> None:
    """Seed the service with people for every role and three real models on the UCI Adult
    data (one blocked, one promoted, one awaiting approval), then serve the API and the
    console. Safe to run again: what exists is reused."""
    from governance.demo import run_demo

    directory = data_dir or config.data_dir()
    try:
        with err.status("Starting the demo") as status:
            seeded = run_demo(directory, progress=status.update)
    except InputError as exc:
        fail(exc.message)
    except (PolicyError, ConflictError, ForbiddenError, UnauthenticatedError) as exc:
        fail(str(exc))
    _show_demo(seeded, directory)
    if serving:
        _serve(seeded.settings, host, port, workers=1)


def _show_demo(seeded: Any, directory: Path) -> None:
    """Each candidate with its state, verdict and files; the people with their passwords."""
    for run in seeded.runs:
        style = STATE_STYLE.get(run.state, "bold")
        out.print(
            f"[bold]{escape(run.model)} v{escape(run.version)}[/]: [{style}]{run.state}[/]  "
            f"(request {run.request_id})"
        )
        if run.manifest is not None:
            decision = run.manifest.decision
            out.print(
                f"  checks: [{VERDICT_STYLE[decision.verdict]}]"
                f"{ci.VERDICT_WORDS[decision.verdict]}[/] {escape(decision.summary)} "
                f"(decision {run.decision_id})"
            )
        if run.reason and (run.manifest is None or run.reason != run.manifest.decision.summary):
            out.print(f"  {escape(run.reason)}")
        if run.evidence is not None:
            out.print(
                f"  evidence: {escape(str(run.evidence))}/ (manifest.json, junit.xml, summary.md)"
            )
        for report in run.reports:
            out.print(f"  signed report: {escape(str(report))}")
    people = Table("user", "name", "role", "password", title="People (demo passwords)")
    for person, password in seeded.people:
        shown = escape(password) if password else "[dim](set before the demo)[/]"
        people.add_row(person.username, escape(person.full_name), person.role, shown)
    out.print(people)
    out.print(f"Passwords kept in {escape(str(directory / 'demo' / 'people.json'))} (mode 600)")
    out.print(f"Decisions recorded in {escape(seeded.settings.database_url)}")
    ca = directory / "report-ca.pem"
    out.print(f"Verify a report: governance report verify FILE.pdf --trust {escape(str(ca))}")


connectors_app = typer.Typer(
    help="Model registries (MLflow, folders) the gatekeeper watches.", no_args_is_help=True
)
app.add_typer(connectors_app, name="connectors")


@connectors_app.command("sync")
def connectors_sync(
    name: Annotated[str | None, typer.Argument(help="One connector; all when left out.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Sync now: open requests for new governed versions (`governance serve` runs their
    checks), write decisions back, put the governed alias back where the decisions say.
    Exit 2 when a registry cannot be reached."""
    governance = _governance(database)
    try:
        names = [name] if name else governance.registries.names
        if not names:
            fail("no connectors configured: name a connectors file in GOVERNANCE_CONNECTORS")
        for each in names:
            outcome = governance.registries.sync(each)
            out.print(f"[green]✓[/] {escape(each)}: {len(outcome['opened'])} request(s) opened")
            for key, why in outcome["refused"].items():
                out.print(f"  [yellow]refused[/] {escape(key)}: {escape(why)}")
            for restored in outcome["aliasesRestored"]:
                what = f"{restored['model']}: {restored['why']}"
                out.print(f"  [red]alias restored[/] {escape(what)}")
    except (InputError, NotFoundError) as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreachable registry, said in one line
        fail(f"sync failed: {type(exc).__name__}: {exc}")
    finally:
        governance.close()


user_app = typer.Typer(
    help="People who sign in: add, list, disable, unlock, change or reset a password.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="API tokens for CI and serving systems.", no_args_is_help=True)
builder_app = typer.Typer(
    help="CI builders whose signed provenance a policy may trust: add, list, revoke.",
    no_args_is_help=True,
)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(builder_app, name="builder")


def _settings(database: str | None) -> config.Settings:
    try:
        return config.Settings.from_env(database)
    except InputError as exc:
        fail(exc.message)


def _governance(database: str | None) -> Any:
    """The service over an initialised data directory, or a clear message to run init."""
    from governance.bootstrap import open_governance
    from governance.store.database import current_revision

    settings = _settings(database)
    try:
        if current_revision(settings.database_url) is None:
            fail(f"database {settings.database_url} is not initialised: run `governance init`")
        return open_governance(settings)
    except InputError as exc:
        fail(exc.message)


@app.command()
def init(
    database: DatabaseOption = None,
    admin_password_env: Annotated[
        str,
        typer.Option(help="Environment variable holding the admin's password (else generated)."),
    ] = "GOVERNANCE_ADMIN_PASSWORD",
) -> None:
    """Create the data directory, migrate the database, create the signing key, the default
    access rules and an admin user. Safe to run again: it only adds what is missing."""
    from governance.bootstrap import initialise

    settings = _settings(database)
    try:
        done = initialise(settings, os.environ.get(admin_password_env) or None)
    except (InputError, PolicyError) as exc:
        fail(str(exc) if isinstance(exc, PolicyError) else exc.message)
    for line in done or ["nothing to do: already initialised"]:
        out.print(f"[green]✓[/] {escape(line)}")
    out.print(f"data directory: {escape(str(settings.home.resolve()))}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    database: DatabaseOption = None,
) -> None:
    """Serve the API (/api/v1, OpenAPI at /schema/openapi.json) with uvicorn."""
    settings = _settings(database)
    _governance(database).close()  # refuse to start on a database init has not made
    _serve(settings, host, port, workers)


def _serve(settings: config.Settings, host: str, port: int, workers: int) -> None:
    """Run the API and console until stopped. Each worker builds the app from the
    environment, so these settings are handed on through it."""
    import uvicorn

    os.environ["GOVERNANCE_HOME"] = str(settings.home)
    os.environ["GOVERNANCE_DATABASE_URL"] = settings.database_url
    os.environ["GOVERNANCE_POLICIES"] = str(settings.policies)
    out.print(f"serving http://{host}:{port}/  (OpenAPI: http://{host}:{port}/schema/openapi.json)")
    uvicorn.run(
        "governance.web.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        # A worker imports the checks' libraries before it answers uvicorn's health check;
        # on a busy machine that takes longer than the default 5 s.
        timeout_worker_healthcheck=60,
    )


@user_app.command("add")
def user_add(
    username: str,
    full_name: Annotated[str, typer.Option("--name", help="Full name, as signatures show it.")],
    roles: Annotated[list[str], typer.Option("--role", help="A role; repeat for several.")],
    database: DatabaseOption = None,
) -> None:
    """Add a person; the password is asked for (or read from GOVERNANCE_USER_PASSWORD)."""
    from governance.services.people import SYSTEM

    password = os.environ.get("GOVERNANCE_USER_PASSWORD") or getpass.getpass("Password: ")
    governance = _governance(database)
    try:
        user = governance.people.add_user(SYSTEM, username, full_name, password, roles)
    except (InputError, ConflictError) as exc:
        fail(exc.message if isinstance(exc, InputError) else str(exc))
    finally:
        governance.close()
    out.print(f"[green]✓[/] user {escape(user['username'])} with roles {', '.join(user['roles'])}")


@user_app.command("list")
def user_list(database: DatabaseOption = None) -> None:
    """Every user with roles and whether disabled."""
    governance = _governance(database)
    table = Table("user", "name", "roles", "disabled")
    for user in governance.people.list_users():
        table.add_row(
            user["username"], user["full_name"], ", ".join(user["roles"]), str(user["disabled"])
        )
    governance.close()
    out.print(table)


@user_app.command("disable")
def user_disable(username: str, database: DatabaseOption = None) -> None:
    """Disable a person: their sessions end and they cannot sign in or sign."""
    from governance.services.people import SYSTEM

    governance = _governance(database)
    try:
        governance.people.set_disabled(SYSTEM, username, True)
    except NotFoundError as exc:
        fail(str(exc))
    finally:
        governance.close()
    out.print(f"[green]✓[/] {escape(username)} disabled")


@user_app.command("unlock")
def user_unlock(username: str, database: DatabaseOption = None) -> None:
    """End a sign-in lockout (ten failures in a row lock an account for 15 minutes)."""
    from governance.services.people import SYSTEM

    governance = _governance(database)
    try:
        done = governance.people.unlock(SYSTEM, username)
    except NotFoundError as exc:
        fail(str(exc))
    finally:
        governance.close()
    state = "unlocked" if done["unlocked"] else "was not locked; its failure count is cleared"
    out.print(f"[green]✓[/] {escape(username)} {state}")


@user_app.command("passwd")
def user_passwd(username: str, database: DatabaseOption = None) -> None:
    """Change your own password: the current one, then the new one, are asked for (or read
    from GOVERNANCE_CURRENT_PASSWORD and GOVERNANCE_NEW_PASSWORD). Your sessions end."""
    current = os.environ.get("GOVERNANCE_CURRENT_PASSWORD") or getpass.getpass("Current: ")
    new = os.environ.get("GOVERNANCE_NEW_PASSWORD") or getpass.getpass("New password: ")
    governance = _governance(database)
    try:
        done = governance.people.change_password(username, current, new, None)
    except (InputError, UnauthenticatedError) as exc:
        fail(exc.message if isinstance(exc, InputError) else str(exc))
    finally:
        governance.close()
    out.print(f"[green]✓[/] password changed; {done['sessions_ended']} session(s) ended")


@user_app.command("reset-password")
def user_reset_password(username: str, database: DatabaseOption = None) -> None:
    """Set a person's password as an administrator (asked for, or read from
    GOVERNANCE_USER_PASSWORD): their sessions end and a lockout is lifted."""
    from governance.services.people import SYSTEM

    password = os.environ.get("GOVERNANCE_USER_PASSWORD") or getpass.getpass("New password: ")
    governance = _governance(database)
    try:
        done = governance.people.reset_password(SYSTEM, username, password)
    except (InputError, NotFoundError) as exc:
        fail(exc.message if isinstance(exc, InputError) else str(exc))
    finally:
        governance.close()
    out.print(
        f"[green]✓[/] {escape(username)} has a new password; "
        f"{done['sessions_ended']} session(s) ended"
    )


@token_app.command("create")
def token_create(
    name: str,
    roles: Annotated[list[str], typer.Option("--role", help="A role; repeat for several.")],
    days: Annotated[int | None, typer.Option(help="Expire after this many days.")] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            help="The person (user name) accountable for what the token does; "
            "default: the first admin."
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Issue an API token. The secret is printed once and never stored."""
    from governance.services.people import SYSTEM

    governance = _governance(database)
    try:
        token = governance.people.create_token(SYSTEM, name, roles, days, owner)
    except InputError as exc:
        fail(exc.message)
    finally:
        governance.close()
    err.print(
        f"token {token['id']} for {escape(name)} ({', '.join(token['roles'])}), "
        f"accountable: {escape(token['owner'])}; keep it:"
    )
    out.print(token["token"])


@token_app.command("list")
def token_list(database: DatabaseOption = None) -> None:
    """Every token (never its secret)."""
    governance = _governance(database)
    table = Table("id", "name", "accountable", "roles", "expires", "revoked")
    for token in governance.people.list_tokens():
        table.add_row(
            token["id"],
            token["name"],
            token["owner"],
            ", ".join(token["roles"]),
            str(token["expires_at"] or "never"),
            str(token["revoked_at"] or ""),
        )
    governance.close()
    out.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str, database: DatabaseOption = None) -> None:
    """Revoke a token at once."""
    from governance.services.people import SYSTEM

    governance = _governance(database)
    try:
        governance.people.revoke_token(SYSTEM, token_id)
    except (NotFoundError, ConflictError) as exc:
        fail(str(exc))
    finally:
        governance.close()
    out.print(f"[green]✓[/] token {escape(token_id)} revoked")


@builder_app.command("add")
def builder_add(
    name: str,
    key: Annotated[Path, typer.Option("--key", help="The builder's Ed25519 public key (PEM).")],
    database: DatabaseOption = None,
) -> None:
    """Register a CI builder's public key. Policies that list the name under
    evidence.trustedBuilders accept its signed evidence without re-computing the checks."""
    from governance.services.people import SYSTEM

    try:
        pem = key.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--key {key}: cannot read it ({type(exc).__name__}). Fix: give a PEM file")
    governance = _governance(database)
    try:
        added = governance.builders.add(SYSTEM, name, pem)
    except (InputError, ConflictError) as exc:
        fail(exc.message if isinstance(exc, InputError) else str(exc))
    finally:
        governance.close()
    out.print(f"[green]✓[/] builder {escape(added['name'])} registered ({added['keyId']})")


@builder_app.command("list")
def builder_list(database: DatabaseOption = None) -> None:
    """Every registered builder, with its key id and whether revoked."""
    governance = _governance(database)
    table = Table("builder", "key", "registered by", "registered", "revoked")
    for builder in governance.builders.list():
        table.add_row(
            builder["name"],
            builder["keyId"],
            builder["createdBy"],
            str(builder["createdAt"]),
            str(builder["revokedAt"] or ""),
        )
    governance.close()
    out.print(table)


@builder_app.command("revoke")
def builder_revoke(name: str, database: DatabaseOption = None) -> None:
    """Revoke a builder at once: its provenance is no longer accepted."""
    from governance.services.people import SYSTEM

    governance = _governance(database)
    try:
        governance.builders.revoke(SYSTEM, name)
    except (NotFoundError, ConflictError) as exc:
        fail(str(exc))
    finally:
        governance.close()
    out.print(f"[green]✓[/] builder {escape(name)} revoked")


@app.command()
def replay(
    decision_id: Annotated[str, typer.Argument(help="The id of a recorded decision.")],
    database: DatabaseOption = None,
    blobs: Annotated[
        Path | None,
        typer.Option(
            help="Content-addressed blob store to fetch artifacts from by sha256 "
            "(default: the data directory's blobs/, when it exists)."
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show every compared value, not only differences.")
    ] = False,
) -> None:
    """Re-run a recorded decision from its evidence manifest (same bytes, policy and seeds)
    and compare metric by metric. Exit 0 reproduced, 1 not reproduced, 2 bad input."""
    from governance.services.replay import replay as replay_decision
    from governance.store.blobs import BlobStore
    from governance.store.database import current_revision, make_engine
    from governance.store.uow import SqlUnits

    url = config.database_url(database) or config.default_database_url()
    try:
        revision = current_revision(url)
    except Exception as exc:  # noqa: BLE001 - any connection failure reads the same to a user
        fail(f"database {url}: cannot connect ({type(exc).__name__}: {exc})")
    if revision is None:
        fail(f"database {url}: has no schema, so no decisions. Fix: pass --database URL")
    default_blobs = config.data_dir() / "blobs"
    blob_root = blobs or (default_blobs if default_blobs.is_dir() else None)
    engine = make_engine(url)
    try:
        with err.status("Starting the replay") as status:
            outcome = replay_decision(
                SqlUnits(engine),
                decision_id,
                BlobStore(blob_root) if blob_root else None,
                files,
                actor=f"cli:{getpass.getuser()}",
                progress=lambda step: status.update(step),
            )
    except PolicyError as exc:
        fail(str(exc))
    except InputError as exc:
        fail(exc.message)
    finally:
        engine.dispose()
    shown = outcome.rows if show_all else outcome.differences
    if shown:
        table = Table(
            title=f"replay of {outcome.model_name} {outcome.model_version} "
            f"(decision {outcome.decision_id})"
        )
        for column in ("check", "value", "recorded", "replayed", "equal"):
            table.add_column(column)
        for row in shown:
            table.add_row(
                escape(row.check_id),
                escape(row.name),
                escape(_replay_value(row.recorded)),
                escape(_replay_value(row.replayed)),
                "[green]=[/]" if row.equal else "[red]≠[/]",
            )
        out.print(table)
    equal = len(outcome.rows) - len(outcome.differences)
    out.print(f"{equal} of {len(outcome.rows)} compared values equal")
    out.print(
        f"verdict: recorded {outcome.recorded_verdict.value}, "
        f"replayed {outcome.replayed_verdict.value}"
    )
    for name, (recorded, running) in outcome.library_differences.items():
        out.print(
            f"[yellow]library {escape(name)}:[/] recorded {escape(str(recorded))}, "
            f"running {escape(str(running))}"
        )
    if outcome.reproduced:
        out.print("[bold green]reproduced bit for bit[/]")
        raise typer.Exit(0)
    out.print(f"[bold red]NOT reproduced: {len(outcome.differences)} differences[/]")
    raise typer.Exit(1)


def _replay_value(value: Any) -> str:
    """Floats in full (repr round-trips), text as is, anything else as compact JSON."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except TypeError:
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "…"


report_app = typer.Typer(help="Signed PDF reports: build and verify.", no_args_is_help=True)
app.add_typer(report_app, name="report")
REPORT_KINDS = ("decision", "bias-audit", "inventory")


@report_app.command("build")
def report_build(
    kind: Annotated[
        str | None, typer.Argument(help="decision, bias-audit or inventory.", show_default=False)
    ] = None,
    request: Annotated[str | None, typer.Option(help="Promotion request id (decision).")] = None,
    decision: Annotated[
        str | None, typer.Option(help="Gate decision id (decision, bias-audit).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="The PDF to write.")] = None,
    model_card: Annotated[
        Path | None, typer.Option(help="Model card YAML, when the request carries none.")
    ] = None,
    scoring: Annotated[
        bool, typer.Option(help="Bias audit of a scoring tool (scores above the median).")
    ] = False,
    sex: Annotated[str, typer.Option(help="Column of sex categories (bias-audit).")] = "sex",
    race: Annotated[str, typer.Option(help="Column of race/ethnicity (bias-audit).")] = "race",
    source: Annotated[
        str | None, typer.Option(help="The data's source, as the bias audit states it.")
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="First date the data covers (YYYY-MM-DD).")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Last date the data covers (YYYY-MM-DD).")
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Run the demo and render its reports' pages to PNG with pdftoppm "
            "(under the data directory's reports/ folder).",
        ),
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Build a signed PDF report and record its sha256 in the audit trail."""
    if demo:
        _demo_report_pages()
        return
    if kind not in REPORT_KINDS:
        fail(f"KIND is {kind!r}: use one of {', '.join(REPORT_KINDS)} (or --demo)")
    governance = _governance(database)
    actor = f"cli:{getpass.getuser()}"
    try:
        if kind == "decision":
            card = _model_card(model_card) if model_card else None
            report = governance.reports.decision(actor, request, decision, card)
        elif kind == "bias-audit":
            if decision is None:
                fail("bias-audit needs --decision: the gate decision whose model and data to audit")
            report = governance.reports.bias_audit(
                actor, decision, sex, race, scoring, source, date_from, date_to
            )
        else:
            report = governance.reports.inventory(actor)
    except InputError as exc:
        fail(exc.message)
    except NotFoundError as exc:
        fail(str(exc))
    finally:
        governance.close()
    _write_report(report, output or Path(report.filename))


def _demo_report_pages() -> None:
    import shutil
    import subprocess

    from governance.demo import run_demo

    directory = config.data_dir()
    try:
        with err.status("Starting the demo") as status:
            seeded = run_demo(directory, progress=status.update)
    except InputError as exc:
        fail(exc.message)
    except (PolicyError, ConflictError, ForbiddenError, UnauthenticatedError) as exc:
        fail(str(exc))
    if shutil.which("pdftoppm") is None:
        fail("pdftoppm is not installed: apt-get install poppler-utils")
    for run in seeded.runs:
        for pdf_path in run.reports:
            pages = pdf_path.with_suffix("")
            pages.mkdir(exist_ok=True)
            subprocess.run(
                ["pdftoppm", "-png", "-r", "60", str(pdf_path), str(pages / "page")], check=True
            )
            out.print(f"{escape(str(pdf_path))}: pages in {escape(str(pages))}/")


@report_app.command("verify")
def report_verify(
    path: Annotated[Path, typer.Argument(help="The signed PDF report.", show_default=False)],
    trust: Annotated[
        Path | None,
        typer.Option(help="CA certificate to trust (default: the data directory's report CA)."),
    ] = None,
    extract: Annotated[
        Path | None, typer.Option(help="Also write the embedded evidence files here.")
    ] = None,
) -> None:
    """Exit 0 when the signature is valid, trusted and covers the whole file, and the
    embedded manifest is the one its attestation names; else 1 with every reason."""
    from reports import pdf, pki

    anchor = trust or config.data_dir() / pki.CA_CERT
    try:
        certificates = pki.load_certificates(anchor)
        data = path.read_bytes()
    except InputError as exc:
        fail(exc.message + ("" if trust else " (pass --trust CA.pem)"))
    except OSError as exc:
        fail(f"{path}: cannot be read ({exc.strerror})")
    result = pdf.verify(data, certificates)
    if extract is not None and result.embedded:
        extract.mkdir(parents=True, exist_ok=True)
        for name, content in result.embedded.items():
            (extract / Path(name).name).write_bytes(content)
    if not result.ok:
        refuse(result.problems, f"{path}: NOT verified")
    out.print(f"[green]✓[/] signed by {escape(result.signer or '')} at {result.signed_at}")
    out.print("[green]✓[/] the signature covers every byte of the file; nothing was changed")
    out.print(f"[green]✓[/] the signer chains to {escape(str(anchor))}")
    out.print(
        f"[green]✓[/] the embedded manifest (sha256 {result.manifest_sha256}) is the one the "
        "signed attestation names"
    )
    out.print(f"[bold green]{escape(str(path))}: verified[/]")


monitor_app = typer.Typer(help="Production monitoring of promoted versions.", no_args_is_help=True)
predictions_app = typer.Typer(help="Production prediction logs.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
app.add_typer(predictions_app, name="predictions")
RUN_STYLE = {"pass": "green", "breach": "bold red", "insufficient": "yellow", "error": "red"}


@monitor_app.command("run")
def monitor_run(
    request: Annotated[str | None, typer.Option(help="Run this request's monitor now.")] = None,
    monitor: Annotated[str, typer.Option(help="The monitor to run now, with --request.")] = "drift",
    database: DatabaseOption = None,
) -> None:
    """Run the production checks that are due (or, with --request, one now) and print them.
    Exit 1 when a check found a breach."""
    from governance.services.people import SYSTEM

    governance = _governance(database)
    try:
        if request is None:
            runs = governance.monitoring.run_due()
        else:
            runs = [governance.monitoring.run_now(SYSTEM, request, monitor)]
    except (InputError, NotFoundError, ConflictError) as exc:
        fail(exc.message if isinstance(exc, InputError) else str(exc))
    finally:
        governance.close()
    if not runs:
        out.print("nothing is due")
    for run in runs:
        style = RUN_STYLE.get(run["status"], "")
        action = f" → {run['action']}" if run["action"] else ""
        out.print(
            f"{escape(run['requestId'])} {run['monitor']}: [{style}]{run['status']}[/]{action} "
            f"({run['rows']} rows) {escape(run['summary'])}"
        )
    if any(run["status"] == "breach" for run in runs):
        raise typer.Exit(1)


@predictions_app.command("ingest")
def predictions_ingest(
    model: str,
    version: str,
    file: Annotated[Path, typer.Argument(help="A Parquet file of predictions.")],
    batch_id: Annotated[str | None, typer.Option(help="The batch id (default: file stem).")] = None,
    database: DatabaseOption = None,
) -> None:
    """Log one Parquet batch of production predictions for a model version."""
    import hashlib

    import pandas as pd

    try:
        raw = file.read_bytes()
        frame = pd.read_parquet(file)
    except (OSError, ValueError) as exc:
        fail(f"{file}: cannot be read as Parquet ({exc})")
    governance = _governance(database)
    try:
        batch = governance.monitoring.ingest(
            "cli", model, version, batch_id or file.stem, frame, "api",
            hashlib.sha256(raw).hexdigest(),
        )  # fmt: skip
    except (InputError, NotFoundError, ConflictError) as exc:
        fail(exc.message if isinstance(exc, InputError) else str(exc))
    finally:
        governance.close()
    what = "already stored" if batch["replayed"] else "stored"
    out.print(f"[green]✓[/] batch {escape(batch['batchId'])}: {batch['rows']} rows {what}")


def main() -> None:
    # Everything imported so far lives until exit: keep the collector from walking it
    # again and again while a million-row gate allocates.
    gc.freeze()
    code: int | str | None
    try:
        app()
        code = 0
    except SystemExit as exit_:  # how click ends every command
        code = exit_.code
    except Exception as exc:
        if os.environ.get("GOVERNANCE_DEBUG"):
            raise
        problem = escape(f"{type(exc).__name__}: {exc}")
        err.print(f"[bold red]internal error:[/] {problem} (GOVERNANCE_DEBUG=1 shows where)")
        code = 2
    _exit_now(code)


def _exit_now(code: int | str | None) -> NoReturn:
    """Exit without freeing a million rows' worth of objects one by one (half a second after
    a large gate); every file we wrote is closed already. mypy ends the same way."""
    if isinstance(code, str):
        err.print(code)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
