"""What the services need from the outside world, as Protocols the adapters satisfy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from governance.domain.evidence import Artifact, EvidenceManifest
from governance.domain.policy import PromotionPolicy


class ArtifactSource(Protocol):
    """Reads policies, tables and models (implemented by `connectors.files`)."""

    def load_policy(self, path: Path) -> PromotionPolicy: ...

    def read_table(self, path: Path, role: str = "data") -> tuple[pd.DataFrame, Artifact]: ...

    def load_model(self, path: Path, role: str = "model") -> tuple[Any, Artifact]: ...

    def load_metrics(self, path: Path) -> tuple[dict[str, float], Artifact]: ...


class DecisionRecorder(Protocol):
    """Stores a gate decision and everything it rests on, in one transaction."""

    def record(self, manifest: EvidenceManifest, policy: PromotionPolicy) -> str: ...
