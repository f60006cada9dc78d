"""The console in a real browser: Debian's Chromium, headless, driven by Playwright, against
a served process on SQLite and on PostgreSQL.

A data scientist submits through the API → the checks run → the model risk officer and the
business owner each sign in and sign → the data scientist promotes → the signed report
downloads and verifies. Self-approval, a form without its CSRF token and an auditor's
attempt to change anything are refused by the server. Each test saves a screenshot of its
final page under test-output/console/ (git ignores it)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.service_fixtures import (
    PASSWORD,
    Service,
    register,
    start_service,
    stop_service,
    submit,
)

pytest_plugins = ["tests.db_fixtures", "tests.service_fixtures"]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"


@dataclass
class Candidates:
    """One served process per backend for the whole module, with its candidates submitted
    once (their check jobs run in the server, one after the other)."""

    service: Service
    approvable: str  # income-reweighed v1 by dana: awaiting approval
    own: str  # income-reweighed v2 by sam, who is also a model risk officer
    blocked: str  # income-full v3 by dana: blocked by the fairness rule


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def candidates(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, demo_dir: Path
) -> Iterator[Candidates]:
    home = tmp_path_factory.mktemp(f"console-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'governance.db'}"
    else:
        schema = f"console_{secrets.token_hex(6)}"
        database = request.getfixturevalue("postgres_database")
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"})
        url = url.render_as_string(hide_password=False)
    service = start_service(home / "home", url)
    try:
        register(service)
        ids = [
            submit(service, demo_dir, model, version, who=who)["id"]
            for model, version, who in (
                ("income-reweighed", "1", "dana"),
                ("income-reweighed", "2", "sam"),
                ("income-full", "3", "dana"),
            )
        ]
        for request_id, state in zip(ids, ("awaiting_approval",) * 2 + ("blocked",), strict=True):
            service.wait_for_state(request_id, state)
        yield Candidates(service, *ids)
    finally:
        stop_service(service)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium and chromium-driver "
            "(scripts/setup does)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context per person; the last page of the test is photographed."""
    contexts = []
    pages: list[Page] = []

    def new_page(service: Service) -> Page:
        context = browser.new_context(base_url=service.url, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        pages.append(page)
        return page

    yield new_page
    if pages:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
        pages[-1].screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    for context in contexts:
        context.close()


def sign_in(page: Page, username: str, path: str = "/") -> None:
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("header .whoami")).to_contain_text(username_full_name(username))


def username_full_name(username: str) -> str:
    from tests.service_fixtures import PEOPLE

    return PEOPLE[username][0]


def sign_in_dialog(page: Page, button: str, comment: str) -> None:
    page.get_by_role("button", name=button).click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("Meaning of this signature")
    dialog.get_by_label("Comment").fill(comment)
    dialog.get_by_label("Your password").fill(PASSWORD)
    dialog.locator("button[type=submit]").click()


def csrf_of(page: Page) -> str:
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    return token


