"""Errors that reach a person: each names the thing that is wrong and how to fix it.

Every one derives from `GovernanceError`, which carries the HTTP status and the CLI exit
code it maps to, so each face (problem+json, the console's page or flash message, the
CLI's message and exit code) maps them in one place, from these two attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic is imported where a document is validated (the CLI starts fast)
    from pydantic import ValidationError


class GovernanceError(Exception):
    """The base of every error a person may see. `status` is the HTTP answer, `exit_code`
    the CLI's (2: bad input or usage; 1: refused for another reason)."""

    status: int = 400
    exit_code: int = 2

    @property
    def message(self) -> str:
        return str(self)


class InputError(GovernanceError):
    """Bad input or usage. The CLI exits 2 and the HTTP API answers 4xx; nothing is recorded."""

    status = 422

    def __init__(self, subject: str, problem: str, fix: str = "") -> None:
        self.subject = subject
        self.problem = problem
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.subject}: {self.problem}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


class MalformedInputError(InputError):
    """A value of the wrong form, refused before anything looks it up (HTTP 400): a name
    that does not match its pattern."""

    status = 400


class NotFoundError(GovernanceError):
    """The thing named does not exist (HTTP 404)."""

    status = 404

    def __init__(self, subject: str, fix: str = "") -> None:
        self.subject = subject
        self.fix = fix
        super().__init__(f"{subject} does not exist" + (f". Fix: {fix}" if fix else ""))


class ConflictError(GovernanceError):
    """The request is valid but the record's current state does not allow it (HTTP 409)."""

    status = 409
    exit_code = 1

    def __init__(self, message: str, state: str | None = None) -> None:
        self.state = state
        super().__init__(message)


class ForbiddenError(GovernanceError):
    """This principal may not do this (HTTP 403); the message says which rule refuses it."""

    status = 403
    exit_code = 1


class UnauthenticatedError(GovernanceError):
    """No valid credential, or re-authentication failed (HTTP 401)."""

    status = 401
    exit_code = 1


class TooManyAttemptsError(UnauthenticatedError):
    """Too many failed sign-ins: refused, even with the right password, for `retry_after`
    seconds (HTTP 429 with Retry-After)."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(message)


class AuditSequenceTakenError(ConflictError):
    """Another writer chained an event onto the same audit head and committed first. The
    unit of work is rolled back; running the same work again chains onto that writer's
    event (`governance.services.unit_of_work.run_in_unit_of_work` does)."""

    def __init__(self) -> None:
        super().__init__("audit trail: another writer took the next event's seq; try again")


def first_problem(exc: ValidationError) -> str:
    """The first thing wrong with a document pydantic refused, as `where: what` (the field's
    dotted path, or `(top level)`): one problem a person can fix, where the whole list would
    bury it."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"
