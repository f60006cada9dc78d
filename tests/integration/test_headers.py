"""Cookies and headers (issue 13, item 11): the console's session cookie lives as long as
the session (Max-Age, not a date in 2083); HSTS over https; answers that carry a secret
are never cached; the API docs page loads nothing from another site."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from governance.config import Settings
from governance.web.app import create_app
from tests.homes import initialise_home

pytest_plugins = ["tests.db_fixtures"]

ADMIN_PASSWORD = "an-admin-test-passphrase"


@dataclass
class Served:
    app: Litestar
    session_hours: int


@pytest.fixture
def served(sqlite_url: str, tmp_path) -> Iterator[Served]:
    settings = Settings.from_env(sqlite_url, tmp_path / "home")
    initialise_home(settings, ADMIN_PASSWORD)
    app = create_app(settings, run_jobs=False)
    with TestClient(app):
        yield Served(app, settings.session_hours)


def _console_sign_in(client: TestClient[Litestar]) -> str:
    form = client.get("/login")
    login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert login_token, form.text
    answer = client.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD, "login_token": login_token[1]},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    cookies = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
    return next(c for c in cookies if c.startswith("governance_session="))


def test_the_session_cookie_lasts_as_long_as_the_session(served: Served) -> None:
    with TestClient(served.app, base_url="https://testserver.local") as client:
        header = _console_sign_in(client)
    morsel = SimpleCookie(header)["governance_session"]
    assert 0 < int(morsel["max-age"]) <= served.session_hours * 3600
    assert not morsel["expires"] or re.search(r"20[2-3]\d", morsel["expires"]), header
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"].lower() == "strict"


def test_hsts_over_https_only(served: Served) -> None:
    with TestClient(served.app, base_url="https://testserver.local") as client:
        for path in ("/health", "/login", "/api/v1/me"):
            hsts = client.get(path).headers.get("strict-transport-security", "")
            assert "max-age=" in hsts, path
    with TestClient(served.app) as client:
        assert "strict-transport-security" not in client.get("/health").headers


def test_answers_carrying_secrets_are_not_cached(served: Served) -> None:
    with TestClient(served.app) as client:
        signed_in = client.post(
            "/api/v1/sessions", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert signed_in.status_code == 201, signed_in.text
        answers = {"POST /api/v1/sessions": signed_in}
        auth = {"Authorization": f"Bearer {signed_in.json()['token']}"}
        answers["POST /api/v1/tokens"] = client.post(
            "/api/v1/tokens", json={"name": "robot", "roles": ["serving"]}, headers=auth
        )
        answers["POST /api/v1/webhooks"] = client.post(
            "/api/v1/webhooks",
            json={"url": "https://hooks.example.com/governance", "events": ["request.promoted"]},
            headers=auth,
        )
        answers["a wrong password"] = client.post(
            "/api/v1/sessions", json={"username": "admin", "password": "not-the-password"}
        )
    assert answers["POST /api/v1/tokens"].status_code == 201
    for what, answer in answers.items():
        assert "no-store" in answer.headers.get("cache-control", ""), what


def test_the_api_docs_load_nothing_from_another_site(served: Served) -> None:
    with TestClient(served.app) as client:
        pages = {path: client.get(path) for path in ("/schema", "/schema/swagger")}
        schema = client.get("/schema/openapi.json")
    assert schema.status_code == 200 and schema.json()["paths"]
    for path, page in pages.items():
        found = re.findall(r"""(?:src|href)\s*=\s*["']?(https?:)?//""", page.text)
        assert found == [], f"{path} loads from another site"
