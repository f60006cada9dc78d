"""The connectors file: which registries the gatekeeper watches (GOVERNANCE_CONNECTORS, or
`connectors` in the settings file, names it). Errors name the path of the bad value.

```yaml
mlflow:
  - name: mlflow-main
    trackingUri: http://mlflow.internal:5000
    alias: production          # the alias the gatekeeper governs
    tierTag: governance.tier   # a version with this tag is governed; its value is the tier
folders:
  - name: drop
    path: /srv/model-drop
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from governance.domain.errors import InputError

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class _Schema(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, validate_by_name=True, frozen=True
    )

    name: str
    target: str = "production"
    alias: str = Field("production", min_length=1, max_length=255)
    poll_seconds: float = Field(30.0, ge=1.0, le=86400.0)
    allow_pickle: bool = Field(
        False, description="Load pickled models (they run code when loaded): trusted writers only."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("use 1-40 lower-case letters, digits and dashes")
        return value


class MlflowConnector(_Schema):
    kind: Literal["mlflow"] = "mlflow"
    tracking_uri: str = Field(pattern=r"^https?://", description="The MLflow server's URL.")
    tier_tag: str = "governance.tier"
    models: list[str] | None = Field(
        None, description="Only these registered models (all that carry the tier tag if unset)."
    )
    verify_digest: bool = Field(
        True, description="The alias guard re-reads the served model's bytes each pass."
    )
    webhook_secret_env: str | None = Field(
        None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="The environment variable that holds the secret of the MLflow webhook "
        "that wakes the connector (POST /api/v1/connectors/{name}/events).",
    )


class FolderConnector(_Schema):
    kind: Literal["folder"] = "folder"
    path: Path


class ConnectorsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mlflow: list[MlflowConnector] = Field(default_factory=list)
    folders: list[FolderConnector] = Field(default_factory=list)

    @property
    def all(self) -> list[MlflowConnector | FolderConnector]:
        return [*self.mlflow, *self.folders]


def load_connectors(path: Path | None) -> ConnectorsFile:
    """The connectors a file configures; none when no file is named."""
    if path is None:
        return ConnectorsFile()
    where = f"connectors file {path}"
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(where, f"cannot be read ({exc})", "name a YAML file") from None
    try:
        parsed = ConnectorsFile.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(where, f"{at}: {first['msg']}", "see README: Connectors") from None
    names = [connector.name for connector in parsed.all]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(where, f"names {', '.join(twice)} twice", "give each its own name")
    return parsed