def test_submit_sign_promote_and_verify_the_report_in_a_browser(
    candidates: Candidates, open_page, tmp_path: Path
) -> None:
    service, request_id = candidates.service, candidates.approvable

    maria = open_page(service)
    sign_in(maria, "maria")
    queue = maria.locator("main table")
    expect(queue).to_contain_text("income")
    maria.get_by_role("link", name="income").first.click()
    expect(maria.get_by_test_id("verdict")).to_contain_text("0 of 2 signatures")
    expect(maria.locator("#checks-title")).to_be_visible()
    assert maria.locator("figure img").count() >= 3  # the reports' SVG charts
    sign_in_dialog(maria, "Approve…", "Fairness within the policy; SHAP ranking reviewed.")
    expect(maria.locator(".flash.ok")).to_contain_text("You approved it.")
    expect(maria.get_by_test_id("verdict")).to_contain_text("1 of 2 signatures")
    # signed once: the button is gone, and her queue no longer lists it (sam's still waits)
    expect(maria.get_by_role("button", name="Approve…")).to_have_count(0)
    maria.goto("/")
    expect(maria.locator(f'main a[href="/requests/{request_id}"]')).to_have_count(0)
    expect(maria.locator(f'main a[href="/requests/{candidates.own}"]')).to_have_count(1)

    # bob signs on a tablet, with the keyboard: the page fits, the dialog opens with Enter
    bob = open_page(service)
    bob.set_viewport_size({"width": 768, "height": 1024})
    sign_in(bob, "bob", f"/requests/{request_id}")
    overflow = bob.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a tablet's screen"
    bob.get_by_role("button", name="Approve…").focus()
    bob.keyboard.press("Enter")
    dialog = bob.locator("dialog[open]")
    expect(dialog.get_by_label("Comment")).to_be_focused()
    bob.keyboard.type("The business case holds.")
    bob.keyboard.press("Tab")
    bob.keyboard.type(PASSWORD)
    bob.keyboard.press("Enter")
    expect(bob.locator(".flash.ok")).to_contain_text("You approved it.")
    expect(bob.get_by_test_id("verdict")).to_contain_text("approved")

    dana = open_page(service)
    sign_in(dana, "dana", f"/requests/{request_id}")
    dana.get_by_role("button", name="Promote…").click()
    dana.locator("dialog[open]").get_by_role("button", name="Promote").click()
    expect(dana.locator(".flash.ok")).to_contain_text("Promoted.")
    expect(dana.get_by_test_id("verdict")).to_contain_text("promoted")
    trail = dana.locator("section[aria-labelledby=trail-title]")
    expect(trail).to_contain_text("Maria Risk")
    expect(trail).to_contain_text("Bob Owner")

    with dana.expect_download() as download:
        dana.get_by_role("link", name=re.compile("Download the signed report")).click()
    saved = tmp_path / "report.pdf"
    download.value.save_as(saved)
    # as a regulator would: the CLI, offline, trusting only the CA certificate
    verified = subprocess.run(
        [sys.executable, "-m", "governance.cli", "report", "verify", str(saved),
         "--trust", str(service.home / "report-ca.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_self_approval_is_refused_in_the_browser(candidates: Candidates, open_page) -> None:
    """sam is a data scientist and a model risk officer: he submitted, and may not approve."""
    service, request_id = candidates.service, candidates.own

    sam = open_page(service)
    sign_in(sam, "sam", f"/requests/{request_id}")
    expect(sam.get_by_role("button", name="Approve…")).to_have_count(0)  # not offered ...
    expect(sam.get_by_test_id("why-not")).to_contain_text("segregation of duties")
    response = sam.request.post(  # ... and refused when forged, with a valid CSRF token
        f"/requests/{request_id}/sign",
        form={
            "csrf_token": csrf_of(sam),
            "meaning": "approve",
            "comment": "my own model looks fine",
            "password": PASSWORD,
        },
        max_redirects=0,
    )
    assert response.status == 303
    sam.goto(f"/requests/{request_id}")
    expect(sam.locator(".flash.error")).to_contain_text("may not approve")
    expect(sam.get_by_test_id("verdict")).to_contain_text("0 of 2 signatures")
    assert service.wait_for_state(request_id, "awaiting_approval")["signatures"] == []


def test_a_form_without_its_csrf_token_is_refused(candidates: Candidates, open_page) -> None:
    service, request_id = candidates.service, candidates.blocked

    dana = open_page(service)
    sign_in(dana, "dana", f"/requests/{request_id}")
    expect(dana.get_by_role("button", name="Request a waiver…")).to_be_visible()
    form = {"justification": "a justification long enough to pass", "days": "10"}
    refused = dana.request.post(f"/requests/{request_id}/waiver", form=form, max_redirects=0)
    assert refused.status == 403
    assert "CSRF" in refused.text()
    wrong = dana.request.post(
        f"/requests/{request_id}/waiver", form={**form, "csrf_token": "x" * 43}, max_redirects=0
    )
    assert wrong.status == 403
    assert service.wait_for_state(request_id, "blocked")["waiver"] is None
    # the same form through the page works: the token is what was missing
    dana.get_by_role("button", name="Request a waiver…").click()
    dialog = dana.locator("dialog[open]")
    dialog.get_by_label("Justification").fill(form["justification"])
    dialog.get_by_label("Days").fill("10")
    dialog.get_by_role("button", name="Request the waiver").click()
    expect(dana.locator(".flash.ok")).to_contain_text("Waiver requested.")
    expect(dana.get_by_test_id("verdict")).to_contain_text("waiver requested")


def test_an_auditor_sees_everything_and_changes_nothing(candidates: Candidates, open_page) -> None:
    service, request_id = candidates.service, candidates.own

    audrey = open_page(service)
    sign_in(audrey, "audrey", "/requests")
    nav = audrey.locator("header nav")
    for link in ("My queue", "Requests", "Models", "Policies", "Audit trail", "Admin"):
        expect(nav.get_by_role("link", name=link)).to_be_visible()
    audrey.goto(f"/requests/{request_id}")
    expect(audrey.get_by_test_id("verdict")).to_contain_text("awaiting approval")
    actions = audrey.locator("section.actions button")
    expect(actions).to_have_count(0)  # no sign, waiver, promote or revoke
    expect(
        audrey.get_by_role("link", name=re.compile("Download the signed report"))
    ).to_be_visible()
    token = csrf_of(audrey)
    for path, form in (
        (
            f"/requests/{request_id}/sign",
            {"meaning": "approve", "comment": "x", "password": PASSWORD},
        ),
        (f"/requests/{request_id}/revoke", {"reason": "an auditor tries"}),
        (f"/requests/{request_id}/promote", {}),
    ):
        refused = audrey.request.post(path, form={**form, "csrf_token": token}, max_redirects=0)
        assert refused.status == 403, path
        assert "may not" in refused.text()
    assert service.wait_for_state(request_id, "awaiting_approval")["signatures"] == []
    audrey.goto(f"/requests/{request_id}")
