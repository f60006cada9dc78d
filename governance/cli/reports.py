"""`governance report`: build a signed PDF report, and verify one."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from governance.cli.common import (
    DatabaseOption,
    err,
    fail,
    open_service,
    out,
    refuse,
    settings,
    write_report,
)
from governance.cli.common import model_card as read_model_card
from governance.domain.errors import InputError

report_app = typer.Typer(help="Signed PDF reports: build and verify.", no_args_is_help=True)
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
    governance = open_service(database)
    actor = f"cli:{getpass.getuser()}"
    try:
        if kind == "decision":
            card = read_model_card(model_card) if model_card else None
            report = governance.reports.decision(actor, request, decision, card)
        elif kind == "bias-audit":
            if decision is None:
                fail("bias-audit needs --decision: the gate decision whose model and data to audit")
            report = governance.reports.bias_audit(
                actor, decision, sex, race, scoring, source, date_from, date_to
            )
        else:
            report = governance.reports.inventory(actor)
    finally:
        governance.close()
    write_report(report, output or Path(report.filename))


def _demo_report_pages() -> None:
    import shutil
    import subprocess

    from governance.demo import run_demo

    directory = settings().home
    with err.status("Starting the demo") as status:
        seeded = run_demo(directory, progress=status.update)
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
    from governance.reports import pdf, pki

    anchor = trust or settings().home / pki.CA_CERT
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
