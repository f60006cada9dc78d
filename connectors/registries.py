"""The configured registries opened: the one place that knows every registry kind, so
the settings module and the registry modules need not import each other."""

from __future__ import annotations

from pathlib import Path

from governance.connectors.folder import FolderRegistry
from governance.connectors.mlflow import MlflowRegistry
from governance.connectors.settings import MlflowConnector, load_connectors
from governance.services.ports import Registry


def open_registries(path: Path | None) -> list[tuple[Registry, float]]:
    """Each configured registry with how often it is polled (seconds)."""
    opened: list[tuple[Registry, float]] = []
    for connector in load_connectors(path).all:
        registry: Registry = (
            MlflowRegistry(connector)
            if isinstance(connector, MlflowConnector)
            else FolderRegistry(connector)
        )
        opened.append((registry, connector.poll_seconds))
    return opened
