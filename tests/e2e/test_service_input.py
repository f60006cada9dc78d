"""Bad input through HTTP: every refusal is a 4xx problem+json that names the field and
the fix, and leaves nothing behind (no request, no audit event, no stored file)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from governance.connectors.adult import TARGET
from tests.e2e.test_service_workflow import register
from tests.service_fixtures import Service, start_service, stop_service

pytest_plugins = ["tests.db_fixtures", "tests.service_fixtures"]


@pytest.fixture
def small_uploads(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GOVERNANCE_MAX_UPLOAD_MB", "1")
    running = start_service(tmp_path / "home", sqlite_url)
    yield running
    stop_service(running)


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


def audit_total(service: Service) -> int:
    with service.client("audrey") as client:
        return client.get("/api/v1/audit").json()["total"]


def stored_files(service: Service) -> list[Path]:
    return [p for p in (service.home / "blobs").rglob("*") if p.is_file()]


def test_json_bodies(small_uploads: Service) -> None:
    service = small_uploads
    before = audit_total(service)
    with service.client("dana") as client:
        malformed = client.post(
            "/api/v1/models", content=b'{"name": "x",', headers={"content-type": "application/json"}
        )
        problem(malformed, 400)
        unknown = problem(
            client.post("/api/v1/models", json={"name": "m", "riskTier": "high", "tier": 1}), 400
        )
        assert "tier" in unknown["detail"]
        missing = problem(client.post("/api/v1/models", json={"name": "m"}), 400)
        assert "riskTier" in missing["detail"]
        wrong_type = problem(
            client.post("/api/v1/models", json={"name": 3, "riskTier": "high"}), 400
        )
        assert "name" in wrong_type["detail"]
        tier = problem(client.post("/api/v1/models", json={"name": "m", "riskTier": "huge"}), 422)
        assert tier["field"] == "riskTier" and "low, medium or high" in tier["fix"]
        huge = client.post(
            "/api/v1/models",
            content=b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}',
            headers={"content-type": "application/json"},
        )
        problem(huge, 413)
    with service.client("maria") as client:
        bad_page = problem(client.get("/api/v1/requests", params={"limit": 0}), 400)
        assert "limit" in bad_page["detail"]
        bad_state = problem(client.get("/api/v1/requests", params={"state": "happy"}), 422)
        assert bad_state["field"] == "state"
        problem(client.get("/api/v1/requests/no-such-id"), 404)
    with service.client("serving") as client:
        digest = problem(client.get("/api/v1/admission/m/1", params={"digest": "md5:x"}), 422)
        assert digest["field"] == "digest" and "sha256:" in digest["fix"]
    assert audit_total(service) == before


def test_uploads(small_uploads: Service) -> None:
    service = small_uploads
    register(service)
    before = audit_total(service)
    form = {"model": "income", "version": "1", "label": TARGET}
    model = ("m.skops", b"model bytes: refused before anything reads them")
    small = ("test.csv", b"age,income\n30,>50K\n")
    with service.client("dana") as client:
        too_big = client.post(
            "/api/v1/requests",
            data=form,
            files={"artifact": model, "data": ("big.csv", b"x" * (1024 * 1024 + 1))},
        )
        body = problem(too_big, 422)
        assert body["field"] == "data" and "1 MiB" in body["detail"]

        no_suffix = problem(
            client.post(
                "/api/v1/requests", data=form, files={"artifact": ("model", b"x"), "data": small}
            ),
            422,
        )
        assert no_suffix["field"] == "artifact"

        no_data = problem(
            client.post("/api/v1/requests", data=form, files={"artifact": model}), 422
        )
        assert no_data["field"] == "data"

        no_label = problem(
            client.post(
                "/api/v1/requests",
                data={"model": "income", "version": "1"},
                files={"artifact": model, "data": small},
            ),
            422,
        )
        assert no_label["field"] == "label"

        bad_evidence = problem(
            client.post(
                "/api/v1/requests",
                data=form,
                files={"artifact": model, "evidence": ("manifest.json", b'{"not": "a manifest"}')},
            ),
            422,
        )
        assert bad_evidence["field"] == "evidence"

        whole_body = client.post(
            "/api/v1/requests",
            data=form,
            files={"artifact": model, "data": ("d.csv", b"x" * (6 * 1024 * 1024))},
        )
        problem(whole_body, 413)

    assert audit_total(service) == before
    with service.client("audrey") as client:
        assert client.get("/api/v1/requests").json()["total"] == 0
    # The refused uploads left no files behind; what was stored before the refusal (the
    # model, content-addressed) is harmless and deduplicated.
    assert all(not p.name.startswith(".upload-") for p in stored_files(service))
