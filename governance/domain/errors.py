"""Errors that reach a person: each names the thing that is wrong and how to fix it."""


class InputError(Exception):
    """Bad input or usage. The CLI exits 2 and the HTTP API answers 4xx; nothing is recorded."""

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


class NotFoundError(Exception):
    """The thing named does not exist (HTTP 404)."""

    def __init__(self, subject: str, fix: str = "") -> None:
        self.subject = subject
        self.fix = fix
        super().__init__(f"{subject} does not exist" + (f". Fix: {fix}" if fix else ""))


class ConflictError(Exception):
    """The request is valid but the record's current state does not allow it (HTTP 409)."""

    def __init__(self, message: str, state: str | None = None) -> None:
        self.state = state
        super().__init__(message)


class ForbiddenError(Exception):
    """This principal may not do this (HTTP 403); the message says which rule refuses it."""


class UnauthenticatedError(Exception):
    """No valid credential, or re-authentication failed (HTTP 401)."""


class TooManyAttemptsError(UnauthenticatedError):
    """Too many failed sign-ins: refused, even with the right password, for `retry_after`
    seconds (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(message)
