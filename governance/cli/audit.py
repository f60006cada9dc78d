"""`governance audit` (the tamper-evident trail: verify, keys, checkpoints and proofs) and
`governance attest` (check a signed attestation against a model's bytes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from governance.cli.common import DatabaseOption, KeyOption, err, fail, out, refuse
from governance.cli.common import settings as configured
from governance.domain.errors import GovernanceError

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
attest_app = typer.Typer(
    help="Signed attestations bound to the model's bytes.", no_args_is_help=True
)


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

    settings = configured(database)
    url = settings.database_url
    keyless = not settings.signing_key.exists()
    if keyless and not settings.signing_key.with_name(PUBLIC).exists():
        err.print(
            f"[yellow]![/] no signing key in {escape(str(settings.home))}: only the hash chain "
            "is checked; set GOVERNANCE_HOME to check the published checkpoints too"
        )
    key = None if keyless else load_private(settings.signing_key)
    try:
        result = checkpoint_log(settings, SqlUnits(make_engine(url)), key).verify()
    except GovernanceError:
        raise
    except Exception as exc:  # noqa: BLE001
        fail(f"database {url}: cannot read the audit trail ({type(exc).__name__}: {exc})")
    problems, count = result.problems, result.events
    if problems:
        refuse(problems, f"audit trail broken: {len(problems)} problem(s) in {count} events")
    head = result.head or "(empty)"
    published = " (checkpoint published)" if result.checkpoint_published else ""
    out.print(f"[green]✓[/] audit trail intact: {count} events, head {head}{published}")


@audit_app.command("keygen")
def audit_keygen(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write the key pair.")
    ] = None,
) -> None:
    """Create the service's Ed25519 signing key (never overwrites one)."""
    from governance.signing import create_key

    private, public = create_key(directory or configured().home)
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
    except (ValueError, OSError) as exc:
        fail(f"--since {since}: {exc}")
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
    from governance.signing import load_private, raw_public, verifier
    from governance.store.database import make_engine
    from governance.store.repository import audit_trail

    settings = configured(database)
    url = settings.database_url
    key = load_private(key_path or settings.signing_key)
    try:
        events = audit_trail(make_engine(url))
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
    from governance.connectors.files import sha256_file
    from governance.domain.attestation import verify
    from governance.signing import load_public, verifier

    try:
        public = load_public(key)
        document = json.loads(attestation.read_text(encoding="utf-8"))
        digest = sha256_file(artifact)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the inputs: {exc}")
    problems = verify(document, digest, verifier(public))
    if problems:
        refuse(problems, "the attestation does not vouch for these bytes")
    out.print(f"[green]✓[/] signed by the service and bound to sha256 {digest}")
