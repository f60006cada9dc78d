"""The console's catalog pages, through the app in-process (Litestar's TestClient) on SQLite
and on PostgreSQL, signed in through the console's own form: the model inventory and a
model's history, the audit trail with its chain check (intact, then tampered), the
policies, a policy, the diff of two versions, and a draft's impact. No check job runs: the
stored decisions are written directly, as the workflow would have recorded them."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import yaml
from litestar.testing import TestClient
from sqlalchemy import func, update
from sqlmodel import Session, select

from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.domain.evidence import Artifact, EvidenceManifest, PolicyRef
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.domain.results import CheckResult, RuleOutcome, Severity, status_of
from governance.domain.verdict import decide
from governance.resources import PACKAGED_POLICIES
from governance.services.people import SYSTEM
from governance.store.repository import append_audit, in_transaction, record_decision
from governance.store.tables import AuditEventRow, GateDecision, PromotionRequest
from governance.web.app import create_app
from tests.homes import initialise_home

pytest_plugins = ["tests.db_fixtures"]
# What is tested here is what the service does with a verdict: its check jobs run in this
# process (tests/in_process.py); the isolation has tests of its own.
pytestmark = pytest.mark.usefixtures("checks_in_process")

PASSWORD = "a-long-test-passphrase"
PEOPLE = {
    "dana": ("Dana Scientist", ["data_scientist"]),  # owns the models: an owner is a person
    "bob": ("Bob Owner", ["business_owner"]),
    "audrey": ("Audrey Auditor", ["auditor"]),
}
NO_FILE = ("", b"", "application/octet-stream")  # a file input left empty
MODELS = 60  # registered besides "credit": three pages of 25
PROBES = 150  # extra audit events: more than one page of 100


def credit_policy(version: int, roc_auc_min: float) -> dict[str, Any]:
    """A small medium-tier policy: one performance rule, one signature."""
    return {
        "apiVersion": "governance/v1",
        "kind": "PromotionPolicy",
        "metadata": {"name": "credit-medium", "version": version},
        "appliesTo": {"riskTier": "medium", "targets": ["production"]},
        "checks": [
            {
                "id": "perf",
                "type": "performance",
                "rules": [{"metric": "roc_auc", "min": roc_auc_min, "basis": "validation"}],
            }
        ],
        "approvals": {"quorum": 1, "roles": ["model_risk_officer"], "expiresAfterDays": 365},
        "waivers": {"allowed": False},
    }


def manifest(policy: PromotionPolicy, version: str, auc: float) -> EvidenceManifest:
    """The evidence of one performance check, in the shape the check stores."""
    bound = policy.checks[0].rules[0].min  # type: ignore[union-attr]
    outcome = RuleOutcome(
        rule=f"roc_auc ≥ {bound:g}",
        observed=auc,
        threshold=f"≥ {bound:g}",
        passed=auc >= bound,
        severity=Severity.BLOCKING,
        detail=f"roc_auc is {auc:.4f} on 1,000 rows",
    )
    results = [
        CheckResult(
            id="perf",
            type="performance",
            status=status_of([outcome]),
            summary="stored",
            rules=[outcome],
            metrics={"rows": 1000, "accuracy": 0.85, "roc_auc": auc},
        )
    ]
    return EvidenceManifest(
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        model_name="credit",
        model_version=version,
        target="y",
        task="classification",
        policy=PolicyRef(
            name=policy.metadata.name,
            version=policy.metadata.version,
            risk_tier=policy.applies_to.risk_tier,
            sha256=policy.content_hash,
        ),
        artifacts=[
            Artifact(role="model", uri="file:///m.skops", sha256=version * 64, format="skops"),
            Artifact(role="data", uri="file:///d.csv", sha256="d" * 64, format="csv", rows=1000),
        ],
        libraries={},
        seeds={},
        results=results,
        decision=decide(results),
    )


def admit(governance: Governance, evidence: EvidenceManifest, policy: PromotionPolicy) -> str:
    """A decision and an approved request for it, in one transaction (the workflow would
    get there through the checks and a signature)."""

    def work(session: Session) -> str:
        decision_id = record_decision(session, evidence, policy, "dana")
        decision = session.get(GateDecision, decision_id)
        assert decision is not None
        request = PromotionRequest(
            id=str(uuid4()),
            model_version_id=decision.model_version_id,
            target="production",
            policy_id=decision.policy_id,
            submitter="dana",
            state="approved",
            decision_id=decision_id,
            inputs={},
        )
        session.add(request)
        return request.id

    return in_transaction(governance.engine, work)


@dataclass
class World:
    client: TestClient[Any]
    governance: Governance
    requests: list[str]  # credit@1 (judged under credit-medium v1), credit@2 (under v2)

    def sign_in(self, username: str) -> None:
        self.client.cookies.clear()
        form = self.client.get("/login")
        token = hidden(form.text, "login_token")
        response = self.client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "login_token": token, "next": "/"},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text

    def page(self, url: str, status: int = 200, **kwargs: Any) -> str:
        response = self.client.get(url, **kwargs)
        assert response.status_code == status, (url, response.status_code, response.text[:2000])
        return html.unescape(response.text)

    def events(self) -> int:
        with Session(self.governance.engine) as session:
            return session.exec(select(func.count()).select_from(AuditEventRow)).one()


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


def rows(page: str) -> list[str]:
    """The text of each body row of the page's tables, tags taken out."""
    body = "".join(re.findall(r"<tbody>(.*?)</tbody>", page, re.S))
    return [
        " ".join(re.sub(r"<[^>]+>", " ", row).split())
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def probe_events(session: Session) -> None:
    for number in range(PROBES):
        append_audit(
            session,
            actor="probe",
            action="probe.ping",
            subject=f"probe:{number}",
            payload={"number": number, "note": "<b>not markup</b>"},
        )


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """The service with a business owner and an auditor, 60 models plus "credit" with two
    approved versions under two stored policy versions, and 150 more audit events."""
    home = tmp_path / "home"
    settings = replace(Settings.from_env(database_url, home), policies=PACKAGED_POLICIES)
    initialise_home(settings, PASSWORD)
    governance = open_governance(settings)
    try:
        for username, (full_name, roles) in PEOPLE.items():
            governance.people.add_user(SYSTEM, username, full_name, PASSWORD, roles)
        for number in range(MODELS):
            tier = ("low", "medium", "high")[number % 3]
            governance.workflow.register_model(SYSTEM, f"m-{number:02d}", tier, "dana")
        v1, v2 = parse_policy(credit_policy(1, 0.8)), parse_policy(credit_policy(2, 0.75))
        requests = [
            admit(governance, manifest(v1, "1", 0.88), v1),
            admit(governance, manifest(v2, "2", 0.86), v2),
        ]
        in_transaction(governance.engine, probe_events)
    finally:
        governance.close()
    with TestClient(app=create_app(settings, run_jobs=False)) as client:
        yield World(client, client.app.state.governance, requests)


# --- models -------------------------------------------------------------------------


def test_the_model_inventory_and_a_models_history(world: World) -> None:
    assert world.client.get("/models", follow_redirects=False).status_code == 303  # sign in
    world.sign_in("bob")
    page = world.page("/models")
    listed = rows(page)
    assert len(listed) == 25
    assert listed[0].startswith("credit medium")  # by name: "credit" before "m-00"
    assert listed[1].startswith("m-00 low dana 0")
    assert f"Page 1 of 3 · {MODELS + 1} in all" in page
    assert '<label for="f-name">Name contains</label>' in page
    assert 'href="/models?page=2" rel="next"' in page

    last = rows(world.page("/models?page=3"))
    assert [row.split()[0] for row in last] == [f"m-{n}" for n in range(49, 60)]
    named = rows(world.page("/models?name=m-1"))
    assert [row.split()[0] for row in named] == [f"m-{n}" for n in range(10, 20)]
    high = world.page("/models?tier=high&size=50")
    assert {row.split()[1] for row in rows(high)} == {"high"} and "20 in all" in high
    # htmx asks for the results only: the same list without the filter form
    partial = world.page("/models?name=m-5", headers={"HX-Request": "true"})
    assert 'id="results"' in partial and "Name contains" not in partial
    assert [row.split()[0] for row in rows(partial)] == [f"m-{n}" for n in range(50, 60)]
    assert "size: is 30" in world.page("/models?size=30", 422)

    # one model: its requests newest first, each linking to its page
    page = world.page("/models/credit")
    assert "<h1>credit</h1>" in page
    listed = rows(page)
    assert [row.split()[0] for row in listed] == ["2", "1"]
    assert "✓ approved" in listed[0] and "credit-medium v2" in listed[0]
    assert "credit-medium v1" in listed[1] and "dana" in listed[1]
    for request_id in world.requests:
        assert f'href="/requests/{request_id}"' in page
    assert 'href="/policies/credit-medium/2"' in page
    assert "audit" not in page.split("<main")[1].split("</dl>")[0]  # bob may not read it
    assert "No version of this model" in world.page("/models/m-00")
    assert "model 'no-such-model' does not exist" in world.page("/models/no-such-model", 404)


# --- the audit trail ----------------------------------------------------------------


def test_the_audit_trail_and_its_chain_check(world: World) -> None:
    world.sign_in("bob")  # a business owner may not read the trail
    assert "bob (business_owner) may not read audit" in world.page("/audit", 403)
    world.page("/audit/verify", 403)
    world.page("/audit?seq=1", 403)

    world.sign_in("audrey")
    total = world.events()
    pages = -(-total // 100)
    page = world.page("/audit")
    listed = rows(page)
    assert len(listed) == 100
    assert listed[0].startswith(f"{total} ") and "session.started user:audrey" in listed[0]
    assert f"{total - 2} " in listed[2] and "probe.ping" in listed[2]
    assert f"Page 1 of {pages} · {total} in all" in page
    assert 'hx-get="/audit/verify"' in page and 'hx-trigger="load"' in page
    assert '"number": 149' in page
    assert "&lt;b&gt;not markup&lt;/b&gt;" in world.client.get("/audit").text  # text, not markup

    # ?seq= lands on the page that holds the event, marked
    found = world.page("/audit?seq=5")
    assert f"Page {pages} of {pages}" in found
    assert '<tr id="event-5" aria-current="true">' in found
    assert "<mark><strong>5</strong></mark>" in found
    assert "audit event 999999 does not exist" in world.page("/audit?seq=999999", 404)
    assert "Event 5 does not match these filters" in world.page("/audit?seq=5&actor=probe")

    # filters match exactly, page by 100, and htmx gets the results only
    registered = world.page("/audit?action=model.registered")
    assert len(rows(registered)) == MODELS and f"{MODELS} in all" in registered
    assert all(" model.registered model:" in row for row in rows(registered))
    assert len(rows(world.page("/audit?subject=probe:3"))) == 1
    second = world.page("/audit?actor=probe&page=2")
    assert len(rows(second)) == PROBES - 100 and 'href="/audit?actor=probe&page=1"' in second
    partial = world.page("/audit?actor=probe", headers={"HX-Request": "true"})
    assert 'id="results"' in partial and 'hx-get="/audit/verify"' not in partial

    # the chain check: a fragment for the page's status box
    fragment = world.page("/audit/verify", headers={"HX-Request": "true"})
    assert "<html" not in fragment and "✓ intact" in fragment
    assert f"Intact: {world.events():,} events, each hash covers the one before." in fragment
    assert "governance audit verify" in fragment and "signed checkpoint" in fragment
    assert "<h1>Audit chain check</h1>" in world.page("/audit/verify")  # a page without htmx

    with Session(world.governance.engine) as session:  # rewritten behind the service's back
        session.exec(  # type: ignore[call-overload]
            update(AuditEventRow)
            .where(AuditEventRow.seq == 7)  # type: ignore[arg-type]
            .values(payload={"forged": True})
        )
        session.commit()
    broken = world.page("/audit/verify", headers={"HX-Request": "true"})
    assert "✗ broken" in broken and "Intact" not in broken
    assert "The chain is broken: 1 problem(s)" in broken
    assert "event 7: content does not match its hash: rewritten" in broken
    assert 'href="/audit?seq=7"' in broken


# --- policies -----------------------------------------------------------------------


def sha256_of(page: str) -> str:
    match = re.search(r"<dt>sha256</dt><dd><code>([0-9a-f]{64})</code>", page)
    assert match
    return match.group(1)


def test_the_policies_one_policy_and_a_diff(world: World) -> None:
    world.sign_in("bob")
    page = world.page("/policies")
    force, history = page.split('id="history-title"')
    for name, version in (("low-risk", 2), ("medium-risk", 1), ("high-risk", 2)):
        assert f'href="/policies/{name}/{version}"' in force
    assert "credit-medium" not in force
    listed = rows(history)
    assert [row.split()[:3] for row in listed if row.startswith("credit-medium")] == [
        ["credit-medium", "v2", "–"],
        ["credit-medium", "v1", "–"],
    ]
    assert all(row.endswith(" 1") for row in listed if row.startswith("credit-medium"))
    medium = next(row for row in listed if row.startswith("medium-risk"))
    assert "✓ in force" in medium and "not yet" in medium

    # one policy: its rules with their basis, who signs, and the canonical source
    page = world.page("/policies/medium-risk/1")
    assert "<h1>medium-risk v1" in page and "✓ in force" in page
    rules = rows(page)
    assert (
        "performance performance roc_auc ≥ 0.8 ✗ blocks "
        "SR 26-2 model validation: minimum accuracy" in rules
    )
    assert any("demographic_parity_ratio ≥ 0.8" in row and "! warns" in row for row in rules)
    assert "1 signature(s) from model_risk_officer" in page
    assert "allowed, granted by chief_risk_officer, for at most 90 days" in page
    source = re.search(r"<pre[^>]*>(.*?)</pre>", page, re.S)
    assert source is not None
    assert parse_policy(yaml.safe_load(source.group(1))).content_hash == sha256_of(page)
    stored = world.page("/policies/credit-medium/1")
    assert "– retired" in stored and "1 request(s) so far" in stored and "min: 0.8" in stored
    assert "policy credit-medium v9 does not exist" in world.page("/policies/credit-medium/9", 404)

    # the diff: changed lines marked + and − in text, with their line numbers
    page = world.page("/policies/diff?name=credit-medium&from=1&to=2")
    changed = [row for row in rows(page) if row[:1] in ("+", "−")]
    assert [row.split(" ", 2)[:2] for row in changed] == [
        ["−", "removed"],
        ["+", "added"],
        ["−", "removed"],
        ["+", "added"],
    ]
    assert changed[0].endswith("min: 0.8") and changed[1].endswith("min: 0.75")
    assert changed[2].endswith("version: 1") and changed[3].endswith("version: 2")
    assert "2 line(s) added (+), 2 removed (−)" in page
    assert '<label for="d-from">From</label>' in page and '<option value="1" selected>' in page
    assert page.count('<tr class="add">') == 2 and page.count('<tr class="del">') == 2
    # no versions named: the newest against the one before it
    assert "2 line(s) added (+), 2 removed (−)" in world.page("/policies/diff?name=credit-medium")
    medium = sha256_of(world.page("/policies/medium-risk/1"))
    credit = sha256_of(world.page("/policies/credit-medium/2"))
    across = world.page(f"/policies/diff?from={medium}&to={credit}")  # by sha256, any names
    assert "name: credit-medium" in across and "name: medium-risk" in across
    assert "identical" in world.page("/policies/diff?name=credit-medium&from=2&to=2")
    assert "does not exist" in world.page("/policies/diff?name=credit-medium&from=7", 404)
    assert "give the policy's name" in world.page("/policies/diff", 422)


# --- impact -------------------------------------------------------------------------


def test_a_drafts_impact_and_a_bad_draft(world: World) -> None:
    world.sign_in("bob")  # reading policies is enough: the page changes nothing
    form = world.page("/policies/impact")
    token = hidden(form, "csrf_token")
    assert 'enctype="multipart/form-data"' in form
    events = world.events()

    def send(draft: str, status: int = 200, file: tuple[str, bytes, str] = NO_FILE) -> str:
        """As a browser sends the form: multipart, the file part empty when none is chosen."""
        response = world.client.post(
            "/policies/impact", data={"csrf_token": token, "draft": draft}, files={"file": file}
        )
        assert response.status_code == status, response.text
        return html.unescape(response.text)

    tightened = yaml.safe_dump(credit_policy(3, 0.9))
    page = send(tightened)
    assert "Adopting the draft changes 2 verdict(s)." in page
    listed = rows(page)
    for version, auc in (("1", "0.88"), ("2", "0.86")):
        row = next(r for r in listed if r.startswith(f"credit@{version} "))
        assert "✓ pass ✗ blocked ✗ CHANGED" in row
        assert f"perf: roc_auc ≥ 0.9 (observed {auc}) ✓ pass → ✗ fail" in row
    assert f'href="/requests/{world.requests[0]}"' in page
    # the same draft as a file; a draft for another tier covers nothing here
    upload = send("", file=("draft.yaml", tightened.encode(), "application/yaml"))
    assert "Adopting the draft changes 2 verdict(s)." in upload
    low = credit_policy(1, 0.5) | {"appliesTo": {"riskTier": "low", "targets": ["production"]}}
    page = send(yaml.safe_dump(low))
    assert "No verdict would change." in page
    assert "No version approved, waived or promoted falls under" in page
    assert "its policy is for risk tier medium; the draft for low" in page
    assert world.events() == events  # judged, nothing written

    # a bad draft comes back to the form with its problems by path, never a traceback
    wrong = credit_policy(3, 0.9)
    wrong["checks"][0]["rules"][0]["min"] = "high"
    page = send(yaml.safe_dump(wrong), 422)
    assert "checks[0].rules[0].min: must be a number, not 'high'" in page
    assert "pasted draft is not a valid policy" in page
    assert "min: high" in page  # the draft is back in the text field, to be fixed
    assert "line 2, column" in send("apiVersion: [unclosed\nkind: x\n", 422)
    assert "draft: is empty" in send("   ", 422)
    assert "(top level): expected a mapping" in send("just words", 422)
    assert "larger than 1 MiB" in send("#" * (1024 * 1024 + 1), 413)
    not_text = send("", 422, file=("draft.yaml", b"\xff\xfe\x00bad", "application/yaml"))
    assert "uploaded file draft.yaml is not a valid policy" in not_text
    assert "not a text file: a policy is UTF-8 YAML" in not_text
    too_large = world.client.post("/policies/impact", data={"draft": "#" * 3 * 1024 * 1024})
    assert too_large.status_code == 413 and "Too large" in too_large.text
    refused = world.client.post("/policies/impact", data={"draft": tightened})
    assert refused.status_code == 403 and "CSRF token" in refused.text


def test_viewers_who_ask_during_a_chain_check_share_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three viewers at once start one check of the whole trail; a viewer after it finished
    gets a fresh one (a rewrite must show at once)."""
    import threading
    import time

    from governance.services import catalog as catalog_service

    calls: list[int] = []

    def slow_check(units: object, published: object) -> dict[str, object]:
        calls.append(1)
        time.sleep(0.5)
        return {"intact": True, "events": len(calls)}

    monkeypatch.setattr(catalog_service, "audit_status", slow_check)
    status = catalog_service.ChainStatus(units=None)  # type: ignore[arg-type]
    answers: list[dict[str, object]] = []
    viewers = [threading.Thread(target=lambda: answers.append(status.current())) for _ in range(3)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join()
    assert len(calls) == 1 and [a["events"] for a in answers] == [1, 1, 1]
    assert status.current()["events"] == 2
