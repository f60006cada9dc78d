"""The whole promotion workflow through HTTP against a served process, on SQLite and on
PostgreSQL: submit → checks → awaiting approval or blocked → signatures → approved →
promoted → admission allows → revoke → admission denies; and the waiver path."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx

from governance.connectors.adult import TARGET
from governance.resources import PACKAGED_POLICIES as PACKAGED
from tests.service_fixtures import PASSWORD, Service, register, submit

pytest_plugins = ["tests.db_fixtures", "tests.service_fixtures"]


def sign(
    service: Service, who: str, request_id: str, meaning: str = "approve", **extra
) -> httpx.Response:
    body = {"meaning": meaning, "comment": f"{who} reviewed the evidence", "password": PASSWORD}
    with service.client(who) as client:
        return client.post(f"/api/v1/requests/{request_id}/signatures", json={**body, **extra})


def admission(service: Service, version: str, name: str = "income", **params: str) -> dict:
    with service.client("serving") as client:
        response = client.get(f"/api/v1/admission/{name}/{version}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_approve_promote_admit_revoke(
    module_service: Service, demo_dir: Path, tmp_path: Path
) -> None:
    service, name = module_service, "income-approved"
    register(service, name)
    with service.client("audrey") as client:  # an auditor keeps a checkpoint of the log
        kept = client.get("/api/v1/audit/proof").json()["checkpoint"]
    kept_size = int(kept.splitlines()[1])
    assert admission(service, "2", name)["decision"] == "deny"

    card = {"purpose": "Route loan files to a reviewer", "limitations": "US census data, 1994"}
    created = submit(
        service, demo_dir, "income-reweighed", "2", name=name, model_card=json.dumps(card)
    )
    assert created["state"] == "submitted"
    request_id = created["id"]
    request = service.wait_for_state(request_id, "awaiting_approval", "blocked")
    assert request["state"] == "awaiting_approval", request["stateReason"]
    assert request["verdict"] == "pass"
    assert request["policy"]["name"] == "high-risk"
    assert {c["type"] for c in request["checks"]} >= {"fairness", "explainability", "drift"}

    # The submitter cannot sign (no permission) and a wrong password is refused: neither
    # leaves a signature (the wrong password is on the trail as a failed sign-in).
    assert sign(service, "dana", request_id).status_code == 403
    refused = sign(service, "maria", request_id, password="not my password")
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")

    first = sign(service, "maria", request_id)
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "awaiting_approval"
    again = sign(service, "maria", request_id)
    assert again.status_code == 403 and "signed this request already" in again.json()["detail"]
    assert admission(service, "2", name)["decision"] == "deny"

    second = sign(service, "bob", request_id)
    assert second.status_code == 200, second.text
    approved = second.json()
    assert approved["state"] == "approved"
    assert approved["expiresAt"] is not None
    signatures = approved["signatures"]
    assert [(s["fullName"], s["role"], s["meaning"]) for s in signatures] == [
        ("Maria Risk", "model_risk_officer", "approve"),
        ("Bob Owner", "business_owner", "approve"),
    ]
    assert all(s["evidenceSha256"] == approved["evidenceSha256"] for s in signatures)
    assert all(s["reauthenticated"] for s in signatures)

    allowed = admission(service, "2", name)
    assert allowed["decision"] == "allow" and allowed["state"] == "approved"
    digest = hashlib.sha256((demo_dir / "income-reweighed.skops").read_bytes()).hexdigest()
    assert admission(service, "2", name, digest=f"sha256:{digest}")["decision"] == "allow"
    wrong = admission(service, "2", name, digest="sha256:" + "0" * 64)
    assert wrong["decision"] == "deny" and "not the approved artifact" in wrong["reason"]

    with service.client("ci") as client:
        promoted = client.post(f"/api/v1/requests/{request_id}/promote")
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["state"] == "promoted"
        twice = client.post(f"/api/v1/requests/{request_id}/promote")
        assert twice.status_code == 409 and twice.json()["state"] == "promoted"
    assert admission(service, "2", name)["state"] == "promoted"

    # An auditor downloads the signed decision report; it verifies offline with the CA
    # certificate, names each signature with its meaning, and its sha256 is in the trail.
    with service.client("audrey") as client:
        report = client.get(f"/api/v1/requests/{request_id}/report.pdf")
        assert report.status_code == 200, report.text
        assert report.headers["content-type"] == "application/pdf"
        trail = client.get("/api/v1/audit", params={"action": "report.issued"}).json()
    assert (
        trail["items"][0]["event"]["payload"]["sha256"]
        == hashlib.sha256(report.content).hexdigest()
    )
    report_file = tmp_path / "decision.pdf"
    report_file.write_bytes(report.content)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "governance.cli",
            "report",
            "verify",
            str(report_file),
            "--trust",
            str(service.home / "report-ca.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = subprocess.run(
        ["pdftotext", "-layout", str(report_file), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Workflow: PROMOTED" in text and "Route loan files to a reviewer" in text
    assert "Maria Risk" in text and "Bob Owner" in text and "Meaning: “approve”" in text

    # and the LL144 bias audit of the same evidence, with the data's source and dates
    audit_query = {"source": "held-out census sample", "from": "1994-01-01", "to": "1994-12-31"}
    with service.client("audrey") as client:
        bias = client.get(
            f"/api/v1/decisions/{approved['gateDecisionId']}/bias-audit.pdf", params=audit_query
        )
    assert bias.status_code == 200, bias.text
    bias_file = tmp_path / "bias.pdf"
    bias_file.write_bytes(bias.content)
    bias_text = subprocess.run(
        ["pdftotext", "-layout", str(bias_file), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "held-out census sample" in bias_text and "1994-01-01 to 1994-12-31" in bias_text

    # The promotion's attestation verifies against the artifact with the service's key,
    # and fails for other bytes.
    decision_id = admission(service, "2", name)["decisionId"]
    with service.client("serving") as client:
        envelope = client.get(f"/api/v1/decisions/{decision_id}/attestation").json()
    statement_file = tmp_path / "attestation.json"
    statement_file.write_text(json.dumps(envelope))
    key = service.home / "signing-key.pub.pem"
    verify = [sys.executable, "-m", "governance.cli", "attest", "verify", str(statement_file)]
    ok = subprocess.run(
        [*verify, "--artifact", str(demo_dir / "income-reweighed.skops"), "--key", str(key)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    other = subprocess.run(
        [*verify, "--artifact", str(demo_dir / "income-full.skops"), "--key", str(key)],
        capture_output=True,
        text=True,
    )
    assert other.returncode == 1 and "artifact" in other.stderr

    with service.client("bob") as client:  # a business owner may not revoke
        assert (
            client.post(f"/api/v1/requests/{request_id}/revoke", json={"reason": "x"}).status_code
            == 403
        )
    with service.client("maria") as client:
        revoked = client.post(
            f"/api/v1/requests/{request_id}/revoke",
            json={"reason": "drift in production inputs"},
        )
    assert revoked.status_code == 200, revoked.text
    denied = admission(service, "2", name)
    assert denied["decision"] == "deny"
    assert "revoked" in denied["reason"] and "drift in production inputs" in denied["reason"]

    with service.client("audrey") as client:
        trail = client.get("/api/v1/audit", params={"subject": f"model:{name}@2"}).json()
        verified = client.get("/api/v1/audit/verify").json()
    actions = [item["event"]["action"] for item in reversed(trail["items"])]
    assert actions == [
        "request.submitted",
        "request.start_checks",
        "gate.decision_recorded",
        "request.checks_passed",
        "signature.approve",
        "signature.approve",
        "request.approve",
        "request.promote",
        "report.issued",
        "report.issued",
        "request.revoke",
    ]
    assert verified["intact"] is True

    # Later, the auditor asks for proofs against the kept checkpoint and checks them
    # offline with the service's public key only.
    seq = trail["items"][0]["event"]["seq"]  # the revocation
    with service.client("audrey") as client:
        bundle = client.get(
            "/api/v1/audit/proof", params={"sinceSize": kept_size, "event": seq}
        ).json()
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    (tmp_path / "kept.txt").write_text(kept)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "governance.cli",
            "audit",
            "check",
            str(tmp_path / "bundle.json"),
            "--public-key",
            str(key),
            "--since",
            str(tmp_path / "kept.txt"),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_blocked_then_waived_by_the_policy_role(module_service: Service, demo_dir: Path) -> None:
    service, name = module_service, "income-waived"
    register(service, name)
    request_id = submit(service, demo_dir, "income-full", "1", name=name)["id"]
    blocked = service.wait_for_state(request_id, "awaiting_approval", "blocked")
    assert blocked["state"] == "blocked" and blocked["verdict"] == "blocked"
    assert "equalized_odds_difference" in blocked["stateReason"]

    with service.client("dana") as client:
        short = client.post(
            f"/api/v1/requests/{request_id}/waiver", json={"justification": "pls", "days": 30}
        )
        assert short.status_code == 422 and short.json()["field"] == "justification"
        too_long = client.post(
            f"/api/v1/requests/{request_id}/waiver",
            json={"justification": "A" * 40, "days": 365},
        )
        assert too_long.status_code == 422 and "90" in too_long.json()["detail"]
        asked = client.post(
            f"/api/v1/requests/{request_id}/waiver",
            json={
                "justification": "Interim model while the reweighed one is validated; "
                "manual review of every declined application",
                "days": 30,
            },
        )
    assert asked.status_code == 200, asked.text
    assert asked.json()["state"] == "waiver_requested"

    # Only the policy's waiver role decides: not a model risk officer.
    assert sign(service, "maria", request_id, "waive").status_code == 403
    granted = sign(service, "carl", request_id, "waive")
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["state"] == "waived"
    assert body["verdict"] == "blocked"  # the evidence stays a fail; the waiver is separate
    assert body["waiver"]["days"] == 30
    answer = admission(service, "1", name)
    assert answer["decision"] == "allow" and answer["state"] == "waived"

    with service.client("serving") as client:
        envelope = client.get(f"/api/v1/decisions/{answer['decisionId']}/attestation").json()
    import base64

    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert predicate["decision"] == "waived" and predicate["verdict"] == "blocked"
    assert predicate["signatures"][0]["name"] == "Carl Chief"


def test_segregation_of_duties_and_illegal_moves(module_service: Service, demo_dir: Path) -> None:
    service, name = module_service, "income-duties"
    register(service, name)
    # sam holds data_scientist and model_risk_officer: may submit, may sign others' models,
    # but never the one sam submitted.
    request_id = submit(service, demo_dir, "income-reweighed", "2", who="sam", name=name)["id"]
    service.wait_for_state(request_id, "awaiting_approval")
    refused = sign(service, "sam", request_id)
    assert refused.status_code == 403
    assert "segregation of duties" in refused.json()["detail"]

    with service.client("ci") as client:
        early = client.post(f"/api/v1/requests/{request_id}/promote")
    assert early.status_code == 409
    assert early.json()["state"] == "awaiting_approval"
    assert "cannot promote" in early.json()["detail"]

    # A second request for the same version and target while one is open is refused.
    files = {
        "artifact": ("m.skops", (demo_dir / "income-reweighed.skops").read_bytes()),
        "data": ("test.parquet", (demo_dir / "test.parquet").read_bytes()),
    }
    form = {"model": name, "version": "2", "label": TARGET}
    with service.client("dana") as client:
        duplicate = client.post("/api/v1/requests", data=form, files=files)
        assert duplicate.status_code == 409
        other_bytes = client.post(
            "/api/v1/requests",
            data=form,
            files={**files, "artifact": ("m.skops", (demo_dir / "income-full.skops").read_bytes())},
        )
        assert other_bytes.status_code == 422
        assert "bump the model version" in other_bytes.json()["detail"]
        unknown = client.post("/api/v1/requests", data={**form, "model": "nope"}, files=files)
        assert unknown.status_code == 404

    with service.client("bob") as client:
        rejected = client.post(
            f"/api/v1/requests/{request_id}/signatures",
            json={"meaning": "reject", "comment": "not convinced", "password": PASSWORD},
        )
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    assert sign(service, "maria", request_id).status_code == 409


def gate_submit(
    service: Service, demo_dir: Path, model: str, version: str, policy: Path, name: str
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "governance.cli",
        "gate",
        "--policy",
        str(policy),
        "--model",
        str(demo_dir / f"{model}.skops"),
        "--data",
        str(demo_dir / "test.parquet"),
        "--reference",
        str(demo_dir / "train.parquet"),
        "--target",
        TARGET,
        "--model-name",
        name,
        "--model-version",
        version,
        "--submit",
        "--server",
        service.url,
    ]
    env = {**service.env(), "GOVERNANCE_TOKEN": service.tokens["ci"]}
    env.pop("GOVERNANCE_DATABASE_URL")  # the CI machine records nothing itself
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_gate_submit_opens_the_request_with_local_evidence(
    module_service: Service, demo_dir: Path
) -> None:
    service, name = module_service, "income-gate"
    register(service, name)
    policy = service.home / "policies" / "high.yaml"  # the policy the service applies

    passed = gate_submit(service, demo_dir, "income-reweighed", "5", policy, name)
    assert passed.returncode == 0, passed.stderr
    assert "is awaiting_approval" in passed.stderr
    # the service re-computed the checks from the uploaded model and data: no mismatch
    assert "evidence re-computed by the service" in passed.stderr
    blocked = gate_submit(service, demo_dir, "income-full", "6", policy, name)
    assert blocked.returncode == 1, blocked.stderr
    assert "is blocked" in blocked.stderr

    with service.client("audrey") as client:
        listed = client.get("/api/v1/requests", params={"model": name}).json()
    states = {item["version"]: item["state"] for item in listed["items"]}
    assert states == {"5": "awaiting_approval", "6": "blocked"}
    with service.client("audrey") as client:
        blocked_request = client.get(f"/api/v1/requests/{listed['items'][0]['id']}").json()
    assert blocked_request["evidence"]["mismatches"] == []  # blocked by the policy, honestly
    assert all(item["submitter"] == "token:" + item["submitter"][6:] for item in listed["items"])

    # Evidence judged under another policy is refused, and nothing is recorded.
    other = gate_submit(service, demo_dir, "income-reweighed", "7", PACKAGED / "low.yaml", name)
    assert other.returncode == 2
    assert "judged under policy" in other.stderr
    with service.client("audrey") as client:
        assert client.get("/api/v1/requests", params={"model": name}).json()["total"] == 2
