"""Render, sign and record reports: a promotion decision, an LL144 bias audit, the model
inventory. Each report embeds its evidence and an attestation of it, is signed with the
report certificate, and its sha256 is appended to the audit trail in one transaction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session, col, select

import connectors.files as files
from governance.checks.bias_audit import bias_audit
from governance.domain import attestation
from governance.domain.errors import InputError, NotFoundError
from governance.domain.evidence import Artifact, EvidenceManifest
from governance.domain.model_card import ModelCard
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.services.audit import checkpoint
from governance.services.gate import predict
from governance.services.ports import ContentStore
from governance.services.replay import fetch_stored
from governance.services.workflow import request_view
from governance.signing import key_name
from governance.store.joined import SessionUnit
from governance.store.repository import append_audit, audit_trail, in_transaction, subject_events
from governance.store.tables import (
    GateDecision,
    Model,
    ModelVersion,
    Policy,
    PromotionRequest,
    WaiverRequest,
)
from reports import documents, pdf
from reports.pki import SigningIdentity

Clock = Callable[[], datetime]
SignNote = Callable[[Any], str]
APPROVED = ("approved", "waived", "promoted")


@dataclass(frozen=True)
class IssuedReport:
    kind: str
    filename: str
    pdf: bytes
    sha256: str
    manifest_sha256: str


@dataclass(frozen=True)
class Signing:
    """What signs a report: the certificate for the PDF, the Ed25519 key for the attestation."""

    identity: SigningIdentity
    attestation_key: Ed25519PrivateKey
    organisation: str

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
        return IssuedReport(kind, filename, signed, _sha256(signed), manifest_sha256)


def local_decision_report(
    manifest: EvidenceManifest,
    policy: PromotionPolicy,
    signing: Signing,
    model_card: ModelCard | None = None,
    decision_id: str | None = None,
) -> IssuedReport:
    """The decision report of a gate run outside the service (`gate --report`)."""
    facts = documents.DecisionFacts(manifest, policy, decision_id, model_card=model_card)
    return _decision(facts, signing, _utcnow)


class Reports:
    """Reports over the service's database."""

    def __init__(
        self,
        engine: Engine,
        signing: Callable[[], Signing],
        sign_note: SignNote,
        blobs: ContentStore | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._signing = signing
        self._sign_note = sign_note
        self._blobs = blobs
        self._clock = clock

    def decision(
        self,
        actor: str,
        request_id: str | None = None,
        decision_id: str | None = None,
        model_card: ModelCard | None = None,
    ) -> IssuedReport:
        """The decision report of a promotion request (its latest evidence and every
        signature), or of a recorded gate decision. The card submitted with the request
        wins over `model_card`."""
        facts = self._decision_facts(request_id, decision_id, model_card)
        report = _decision(facts, self._signing(), self._clock)
        subject = f"model:{facts.manifest.model_name}@{facts.manifest.model_version}"
        self._record(
            actor, report, subject, {"decision_id": facts.decision_id, "request_id": request_id}
        )
        return report

    def bias_audit(
        self,
        actor: str,
        decision_id: str,
        sex: str = "sex",
        race: str = "race",
        scoring: bool = False,
        source: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> IssuedReport:
        """LL144 bias audit of a decided model version on the data it was judged on: the
        model and data are read from the content store by their recorded hashes (never from
        a location the manifest names) and the model predicts again."""
        manifest, _ = self._manifest(decision_id)
        model_artifact, data_artifact = _role(manifest, "model"), _role(manifest, "data")
        # In the server process, which holds the report key: never a pickle.
        model, _ = files.SKOPS_ONLY.load_model(fetch_stored(model_artifact, self._blobs, files))
        data, _ = files.read_table(fetch_stored(data_artifact, self._blobs, files), "data")
        features = [str(c) for c in getattr(model, "feature_names_in_", [])] or [
            c for c in data.columns if c != manifest.target
        ]
        positive = next(
            (c for c in model.classes_ if str(c) == manifest.positive_label), model.classes_[-1]
        )
        labels, scores = predict(model, data, features, positive, manifest.task)
        column = "__score" if scoring else "__selected"
        if scoring and scores is None:
            raise InputError(
                "--scoring", "the model gives no scores", "audit it as a selection tool"
            )
        frame = data.assign(**{column: scores if scoring else labels.astype(bool)})
        audit = bias_audit(
            frame,
            sex=sex,
            race=race,
            selected=None if scoring else column,
            score=column if scoring else None,
            source=source
            or f"{Path(data_artifact.uri).name} (sha256 {data_artifact.sha256[:12]}…)",
            date_from=date_from,
            date_to=date_to,
        ).as_dict()
        evidence = {
            "kind": "nyc-ll144-bias-audit",
            "modelSha256": model_artifact.sha256,
            "model": {"name": manifest.model_name, "version": manifest.model_version},
            "dataSha256": data_artifact.sha256,
            "decisionId": decision_id,
            "audit": audit,
        }
        subject_name = f"{manifest.model_name}@{manifest.model_version}"
        statement = _statement(
            subject_name,
            model_artifact.sha256,
            "urn:governance:bias-audit:v1",
            {"decisionId": decision_id, "fourFifthsFlagged": audit["four_fifths_flagged"]},
        )
        model_view = {
            "name": manifest.model_name,
            "version": manifest.model_version,
            "sha256": model_artifact.sha256,
            "data_sha256": data_artifact.sha256,
        }
        report = self._signing().issue(
            "bias-audit",
            f"bias-audit-{manifest.model_name}-v{manifest.model_version}.pdf",
            lambda cover: documents.bias_audit_html(
                audit, subject_name.replace("@", " v"), model_view, cover
            ),
            evidence,
            statement,
            self._clock,
        )
        self._record(actor, report, f"model:{subject_name}", {"decision_id": decision_id})
        return report

    def inventory(self, actor: str) -> IssuedReport:
        models = self._inventory()
        evidence = {"kind": "model-inventory", "models": models}
        statement = _statement(
            "model-inventory",
            pdf.canonical_sha256(evidence),
            "urn:governance:inventory:v1",
            {"models": len(models)},
        )
        report = self._signing().issue(
            "inventory",
            "model-inventory.pdf",
            lambda cover: documents.inventory_html(models, cover),
            evidence,
            statement,
            self._clock,
        )
        self._record(actor, report, "inventory", {"models": len(models)})
        return report

    # --- gathering ---------------------------------------------------------------------

    def _decision_facts(
        self, request_id: str | None, decision_id: str | None, model_card: ModelCard | None
    ) -> documents.DecisionFacts:
        if (request_id is None) == (decision_id is None):
            raise InputError(
                "report",
                "names neither or both of a request and a decision",
                "give a request id or a decision id",
            )
        request = None
        with Session(self._engine) as session:
            if request_id is not None:
                row = session.get(PromotionRequest, request_id)
                if row is None:
                    raise NotFoundError(f"request {request_id}", "list requests to find its id")
                if row.decision_id is None:
                    raise InputError(
                        f"request {request_id}",
                        f"has no evidence yet: it is {row.state}",
                        "wait for its checks to finish",
                    )
                request = request_view(SessionUnit(session), row.id)
                decision_id = row.decision_id
                card: dict[str, Any] | None = row.inputs.get("model_card")
            else:
                card = None
            assert decision_id is not None
            manifest, policy = self._manifest(decision_id, session)
            version = session.exec(
                select(ModelVersion)
                .join(Model, col(ModelVersion.model_id) == col(Model.id))
                .where(Model.name == manifest.model_name)
                .where(ModelVersion.version == manifest.model_version)
            ).one()
            model = session.get(Model, version.model_id)
            subject = f"model:{manifest.model_name}@{manifest.model_version}"
            events = subject_events(session, subject)
        trail = audit_trail(self._engine)
        note = self._sign_note(checkpoint(trail)) if trail else None
        replays = [
            e
            for e in events
            if e["action"] == "decision.replayed" and e["payload"].get("decision_id") == decision_id
        ]
        return documents.DecisionFacts(
            manifest=manifest,
            policy=policy,
            decision_id=decision_id,
            model_card=ModelCard.model_validate(card) if card else model_card,
            owner=model.owner if model else None,
            request=request,
            audit_events=[e for e in events if e["action"] != "report.issued"],
            checkpoint=note,
            tree_size=len(trail),
            replays=replays,
        )

    def _manifest(
        self, decision_id: str, session: Session | None = None
    ) -> tuple[EvidenceManifest, PromotionPolicy]:
        own = session is None
        session = session or Session(self._engine)
        try:
            row = session.get(GateDecision, decision_id)
            if row is None:
                raise NotFoundError(
                    f"decision {decision_id}",
                    "take the decision id from `governance decisions` or a request",
                )
            policy_row = session.get(Policy, row.policy_id)
            assert policy_row is not None
            policy = parse_policy(policy_row.document, f"policy {policy_row.name}")
            return EvidenceManifest.model_validate(row.manifest), policy
        finally:
            if own:
                session.close()

    def _inventory(self) -> list[dict[str, Any]]:
        """Per model: the state of its latest request (else its latest gate verdict), its
        newest version approved and not expired, and its open waivers (granted, or asked for
        on a blocked request). Four queries, whatever the number of models."""
        now = self._clock()
        with Session(self._engine) as session:
            models = session.exec(select(Model).order_by(col(Model.name))).all()
            requests = session.exec(
                select(PromotionRequest, ModelVersion)
                .join(ModelVersion, col(PromotionRequest.model_version_id) == col(ModelVersion.id))
                .order_by(col(PromotionRequest.created_at).desc())
            ).all()
            asked = set(session.exec(select(WaiverRequest.request_id)).all())
            verdicts = session.exec(
                select(ModelVersion.model_id, GateDecision.verdict)
                .join(GateDecision, col(GateDecision.model_version_id) == col(ModelVersion.id))
                .order_by(col(GateDecision.created_at))
            ).all()
        latest_verdict = dict(verdicts)  # the newest decision per model wins
        by_model: dict[int, list[tuple[PromotionRequest, ModelVersion]]] = {}
        for request, version in requests:
            by_model.setdefault(version.model_id, []).append((request, version))
        result = []
        for model in models:
            mine = by_model.get(model.id, [])
            live = [
                (r, v)
                for r, v in mine
                if r.state in APPROVED and (r.expires_at is None or r.expires_at > now)
            ]
            open_waivers = sum(
                1
                for r, _ in mine
                if r.state == "waived" or (r.state == "blocked" and r.id in asked)
            )
            result.append(
                {
                    "name": model.name,
                    "risk_tier": model.risk_tier,
                    "owner": model.owner,
                    "status": mine[0][0].state
                    if mine
                    else f"gate: {latest_verdict[model.id]}"
                    if model.id in latest_verdict
                    else "registered",
                    "approved_version": live[0][1].version if live else None,
                    "expires_at": _stamp(live[0][0].expires_at) if live else None,
                    "open_waivers": open_waivers,
                }
            )
        return result

    def _record(self, actor: str, report: IssuedReport, subject: str, extra: dict) -> None:
        record_report(self._engine, actor, report, subject, extra)


def record_report(
    engine: Engine, actor: str, report: IssuedReport, subject: str, extra: dict[str, Any]
) -> None:
    """The report's sha256 on the audit trail, in its own transaction: whoever holds a copy
    can show it is the one that was issued."""

    def work(session: Session) -> None:
        append_audit(
            session,
            actor=actor,
            action="report.issued",
            subject=subject,
            payload={
                "kind": report.kind,
                "sha256": report.sha256,
                "manifest_sha256": report.manifest_sha256,
                **extra,
            },
        )

    in_transaction(engine, work)


def _decision(facts: documents.DecisionFacts, signing: Signing, clock: Clock) -> IssuedReport:
    manifest = facts.manifest
    evidence = manifest.model_dump(mode="json")
    request = facts.request or {}
    statement = attestation.statement(manifest, facts.decision_id, decision=request.get("state"))
    statement["predicate"]["requestId"] = request.get("id")
    report = signing.issue(
        "decision",
        f"decision-{manifest.model_name}-v{manifest.model_version}.pdf",
        lambda cover: documents.decision_html(facts, cover),
        evidence,
        statement,
        clock,
    )
    assert report.manifest_sha256 == manifest.sha256  # the embedded bytes are the manifest's
    return report


def _statement(name: str, sha256: str, predicate_type: str, predicate: dict) -> dict[str, Any]:
    return {
        "_type": attestation.STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": sha256}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def _role(manifest: EvidenceManifest, role: str) -> Artifact:
    artifact = manifest.artifact(role)
    if artifact is None:
        raise InputError(
            f"decision of {manifest.model_name}",
            f"records no {role} artifact",
            "a bias audit needs the model and the data it was judged on",
        )
    return artifact


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stamp(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else None


def _utcnow() -> datetime:
    return datetime.now(UTC)
