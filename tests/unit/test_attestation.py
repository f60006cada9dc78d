"""Attestations: the gate's decision as a signed in-toto Statement in a DSSE envelope.
It verifies for the judged bytes and fails, each with its own reason, for one changed byte
of the artifact, of the payload, or another key."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from governance.cli import app

POLICIES = Path(__file__).resolve().parents[2] / "policies"
runner = CliRunner()


def cli(*arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments))
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module")
def attested(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(attestation, model, public key) from a real gate run with --attest."""
    work = tmp_path_factory.mktemp("attest")
    assert cli("audit", "keygen", "--dir", str(work))[0] == 0
    code, output = cli(
        "gate", "--policy", str(POLICIES / "medium.yaml"),
        "--model", str(demo_dir / "income-reweighed.skops"),
        "--data", str(demo_dir / "test.parquet"), "--reference", str(demo_dir / "train.parquet"),
        "--target", "income", "--attest", str(work / "decision.dsse.json"),
        "--key", str(work / "signing-key.pem"),
    )  # fmt: skip
    assert code == 0, output
    return (
        work / "decision.dsse.json",
        demo_dir / "income-reweighed.skops",
        work / "signing-key.pub.pem",
    )


def test_attestation_verifies_for_the_judged_bytes(attested: tuple[Path, Path, Path]) -> None:
    attestation, model, public = attested
    code, output = cli(
        "attest", "verify", str(attestation), "--artifact", str(model), "--key", str(public)
    )
    assert code == 0, output
    statement = json.loads(base64.b64decode(json.loads(attestation.read_text())["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicate"]["decision"] == "pass"
    assert statement["predicate"]["policy"]["name"] == "medium-risk"
    assert {r["check"] for r in statement["predicate"]["rules"]} == {
        "fairness",
        "drift",
        "performance",
    }


def test_one_changed_byte_of_the_artifact_fails(
    attested: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    attestation, model, public = attested
    changed = tmp_path / "model.skops"
    shutil.copy(model, changed)
    with changed.open("ab") as stream:
        stream.write(b"\0")
    code, output = cli(
        "attest", "verify", str(attestation), "--artifact", str(changed), "--key", str(public)
    )
    assert code == 1 and "artifact: sha256" in output and "is not the attested" in output


def test_one_changed_byte_of_the_payload_fails(
    attested: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    attestation, model, public = attested
    document = json.loads(attestation.read_text())
    payload = bytearray(base64.b64decode(document["payload"]))
    payload[payload.index(b'"pass"') + 1] = ord("P")
    document["payload"] = base64.b64encode(bytes(payload)).decode()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    code, output = cli(
        "attest", "verify", str(forged), "--artifact", str(model), "--key", str(public)
    )
    assert code == 1 and "signature: does not verify with this key" in output


def test_another_key_fails(attested: tuple[Path, Path, Path], tmp_path: Path) -> None:
    attestation, model, _ = attested
    cli("audit", "keygen", "--dir", str(tmp_path))
    other = tmp_path / "signing-key.pub.pem"
    code, output = cli(
        "attest", "verify", str(attestation), "--artifact", str(model), "--key", str(other)
    )
    assert code == 1 and "signature: does not verify with this key" in output


@pytest.mark.parametrize("option", ["--attest", "--report"])
def test_an_attestation_without_a_model_is_refused_before_the_checks_run(
    option: str, tmp_path: Path
) -> None:
    """Judging predictions in the data has no model file, and an attestation (which a
    report embeds) names the model's bytes as its subject: exit 2 naming the options, not an
    internal error after the checks have run."""
    data = tmp_path / "scored.csv"
    data.write_text("income,approved\n1,1\n0,0\n")
    code, output = cli(
        "gate", "--policy", str(POLICIES / "medium.yaml"), "--data", str(data),
        "--target", "income", "--prediction-col", "approved", option, str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2, output
    assert f"{option} needs --model" in output
    assert "internal error" not in output
    assert not (tmp_path / "out").exists()
