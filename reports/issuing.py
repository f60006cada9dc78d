"""Reports rendered and signed: the `ReportRenderer` the report use cases are given
(`governance.services.ports`). Each report embeds its evidence, an attestation of it and
the attestation key, and is signed with the report certificate."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.domain import attestation
from governance.domain.reporting import DecisionFacts, IssuedReport
from governance.reports import documents, pdf
from governance.reports.pki import SigningIdentity
from governance.signing import key_name

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Signing:
    """What signs a report: the certificate for the PDF, the Ed25519 key for the attestation."""

    identity: SigningIdentity
    attestation_key: Ed25519PrivateKey
    organisation: str

    def decision(
        self, facts: DecisionFacts, statement: dict[str, Any], clock: Clock
    ) -> IssuedReport:
        manifest = facts.manifest
        return self.issue(
            "decision",
            f"decision-{manifest.model_name}-v{manifest.model_version}.pdf",
            lambda cover: documents.decision_html(facts, cover),
            manifest.model_dump(mode="json"),
            statement,
            clock,
        )

    def bias_audit(
        self,
        audit: dict[str, Any],
        title: str,
        model: dict[str, Any],
        evidence: dict[str, Any],
        statement: dict[str, Any],
        clock: Clock,
    ) -> IssuedReport:
        return self.issue(
            "bias-audit",
            f"bias-audit-{model['name']}-v{model['version']}.pdf",
            lambda cover: documents.bias_audit_html(audit, title, model, cover),
            evidence,
            statement,
            clock,
        )

    def inventory(
        self,
        models: list[dict[str, Any]],
        evidence: dict[str, Any],
        statement: dict[str, Any],
        clock: Clock,
    ) -> IssuedReport:
        return self.issue(
            "inventory",
            "model-inventory.pdf",
            lambda cover: documents.inventory_html(models, cover),
            evidence,
            statement,
            clock,
        )

    def issue(
        self,
        kind: str,
        filename: str,
        html: Callable[[documents.Cover], str],
        evidence: dict[str, Any],
        statement: dict[str, Any],
        clock: Clock,
    ) -> IssuedReport:
        """Embed the evidence, its attestation and the attestation key; render; sign."""
        manifest_bytes = pdf.canonical_json(evidence)
        manifest_sha256 = pdf.canonical_sha256(evidence)
        statement["predicate"]["evidenceManifestSha256"] = manifest_sha256
        public = self.attestation_key.public_key()
        envelope = attestation.envelope(statement, key_name(public), self.attestation_key.sign)
        attachments = [
            pdf.EmbeddedFile(
                pdf.MANIFEST,
                manifest_bytes,
                "application/json",
                "The evidence manifest this report renders (canonical JSON).",
            ),
            pdf.EmbeddedFile(
                pdf.ATTESTATION,
                json.dumps(envelope, indent=2).encode(),
                "application/json",
                "An in-toto Statement in a DSSE envelope naming the manifest's sha256.",
            ),
            pdf.EmbeddedFile(
                pdf.ATTESTATION_KEY,
                public.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                "application/x-pem-file",
                "The Ed25519 public key that signed the attestation.",
            ),
        ]
        now = clock()
        cover = documents.Cover(
            organisation=self.organisation,
            signer=self.identity.subject,
            report_id=str(uuid4()),
            generated_at=now,
            manifest_sha256=manifest_sha256,
            attachments=[{"name": a.name, "description": a.description} for a in attachments],
        )
        rendered = pdf.render(html(cover), documents.TEMPLATES, attachments)
        signed = pdf.sign(rendered, self.identity, f"{kind} report")
        return IssuedReport(
            kind, filename, signed, hashlib.sha256(signed).hexdigest(), manifest_sha256
        )
