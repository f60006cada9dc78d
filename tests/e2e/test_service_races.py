"""Races on PostgreSQL with two server processes: requests released at the same instant
from a barrier. Each state change locks the request row, so one wins and the other sees
the state the winner left (409), never a half-applied mix."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.db_fixtures import new_postgres_schema
from tests.e2e.test_service_workflow import register, sign, submit
from tests.service_fixtures import PASSWORD, Service, start_service, stop_service

pytest_plugins = ["tests.db_fixtures", "tests.service_fixtures"]


@pytest.fixture(scope="module")
def two_workers(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One service for the module (two server processes start in about 13 s): each test
    registers a model of its own, so that no test sees another's requests or trail."""
    home = tmp_path_factory.mktemp("races") / "home"
    running = start_service(home, new_postgres_schema(postgres_database), workers=2)
    yield running
    stop_service(running)


def at_once(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the calls in threads released together; their responses in call order."""
    barrier = threading.Barrier(len(calls))
    responses: list[httpx.Response | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], httpx.Response]) -> None:
        barrier.wait()
        responses[index] = call()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in responses)
    return [r for r in responses if r is not None]


def approved(service: Service, request_id: str) -> None:
    service.wait_for_state(request_id, "awaiting_approval")
    assert sign(service, "maria", request_id).status_code == 200
    assert sign(service, "bob", request_id).json()["state"] == "approved"


def test_two_approvers_at_the_same_instant(two_workers: Service, demo_dir: Path) -> None:
    service = two_workers
    register(service, "income-approvers")
    request_id = submit(service, demo_dir, "income-reweighed", "2", name="income-approvers")["id"]
    service.wait_for_state(request_id, "awaiting_approval")
    assert sign(service, "maria", request_id).status_code == 200

    # bob and bea both hold business_owner: the quorum needs one of them.
    bob, bea = at_once(
        lambda: sign(service, "bob", request_id), lambda: sign(service, "bea", request_id)
    )
    statuses = sorted([bob.status_code, bea.status_code])
    assert statuses == [200, 409], (bob.text, bea.text)
    loser = bob if bob.status_code == 409 else bea
    assert loser.json()["state"] == "approved"

    final = service.wait_for_state(request_id, "approved")
    assert [s["role"] for s in final["signatures"]] == ["model_risk_officer", "business_owner"]


def test_two_promotions_and_a_revoke_during_a_promote(two_workers: Service, demo_dir: Path) -> None:
    service = two_workers
    register(service, "income-promotions")
    first = submit(service, demo_dir, "income-reweighed", "2", name="income-promotions")["id"]
    second = submit(service, demo_dir, "income-reweighed", "3", name="income-promotions")["id"]
    approved(service, first)
    approved(service, second)

    def promote(request_id: str) -> Callable[[], httpx.Response]:
        def call() -> httpx.Response:
            with service.client("ci") as client:
                return client.post(f"/api/v1/requests/{request_id}/promote")

        return call

    def revoke(request_id: str) -> Callable[[], httpx.Response]:
        def call() -> httpx.Response:
            with service.client("maria") as client:
                return client.post(
                    f"/api/v1/requests/{request_id}/revoke", json={"reason": "race test"}
                )

        return call

    one, other = at_once(promote(first), promote(first))
    assert sorted([one.status_code, other.status_code]) == [200, 409]

    promoted, revoked = at_once(promote(second), revoke(second))
    assert revoked.status_code == 200, revoked.text
    with service.client("audrey") as client:
        trail = client.get(
            "/api/v1/audit", params={"subject": "model:income-promotions@3", "limit": 100}
        ).json()
    moves = [
        item["event"]["action"]
        for item in reversed(trail["items"])
        if item["event"]["action"] in ("request.promote", "request.revoke")
    ]
    if promoted.status_code == 200:
        # The promotion committed first; revoking a promoted version is a legal move.
        assert moves == ["request.promote", "request.revoke"]
    else:
        # The revocation won: the promotion saw a revoked request and changed nothing.
        assert promoted.status_code == 409 and promoted.json()["state"] == "revoked"
        assert moves == ["request.revoke"]
    assert service.wait_for_state(second, "revoked")["state"] == "revoked"
    with service.client("audrey") as client:
        assert client.get("/api/v1/audit/verify").json()["intact"] is True


def test_password_is_checked_before_any_lock(two_workers: Service, demo_dir: Path) -> None:
    """A wrong password signs nothing: the one event it leaves is its failure, counted
    towards the sign-in lockout."""
    service = two_workers
    register(service, "income-password")
    request_id = submit(service, demo_dir, "income-reweighed", "2", name="income-password")["id"]
    service.wait_for_state(request_id, "awaiting_approval")
    with service.client("audrey") as client:
        before = client.get("/api/v1/audit").json()["total"]
    bad = sign(service, "maria", request_id, password=PASSWORD + "x")
    assert bad.status_code == 401
    with service.client("audrey") as client:
        trail = client.get("/api/v1/audit").json()
    assert trail["total"] == before + 1
    assert trail["items"][0]["event"]["action"] == "auth.sign_in_failed"
