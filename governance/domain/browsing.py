"""What a list page asks for: which slice (`Page`) and which requests (`RequestFilter`),
checked when they are made so that no query ever runs on a bad one; and what a page of a
list holds (`Slice`). The read views (`governance.services.ports.ConsoleViews`) take them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from governance.domain.errors import InputError
from governance.domain.workflow import State

PAGE_SIZES = (25, 50, 100)

T = TypeVar("T")


@dataclass(frozen=True)
class AuditFilter:
    """Which audit events: exact matches, as the API's `GET /audit` takes them."""

    action: str | None = None
    actor: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class Page:
    """Which slice of a list: 1-based page number and its size."""

    number: int = 1
    size: int = 25

    def __post_init__(self) -> None:
        if self.number < 1:
            raise InputError("page", f"is {self.number}", "pages are numbered from 1")
        if self.size not in PAGE_SIZES:
            raise InputError("size", f"is {self.size}", f"use one of {PAGE_SIZES}")

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True)
class RequestFilter:
    state: str | None = None
    model: str | None = None
    risk_tier: str | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None

    def __post_init__(self) -> None:
        if self.state and self.state not in {s.value for s in State}:
            raise InputError("state", f"is {self.state!r}", f"use one of {', '.join(State)}")
        if self.submitted_from and self.submitted_to and self.submitted_from > self.submitted_to:
            raise InputError(
                "to", f"{self.submitted_to} is before {self.submitted_from}", "swap the dates"
            )


@dataclass(frozen=True)
class Slice(Generic[T]):
    """One page of a list, in the list's order, and how many the whole list holds."""

    items: list[T]
    total: int


@dataclass(frozen=True)
class ListedRequest:
    """A promotion request as a list shows it: with its version, model and pinned policy."""

    id: str
    model: str
    version: str
    risk_tier: str
    owner: str | None
    target: str
    state: str
    state_reason: str | None
    submitter: str
    policy_name: str
    policy_version: int
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ListedModel:
    """A governed model as the inventory shows it: how many versions, and the newest's time."""

    name: str
    risk_tier: str
    owner: str | None
    created_at: datetime
    versions: int = 0
    latest_version_at: datetime | None = None


@dataclass(frozen=True)
class QueueRules:
    """Whose signature a queue is for, as the pinned policies' rows allow it: the policies
    whose approvals they may give on others' models only (`approvable`) or on their own too
    (`approvable_own`), and those whose waivers they may grant (`waivable`)."""

    person: str
    approvable: list[int]
    approvable_own: list[int]
    waivable: list[int]


@dataclass(frozen=True)
class PinnedEvidence:
    """What a request is judged on: its pinned policy's document, and its recorded
    decision's manifest (None before the checks ran)."""

    policy_document: dict[str, Any]
    manifest: dict[str, Any] | None
