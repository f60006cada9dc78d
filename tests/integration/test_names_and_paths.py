"""Names and errors (issue 13, item 12): a model name or version that could be a path, a
megabyte or a right-to-left override is refused with 400 naming the field and the pattern,
wherever it comes in; and no answer of the API shows where the server keeps its data."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from governance.bootstrap import Governance
from governance.config import Settings
from governance.domain.errors import InputError
from governance.services.people import SYSTEM
from governance.web.app import create_app
from tests.homes import initialise_home

pytest_plugins = ["tests.db_fixtures"]

BAD = {
    "a path": "../../etc/passwd",
    "a megabyte name": "v" * 100_000,
    "a right-to-left override": "1\u202egpj.exe",
    "a space": "my model",
    "a leading dot": ".hidden",
}
PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


@dataclass
class Api:
    client: TestClient[Litestar]
    governance: Governance
    home: Path
    headers: dict[str, str]

    def audit_total(self) -> int:
        answer = self.client.get("/api/v1/audit", headers=self.headers)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["total"])


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings.from_env(database_url, tmp_path / "home")
    initialise_home(settings, "an-admin-test-passphrase")
    app = create_app(settings, run_jobs=False)
    governance: Governance = app.state.governance
    token = governance.people.create_token(SYSTEM, "robot", ["admin", "ci", "serving"], 1).token
    with TestClient(app) as client:
        yield Api(client, governance, settings.home, {"Authorization": f"Bearer {token}"})


def _refused(answer: Any, field: str) -> None:
    assert answer.status_code == 400, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["field"] == field, body
    assert PATTERN in body["detail"] + (body.get("fix") or "")
    assert len(answer.text) < 2_000  # the megabyte is not echoed back
    assert "\u202e" not in answer.text


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_names_are_refused_where_they_come_in(api: Api, kind: str) -> None:
    bad = BAD[kind]
    registered = api.client.post(
        "/api/v1/models", json={"name": "scorer", "riskTier": "low"}, headers=api.headers
    )
    assert registered.status_code == 201, registered.text
    before = api.audit_total()

    submitted = api.client.post(
        "/api/v1/requests",
        data={"model": "scorer", "version": bad, "label": "y", "target": "production"},
        files={"artifact": ("m.skops", b"not a model"), "data": ("d.csv", b"a,y\n1,0\n")},
        headers=api.headers,
    )
    _refused(submitted, "version")
    _refused(
        api.client.post(
            "/api/v1/models", json={"name": bad, "riskTier": "low"}, headers=api.headers
        ),
        "name",
    )
    # In an address: a segment of 100,000 characters is the HTTP server's to refuse, and
    # one with '/' reaches no route (404).
    if len(bad) < 1000 and "/" not in bad:
        path = quote(bad, safe="")
        logged = api.client.post(
            f"/api/v1/models/scorer/versions/{path}/predictions",
            json={"batchId": "b1", "rows": [{"a": 1, "prediction": 0, "timestamp": "2026-01-01"}]},
            headers=api.headers,
        )
        _refused(logged, "version")
        _refused(api.client.get(f"/api/v1/admission/scorer/{path}", headers=api.headers), "version")
    with pytest.raises(InputError, match="name"):  # a registry connector calls this
        api.governance.workflow.register_model(SYSTEM, bad, "low", None)
    assert api.audit_total() == before
    assert api.governance.workflow.list_requests().total == 0


def test_the_names_in_use_still_fit(api: Api) -> None:
    for name in ("income-full", "income-reweighed", "bench-model", "credit_v2.1", "A" * 128):
        answer = api.client.post(
            "/api/v1/models", json={"name": name, "riskTier": "low"}, headers=api.headers
        )
        assert answer.status_code == 201, answer.text
    _refused(
        api.client.post(
            "/api/v1/models", json={"name": "A" * 129, "riskTier": "low"}, headers=api.headers
        ),
        "name",
    )


def _zip_archive(member: str, content: bytes) -> bytes:
    """A zip archive, as a skops file is: it passes the upload's pickle refusal and fails
    in the check job, where a path could leak into the reason."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, content)
    return buffer.getvalue()


NOT_A_MODEL = _zip_archive("schema.json", b"not a model")

# Uploads the checks cannot use: each is stored, then fails in the check job.
BAD_UPLOADS = {
    "data that is not Parquet": {
        "artifact": ("m.skops", NOT_A_MODEL),
        "data": ("d.parquet", b"PAR1 not really"),
    },
    "a model that is not skops": {
        "artifact": ("m.skops", _zip_archive("other.txt", b"broken")),
        "data": ("d.csv", b"a,y\n1,0\n2,1\n"),
    },
    "data without rows": {"artifact": ("m.skops", NOT_A_MODEL), "data": ("d.csv", b"a,y\n")},
    "a reference that is not CSV": {
        "artifact": ("m.skops", NOT_A_MODEL),
        "data": ("d.csv", b"a,y\n1,0\n"),
        "reference": ("r.csv", b"\x00\x01\x02"),
    },
}


def test_no_answer_shows_the_data_directory(api: Api) -> None:
    homes = {str(api.home), str(api.home.resolve())}
    registered = api.client.post(
        "/api/v1/models", json={"name": "scorer", "riskTier": "low"}, headers=api.headers
    )
    assert registered.status_code == 201
    answers = []
    for number, files in enumerate(BAD_UPLOADS.values()):
        form = {"model": "scorer", "version": str(number), "label": "y", "target": "production"}
        submitted = api.client.post("/api/v1/requests", data=form, files=files, headers=api.headers)
        answers.append(submitted.text)
        assert submitted.status_code == 202, submitted.text
    unusable = api.client.post(
        "/api/v1/requests",
        data={"model": "scorer", "version": "9", "label": "y"},
        files={"artifact": ("model", b"x"), "data": ("d.csv", b"a\n1\n")},
        headers=api.headers,
    )
    answers.append(unusable.text)
    workflow = api.governance.workflow
    for job in workflow.claimable_jobs():
        workflow.run_job(job)
    listed = api.client.get("/api/v1/requests", headers=api.headers)
    answers.append(listed.text)
    for item in listed.json()["items"]:
        assert item["state"] == "blocked", item
        assert "could not run" in item["stateReason"]
        answers.append(api.client.get(f"/api/v1/requests/{item['id']}", headers=api.headers).text)
    answers.append(api.client.get("/api/v1/audit", headers=api.headers).text)
    leaked = [answer[:300] for answer in answers if any(home in answer for home in homes)]
    assert leaked == []


def test_the_gate_refuses_a_bad_name_with_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from governance.cli import app

    data = tmp_path / "data.csv"
    data.write_text("a,y\n1,0\n")
    arguments = ["gate", "--policy", "policies/low.yaml", "--data", str(data), "--target", "y"]
    result = CliRunner().invoke(app, [*arguments, "--model-version", "../../etc/passwd"])
    assert result.exit_code == 2, result.output
    assert "--model-version" in result.output and PATTERN in result.output.replace("\n", "")
