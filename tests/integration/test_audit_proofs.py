"""Signed checkpoints, inclusion and consistency proofs, checked offline through the CLI
against a kept checkpoint; they fail after a row is rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from typer.testing import CliRunner

from governance.cli import app
from governance.store.repository import SqlDecisionRecorder
from tests.integration.test_store import make_manifest, make_policy

pytest_plugins = ["tests.db_fixtures"]
runner = CliRunner()


def record(engine: Engine, *names: str) -> None:
    recorder = SqlDecisionRecorder(engine)
    policy = make_policy()
    for name in names:
        recorder.record(make_manifest(policy, model=name, data_bytes=f"data of {name}"), policy)


def cli(*arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments))
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    code, output = cli("audit", "keygen", "--dir", str(tmp_path / "keys"))
    assert code == 0, output
    assert (tmp_path / "keys" / "signing-key.pem").stat().st_mode & 0o777 == 0o600
    return tmp_path / "keys"


def kept_checkpoint(database_url: str, keys: Path, path: Path) -> str:
    code, output = cli(
        "audit", "checkpoint", "--database", database_url,
        "--key", str(keys / "signing-key.pem"), "--out", str(path),
    )  # fmt: skip
    assert code == 0, output
    return path.read_text()


def prove_and_check(database_url: str, keys: Path, tmp_path: Path, event: int) -> tuple[int, str]:
    bundle = tmp_path / "proof.json"
    code, output = cli(
        "audit", "prove", "--database", database_url, "--key", str(keys / "signing-key.pem"),
        "--since", str(tmp_path / "kept.txt"), "--event", str(event), "--out", str(bundle),
    )  # fmt: skip
    assert code == 0, output
    return cli(
        "audit", "check", str(bundle), "--public-key", str(keys / "signing-key.pub.pem"),
        "--since", str(tmp_path / "kept.txt"),
    )  # fmt: skip


def test_checkpoint_is_a_signed_note(
    engine: Engine, database_url: str, keys: Path, tmp_path: Path
) -> None:
    record(engine, "a", "b", "c")
    note = kept_checkpoint(database_url, keys, tmp_path / "kept.txt")
    body, signature = note.split("\n\n")
    assert body.splitlines()[:2] == ["governance audit log", "3"]
    assert signature.startswith("— governance audit log ")


def test_proofs_hold_after_the_log_grows(
    engine: Engine, database_url: str, keys: Path, tmp_path: Path
) -> None:
    record(engine, "a", "b", "c")
    kept_checkpoint(database_url, keys, tmp_path / "kept.txt")
    record(engine, "d", "e")
    for event in (2, 5):
        code, output = prove_and_check(database_url, keys, tmp_path, event)
        assert code == 0, output
        assert "the proofs hold" in output


def test_a_rewritten_row_fails_the_consistency_proof(
    engine: Engine, database_url: str, keys: Path, tmp_path: Path
) -> None:
    """A forger who rewrites an old event and recomputes every hash after it keeps the
    chain intact, but cannot extend the checkpoint the auditor kept."""
    from governance.domain.audit import chain_hash
    from governance.store.repository import audit_trail

    record(engine, "a", "b", "c")
    kept_checkpoint(database_url, keys, tmp_path / "kept.txt")
    record(engine, "d")
    events = audit_trail(engine)
    prev = events[0].hash
    with engine.begin() as connection:
        for chained in events[1:]:
            event = chained.event
            if event.seq == 2:
                event = event.model_copy(update={"actor": "mallory"})
            digest = chain_hash(prev, event)
            connection.execute(
                sa.text(
                    "update audit_event set actor = :actor, prev_hash = :prev, hash = :hash"
                    " where seq = :seq"
                ),
                {"actor": event.actor, "prev": prev, "hash": digest, "seq": event.seq},
            )
            prev = digest
    assert cli("audit", "verify", "--database", database_url)[0] == 0  # the chain looks fine
    code, output = prove_and_check(database_url, keys, tmp_path, 4)
    assert code == 1
    assert "does not extend the kept checkpoint of 3: it was rewritten" in output


def test_tampered_bundle_and_wrong_key_fail(
    engine: Engine, database_url: str, keys: Path, tmp_path: Path
) -> None:
    record(engine, "a", "b")
    kept_checkpoint(database_url, keys, tmp_path / "kept.txt")
    assert prove_and_check(database_url, keys, tmp_path, 1)[0] == 0
    bundle = json.loads((tmp_path / "proof.json").read_text())
    bundle["event"]["event"]["actor"] = "mallory"
    (tmp_path / "forged.json").write_text(json.dumps(bundle))
    public = str(keys / "signing-key.pub.pem")
    code, output = cli("audit", "check", str(tmp_path / "forged.json"), "--public-key", public)
    assert code == 1 and "event 1: its content does not match its hash" in output

    cli("audit", "keygen", "--dir", str(tmp_path / "other"))
    other = str(tmp_path / "other" / "signing-key.pub.pem")
    code, output = cli("audit", "check", str(tmp_path / "proof.json"), "--public-key", other)
    assert code == 1 and "no signature by governance audit log with this key" in output
