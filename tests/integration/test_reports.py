"""Signed PDF reports: the demo's decision and bias audit reports verify offline with the CLI
and the CA certificate, every tampered variant is refused with its own reason, the pages
render (pdftoppm) and every section is in the text (pdftotext) with nothing past the margin.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pyhanko.pdf_utils.generic import NameObject, StreamObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from typer.testing import CliRunner

from governance import demo as demo_module
from governance.bootstrap import open_governance, report_signing
from governance.cli import app
from governance.config import Settings
from governance.connectors.files import load_policy
from governance.demo import Demo, DemoRun
from governance.domain.errors import InputError
from governance.reports import pdf, pki
from governance.reports.issuing import Signing
from governance.services.reports import local_decision_report
from governance.store.database import make_engine, upgrade
from governance.store.repository import SqlDecisionRecorder, audit_trail
from tests.service_fixtures import fast_policies

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "reports"
A4_WIDTH = 595.28  # points
RIGHT_MARGIN = 20 / 25.4 * 72  # 20 mm, from report.css
DECISION_SECTIONS = [
    "Promotion decision report",
    "Contents",
    "1. Summary and verdict",
    "2. Model card",
    "3. Policy applied",
    "4. Checks",
    "5. Waivers",
    "6. Approval trail",
    "7. Evidence manifest",
    "8. Audit events",
    "9. Replay",
    "10. Regulatory mapping",
    "EU AI Act — Annex IV technical documentation",
    "Annex IV(2)(g)",
    "SR 26-2 / OCC Bulletin 2026-13",
    "SR 11-7 / OCC Bulletin 2011-12",
    "21 CFR Part 11",
]
BIAS_SECTIONS = [
    "Bias audit (NYC Local Law 144)",
    "1. Summary",
    "2. Data",
    "3. By sex",
    "4. By race",
    "5. By sex × race",
    "Four-fifths comparison",
    "Regulatory mapping",
    "6 RCNY §5-301",
    "Unknown category",
]

WORD_BOX = re.compile(
    r'<word xMin="[\d.]+" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>'
)
runner = CliRunner()


@pytest.fixture(scope="module")
def demo(fast_demo: Demo) -> tuple[Path, list[DemoRun]]:
    """The session's demo (conftest.fast_demo): keys, certificates and signed reports are
    made in its data directory."""
    return fast_demo.settings.home, fast_demo.runs


@pytest.fixture(scope="module")
def trusted(demo: tuple[Path, list[DemoRun]]) -> Path:
    return demo[0] / pki.CA_CERT


@pytest.fixture(scope="module")
def decision_pdf(demo: tuple[Path, list[DemoRun]]) -> Path:
    return next(p for p in demo[1][0].reports if p.name.startswith("decision-"))


@pytest.fixture(scope="module")
def bias_pdf(demo: tuple[Path, list[DemoRun]]) -> Path:
    return next(p for p in demo[1][0].reports if p.name.startswith("bias-audit-"))


def verify(path: Path, trust: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["report", "verify", str(path), "--trust", str(trust)])
    return result.exit_code, result.output


# --- what the demo produces --------------------------------------------------------------


def test_the_demo_signs_a_decision_report_and_a_bias_audit_for_each_model(
    demo: tuple[Path, list[DemoRun]], trusted: Path
) -> None:
    directory, runs = demo
    for run in runs:
        names = sorted(p.name.split("-")[0] for p in run.reports)
        assert names == ["bias", "decision"]
        for path in run.reports:
            code, output = verify(path, trusted)
            assert code == 0, output
            assert "verified" in output
    # each report's sha256 is in the audit trail, and the trail still verifies
    engine = make_engine(f"sqlite:///{(directory / 'governance.db').resolve()}")
    issued = {
        e.event.payload["sha256"] for e in audit_trail(engine) if e.event.action == "report.issued"
    }
    for run in runs:
        for path in run.reports:
            assert hashlib.sha256(path.read_bytes()).hexdigest() in issued
    assert runner.invoke(app, ["audit", "verify", "--database", str(engine.url)]).exit_code == 0


def test_the_report_carries_its_evidence_as_pdf_a_3_associated_files(decision_pdf: Path) -> None:
    data = decision_pdf.read_bytes()
    result = pdf.verify(data, pki.load_certificates(decision_pdf.parents[3] / pki.CA_CERT))
    assert result.ok, result.problems
    manifest = json.loads(result.embedded[pdf.MANIFEST])
    assert manifest["model_name"] == "income-full"
    assert hashlib.sha256(result.embedded[pdf.MANIFEST]).hexdigest() == result.manifest_sha256
    # PDF/A-3b: PDF 1.7 (the signature must not raise it to 2.0), declared in the XMP
    # metadata, the files associated with relationship Data
    assert data.startswith(b"%PDF-1.7") and b"/Version /2.0" not in data
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    xmp = reader.root["/Metadata"].data.decode()
    assert re.search(r"pdfaid:part[^0-9]{1,3}3", xmp), xmp[:500]
    assert re.search(r"pdfaid:conformance[^A-Z]{1,3}B", xmp), xmp[:500]
    files = reader.root["/AF"]
    associated = {str(files[i]["/F"]): str(files[i]["/AFRelationship"]) for i in range(len(files))}
    assert associated == {
        pdf.MANIFEST: "/Data",
        pdf.ATTESTATION: "/Data",
        pdf.ATTESTATION_KEY: "/Data",
    }


def test_decision_report_text_holds_every_section_and_the_findings(decision_pdf: Path) -> None:
    text = pdftotext(decision_pdf)
    for heading in DECISION_SECTIONS:
        assert heading in text, heading
    assert "income-full v1" in text
    assert "BLOCKED by policy" in text
    assert "equalized_odds_difference" in text
    assert "Pre-screen applicants" in text  # the model card
    assert "Mean |SHAP|" in text and "Drift per column" in text
    assert re.search(r"Page 1\d? of \d+", text)


def test_bias_audit_states_rates_ratios_unknowns_and_small_categories(bias_pdf: Path) -> None:
    text = pdftotext(bias_pdf)
    for heading in BIAS_SECTIONS:
        assert heading in text, heading
    assert "Amer-Indian-Eskimo" in text and "excluded from impact ratios" in text
    assert "Female × White" in text  # an intersectional category
    assert "sets no pass or fail threshold" in text


def test_pages_render_and_no_text_runs_past_the_right_margin(
    decision_pdf: Path, bias_pdf: Path
) -> None:
    _require("pdftoppm")
    for path in (decision_pdf, bias_pdf):
        pages = OUTPUT / path.stem
        shutil.rmtree(pages, ignore_errors=True)
        pages.mkdir(parents=True)
        subprocess.run(["pdftoppm", "-png", "-r", "40", str(path), str(pages / "page")], check=True)
        rendered = sorted(pages.glob("page-*.png"))
        assert len(rendered) >= 5
        assert all(p.stat().st_size > 1000 for p in rendered)
        overflowing = words_past_margin(path)
        assert not overflowing, overflowing[:5]


# --- tampering ----------------------------------------------------------------------------


def test_one_changed_byte_is_refused(decision_pdf: Path, trusted: Path, tmp_path: Path) -> None:
    data = bytearray(decision_pdf.read_bytes())
    position = data.index(b"stream", len(data) // 3) + 20  # inside a content stream
    data[position] ^= 0x01
    tampered = tmp_path / "one-byte.pdf"
    tampered.write_bytes(bytes(data))
    code, output = verify(tampered, trusted)
    assert code == 1
    assert "the signed bytes were changed" in output


def test_an_appended_update_that_replaces_the_manifest_is_refused(
    decision_pdf: Path, trusted: Path, tmp_path: Path
) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(decision_pdf.read_bytes()), strict=False)
    names = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
    index = [str(names[i]) for i in range(0, len(names), 2)].index(pdf.MANIFEST) * 2
    spec = names[index + 1]
    forged = json.loads(spec["/EF"]["/F"].data)
    forged["decision"]["verdict"] = "pass"
    stream = StreamObject(
        {NameObject("/Type"): NameObject("/EmbeddedFile")}, stream_data=json.dumps(forged).encode()
    )
    spec["/EF"][NameObject("/F")] = writer.add_object(stream)
    writer.update_container(spec["/EF"])
    output = io.BytesIO()
    writer.write(output)
    tampered = tmp_path / "appended.pdf"
    tampered.write_bytes(output.getvalue())
    code, text = verify(tampered, trusted)
    assert code == 1
    assert "added after signing" in text and "manifest.json" in text


def test_a_signer_the_reader_does_not_trust_is_refused(
    demo: tuple[Path, list[DemoRun]], decision_pdf: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca"
    pki.create_authority(other, "Somebody Else")
    code, output = verify(decision_pdf, other / pki.CA_CERT)
    assert code == 1
    assert "is not trusted" in output


def test_an_altered_manifest_signed_again_with_the_trusted_certificate_is_refused(
    demo: tuple[Path, list[DemoRun]], decision_pdf: Path, trusted: Path, tmp_path: Path
) -> None:
    """An insider who holds the report certificate but not the attestation key rewrites
    the evidence: the signature is good, the attestation no longer names the manifest."""
    directory = demo[0]
    good = pdf.verify(decision_pdf.read_bytes(), pki.load_certificates(trusted))
    forged = json.loads(good.embedded[pdf.MANIFEST])
    forged["decision"]["verdict"] = "pass"
    files = [
        pdf.EmbeddedFile(pdf.MANIFEST, pdf.canonical_json(forged), "application/json", "m"),
        pdf.EmbeddedFile(pdf.ATTESTATION, good.embedded[pdf.ATTESTATION], "application/json", "a"),
        pdf.EmbeddedFile(pdf.ATTESTATION_KEY, good.embedded[pdf.ATTESTATION_KEY], "text/x", "k"),
    ]
    identity = pki.load_identity(directory)
    signed = pdf.sign(pdf.render("<p>PASS</p>", directory, files), identity, "forged")
    tampered = tmp_path / "re-signed.pdf"
    tampered.write_bytes(signed)
    code, output = verify(tampered, trusted)
    assert code == 1
    assert "is not the one the attestation names" in output


def test_an_attestation_signed_by_another_key_is_refused(
    demo: tuple[Path, list[DemoRun]], decision_pdf: Path, trusted: Path, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory = demo[0]
    settings = Settings.from_env(f"sqlite:///{(directory / 'governance.db').resolve()}", directory)
    governance = open_governance(settings)
    try:
        honest = report_signing(settings, governance.signing_key)
        forger = Signing(honest.identity, Ed25519PrivateKey.generate(), honest.organisation)
        good = pdf.verify(decision_pdf.read_bytes(), pki.load_certificates(trusted))
        files = [
            pdf.EmbeddedFile(pdf.MANIFEST, good.embedded[pdf.MANIFEST], "application/json", "m"),
            pdf.EmbeddedFile(pdf.ATTESTATION, good.embedded[pdf.ATTESTATION], "text/x", "a"),
            pdf.EmbeddedFile(pdf.ATTESTATION_KEY, _public_pem(forger), "text/plain", "k"),
        ]
        signed = pdf.sign(pdf.render("<p>x</p>", directory, files), honest.identity, "x")
    finally:
        governance.close()
    tampered = tmp_path / "other-key.pdf"
    tampered.write_bytes(signed)
    code, output = verify(tampered, trusted)
    assert code == 1
    assert "the embedded attestation does not hold" in output


def test_verify_without_a_trust_anchor_or_file_is_bad_input(tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["report", "verify", str(tmp_path / "nope.pdf"), "--trust", str(tmp_path / "nope.pem")]
    )
    assert missing.exit_code == 2
    assert "nope.pem" in missing.output
    not_pdf = tmp_path / "not.pdf"
    not_pdf.write_text("hello")
    ca = tmp_path / "ca"
    pki.create_authority(ca, "Test")
    result = runner.invoke(
        app, ["report", "verify", str(not_pdf), "--trust", str(ca / pki.CA_CERT)]
    )
    assert result.exit_code == 1
    assert "not a readable PDF" in result.output


# --- the other ways to get a report -------------------------------------------------------


def test_cli_builds_an_inventory_and_a_scoring_bias_audit(
    demo: tuple[Path, list[DemoRun]], trusted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, runs = demo
    monkeypatch.setenv("GOVERNANCE_HOME", str(directory))
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
    inventory = tmp_path / "inventory.pdf"
    result = runner.invoke(app, ["report", "build", "inventory", "-o", str(inventory)])
    assert result.exit_code == 0, result.output
    assert verify(inventory, trusted)[0] == 0
    listed = pdftotext(inventory)  # each demo model's latest request, its approved version
    assert re.search(r"income-full +high +dana +blocked +none ", listed), listed
    assert re.search(r"income-reweighed +high +dana +awaiting_appr +1 ", listed), listed
    # models judged by the gate alone show its latest verdict
    gate_only = f"sqlite:///{tmp_path / 'gate-only.db'}"
    upgrade(gate_only)
    policy = load_policy(directory / "policies" / "high.yaml")  # the demo's (conftest.fast_demo)
    for run in runs[:2]:
        assert run.manifest is not None
        SqlDecisionRecorder(make_engine(gate_only)).record(run.manifest, policy)
    monkeypatch.setenv("GOVERNANCE_DATABASE_URL", gate_only)
    result = runner.invoke(app, ["report", "build", "inventory", "-o", str(inventory)])
    assert result.exit_code == 0, result.output
    assert verify(inventory, trusted)[0] == 0
    listed = pdftotext(inventory)
    assert "income-full" in listed and "gate: blocked" in listed
    assert "income-reweighed" in listed and "gate: pass" in listed
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL")

    scoring = tmp_path / "scoring.pdf"
    decision_id = runs[1].decision_id
    result = runner.invoke(
        app,
        [
            "report",
            "build",
            "bias-audit",
            "--decision",
            str(decision_id),
            "--scoring",
            "--from",
            "1994-01-01",
            "--to",
            "1994-12-31",
            "-o",
            str(scoring),
        ],
    )
    assert result.exit_code == 0, result.output
    text = pdftotext(scoring)
    assert "scoring rate" in text.lower() and "1994-01-01 to 1994-12-31" in text

    unknown = runner.invoke(app, ["report", "build", "decision", "--decision", "no-such-id"])
    assert unknown.exit_code == 2
    assert "no-such-id does not exist" in unknown.output
    wrong_kind = runner.invoke(app, ["report", "build", "summary"])
    assert wrong_kind.exit_code == 2
    assert "decision, bias-audit, inventory" in wrong_kind.output


def test_gate_writes_a_signed_report_for_a_local_run(
    demo: tuple[Path, list[DemoRun]], trusted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = demo[0]
    url = f"sqlite:///{(directory / 'governance.db').resolve()}"
    monkeypatch.setenv("GOVERNANCE_HOME", str(directory))
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
    work = directory / "demo"
    card = tmp_path / "card.yaml"
    card.write_text("purpose: Rank loan files for review\nlimitations: Tested on 1994 data\n")
    report = tmp_path / "local.pdf"
    result = runner.invoke(
        app,
        [
            "gate",
            "--policy",
            str(directory / "policies" / "high.yaml"),
            "--model",
            str(work / "income-reweighed-v2.skops"),
            "--data",
            str(work / "test.parquet"),
            "--reference",
            str(work / "train.parquet"),
            "--target",
            "income",
            "--report",
            str(report),
            "--model-card",
            str(card),
            "--database",
            url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert verify(report, trusted)[0] == 0
    text = pdftotext(report)
    assert "Rank loan files for review" in text and "recorded gate decision" in text
    # the run was recorded, so the report is too: the trail names its sha256 and decision
    digest = hashlib.sha256(report.read_bytes()).hexdigest()
    issued = [
        e.event.payload
        for e in audit_trail(make_engine(url))
        if e.event.action == "report.issued" and e.event.payload["sha256"] == digest
    ]
    assert len(issued) == 1 and issued[0]["decision_id"]


# --- helpers ------------------------------------------------------------------------------


def pdftotext(path: Path) -> str:
    _require("pdftotext")
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    )
    return done.stdout


def words_past_margin(path: Path) -> list[str]:
    """Every word whose box ends past the right margin (a table or hash too wide)."""
    done = subprocess.run(
        ["pdftotext", "-bbox", str(path), "-"], check=True, capture_output=True, text=True
    )
    limit = A4_WIDTH - RIGHT_MARGIN + 1.0
    return [
        f"{m.group(2)} (xMax {m.group(1)})"
        for m in WORD_BOX.finditer(done.stdout)
        if float(m.group(1)) > limit
    ]


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: apt-get install poppler-utils (.ci/run does)")


def _public_pem(signing: Signing) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return signing.attestation_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_decision_report_cites_the_decision_s_replay(
    demo: tuple[Path, list[DemoRun]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import governance.connectors.files as files
    from governance.services.replay import replay
    from governance.store.uow import SqlUnits

    directory, runs = demo
    decision_id = runs[1].decision_id
    assert decision_id is not None
    engine = make_engine(f"sqlite:///{(directory / 'governance.db').resolve()}")
    assert replay(SqlUnits(engine), decision_id, files).reproduced
    monkeypatch.setenv("GOVERNANCE_HOME", str(directory))
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
    report = tmp_path / "replayed.pdf"
    result = runner.invoke(
        app, ["report", "build", "decision", "--decision", decision_id, "-o", str(report)]
    )
    assert result.exit_code == 0, result.output
    text = pdftotext(report)
    replay_section = text[text.index("9. Replay", text.index("8. Audit events")) :]
    assert "yes, bit for bit" in replay_section
    assert "decision.replayed" in text  # the audit events of the decision list it too


def test_report_build_demo_renders_every_page_to_png(
    fast_demo_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a data directory where the demo has run (the demo's own test runs it from
    nothing), the command finds its candidates and renders their reports."""
    _require("pdftoppm")
    shutil.copytree(fast_demo_files, tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("GOVERNANCE_HOME", str(tmp_path))
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
    monkeypatch.setattr(demo_module, "POLICIES", fast_policies(tmp_path / "policies"))
    result = runner.invoke(app, ["report", "build", "--demo"])
    assert result.exit_code == 0, result.output
    folders = sorted(tmp_path.glob("demo/evidence/*/*-v*/"))
    assert len(folders) == 6  # a decision report and a bias audit for each of three candidates
    for folder in folders:
        assert len(list(folder.glob("page-*.png"))) >= 5, folder


def test_an_organisation_s_pkcs12_signs_instead_of_the_local_certificate(
    demo: tuple[Path, list[DemoRun]], tmp_path: Path
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    organisation = tmp_path / "acme"
    pki.create_authority(organisation, "Acme Bank")  # stands in for the bank's own CA
    key = serialization.load_pem_private_key(
        (organisation / pki.SIGNER_KEY).read_bytes(), password=None
    )
    chain = x509.load_pem_x509_certificates((organisation / pki.SIGNER_CERT).read_bytes())
    bundle = tmp_path / "signer.p12"
    bundle.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"signer",
            key,
            chain[0],
            chain[1:],  # type: ignore[arg-type]
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    )
    directory, runs = demo
    settings = Settings.from_env(f"sqlite:///{(directory / 'governance.db').resolve()}", directory)
    governance = open_governance(settings)
    try:
        wrong = Settings(
            **{**vars(settings), "report_pkcs12": bundle, "report_pkcs12_password": "wrong"}
        )
        with pytest.raises(InputError, match="GOVERNANCE_REPORT_PKCS12"):
            report_signing(wrong, governance.signing_key)
        right = Settings(
            **{**vars(settings), "report_pkcs12": bundle, "report_pkcs12_password": "correct horse"}
        )
        signing = report_signing(right, governance.signing_key)
        assert "Acme Bank" in signing.identity.subject
    finally:
        governance.close()
    manifest = runs[0].manifest
    assert manifest is not None
    policy = load_policy(directory / "policies" / "high.yaml")  # the demo's (conftest.fast_demo)
    assert policy.content_hash == manifest.policy.sha256
    report = local_decision_report(manifest, policy, signing)
    path = tmp_path / "acme.pdf"
    path.write_bytes(report.pdf)
    assert verify(path, organisation / pki.CA_CERT)[0] == 0
    assert verify(path, directory / pki.CA_CERT)[0] == 1  # not the local CA's
