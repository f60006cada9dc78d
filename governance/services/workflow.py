"""The promotion workflow's use cases: submit, run checks, sign, waive, promote, revoke,
expire, and admit. Each state change is one transaction that locks the request row, asks
the pure state machine (`governance.domain.workflow`) whether the move exists, writes, and
appends its audit event; a final decision is also issued as a signed attestation."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.domain import attestation, names
from governance.domain.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
)
from governance.domain.evidence import Artifact, EvidenceManifest, mismatches
from governance.domain.model_card import ModelCard
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.records import (
    FinalDecisionRecord,
    ModelDetail,
    ModelRecord,
    PromotionRecord,
    RequestPage,
    RequestView,
    SignatureRecord,
    SubmittedRequest,
    WaiverRecord,
)
from governance.domain.verdict import decide
from governance.domain.workflow import (
    Action,
    IllegalTransitionError,
    SignatureRefusedError,
    Signer,
    State,
    check_signature,
    quorum_reached,
    transition,
)
from governance.domain.workflow import (
    Signature as SignatureRef,
)
from governance.services.builders import provenance_verdict
from governance.services.isolation import ChecksCrashedError, IsolatedChecks
from governance.services.people import People, Principal
from governance.services.policies import PolicyLibrary
from governance.services.ports import (
    ArtifactSource,
    CheckRunner,
    GateRequest,
    UnitOfWork,
    UnitOfWorkFactory,
    WorkflowUnit,
)
from governance.services.tasks import CHECKS_QUEUE, RUN_CHECKS
from governance.services.unit_of_work import run_in_unit_of_work
from governance.signing import key_name, verifier

log = logging.getLogger(__name__)
CHECKS_JOB = "checks"
# How uploaded evidence was checked (a request's inputs["evidence"]["mode"]).
RERUN, BUILDER = "rerun", "builder"
ADMITTED = frozenset({State.APPROVED, State.WAIVED, State.PROMOTED})
OPEN = frozenset(State) - {State.REJECTED, State.EXPIRED, State.REVOKED}
MIN_JUSTIFICATION = 20
INTEGRITY_ALERT = "admission.integrity_alert"
ALERT_WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class Candidate:
    """A model version offered for a target environment, with the files to judge it by."""

    model: str
    version: str
    target: str
    label: str
    artifact: Path
    data: Path | None  # None only in uploaded evidence, which is then refused
    reference: Path | None = None
    champion: Path | None = None
    positive_label: str | None = None
    model_card: ModelCard | None = None
    # A pickle runs code when loaded: only a registry connector whose allowPickle is set
    # may offer one. Everything else (HTTP uploads) must be skops.
    pickle_allowed: bool = False

    def __post_init__(self) -> None:
        names.checked_model_version(self.model, self.version)


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str
    state: str | None = None
    request_id: str | None = None
    decision_id: str | None = None
    artifact_sha256: str | None = None
    expires_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "reason": self.reason,
            "state": self.state,
            "requestId": self.request_id,
            "decisionId": self.decision_id,
            "artifactSha256": self.artifact_sha256,
        }


class Workflow:
    def __init__(
        self,
        units: UnitOfWorkFactory,
        people: People,
        policies: PolicyLibrary,
        signing_key: Ed25519PrivateKey,
        source: ArtifactSource,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        job_lease_seconds: float = 300.0,
        checks: CheckRunner | None = None,
        runner: str = "",
    ) -> None:
        self.job_lease_seconds = job_lease_seconds
        self.runner = runner  # who runs this process's jobs (host:pid), kept on the job
        self._checks = checks or IsolatedChecks()
        self._units = units
        self._people = people
        self._policies = policies
        self._key = signing_key
        self._source = source  # hashes uploads and refuses pickles
        self._clock = clock
        self._admissions = AdmissionCache(units)
        self._verify = verifier(signing_key.public_key())
        # The same signed bytes verify the same way: an admission miss (after any state
        # change anywhere) re-reads the rows but checks each signature once per process.
        self._verified = functools.lru_cache(maxsize=4096)(self._verify_key)
        self._alerted: dict[tuple[str, str, str, str], float] = {}
        self._alert_lock = threading.Lock()

    @property
    def policies(self) -> PolicyLibrary:
        return self._policies

    # --- models ------------------------------------------------------------------------

    def register_model(
        self, actor: Principal, name: str, risk_tier: str, owner: str | None
    ) -> ModelRecord:
        """A model's owner is a person: the one named, else the person behind the caller (a
        token's owner). Segregation of duties keeps the owner from approving it."""
        names.checked("name", name)
        if risk_tier not in ("low", "medium", "high"):
            raise InputError("riskTier", f"is {risk_tier!r}", "use low, medium or high")
        owner = owner if owner is not None else actor.person

        def work(uow: UnitOfWork) -> ModelRecord:
            if owner is not None:
                _check_person(uow, owner)
            model = uow.models.register(name, risk_tier, owner)
            if model.risk_tier != risk_tier:
                raise ConflictError(
                    f"model {name} is registered with risk tier {model.risk_tier}; a tier "
                    "changes only by registering a new model name"
                )
            uow.audit.append(
                actor=actor.name,
                action="model.registered",
                subject=f"model:{name}",
                payload={"risk_tier": risk_tier, "owner": model.owner},
            )
            return model

        return run_in_unit_of_work(self._units, work)

    def list_models(self) -> list[ModelRecord]:
        with self._units(read_only=True) as uow:
            return list(uow.models.all())

    def get_model(self, name: str) -> ModelDetail:
        with self._units(read_only=True) as uow:
            model = uow.models.get(name)
            if model is None:
                raise NotFoundError(f"model {name}", "register it with POST /api/v1/models")
            versions = tuple(uow.models.versions(name))
        return ModelDetail(model.name, model.risk_tier, model.owner, model.created_at, versions)

    # --- submission and checks ---------------------------------------------------------

    def submit(
        self,
        actor: Principal,
        candidate: Candidate,
        also: Callable[[WorkflowUnit, PromotionRecord], None] | None = None,
    ) -> SubmittedRequest:
        """Open a request: pin the policy for the model's tier, record the version's bytes,
        and enqueue the checks in the same transaction; `also` adds to that transaction
        (a registry connector records where the version came from)."""

        def work(uow: UnitOfWork) -> SubmittedRequest:
            request, policy = self._open(uow, actor, candidate, _inputs(candidate))
            _queue_checks(uow, request.id)
            if also is not None:
                also(uow, request)
            return SubmittedRequest(request.id, request.state, policy.content_hash)

        return run_in_unit_of_work(self._units, work)

    def submit_evidence(
        self,
        actor: Principal,
        candidate: Candidate,
        manifest: EvidenceManifest,
        provenance: Any = None,
    ) -> RequestView:
        """Open a request with checks that already ran elsewhere (`governance gate --submit`
        in CI). The evidence must be for these bytes and for the policy the service pins.
        It is not taken on the submitter's word: the service re-computes every check from
        the uploaded model and data (the check job), keeps the submitted figures as
        "claimed", and blocks the request as "evidence mismatch" when they differ. Only a
        registered builder's verified provenance, under a policy that trusts that builder,
        is accepted without the re-run (its verdict is still decided here again)."""
        if (manifest.model_name, manifest.model_version) != (candidate.model, candidate.version):
            raise InputError(
                "evidence",
                f"is for {manifest.model_name} {manifest.model_version}, not "
                f"{candidate.model} {candidate.version}",
                "upload the manifest of this model version",
            )
        model_sha256 = self._source.sha256_file(candidate.artifact)
        judged = manifest.artifact("model")
        if judged is None or judged.sha256 != model_sha256:
            raise InputError(
                "evidence",
                "was not made from the uploaded artifact (its model sha256 differs)",
                "upload the model file the gate judged",
            )

        def work(uow: UnitOfWork) -> RequestView:
            policy = self._model_policy(uow, candidate)
            if manifest.policy.sha256 != policy.content_hash:
                raise InputError(
                    "evidence",
                    f"was judged under policy sha256 {manifest.policy.sha256}; the service "
                    f"applies {policy.metadata.name} v{policy.metadata.version} "
                    f"({policy.content_hash})",
                    "run the gate with the service's current policy file",
                )
            builder, why = provenance_verdict(
                uow.builders, provenance, manifest, model_sha256, policy.trusted_builders
            )
            claim = {"claimedSha256": manifest.sha256, "provenance": why}
            # the files are in the content store
            _same_files(candidate, manifest, why, self._source)
            if builder is None:
                inputs = {**_inputs(candidate), "evidence": {**claim, "mode": RERUN}}
                inputs["evidence"]["claimed"] = manifest.model_dump(mode="json")
                request, _ = self._open(uow, actor, candidate, inputs)
                _queue_checks(uow, request.id)
                return _view(uow, request)
            inputs = {
                **_inputs(candidate),
                "evidence": {**claim, "mode": BUILDER, "builder": builder},
            }
            request, _ = self._open(uow, actor, candidate, inputs)
            request = self._move(uow, request, Action.START_CHECKS, actor.name, None, {})
            verdict = decide(manifest.results)
            recorded = manifest.model_copy(update={"decision": verdict})
            decision_id = uow.promotions.record_decision(
                recorded, policy, actor.name, _verdict_key(request.id)
            )
            request = replace(request, decision_id=decision_id)
            action = (
                Action.CHECKS_PASSED if verdict.verdict.value == "pass" else Action.CHECKS_BLOCKED
            )
            request = self._move(
                uow,
                request,
                action,
                actor.name,
                verdict.summary,
                {
                    "decision_id": decision_id,
                    "verdict": verdict.verdict.value,
                    "checks_by": actor.name,
                    "evidence": f"accepted from builder {builder}, provenance verified",
                },
            )
            return _view(uow, request)

        return self._changing(work)

    def _model_policy(self, uow: WorkflowUnit, candidate: Candidate) -> PromotionPolicy:
        """The policy a candidate of this model and target is judged under."""
        model = uow.models.get(candidate.model)
        if model is None:
            raise NotFoundError(
                f"model {candidate.model}",
                "register it first (POST /api/v1/models) with its risk tier",
            )
        return self._policies.resolve(model.risk_tier, candidate.target)

    def _open(
        self,
        uow: UnitOfWork,
        actor: Principal,
        candidate: Candidate,
        inputs: dict[str, Any],
    ) -> tuple[PromotionRecord, PromotionPolicy]:
        if not candidate.pickle_allowed:
            _refuse_pickles(candidate, self._source)
        artifact = Artifact(
            role="model",
            uri=candidate.artifact.resolve().as_uri(),
            sha256=self._source.sha256_file(candidate.artifact),
            format=candidate.artifact.suffix.lstrip("."),
        )
        policy = self._model_policy(uow, candidate)
        model = uow.models.get(candidate.model)
        assert model is not None  # the policy was resolved from it
        version = uow.promotions.record_version(candidate.model, candidate.version, artifact)
        stored_policy = uow.promotions.pin_policy(policy)
        open_request = uow.promotions.open_request(
            candidate.model, candidate.version, candidate.target, [s.value for s in OPEN]
        )
        if open_request is not None:
            raise ConflictError(
                f"{candidate.model} {candidate.version} has an open request for "
                f"{candidate.target}: {open_request.id} ({open_request.state})",
                open_request.state,
            )
        now = self._clock()
        request = PromotionRecord(
            id=str(uuid4()),
            model=model.name,
            version=version.version,
            risk_tier=model.risk_tier,
            model_owner=model.owner,
            artifact_sha256=version.artifact_sha256,
            target=candidate.target,
            policy=stored_policy,
            submitter=actor.name,
            submitter_person=actor.person,
            state=State.SUBMITTED.value,
            state_reason=None,
            decision_id=None,
            inputs=inputs,
            expires_at=None,
            created_at=now,
            updated_at=now,
        )
        uow.promotions.add(request)
        uow.audit.append(
            actor=actor.name,
            action="request.submitted",
            subject=_subject(candidate.model, candidate.version),
            payload={
                "request_id": request.id,
                "target": candidate.target,
                "submitter_person": actor.person,
                "artifact_sha256": artifact.sha256,
                "policy": f"{policy.metadata.name} v{policy.metadata.version}",
                "policy_sha256": policy.content_hash,
                **_evidence_event(inputs),
            },
        )
        return request, policy

    def claimable_jobs(self) -> list[int]:
        """Jobs to run: queued ones, and running ones whose claim lapsed (their process died
        mid-run: a restart picks them up again)."""
        lapsed = self._clock() - timedelta(seconds=self.job_lease_seconds)
        with self._units(read_only=True) as uow:
            return uow.promotions.claimable_jobs(lapsed)

    def run_job(self, job_id: int) -> bool:
        """Run the checks of one request, if this process can claim the job: in a child
        process without the service's secrets (`isolation`); a child that fails blocks
        the request with the reason. The verdict is taken in one transaction with the
        state change, and only while the request is still checking: a job that runs twice
        (after a crash) never leaves two verdicts."""
        request_id = self._claim_job(job_id)
        if request_id is None:
            return False
        try:
            policy, gate_request = self._gate_inputs(request_id)
            manifest = self._checks(policy, gate_request, self._pickle_allowed(request_id))
            self._answered_for(manifest, gate_request)
        except (InputError, OSError, ValueError, ChecksCrashedError) as exc:
            self._finish_job(job_id, request_id, None, None, str(exc))
        else:
            self._finish_job(job_id, request_id, manifest, policy, None)
        return True

    def give_up_job(self, job_id: int, error: str) -> None:
        """A job that failed for a passing reason on every try: block its request with the
        reason, rather than leave it checking for ever."""
        with self._units(read_only=True) as uow:
            request_id = uow.promotions.job(job_id).request_id
        self._finish_job(job_id, request_id, None, None, f"after every try: {error}")

    def _answered_for(self, manifest: EvidenceManifest, request: GateRequest) -> None:
        """Refuse a manifest that speaks of another model or other bytes than the request's.
        The check process is where a model's code may run: whatever it answers is only
        taken about the files it was given, hashed again here, so that it cannot have a
        decision (and, later, an attestation) recorded for bytes it was not given."""
        named = (manifest.model_name, manifest.model_version)
        if named != (request.model_name, request.model_version):
            raise ChecksCrashedError(f"the check process answered for another model: {named}")
        given = {
            "model": request.model, "data": request.data,
            "reference": request.reference, "champion": request.champion,
        }  # fmt: skip
        for role, path in given.items():
            artifact = manifest.artifact(role)
            answered = None if artifact is None else artifact.sha256
            expected = None if path is None else self._source.sha256_file(path)
            if answered != expected:
                raise ChecksCrashedError(f"the check process answered for another {role} file")

    def _claim_job(self, job_id: int) -> str | None:
        now = self._clock()
        lapsed = now - timedelta(seconds=self.job_lease_seconds)

        def work(uow: UnitOfWork) -> str | None:
            job = uow.promotions.job(job_id)
            claimable = job.status == "queued" or (
                job.status == "running" and job.claimed_at is not None and job.claimed_at <= lapsed
            )
            if not claimable:
                return None
            uow.promotions.save_job(
                replace(
                    job,
                    status="running",
                    attempts=job.attempts + 1,
                    claimed_at=now,
                    claimed_by=self.runner or None,
                )
            )
            request = _locked(uow, job.request_id)
            if request.state == State.SUBMITTED.value:
                self._move(uow, request, Action.START_CHECKS, "governance", None, {})
            return job.request_id

        return self._changing(work)

    def _pickle_allowed(self, request_id: str) -> bool:
        """Whether the request's model may be a pickle (offered by a connector that allows
        them); the check process refuses one otherwise, whatever the file is named."""
        with self._units(read_only=True) as uow:
            return bool(_get(uow, request_id).inputs.get("allow_pickle"))

    def _gate_inputs(self, request_id: str) -> tuple[PromotionPolicy, GateRequest]:
        with self._units(read_only=True) as uow:
            request = _get(uow, request_id)
        policy = _policy(request)
        inputs = request.inputs
        gate_request = GateRequest(
            policy=Path(),  # judged under the pinned document, not a file
            data=Path(inputs["data"]),
            target=inputs["label"],
            model=Path(inputs["artifact"]),
            reference=_optional_path(inputs.get("reference")),
            champion=_optional_path(inputs.get("champion")),
            positive_label=inputs.get("positive_label"),
            model_name=request.model,
            model_version=request.version,
        )
        return policy, gate_request

    def _finish_job(
        self,
        job_id: int,
        request_id: str,
        manifest: EvidenceManifest | None,
        policy: PromotionPolicy | None,
        error: str | None,
    ) -> None:
        def work(uow: UnitOfWork) -> None:
            job = replace(uow.promotions.job(job_id), finished_at=self._clock())
            request = _locked(uow, request_id)
            if request.state != State.CHECKING.value:  # decided already: keep that verdict
                uow.promotions.save_job(replace(job, status="done"))
                return
            if manifest is None or policy is None:
                said = _without_paths(error or "", request.inputs)
                job = replace(job, status="failed", error=said)
                self._move(
                    uow,
                    request,
                    Action.CHECKS_BLOCKED,
                    "governance",
                    f"the checks could not run: {said}",
                    {"error": said},
                )
            else:
                job = replace(job, status="done")
                decision_id = uow.promotions.record_decision(
                    manifest, policy, "governance", _verdict_key(request_id)
                )
                request = replace(request, decision_id=decision_id)
                verdict = manifest.decision.verdict.value
                action = Action.CHECKS_PASSED if verdict == "pass" else Action.CHECKS_BLOCKED
                reason, payload = manifest.decision.summary, {}
                differing = _claim_mismatches(request.inputs, manifest)
                if differing:  # submitted evidence the service's own run contradicts
                    action, reason = Action.CHECKS_BLOCKED, _mismatch_reason(differing)
                    payload = {"evidence_mismatch": differing}
                self._move(
                    uow,
                    request,
                    action,
                    "governance",
                    reason,
                    {"decision_id": decision_id, "verdict": verdict, **payload},
                )
            uow.promotions.save_job(job)

        self._changing(work)

    # --- people decide -----------------------------------------------------------------

    def sign(
        self,
        actor: Principal,
        request_id: str,
        meaning: str,
        comment: str,
        password: str,
        role: str | None = None,
    ) -> RequestView:
        """An electronic signature: re-authenticated, with its meaning, over the evidence's
        hash. `approve` and `reject` while awaiting approval; `waive` and `reject` on a
        requested waiver."""
        if meaning not in ("approve", "reject", "waive"):
            raise InputError("meaning", f"is {meaning!r}", "use approve, reject or waive")
        if actor.kind != "user":
            raise ForbiddenError("only a person signs: an API token cannot")
        if not comment.strip():
            raise InputError("comment", "is empty", "say what you checked and why you decide so")
        user = self._people.verify_password(actor.name, password)

        def work(uow: UnitOfWork) -> RequestView:
            request = _locked(uow, request_id)
            state = State(request.state)
            action = {
                ("approve", State.AWAITING_APPROVAL): Action.APPROVE,
                ("reject", State.AWAITING_APPROVAL): Action.REJECT,
                ("waive", State.WAIVER_REQUESTED): Action.GRANT_WAIVER,
                ("reject", State.WAIVER_REQUESTED): Action.DENY_WAIVER,
            }.get((meaning, state))
            if action is None:
                raise ConflictError(
                    f"cannot sign with meaning {meaning!r} a request that is {state.value}",
                    state.value,
                )
            policy = _policy(request)
            owner = _owner(request)
            signer = Signer(actor.name, actor.roles)  # a person: tokens were refused above
            previous = uow.promotions.signatures(request_id)
            chosen = role or _pick_role(policy, action, actor, previous)
            if action in (Action.APPROVE, Action.REJECT):
                try:
                    check_signature(
                        policy.approvals,
                        signer,
                        chosen,
                        request.submitter_person,
                        owner,
                        [
                            SignatureRef(s.username, s.role)
                            for s in previous
                            if s.meaning == "approve"
                        ],
                    )
                except SignatureRefusedError as exc:
                    raise ForbiddenError(str(exc)) from None
            else:
                _check_waiver_signer(policy, signer, chosen, request.submitter_person, owner)
            evidence = _evidence_sha256(uow, request)
            now = self._clock()
            uow.promotions.add_signature(
                request_id,
                SignatureRecord(
                    username=actor.name,
                    full_name=user.full_name,
                    role=chosen,
                    meaning=meaning,
                    comment=comment.strip(),
                    evidence_sha256=evidence,
                    reauthenticated=True,
                    signed_at=now,
                ),
            )
            uow.audit.append(
                actor=actor.name,
                action=f"signature.{meaning}",
                subject=_subject(request.model, request.version),
                payload={
                    "request_id": request_id,
                    "full_name": user.full_name,
                    "role": chosen,
                    "meaning": meaning,
                    "comment": comment.strip(),
                    "evidence_sha256": evidence,
                },
            )
            approvals = [
                SignatureRef(s.username, s.role)
                for s in uow.promotions.signatures(request_id)
                if s.meaning == "approve"
            ]
            if action is Action.APPROVE and not quorum_reached(policy.approvals, approvals):
                return _view(uow, request)
            if action is Action.APPROVE:
                days = policy.approvals.expires_after_days
                request = replace(request, expires_at=now + timedelta(days=days))
            if action is Action.GRANT_WAIVER:
                waiver = uow.promotions.waiver(request_id)
                days = min(waiver.days, policy.waivers.max_days) if waiver else 1
                request = replace(request, expires_at=now + timedelta(days=days))
            reason = f"{meaning} by {user.full_name} ({chosen}): {comment.strip()}"
            request = self._move(uow, request, action, actor.name, reason, {"role": chosen})
            return _view(uow, request)

        return self._changing(work)

    def request_waiver(
        self, actor: Principal, request_id: str, justification: str, days: int
    ) -> RequestView:
        if len(justification.strip()) < MIN_JUSTIFICATION:
            raise InputError(
                "justification",
                f"is {len(justification.strip())} characters",
                f"explain in {MIN_JUSTIFICATION} or more why the model should serve anyway",
            )
        if days < 1:
            raise InputError("days", f"is {days}", "ask for 1 day or more")

        def work(uow: UnitOfWork) -> RequestView:
            request = _locked(uow, request_id)
            policy = _policy(request)
            if not policy.waivers.allowed:
                raise ConflictError(
                    f"policy {policy.metadata.name} v{policy.metadata.version} allows no "
                    "waivers: fix the model and submit a new version",
                    request.state,
                )
            if days > policy.waivers.max_days:
                raise InputError(
                    "days", f"is {days}", f"ask for at most {policy.waivers.max_days} days"
                )
            self._check_move(request, Action.REQUEST_WAIVER)
            uow.promotions.add_waiver(
                request_id,
                WaiverRecord(
                    requested_by=actor.name,
                    justification=justification.strip(),
                    days=days,
                    created_at=self._clock(),
                ),
            )
            request = self._move(
                uow,
                request,
                Action.REQUEST_WAIVER,
                actor.name,
                justification.strip(),
                {"days": days},
            )
            return _view(uow, request)

        return self._changing(work)

    def promote(self, actor: Principal, request_id: str) -> RequestView:
        def work(uow: UnitOfWork) -> RequestView:
            request = _locked(uow, request_id)
            self._check_move(request, Action.PROMOTE)
            if request.expires_at is not None and request.expires_at <= self._clock():
                raise ConflictError(
                    f"the approval expired at {request.expires_at.isoformat()}: submit again",
                    request.state,
                )
            request = self._move(uow, request, Action.PROMOTE, actor.name, None, {})
            return _view(uow, request)

        return self._changing(work)

    def revoke(self, actor: Principal, request_id: str, reason: str) -> RequestView:
        if not reason.strip():
            raise InputError("reason", "is empty", "say why the model must stop serving")

        def work(uow: UnitOfWork) -> RequestView:
            request = _locked(uow, request_id)
            request = self._move(uow, request, Action.REVOKE, actor.name, reason.strip(), {})
            return _view(uow, request)

        return self._changing(work)

    def revoke_within(self, uow: WorkflowUnit, request_id: str, actor: str, reason: str) -> bool:
        """Revoke a promoted request inside the caller's transaction, so that a monitoring
        breach and the revocation it causes are one record. False when the request is no
        longer promoted. The caller clears the admission cache once it has committed."""
        request = _locked(uow, request_id)
        if request.state != State.PROMOTED.value:
            return False
        self._move(uow, request, Action.REVOKE, actor, reason, {})
        return True

    def expire_due(self) -> list[str]:
        """Expire every approval, waiver or promotion past its date; returns their ids."""
        now = self._clock()
        with self._units(read_only=True) as uow:
            due = uow.promotions.due([s.value for s in ADMITTED], now)
        expired = []
        for request_id in due:

            def work(uow: UnitOfWork, request_id: str = request_id) -> bool:
                request = _locked(uow, request_id)
                if request.state not in ADMITTED or (
                    request.expires_at is None or request.expires_at > now
                ):
                    return False
                self._move(uow, request, Action.EXPIRE, "governance", "approval expired", {})
                return True

            if self._changing(work):
                expired.append(request_id)
        return expired

    # --- reading -----------------------------------------------------------------------

    def get_request(self, request_id: str) -> RequestView:
        with self._units(read_only=True) as uow:
            return _view(uow, _get(uow, request_id))

    def list_requests(
        self,
        state: str | None = None,
        model: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RequestPage:
        if state and state not in {s.value for s in State}:
            raise InputError("state", f"is {state!r}", f"use one of {', '.join(State)}")
        with self._units(read_only=True) as uow:
            total, rows = uow.promotions.page(state, model, limit, offset)
        return RequestPage(tuple(rows), total, limit, offset)

    def manifest(self, request_id: str) -> dict[str, Any]:
        with self._units(read_only=True) as uow:
            request = _get(uow, request_id)
            if request.decision_id is None:
                raise ConflictError(
                    f"request {request_id} has no evidence yet: it is {request.state}",
                    request.state,
                )
            decision = uow.promotions.verdict(request.decision_id)
            assert decision is not None
            return decision.manifest

    def attestation(self, decision_id: str) -> dict[str, Any]:
        with self._units(read_only=True) as uow:
            row = uow.promotions.final(decision_id)
            if row is None:
                raise NotFoundError(
                    f"decision {decision_id}", "take the decision id from the request or admission"
                )
            return row.envelope

    def admission(
        self, model: str, version: str, target: str, digest: str | None = None
    ) -> Admission:
        if digest is not None and not (
            digest.startswith("sha256:") and len(digest) == 71 and _hex(digest[7:])
        ):
            raise InputError("digest", f"is {digest!r}", "give sha256:<64 hex digits>")
        key = (model, version, target)
        answer = self._admissions.get(key)
        if answer is None:  # a cached answer's names were checked when it was made
            names.checked_model_version(model, version)  # nor does junk fill the cache
            answer = self._admissions.put(key, self._admission(model, version, target))
        return _as_of(answer, self._clock(), digest)

    def _admission(self, model: str, version: str, target: str) -> Admission:
        """The answer from the signed decisions: a request row whose state admits is
        believed only when an attestation signed with the service's key backs it."""
        with self._units(read_only=True) as uow:
            request = uow.promotions.latest(model, version, target)
            if request is None:
                return Admission(False, f"{model} {version} has no promotion request for {target}")
            state = State(request.state)
            if state not in ADMITTED:
                why = f": {request.state_reason}" if request.state_reason else ""
                return Admission(
                    False,
                    f"the request is {state.value}{why}",
                    state=state.value,
                    request_id=request.id,
                    artifact_sha256=request.artifact_sha256,
                )
            finals = uow.promotions.finals(request.id)
        found = _signed_admission(finals, self._statement, request.id, f"{model}@{version}", target)
        if isinstance(found, _Signed) and found.sha256 != request.artifact_sha256:
            found = (
                f"the recorded sha256 {request.artifact_sha256} is not the attested {found.sha256}"
            )
        if isinstance(found, str):
            self._integrity_alert(model, version, target, request.id, state.value, found)
            return Admission(
                False,
                f"refused: the record says {state.value} but no valid signed decision backs "
                f"it ({found}); an integrity alert was raised",
                state=state.value,
                request_id=request.id,
            )
        return Admission(
            True,
            f"{state.value}; valid until "
            + (found.expires_at.isoformat() if found.expires_at else "never"),
            state=state.value,
            request_id=request.id,
            decision_id=found.decision_id,
            artifact_sha256=found.sha256,
            expires_at=found.expires_at,
        )

    def _statement(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """The verified Statement of a DSSE envelope (AttestationError when it is not)."""
        try:
            key = (
                envelope["payloadType"],
                envelope["payload"],
                tuple(s["sig"] for s in envelope["signatures"]),
            )
            hash(key)
        except (KeyError, TypeError):  # malformed: let the verifier say how
            return attestation.verified_statement(envelope, self._verify)
        return self._verified(key)

    def _verify_key(self, key: tuple[str, str, tuple[str, ...]]) -> dict[str, Any]:
        payload_type, payload, signatures = key
        envelope = {
            "payloadType": payload_type,
            "payload": payload,
            "signatures": [{"sig": sig} for sig in signatures],
        }
        return attestation.verified_statement(envelope, self._verify)

    def _integrity_alert(
        self, model: str, version: str, target: str, request_id: str, state: str, reason: str
    ) -> None:
        """Record on the audit trail (the webhooks send it) that a record admits what no
        signed decision backs; once per version and reason per `ALERT_WINDOW_SECONDS` in
        this process, so a serving system asking in a loop does not flood the trail."""
        key = (model, version, target, reason)
        now = time.monotonic()
        with self._alert_lock:
            last = self._alerted.get(key)
            if last is not None and now - last < ALERT_WINDOW_SECONDS:
                return
            self._alerted[key] = now

        def work(uow: UnitOfWork) -> None:
            uow.audit.append(
                actor="governance",
                action=INTEGRITY_ALERT,
                subject=_subject(model, version),
                payload={"request_id": request_id, "target": target, "state": state,
                         "reason": reason},
            )  # fmt: skip

        try:
            run_in_unit_of_work(self._units, work)
        except Exception:  # the answer is deny either way; try again on the next miss
            with self._alert_lock:
                self._alerted.pop(key, None)
            log.exception("could not record the integrity alert for %s@%s", model, version)

    def admission_cache_clear(self) -> None:
        self._admissions.clear()

    # --- the one way state moves -------------------------------------------------------

    def _check_move(self, request: PromotionRecord, action: Action) -> State:
        try:
            return transition(State(request.state), action)
        except IllegalTransitionError as exc:
            raise ConflictError(str(exc), request.state) from None

    def _move(
        self,
        uow: WorkflowUnit,
        request: PromotionRecord,
        action: Action,
        actor: str,
        reason: str | None,
        payload: dict[str, Any],
    ) -> PromotionRecord:
        """Move the (locked) request by `action`, with its audit event and, for a final
        decision, its signed attestation; returns the request as it now is."""
        previous = request.state
        new = self._check_move(request, action)
        request = replace(request, state=new.value, state_reason=reason, updated_at=self._clock())
        uow.promotions.update(request)
        event_payload: dict[str, Any] = {
            "request_id": request.id,
            "from": previous,
            "to": new.value,
            **({"reason": reason} if reason else {}),
            **payload,
        }
        if new in (State.APPROVED, State.WAIVED, State.PROMOTED, State.REVOKED):
            event_payload["final_decision_id"] = self._issue(uow, request, new, reason)
        uow.audit.append(
            actor=actor,
            action=f"request.{action.value}",
            subject=_subject(request.model, request.version),
            payload=event_payload,
        )
        return request

    def _issue(
        self, uow: WorkflowUnit, request: PromotionRecord, state: State, reason: str | None
    ) -> str:
        """Sign the final decision as an in-toto Statement in a DSSE envelope."""
        decision = uow.promotions.verdict(request.decision_id) if request.decision_id else None
        if decision is None:
            raise ConflictError("a final decision needs the checks' evidence", request.state)
        manifest = EvidenceManifest.model_validate(decision.manifest)
        decision_id = str(uuid4())
        signatures = [
            {
                "name": s.full_name,
                "username": s.username,
                "role": s.role,
                "meaning": s.meaning,
                "signedAt": s.signed_at.isoformat(),
                "evidenceSha256": s.evidence_sha256,
            }
            for s in uow.promotions.signatures(request.id)
        ]
        document = attestation.statement(
            manifest,
            decision_id,
            decision=state.value,
            signatures=signatures,
            reason=reason if state is State.REVOKED else None,
        )
        document["predicate"]["requestId"] = request.id
        document["predicate"]["target"] = request.target
        document["predicate"]["expiresAt"] = (
            request.expires_at.isoformat() if request.expires_at else None
        )
        envelope = attestation.envelope(document, key_name(self._key.public_key()), self._key.sign)
        uow.promotions.add_final(
            request.id, FinalDecisionRecord(decision_id, state.value, envelope, self._clock())
        )
        return decision_id

    def _changing(self, work: Callable[[UnitOfWork], Any]) -> Any:
        """A state change, then the admission cache forgets the request's answers."""
        try:
            return run_in_unit_of_work(self._units, work)
        finally:
            self._admissions.clear()


def _verdict_key(request_id: str) -> str:
    """The idempotency key of a request's verdict: one per request, however often its check
    job runs."""
    return f"checks:{request_id}"


def _queue_checks(uow: UnitOfWork, request_id: str) -> None:
    """The request's check job, in the transaction that opens it: the job table row the
    console shows, and the task that runs it, locked by the request so that one request
    never has two check jobs queued or running."""
    job_id = uow.promotions.enqueue(request_id, CHECKS_JOB)
    uow.tasks.defer(RUN_CHECKS, {"job_id": job_id}, queue=CHECKS_QUEUE, lock=request_id)


def _view(uow: WorkflowUnit, request: PromotionRecord) -> RequestView:
    """A request as the API, the console and the reports show it: state, evidence,
    signatures, waiver and final decisions."""
    decision = uow.promotions.verdict(request.decision_id) if request.decision_id else None
    return RequestView(
        id=request.id,
        model=request.model,
        version=request.version,
        risk_tier=request.risk_tier,
        target=request.target,
        state=request.state,
        state_reason=request.state_reason,
        submitter=request.submitter,
        submitter_person=request.submitter_person,
        policy=request.policy,
        artifact_sha256=request.artifact_sha256,
        expires_at=request.expires_at,
        created_at=request.created_at,
        updated_at=request.updated_at,
        owner=_owner(request),
        verdict=decision.verdict if decision else None,
        decision_summary=decision.summary if decision else None,
        gate_decision_id=request.decision_id,
        evidence_sha256=decision.manifest_sha256 if decision else None,
        checks=decision.manifest["results"] if decision else [],
        evidence=evidence_view(request.inputs, decision.manifest if decision else None),
        approval_rules=_policy(request).approvals.model_dump(mode="json", by_alias=True),
        signatures=tuple(uow.promotions.signatures(request.id)),
        waiver=uow.promotions.waiver(request.id),
        decisions=tuple(uow.promotions.finals(request.id)),
    )


class AdmissionCache:
    """Admission answers per (model, version, target). This process drops them on its own
    state changes; other processes' changes show as a new audit head, polled at most every
    `POLL_SECONDS` — every state change appends an audit event, so the head moves with it."""

    POLL_SECONDS = 0.1

    def __init__(self, units: UnitOfWorkFactory) -> None:
        self._units = units
        self._answers: dict[tuple[str, str, str], Admission] = {}
        self._head: int | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> Admission | None:
        now = time.monotonic()
        if now - self._checked > self.POLL_SECONDS:
            with self._lock:
                if now - self._checked > self.POLL_SECONDS:
                    head = self._audit_head()
                    if head != self._head:
                        self._answers.clear()
                        self._head = head
                    self._checked = now
        return self._answers.get(key)

    def put(self, key: tuple[str, str, str], answer: Admission) -> Admission:
        self._answers[key] = answer
        return answer

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self._checked = 0.0

    def _audit_head(self) -> int:
        with self._units(read_only=True) as uow:
            return uow.audit.head_seq()


def _as_of(answer: Admission, now: datetime, digest: str | None) -> Admission:
    """A stored answer judged at this moment and for these bytes: an allow turns to deny
    once its decision expires (before the sweep moves the state) or when the bytes to be
    served are not the approved ones."""
    if not answer.allowed:
        return answer
    if answer.expires_at is not None and answer.expires_at <= now:
        return replace(answer, allowed=False, reason=f"the {answer.state} decision expired")
    if digest is not None and digest[7:].lower() != answer.artifact_sha256:
        return replace(
            answer,
            allowed=False,
            reason=f"the bytes to be served ({digest}) are not the approved artifact "
            f"(sha256:{answer.artifact_sha256})",
        )
    return answer


@dataclass(frozen=True)
class _Signed:
    """What a verified, admitting final decision says."""

    decision_id: str
    sha256: str
    expires_at: datetime | None


def _signed_admission(
    finals: list[FinalDecisionRecord],
    statement: Callable[[dict[str, Any]], dict[str, Any]],
    request_id: str,
    subject: str,
    target: str,
) -> _Signed | str:
    """The request's last admitting decision (approved, waived, promoted) as its signed
    Statement says it, or why none holds: a row whose signature fails, a Statement made
    for another decision, request, version or target, a signed revocation, or none at all.
    Any forged row fails the whole answer: it is evidence of tampering."""
    admitting: _Signed | None = None
    for row in finals:
        try:
            inner = statement(row.envelope)
        except attestation.AttestationError as exc:
            return f"final decision {row.id}: {exc}"
        predicate = inner.get("predicate") or {}
        digests = attestation.subject_digests(inner)
        said = (predicate.get("decisionId"), predicate.get("requestId"), predicate.get("target"))
        if said != (row.id, request_id, target) or subject not in digests:
            return (
                f"final decision {row.id}: signed for {', '.join(digests) or 'nothing'} "
                f"(decision {said[0]}, request {said[1]}, target {said[2]}), not this one"
            )
        decision = predicate.get("decision")
        if decision == State.REVOKED.value:
            return f"final decision {row.id}: revoked, by a signed revocation"
        if decision in {s.value for s in ADMITTED}:
            expires = predicate.get("expiresAt")
            admitting = _Signed(
                row.id,
                str(digests[subject]),
                datetime.fromisoformat(expires) if expires else None,
            )
    return admitting or "there is no signed final decision"


def _without_paths(error: str, inputs: dict[str, Any]) -> str:
    """An error about the request's files as people may read it: each stored file's path
    on this server replaced by the form field it came in (the blob store's layout, and
    where the data directory is, are nobody's business)."""
    for field in ("artifact", "data", "reference", "champion"):
        if inputs.get(field):
            error = error.replace(str(inputs[field]), f"(the {field} file)")
    return error


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _inputs(candidate: Candidate) -> dict[str, Any]:
    return {
        "artifact": str(candidate.artifact),
        "data": str(candidate.data) if candidate.data else None,
        "reference": str(candidate.reference) if candidate.reference else None,
        "champion": str(candidate.champion) if candidate.champion else None,
        "label": candidate.label,
        "positive_label": candidate.positive_label,
        "model_card": candidate.model_card.model_dump(mode="json", exclude_none=True)
        if candidate.model_card
        else None,
        **({"allow_pickle": True} if candidate.pickle_allowed else {}),
    }


def _same_files(
    candidate: Candidate, manifest: EvidenceManifest, provenance: str, source: ArtifactSource
) -> None:
    """The files a re-run needs are the ones the evidence was made from: the data, and the
    reference and champion when the evidence names them. No hash is echoed: the answer says
    which upload differs, not what any file holds."""
    for role in ("data", "reference", "champion"):
        uploaded: Path | None = getattr(candidate, role)
        named = manifest.artifact(role)
        if role == "data" and uploaded is None:
            raise InputError(
                "data",
                "is required: the policy has the service re-compute the checks from the "
                f"uploaded model and data (provenance: {provenance})",
                "upload the data (and reference, champion) the gate read, as `governance gate "
                "--submit` does",
            )
        if named is None and uploaded is not None:
            raise InputError(role, "is not named in the evidence", f"upload no {role}")
        if named is not None and uploaded is None:
            raise InputError(
                role, "is named in the evidence but was not uploaded", f"upload the {role} file"
            )
        if named and uploaded and source.sha256_file(uploaded) != named.sha256:
            raise InputError(
                role,
                "is not the file the evidence was made from (its sha256 differs)",
                f"upload the {role} file the gate read",
            )


def _evidence_event(inputs: dict[str, Any]) -> dict[str, Any]:
    """What the submission event records of uploaded evidence: how it is checked, its
    manifest's sha256 and the provenance verdict (the claimed figures stay on the request)."""
    evidence = inputs.get("evidence")
    if not isinstance(evidence, dict):
        return {}
    return {"evidence": {key: value for key, value in evidence.items() if key != "claimed"}}


def _claim_mismatches(inputs: dict[str, Any], recomputed: EvidenceManifest) -> list[dict[str, Any]]:
    """Where the evidence a submitter uploaded differs from the service's own re-run."""
    evidence = inputs.get("evidence")
    if not isinstance(evidence, dict) or evidence.get("mode") != RERUN:
        return []
    claimed = EvidenceManifest.model_validate(evidence["claimed"])
    return mismatches(claimed.results, recomputed.results)


def _mismatch_reason(differing: list[dict[str, Any]]) -> str:
    shown = "; ".join(
        f"{m['check']} {m['field']}: claimed {m['claimed']}, re-computed {m['recomputed']}"
        for m in differing[:3]
    )
    more = f" (and {len(differing) - 3} more)" if len(differing) > 3 else ""
    return (
        "evidence mismatch: the uploaded evidence is not what its model and data give — "
        f"{shown}{more}"
    )


def evidence_view(inputs: dict[str, Any], recorded: dict[str, Any] | None) -> dict[str, Any]:
    """How the request's evidence was checked, for people: re-computed by the service (with
    every difference from the submitted figures), accepted from a trusted builder, or
    computed by the service from uploaded data in the first place."""
    evidence = inputs.get("evidence")
    if evidence == "uploaded":  # a request from before the service re-computed evidence
        return {"source": "taken from the upload, not re-computed", "mismatches": []}
    if not isinstance(evidence, dict):
        return {"source": "computed by the service", "mismatches": []}
    view: dict[str, Any] = {
        "claimedSha256": evidence.get("claimedSha256"),
        "provenance": evidence.get("provenance"),
        "mismatches": [],
    }
    if evidence.get("mode") == BUILDER:
        builder = evidence.get("builder")
        return {**view, "source": f"accepted from builder {builder}, provenance verified"}
    if recorded is not None:
        view["mismatches"] = _claim_mismatches(inputs, EvidenceManifest.model_validate(recorded))
    return {**view, "source": "re-computed by the service"}


def _refuse_pickles(candidate: Candidate, source: ArtifactSource) -> None:
    """The service never unpickles what a client sent: model and champion are skops."""
    source.refuse_pickle(candidate.artifact, "artifact")
    if candidate.champion is not None and candidate.champion.suffix.lower() != ".json":
        source.refuse_pickle(candidate.champion, "champion")


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _subject(model: str, version: str) -> str:
    return f"model:{model}@{version}"


def _get(uow: WorkflowUnit, request_id: str) -> PromotionRecord:
    request = uow.promotions.get(request_id)
    if request is None:
        raise NotFoundError(f"request {request_id}", "list the requests to find its id")
    return request


def _locked(uow: WorkflowUnit, request_id: str) -> PromotionRecord:
    """The request, its row locked until the unit of work ends (PostgreSQL; SQLite's writer
    holds the whole database already)."""
    request = uow.promotions.get(request_id, lock=True)
    if request is None:
        raise NotFoundError(f"request {request_id}", "list the requests to find its id")
    return request


def _policy(request: PromotionRecord) -> PromotionPolicy:
    return parse_policy(request.policy.document)


def _owner(request: PromotionRecord) -> str | None:
    """The person who owns the request's model: the model's owner, else the person who
    submitted (None for a connector's submission of a model without an owner)."""
    return request.model_owner or request.submitter_person


def _check_person(uow: UnitOfWork, username: str) -> None:
    if not uow.models.person_known(username):
        raise InputError(
            "owner",
            f"{username!r} is not a person known here",
            "give the user name of the person accountable for the model (a token cannot own one)",
        )


def _evidence_sha256(uow: WorkflowUnit, request: PromotionRecord) -> str:
    decision = uow.promotions.verdict(request.decision_id) if request.decision_id else None
    if decision is None:
        raise ConflictError("there is no evidence to sign yet", request.state)
    return decision.manifest_sha256


def _pick_role(
    policy: PromotionPolicy, action: Action, actor: Principal, previous: list[SignatureRecord]
) -> str:
    """The role to sign in when the signer did not name one: the only fitting role held."""
    if action in (Action.GRANT_WAIVER, Action.DENY_WAIVER):
        wanted = [policy.waivers.approver_role] if policy.waivers.approver_role else []
    else:
        wanted = list(policy.approvals.roles)
    held = [r for r in wanted if r in actor.roles]
    if not held:
        raise ForbiddenError(
            f"{actor.name} holds none of the roles this signature needs ({', '.join(wanted)})"
        )
    signed = {s.role for s in previous if s.meaning == "approve"}
    unsigned = [r for r in held if r not in signed]
    if len(held) == 1 or len(unsigned) == 1:
        return unsigned[0] if len(unsigned) == 1 else held[0]
    raise InputError("role", f"you hold {', '.join(held)}", "name the role you sign in")


def _check_waiver_signer(
    policy: PromotionPolicy, signer: Signer, role: str, submitter: str | None, owner: str | None
) -> None:
    if role != policy.waivers.approver_role or role not in signer.roles:
        raise ForbiddenError(
            f"only the policy's waiver role ({policy.waivers.approver_role}) decides a waiver"
        )
    if signer.user in (submitter, owner):
        raise ForbiddenError(
            f"{signer.user} submitted or owns this model and may not decide its waiver "
            "(segregation of duties)"
        )
