"""HTML to a signed PDF/A-3b, and back to a verdict on whether a PDF is what we signed.

The document carries its own evidence: the manifest (JSON), the attestation (a DSSE
envelope) and the key that signed the attestation are embedded as PDF/A-3 associated files,
so a reader with nothing but the file and our CA certificate can check all of it offline.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pyhanko.pdf_utils.generic import DictionaryObject, StreamObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from governance.domain import attestation, reporting
from governance.reports.pki import SigningIdentity
from governance.signing import verifier

# pyHanko logs a refused certificate path with a traceback; `verify` reports it in words.
logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)

MANIFEST = "manifest.json"
ATTESTATION = "attestation.dsse.json"
ATTESTATION_KEY = "attestation-key.pub.pem"
SIGNATURE_FIELD = "GovernanceReport"


@dataclass(frozen=True)
class EmbeddedFile:
    name: str
    data: bytes
    media_type: str
    description: str


def render(html: str, base_url: Path, attachments: Sequence[EmbeddedFile]) -> bytes:
    """PDF/A-3b with the attachments as associated files (relationship Data: the document
    is a rendering of them)."""
    import weasyprint

    document = weasyprint.HTML(string=html, base_url=str(base_url))
    return document.write_pdf(  # type: ignore[no-any-return]
        pdf_variant="pdf/a-3b",
        attachments=[
            weasyprint.Attachment(
                string=item.data,
                name=item.name,
                description=item.description,
                relationship="Data",
            )
            for item in attachments
        ],
        custom_metadata=True,
    )


def sign(pdf: bytes, identity: SigningIdentity, reason: str) -> bytes:
    """A PAdES baseline B-B signature (ETSI.CAdES.detached) over the whole file. The
    document is certified: any later change but a further signature breaks it."""
    signer = signers.SimpleSigner(
        signing_cert=identity.certificate,
        signing_key=identity.key,
        cert_registry=SimpleCertificateStore.from_certs(identity.chain),
    )
    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        reason=reason,
        name=identity.subject,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    output = io.BytesIO()
    signers.PdfSigner(metadata, signer).sign_pdf(writer, output=output)  # signing time: now
    return output.getvalue()


@dataclass
class Verification:
    """What `report verify` found: every reason it would refuse, or none."""

    problems: list[str] = field(default_factory=list)
    signer: str | None = None
    signed_at: datetime | None = None
    manifest_sha256: str | None = None
    embedded: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(pdf: bytes, trust: Sequence[asn1_x509.Certificate]) -> Verification:
    """Check, in order: the file parses; it has our one signature; the signed bytes are
    intact and the signature is the signer's; nothing was added after signing; the signer
    chains to a trusted certificate; the embedded manifest is the one the attestation names
    and the attestation's own signature holds."""
    result = Verification()
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except (PdfError, ValueError, KeyError) as exc:
        result.problems.append(f"not a readable PDF ({exc})")
        return result
    if len(signatures) != 1:
        result.problems.append(
            f"has {len(signatures)} signatures; a governance report carries exactly one"
        )
        return result
    signature = signatures[0]
    try:
        status = validate_pdf_signature(
            signature, ValidationContext(trust_roots=list(trust), allow_fetching=False)
        )
    except (PdfError, SigningError, ValueError) as exc:
        result.problems.append(f"the signature cannot be checked ({exc})")
        return result
    result.signer = str(status.signing_cert.subject.human_friendly)
    result.signed_at = status.signer_reported_dt
    result.problems.extend(_signature_problems(status))
    offset, length = signature.byte_range[2], signature.byte_range[3]
    signed_end = int(offset) + int(length)
    try:
        signed = _embedded_files(PdfFileReader(io.BytesIO(pdf[:signed_end]), strict=False))
        current = _embedded_files(reader)
    except (PdfError, ValueError, KeyError) as exc:
        result.problems.append(f"the embedded files cannot be read ({exc})")
        return result
    if signed_end < len(pdf):
        changed = sorted(
            name for name in signed.keys() | current.keys() if signed.get(name) != current.get(name)
        )
        result.problems.append(
            f"{len(pdf) - signed_end} bytes were added after signing"
            + (f"; they change the embedded {', '.join(changed)}" if changed else "")
        )
    result.embedded = signed
    result.problems.extend(_evidence_problems(signed, result))
    return result


def _signature_problems(status: PdfSignatureStatus) -> list[str]:
    problems = []
    if not status.intact:
        problems.append("the signed bytes were changed: their digest does not match the signature")
    elif not status.valid:
        problems.append("the signature does not verify with the signer's certificate")
    if not status.trusted:
        problems.append(
            f"the signer ({status.signing_cert.subject.human_friendly}) is not trusted: its "
            "certificate does not chain to the trusted certificate given"
        )
    if not status.docmdp_ok and status.docmdp_ok is not None:
        problems.append("the document was changed after it was certified")
    return problems


def _evidence_problems(files: dict[str, bytes], result: Verification) -> list[str]:
    missing = [name for name in (MANIFEST, ATTESTATION, ATTESTATION_KEY) if name not in files]
    if missing:
        return [f"the embedded {', '.join(missing)} is missing"]
    manifest_sha256 = hashlib.sha256(files[MANIFEST]).hexdigest()
    result.manifest_sha256 = manifest_sha256
    try:
        manifest = json.loads(files[MANIFEST])
        envelope = json.loads(files[ATTESTATION])
        key = load_pem_public_key(files[ATTESTATION_KEY])
    except ValueError as exc:
        return [f"the embedded evidence cannot be read ({exc})"]
    if not isinstance(key, Ed25519PublicKey):
        return ["the embedded attestation key is not an Ed25519 public key"]
    problems = attestation.verify(envelope, subject_sha256(manifest), verifier(key))
    if problems:
        return [f"the embedded attestation does not hold: {problem}" for problem in problems]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    named = statement.get("predicate", {}).get("evidenceManifestSha256")
    if named != manifest_sha256:
        return [
            f"the embedded manifest (sha256 {manifest_sha256}) is not the one the attestation "
            f"names ({named})"
        ]
    return []


def subject_sha256(manifest: dict[str, Any]) -> str:
    """What a report's attestation is about: the model artifact when the manifest names one,
    else the manifest itself (an inventory is about the register, not one model)."""
    for artifact in manifest.get("artifacts", []):
        if artifact.get("role") == "model":
            return str(artifact["sha256"])
    if "modelSha256" in manifest:
        return str(manifest["modelSha256"])
    return canonical_sha256(manifest)


def canonical_json(document: dict[str, Any]) -> bytes:
    """The bytes a manifest is embedded as, so its sha256 is the one recorded elsewhere."""
    return reporting.canonical_json(document)


def canonical_sha256(document: dict[str, Any]) -> str:
    return reporting.canonical_sha256(document)


def _embedded_files(reader: PdfFileReader) -> dict[str, bytes]:
    names = reader.root.get("/Names")
    if names is None or "/EmbeddedFiles" not in names:
        return {}
    found: dict[str, bytes] = {}
    pending = [names["/EmbeddedFiles"]]
    while pending:  # a name tree: leaves hold /Names, inner nodes /Kids
        node = pending.pop()
        pending.extend(node.get("/Kids", []))
        pairs = node.get("/Names", [])
        for index in range(0, len(pairs), 2):
            spec: DictionaryObject = pairs[index + 1]
            stream: StreamObject = spec["/EF"]["/F"]
            found[str(pairs[index])] = stream.data
    return found
