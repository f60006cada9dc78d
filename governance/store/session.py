"""What every repository over SQL shares: it works in its unit of work's one session."""

from __future__ import annotations

from sqlmodel import Session


class SqlRepository:
    """A repository over the session of the unit of work that made it (`store.uow`); it
    never begins, commits or closes that session."""

    def __init__(self, session: Session) -> None:
        self._session = session
