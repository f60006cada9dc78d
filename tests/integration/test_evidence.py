"""Evidence uploaded by the party being judged (`governance gate --submit`) is not taken on
its word: the service re-computes every check from the uploaded model and data and blocks
the request as "evidence mismatch" when the figures differ; only a registered CI builder
with verified in-toto/DSSE provenance, under a policy that trusts it, is spared the re-run.
And no artifact is ever read from a location the client names: only from the content store.

In-process over HTTP (Litestar's test client), on SQLite and PostgreSQL, with a small
synthetic credit data set, so each test takes seconds."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar
from litestar.testing import TestClient
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import governance.connectors.files as files
from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.domain import attestation
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import PolicyError, parse_policy
from governance.services.gate import run_gate
from governance.services.people import SYSTEM
from governance.services.ports import GateRequest
from governance.signing import key_name
from governance.store.repository import audit_trail
from governance.web.app import create_app
from tests.homes import initialise_home
from tests.service_fixtures import PASSWORD, fast_policies

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

BUILDER = "ci-main"
SECRET = "PRIVATE-SALARY-LEDGER-7731"


@dataclass
class Api:
    client: TestClient[Litestar]
    home: Path
    policies: Path
    tokens: dict[str, str]
    answers: list[httpx.Response]

    @property
    def governance(self) -> Governance:
        governance: Governance = self.client.app.state.governance
        return governance

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        answer = self.client.request(method, path, headers=headers, **kwargs)
        self.answers.append(answer)
        return answer

    def run_jobs(self) -> int:
        """Run the queued check jobs here (the app's own runner is off: deterministic)."""
        workflow = self.governance.workflow
        ran = 0
        for job_id in workflow.claimable_jobs():
            ran += workflow.run_job(job_id)
        return ran

    def request(self, request_id: str) -> dict[str, Any]:
        answer = self.call("audrey", "GET", f"/api/v1/requests/{request_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@dataclass(frozen=True)
class Files:
    data: Path
    good_model: Path
    constant_model: Path
    policy: Path


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """600 applicants with a learnable outcome; a fitted model (AUC ≈ 0.9) and a constant
    one (AUC 0.5), saved with skops."""
    directory = tmp_path_factory.mktemp("credit")
    rng = np.random.default_rng(7)
    rows = 600
    frame = pd.DataFrame({"income": rng.normal(size=rows), "debt": rng.normal(size=rows)}).assign(
        sex=rng.choice(["female", "male"], rows)
    )
    noise = rng.normal(scale=0.6, size=rows)
    frame["repaid"] = (frame["income"] - 0.5 * frame["debt"] + noise > 0).astype(int)
    frame.to_csv(directory / "data.csv", index=False)
    features = frame[["income", "debt"]]
    skops.io.dump(LogisticRegression().fit(features, frame["repaid"]), directory / "good.skops")
    constant = DummyClassifier(strategy="prior").fit(features, frame["repaid"])
    skops.io.dump(constant, directory / "constant.skops")
    policies = fast_policies(directory / "policies")
    return Files(
        directory / "data.csv",
        directory / "good.skops",
        directory / "constant.skops",
        policies / "low.yaml",
    )


@pytest.fixture
def make_api(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """The app in-process over `database_url`, with the shipped policies (the low tier's
    `evidence` set to `evidence` when given), people, and a `ci` token."""
    opened: list[TestClient[Litestar]] = []

    def make(evidence: dict[str, Any] | None = None) -> Api:
        policies = fast_policies(tmp_path / "policies")
        if evidence is not None:
            with (policies / "low.yaml").open("a") as stream:
                stream.write(f"evidence: {json.dumps(evidence)}\n")
        settings = replace(Settings.from_env(database_url, tmp_path / "home"), policies=policies)
        initialise_home(settings, PASSWORD)
        governance = open_governance(settings)
        tokens = {"ci": governance.people.create_token(SYSTEM, "ci", ["ci"], 30).token}
        for name, roles in {"dana": ["data_scientist"], "audrey": ["auditor"]}.items():
            governance.people.add_user(SYSTEM, name, name.title(), PASSWORD, roles)
        for name in ("admin", "dana", "audrey"):
            tokens[name] = governance.people.sign_in(name, PASSWORD, 8).token
        governance.close()
        client = TestClient(create_app(settings, run_jobs=False))
        client.__enter__()
        opened.append(client)
        api = Api(client, settings.home, policies, tokens, [])
        registered = api.call(
            "ci", "POST", "/api/v1/models", json={"name": "credit", "riskTier": "low"}
        )
        assert registered.status_code == 201, registered.text
        return api

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def gate(policy: Path, model: Path, data: Path, version: str) -> EvidenceManifest:
    """What `governance gate --json` writes in the CI pipeline."""
    request = GateRequest(
        policy=policy,
        data=data,
        target="repaid",
        model=model,
        model_name="credit",
        model_version=version,
    )
    return run_gate(request, files).manifest


def forged(manifest: EvidenceManifest) -> EvidenceManifest:
    """The constant model's evidence with its AUC rewritten to 0.97 and every check passed."""
    document = manifest.model_dump(mode="json")
    for result in document["results"]:
        result["status"] = "pass"
        for rule in result["rules"]:
            if rule["rule"].startswith("roc_auc"):
                rule["observed"] = 0.97
            rule["passed"] = True
    document["decision"]["verdict"] = "pass"
    document["decision"]["summary"] = "all checks passed"
    return EvidenceManifest.model_validate(document)


def upload(
    api: Api,
    manifest: EvidenceManifest,
    model: Path,
    data: Path | None,
    who: str = "ci",
    provenance: dict[str, Any] | None = None,
) -> httpx.Response:
    parts: dict[str, Any] = {
        "artifact": (model.name, model.read_bytes()),
        "evidence": ("manifest.json", manifest.model_dump_json().encode()),
    }
    if data is not None:
        parts["data"] = (data.name, data.read_bytes())
    if provenance is not None:
        parts["provenance"] = ("provenance.json", json.dumps(provenance).encode())
    form = {"model": "credit", "version": manifest.model_version, "target": "production"}
    return api.call(who, "POST", "/api/v1/requests", data=form, files=parts)


def builder_key(api: Api, name: str = BUILDER) -> Ed25519PrivateKey:
    """A CI builder's key pair, its public half registered by the admin."""
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    added = api.call(
        "admin", "POST", "/api/v1/builders", json={"name": name, "publicKey": pem.decode()}
    )
    assert added.status_code == 201, added.text
    return key


def provenance(manifest: EvidenceManifest, key: Ed25519PrivateKey, name: str = BUILDER) -> dict:
    return attestation.provenance_envelope(manifest, name, key_name(key.public_key()), key.sign)


def pdf_text(content: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(content)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def states_reached(api: Api, request_id: str) -> list[str]:
    return [
        e.event.payload["to"]
        for e in audit_trail(api.governance.engine)
        if e.event.payload.get("request_id") == request_id and "to" in e.event.payload
    ]


# --- item 2: a client-supplied URI is never opened on the server -------------------------


def test_a_client_supplied_uri_never_reads_a_file_of_the_server(
    make_api: Callable[..., Api], credit: Files, tmp_path: Path
) -> None:
    """A manifest whose data artifact points at a private file outside the content store,
    first with a wrong sha256 (to learn the real one from the error), then with the real
    one: no answer names the file's hash, and no report renders its content."""
    api = make_api()
    private = tmp_path / "outside" / "private.csv"
    private.parent.mkdir()
    ledger = pd.read_csv(credit.data).assign(note=SECRET)
    ledger.to_csv(private, index=False)
    real_sha256 = hashlib.sha256(private.read_bytes()).hexdigest()
    honest = gate(api.policies / "low.yaml", credit.good_model, credit.data, "1")

    for version, claimed in (("1", "0" * 64), ("2", real_sha256)):
        document = honest.model_dump(mode="json")
        document["model_version"] = version
        for artifact in document["artifacts"]:
            if artifact["role"] == "data":
                artifact.update(uri=private.as_uri(), sha256=claimed)
        manifest = EvidenceManifest.model_validate(document)
        answer = upload(api, manifest, credit.good_model, data=None)
        if answer.status_code == 202:
            api.run_jobs()
            decision = api.request(answer.json()["id"])["gateDecisionId"]
            if decision:
                report = api.call(
                    "audrey",
                    "GET",
                    f"/api/v1/decisions/{decision}/bias-audit.pdf",
                    params={"race": "sex"},
                )
                if report.status_code == 200:
                    assert SECRET not in pdf_text(report.content, tmp_path)
        else:
            assert answer.status_code == 422, answer.text
    for answer in api.answers:
        assert real_sha256 not in answer.text, answer.text
        assert str(private) not in answer.text, answer.text


# --- item 3: evidence forged by the party being judged -----------------------------------


def test_forged_evidence_from_a_ci_token_is_blocked_as_evidence_mismatch(
    make_api: Callable[..., Api], credit: Files, tmp_path: Path
) -> None:
    api = make_api()
    honest = gate(api.policies / "low.yaml", credit.constant_model, credit.data, "1")
    auc = next(r for c in honest.results for r in c.rules if r.rule.startswith("roc_auc"))
    assert auc.observed == 0.5 and not auc.passed  # what the constant model really scores

    answer = upload(api, forged(honest), credit.constant_model, credit.data)
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["id"]
    assert answer.json()["state"] == "submitted"  # nothing decided from the upload
    assert api.run_jobs() == 1

    request = api.request(request_id)
    assert request["state"] == "blocked"
    assert request["stateReason"].startswith("evidence mismatch")
    evidence = request["evidence"]
    assert evidence["source"] == "re-computed by the service"
    differing = {(m["check"], m["field"]): m for m in evidence["mismatches"]}
    observed = differing[("performance", f"{auc.rule}: observed")]
    assert (observed["claimed"], observed["recomputed"]) == (0.97, 0.5)
    passed = differing[("performance", f"{auc.rule}: passed")]
    assert (passed["claimed"], passed["recomputed"]) == (True, False)
    assert request["verdict"] == "blocked"  # the recorded figures are the service's own
    roc = next(r for c in request["checks"] for r in c["rules"] if r["rule"] == auc.rule)
    assert roc["observed"] == 0.5
    assert "awaiting_approval" not in states_reached(api, request_id)

    blocked = next(
        e.event.payload
        for e in audit_trail(api.governance.engine)
        if e.event.action == "request.checks_blocked"
    )
    assert blocked["reason"].startswith("evidence mismatch")
    shown = {(m["check"], m["field"]): m for m in blocked["evidence_mismatch"]}
    assert shown[("performance", f"{auc.rule}: observed")]["claimed"] == 0.97

    # the decision report shows both figures
    report = api.call("audrey", "GET", f"/api/v1/requests/{request_id}/report.pdf")
    assert report.status_code == 200, report.text
    text = pdf_text(report.content, tmp_path)
    flat = " ".join(text.split())
    assert "Evidence mismatch" in flat and "Re-computed by the service" in flat, flat
    assert "0.97" in text and "0.5" in text


def test_honest_gate_submission_with_its_data_passes_as_before(
    make_api: Callable[..., Api], credit: Files
) -> None:
    api = make_api()
    honest = gate(api.policies / "low.yaml", credit.good_model, credit.data, "1")
    assert honest.decision.verdict.value == "pass"
    answer = upload(api, honest, credit.good_model, credit.data)
    assert answer.status_code == 202, answer.text
    assert api.run_jobs() == 1
    request = api.request(answer.json()["id"])
    assert request["state"] == "awaiting_approval", request["stateReason"]
    assert request["evidence"]["source"] == "re-computed by the service"
    assert request["evidence"]["mismatches"] == []
    assert request["evidence"]["claimedSha256"] == honest.sha256
    assert [c["rules"] for c in request["checks"]] == [
        [r.model_dump(mode="json") for r in c.rules] for c in honest.results
    ]

    # the data is required: without it the service cannot re-compute anything
    again = gate(api.policies / "low.yaml", credit.good_model, credit.data, "2")
    refused = upload(api, again, credit.good_model, data=None)
    assert refused.status_code == 422
    assert refused.json()["field"] == "data" and "re-comput" in refused.json()["detail"]
    other_data = credit.data.parent / "other.csv"
    pd.read_csv(credit.data).head(300).to_csv(other_data, index=False)
    wrong = upload(api, again, credit.good_model, other_data)
    assert wrong.status_code == 422 and wrong.json()["field"] == "data", wrong.text


def test_a_trusted_builder_with_verified_provenance_is_accepted_without_rerun(
    make_api: Callable[..., Api], credit: Files
) -> None:
    api = make_api({"trustedBuilders": [BUILDER]})
    key = builder_key(api)
    honest = gate(api.policies / "low.yaml", credit.good_model, credit.data, "1")
    answer = upload(api, honest, credit.good_model, credit.data, provenance=provenance(honest, key))
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "awaiting_approval"
    assert api.run_jobs() == 0  # no re-run
    request = api.request(answer.json()["id"])
    assert request["evidence"]["source"] == f"accepted from builder {BUILDER}, provenance verified"
    assert request["evidence"]["mismatches"] == []
    listed = api.call("audrey", "GET", "/api/v1/builders")
    assert listed.status_code == 200 and [b["name"] for b in listed.json()] == [BUILDER]
    events = [e.event.action for e in audit_trail(api.governance.engine)]
    assert "builder.registered" in events
    submitted = next(
        e.event.payload
        for e in audit_trail(api.governance.engine)
        if e.event.action == "request.submitted"
    )
    assert submitted["evidence"] == {
        "mode": "builder",
        "builder": BUILDER,
        "provenance": "verified",
        "claimedSha256": honest.sha256,
    }

    # even a trusted builder's evidence comes with its files: they are read from the store
    refused = upload(
        api,
        gate(api.policies / "low.yaml", credit.good_model, credit.data, "2"),
        credit.good_model,
        None,
        provenance=provenance(honest, key),
    )
    assert refused.status_code == 422 and refused.json()["field"] == "data"


@pytest.mark.parametrize("case", ["tampered", "unregistered", "revoked", "untrusting policy"])
def test_provenance_that_does_not_hold_means_a_rerun(
    make_api: Callable[..., Api], credit: Files, case: str
) -> None:
    api = make_api(None if case == "untrusting policy" else {"trustedBuilders": [BUILDER]})
    honest = gate(api.policies / "low.yaml", credit.good_model, credit.data, "1")
    key = Ed25519PrivateKey.generate() if case == "unregistered" else builder_key(api)
    envelope = provenance(honest, key)  # "tampered": the manifest is changed after signing
    if case == "revoked":
        revoked = api.call("admin", "DELETE", f"/api/v1/builders/{BUILDER}")
        assert revoked.status_code == 200, revoked.text
    claimed = forged(honest) if case == "tampered" else honest
    answer = upload(api, claimed, credit.good_model, credit.data, provenance=envelope)
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "submitted"
    assert api.run_jobs() == 1
    request = api.request(answer.json()["id"])
    assert request["evidence"]["source"] == "re-computed by the service"
    assert request["evidence"]["provenance"] != "verified"
    assert request["state"] == ("blocked" if case == "tampered" else "awaiting_approval")


def test_builders_are_managed_by_admins_only_and_audited(
    make_api: Callable[..., Api], credit: Files
) -> None:
    api = make_api()
    key = Ed25519PrivateKey.generate()
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    for who in ("ci", "dana", "audrey"):
        refused = api.call(who, "POST", "/api/v1/builders", json={"name": "x", "publicKey": pem})
        assert refused.status_code == 403, refused.text
    bad = api.call("admin", "POST", "/api/v1/builders", json={"name": "x", "publicKey": "no"})
    assert bad.status_code == 422 and bad.json()["field"] == "publicKey"
    assert (
        api.call(
            "admin", "POST", "/api/v1/builders", json={"name": "x", "publicKey": pem}
        ).status_code
        == 201
    )
    twice = api.call("admin", "POST", "/api/v1/builders", json={"name": "x", "publicKey": pem})
    assert twice.status_code == 409
    assert api.call("admin", "DELETE", "/api/v1/builders/x").status_code == 200
    assert api.call("admin", "DELETE", "/api/v1/builders/x").status_code == 409
    listed = api.call("admin", "GET", "/api/v1/builders").json()
    assert listed[0]["revokedAt"] is not None
    actions = [e.event.action for e in audit_trail(api.governance.engine)]
    assert actions.count("builder.registered") == 1 and actions.count("builder.revoked") == 1


def test_the_policy_says_whether_its_tier_accepts_builders() -> None:
    base = {
        "apiVersion": "governance/v1",
        "kind": "PromotionPolicy",
        "metadata": {"name": "p", "version": 1},
        "appliesTo": {"riskTier": "low", "targets": ["production"]},
        "checks": [
            {"id": "perf", "type": "performance", "rules": [{"metric": "roc_auc", "min": 0.7}]}
        ],
        "approvals": {"quorum": 1, "roles": ["business_owner"], "expiresAfterDays": 30},
        "waivers": {"allowed": False},
    }
    assert parse_policy(base).trusted_builders == ()
    assert parse_policy({**base, "evidence": {"rerun": "required"}}).trusted_builders == ()
    trusting = parse_policy({**base, "evidence": {"trustedBuilders": ["ci-main"]}})
    assert trusting.trusted_builders == ("ci-main",)
    # a policy without the field hashes as before: pinned decisions keep their policy
    assert parse_policy(base).content_hash == parse_policy(dict(base)).content_hash
    assert "evidence" not in parse_policy(base).canonical_json()
    for evidence, expected in (
        ({"rerun": "required", "trustedBuilders": ["a"]}, "evidence: give either"),
        ({"trustedBuilders": []}, "evidence.trustedBuilders"),
        ({"rerun": "sometimes"}, "evidence.rerun"),
        ({"trustedBuilders": ["Not A Name"]}, "evidence.trustedBuilders[0]"),
    ):
        with pytest.raises(PolicyError) as refused:
            parse_policy({**base, "evidence": evidence})
        assert any(p.startswith(expected) for p in refused.value.problems), refused.value.problems


def test_builder_cli_adds_lists_and_revokes(database_url: str, tmp_path: Path) -> None:
    """`governance builder add NAME --key pub.pem`, `list`, `revoke`, each audited; bad
    input is a message and exit 2, a conflict (revoked already) a message and exit 1."""
    from typer.testing import CliRunner

    from governance.cli import app

    settings = Settings.from_env(database_url, tmp_path / "home")
    initialise_home(settings, PASSWORD)
    env = {"GOVERNANCE_HOME": str(settings.home), "GOVERNANCE_DATABASE_URL": database_url}
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "builder.pub.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    runner = CliRunner()
    added = runner.invoke(app, ["builder", "add", BUILDER, "--key", str(pem)], env=env)
    assert added.exit_code == 0, added.output
    assert key_name(key.public_key()) in added.output
    listed = runner.invoke(app, ["builder", "list"], env=env)
    assert listed.exit_code == 0 and BUILDER in listed.output
    not_a_key = runner.invoke(app, ["builder", "add", "other", "--key", str(tmp_path)], env=env)
    assert not_a_key.exit_code == 2, not_a_key.output
    assert runner.invoke(app, ["builder", "revoke", BUILDER], env=env).exit_code == 0
    again = runner.invoke(app, ["builder", "revoke", BUILDER], env=env)
    assert again.exit_code == 1 and "revoked already" in again.output  # a conflict: refused
    governance = open_governance(settings)
    try:
        actions = [e.event.action for e in audit_trail(governance.engine)]
    finally:
        governance.close()
    assert actions.count("builder.registered") == 1 and actions.count("builder.revoked") == 1


def test_mismatches_allow_floating_point_noise_of_1e_9_and_nothing_more() -> None:
    from governance.domain.evidence import mismatches
    from governance.domain.results import CheckResult, RuleOutcome

    def result(observed: float, passed: bool = True) -> list[CheckResult]:
        rule = RuleOutcome(
            rule="roc_auc ≥ 0.7", observed=observed, threshold="≥ 0.7", passed=passed,
            severity="blocking",
        )  # fmt: skip
        status = "pass" if passed else "fail"
        return [CheckResult(id="perf", type="performance", status=status, summary="", rules=[rule])]

    assert mismatches(result(0.8), result(0.8 + 5e-10)) == []
    assert mismatches(result(float("nan")), result(float("nan"))) == []
    beyond = mismatches(result(0.8), result(0.8 + 2e-9))
    assert [(m["field"], m["claimed"]) for m in beyond] == [("roc_auc ≥ 0.7: observed", 0.8)]
    flipped = {m["field"] for m in mismatches(result(0.8), result(0.8, passed=False))}
    assert flipped == {"status", "roc_auc ≥ 0.7: passed"}
    assert mismatches(result(0.8), []) == [
        {"check": "perf", "field": "check", "claimed": True, "recomputed": False}
    ]
    assert mismatches(result(float("nan")), result(0.8))[0]["claimed"] == "nan"
