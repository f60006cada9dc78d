"""Issue and record reports: a promotion decision, an LL144 bias audit, the model
inventory. The facts are gathered here; the `ReportRenderer` (`reports.issuing`) embeds
them as evidence with an attestation of it and signs the PDF with the report certificate;
the report's sha256 is appended to the audit trail in its own unit of work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from governance.checks.bias_audit import bias_audit
from governance.domain import attestation
from governance.domain.errors import InputError, NotFoundError
from governance.domain.evidence import Artifact, EvidenceManifest
from governance.domain.model_card import ModelCard
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.records import InventoryModel, RequestView
from governance.domain.reporting import DecisionFacts, IssuedReport, canonical_sha256
from governance.services.audit import checkpoint
from governance.services.gate import predict
from governance.services.ports import (
    ArtifactSource,
    ContentStore,
    ReportRenderer,
    UnitOfWork,
    UnitOfWorkFactory,
)
from governance.services.replay import fetch_stored
from governance.services.unit_of_work import run_in_unit_of_work

Clock = Callable[[], datetime]
SignNote = Callable[[Any], str]
RequestViewer = Callable[[str], RequestView]
APPROVED = ("approved", "waived", "promoted")


def local_decision_report(
    manifest: EvidenceManifest,
    policy: PromotionPolicy,
    signing: ReportRenderer,
    model_card: ModelCard | None = None,
    decision_id: str | None = None,
) -> IssuedReport:
    """The decision report of a gate run outside the service (`gate --report`)."""
    facts = DecisionFacts(manifest, policy, decision_id, model_card=model_card)
    return _decision(facts, signing, _utcnow)


class Reports:
    """Reports over the service's records. `request_view` shows a request as the API does
    (`Workflow.get_request`); `models` reads the stored model and data, loading no pickle
    in this process, which holds the report key (`connectors.files.SKOPS_ONLY`)."""

    def __init__(
        self,
        units: UnitOfWorkFactory,
        signing: Callable[[], ReportRenderer],
        sign_note: SignNote,
        request_view: RequestViewer,
        models: ArtifactSource,
        blobs: ContentStore | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._units = units
        self._signing = signing
        self._sign_note = sign_note
        self._request_view = request_view
        self._models = models
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
        with self._units(read_only=True) as uow:
            manifest, _ = _manifest(uow, decision_id)
        model_artifact, data_artifact = _role(manifest, "model"), _role(manifest, "data")
        reader = self._models
        model, _ = reader.load_model(fetch_stored(model_artifact, self._blobs, reader))
        data, _ = reader.read_table(fetch_stored(data_artifact, self._blobs, reader), "data")
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
        report = self._signing().bias_audit(
            audit, subject_name.replace("@", " v"), model_view, evidence, statement, self._clock
        )
        self._record(actor, report, f"model:{subject_name}", {"decision_id": decision_id})
        return report

    def inventory(self, actor: str) -> IssuedReport:
        models = self._inventory()
        evidence = {"kind": "model-inventory", "models": models}
        statement = _statement(
            "model-inventory",
            canonical_sha256(evidence),
            "urn:governance:inventory:v1",
            {"models": len(models)},
        )
        report = self._signing().inventory(models, evidence, statement, self._clock)
        self._record(actor, report, "inventory", {"models": len(models)})
        return report

    # --- gathering ---------------------------------------------------------------------

    def _decision_facts(
        self, request_id: str | None, decision_id: str | None, model_card: ModelCard | None
    ) -> DecisionFacts:
        if (request_id is None) == (decision_id is None):
            raise InputError(
                "report",
                "names neither or both of a request and a decision",
                "give a request id or a decision id",
            )
        card: dict[str, Any] | None = None
        with self._units(read_only=True) as uow:
            if request_id is not None:
                found = uow.reports.request(request_id)
                if found is None:
                    raise NotFoundError(f"request {request_id}", "list requests to find its id")
                if found.decision_id is None:
                    raise InputError(
                        f"request {request_id}",
                        f"has no evidence yet: it is {found.state}",
                        "wait for its checks to finish",
                    )
                decision_id, card = found.decision_id, found.model_card
            assert decision_id is not None
            manifest, policy = _manifest(uow, decision_id)
            owner = uow.reports.owner(manifest.model_name, manifest.model_version)
            subject = f"model:{manifest.model_name}@{manifest.model_version}"
            events = uow.console.subject_events(subject)
            trail = uow.audit.events()
        request = self._request_view(request_id) if request_id is not None else None
        note = self._sign_note(checkpoint(trail)) if trail else None
        replays = [
            e
            for e in events
            if e["action"] == "decision.replayed" and e["payload"].get("decision_id") == decision_id
        ]
        return DecisionFacts(
            manifest=manifest,
            policy=policy,
            decision_id=decision_id,
            model_card=ModelCard.model_validate(card) if card else model_card,
            owner=owner,
            request=request,
            audit_events=[e for e in events if e["action"] != "report.issued"],
            checkpoint=note,
            tree_size=len(trail),
            replays=replays,
        )

    def _inventory(self) -> list[dict[str, Any]]:
        """Per model: the state of its latest request (else its latest gate verdict), its
        newest version approved and not expired, and its open waivers (granted, or asked for
        on a blocked request)."""
        now = self._clock()
        with self._units(read_only=True) as uow:
            models = uow.reports.inventory()
        return [_inventoried(model, now) for model in models]

    def _record(self, actor: str, report: IssuedReport, subject: str, extra: dict) -> None:
        record_report(self._units, actor, report, subject, extra)


def _inventoried(model: InventoryModel, now: datetime) -> dict[str, Any]:
    mine = model.requests
    live = [r for r in mine if r.state in APPROVED and (r.expires_at is None or r.expires_at > now)]
    open_waivers = sum(
        1 for r in mine if r.state == "waived" or (r.state == "blocked" and r.waiver_asked)
    )
    return {
        "name": model.name,
        "risk_tier": model.risk_tier,
        "owner": model.owner,
        "status": mine[0].state
        if mine
        else f"gate: {model.latest_verdict}"
        if model.latest_verdict is not None
        else "registered",
        "approved_version": live[0].version if live else None,
        "expires_at": _stamp(live[0].expires_at) if live else None,
        "open_waivers": open_waivers,
    }


def _manifest(uow: UnitOfWork, decision_id: str) -> tuple[EvidenceManifest, PromotionPolicy]:
    """The decision's recorded manifest and the policy it pinned."""
    stored = uow.decisions.get(decision_id)
    if stored is None:
        raise NotFoundError(
            f"decision {decision_id}",
            "take the decision id from `governance decisions` or a request",
        )
    assert stored.policy is not None
    policy = parse_policy(stored.policy.document, f"policy {stored.policy.name}")
    return EvidenceManifest.model_validate(stored.manifest), policy


def record_report(
    units: UnitOfWorkFactory,
    actor: str,
    report: IssuedReport,
    subject: str,
    extra: dict[str, Any],
) -> None:
    """The report's sha256 on the audit trail, in its own unit of work: whoever holds a
    copy can show it is the one that was issued."""
    run_in_unit_of_work(
        units,
        lambda uow: uow.audit.append(
            actor=actor,
            action="report.issued",
            subject=subject,
            payload={
                "kind": report.kind,
                "sha256": report.sha256,
                "manifest_sha256": report.manifest_sha256,
                **extra,
            },
        ),
    )


def _decision(facts: DecisionFacts, signing: ReportRenderer, clock: Clock) -> IssuedReport:
    manifest = facts.manifest
    request = facts.request
    state = request.state if request else None
    statement = attestation.statement(manifest, facts.decision_id, decision=state)
    statement["predicate"]["requestId"] = request.id if request else None
    report = signing.decision(facts, statement, clock)
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


def _stamp(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else None


def _utcnow() -> datetime:
    return datetime.now(UTC)
