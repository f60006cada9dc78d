"""What every repository over SQL shares: it works in its unit of work's one session."""

from __future__ import annotations

from sqlmodel import Session, col, select

from governance.store.tables import Model, ModelVersion


class SqlRepository:
    """A repository over the session of the unit of work that made it (`store.uow`); it
    never begins, commits or closes that session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _version_id(self, model: str, version: str) -> int | None:
        """The row id of a model version: the services name a version by its model's name
        and its own, the tables by this id."""
        return self._session.exec(
            select(ModelVersion.id)
            .join(Model, col(ModelVersion.model_id) == col(Model.id))
            .where(col(Model.name) == model, col(ModelVersion.version) == version)
        ).first()
