"""What revoking any credential checks first (an API token, a CI builder's key): it exists,
and it was not revoked already. Revoked credentials are kept, never deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar

from governance.domain.errors import ConflictError, NotFoundError


class Revocable(Protocol):
    @property
    def revoked_at(self) -> datetime | None: ...


RevocableT = TypeVar("RevocableT", bound=Revocable)


def to_revoke(found: RevocableT | None, what: str, fix: str) -> RevocableT:
    """`found`, which may be revoked now: not found (`fix` says how to find it) or revoked
    already are refused, and nothing is written."""
    if found is None:
        raise NotFoundError(what, fix)
    if found.revoked_at is not None:
        raise ConflictError(f"{what} was revoked already")
    return found
