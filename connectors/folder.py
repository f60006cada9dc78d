"""A registry made of folders, for teams without a model registry (and the smallest
example of the `Registry` protocol):

```
<path>/<model>/<version>/candidate.yaml   tier, label; optional target, positiveLabel, owner
<path>/<model>/<version>/model.skops      (or model.joblib)
<path>/<model>/<version>/data.parquet     evaluation data (or .csv)
<path>/<model>/<version>/reference.parquet  optional, for drift (or .csv)
```

The gatekeeper writes `decision.json` and the signed report beside the files, and the
governed alias is a symbolic link `<path>/<model>/<alias>` → `<version>`, which a server
that loads `<path>/<model>/production/model.skops` follows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from governance.connectors.settings import FolderConnector
from governance.domain.errors import InputError
from governance.services.ports import FetchedFiles, PublishedDecision, RegistryVersion

CANDIDATE = "candidate.yaml"
MODEL_NAMES = ("model.skops", "model.joblib")
TABLE_SUFFIXES = (".parquet", ".csv")


class FolderRegistry:
    def __init__(self, settings: FolderConnector) -> None:
        self.name = settings.name
        self.settings = settings
        self._root = settings.path

    @property
    def alias(self) -> str:
        return self.settings.alias

    @property
    def verify_digest(self) -> bool:
        return True  # a local file: hashing it is cheap

    def discover(self) -> list[RegistryVersion]:
        if not self._root.is_dir():
            raise InputError(
                f"folder connector {self.name}", f"{self._root} is not a folder", "create it"
            )
        found = [
            self._offer(folder)
            for folder in sorted(self._root.glob(f"*/*/{CANDIDATE}"))
            # the alias is not a version of its own, even where someone made it a folder
            if not folder.parent.is_symlink() and folder.parent.name != self.alias
        ]
        return found

    def _offer(self, candidate_file: Path) -> RegistryVersion:
        folder = candidate_file.parent
        model, version = folder.parent.name, folder.name
        problem = None
        try:
            tags: Any = yaml.safe_load(candidate_file.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            tags, problem = {}, f"{CANDIDATE} cannot be read ({exc})"
        if not isinstance(tags, dict):
            tags, problem = {}, f"{CANDIDATE} must be a mapping of tier, label, …"
        tier = str(tags.get("tier", "")).lower()
        if problem is None and tier not in ("low", "medium", "high"):
            problem = f"{CANDIDATE}: tier is {tier!r}: set it to low, medium or high"
        if problem is None and not tags.get("label"):
            problem = f"{CANDIDATE}: label is missing: name the label column of the data"
        status = None
        try:  # edited by hand and broken: as if absent, so the next decision rewrites it
            record: Any = json.loads((folder / "decision.json").read_text(encoding="utf-8"))
            status = str(record["status"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            pass
        return RegistryVersion(
            connector=self.name,
            model=model,
            version=version,
            risk_tier=tier,
            target=str(tags.get("target", self.settings.target)),
            label=str(tags.get("label", "")),
            source_uri=folder.resolve().as_uri(),
            owner=_text(tags.get("owner")),
            positive_label=_text(tags.get("positiveLabel")),
            status=status,
            problem=problem,
        )

    def fetch(self, version: RegistryVersion, into: Path) -> FetchedFiles:
        folder = self._root / version.model / version.version
        model = next((folder / name for name in MODEL_NAMES if (folder / name).is_file()), None)
        if model is None:
            raise InputError(f"folder {folder}", "has no model", "add model.skops")
        if model.suffix != ".skops" and not self.settings.allow_pickle:
            raise InputError(
                f"folder {folder}",
                f"holds {model.name}, a pickle, which runs code when it is loaded",
                "save the model with skops (model.skops), or set allowPickle on the connector "
                "if you trust everyone who can write to this folder",
            )
        data = _table(folder, "data")
        if data is None:
            raise InputError(f"folder {folder}", "has no data", "add data.parquet or data.csv")
        reference = _table(folder, "reference")
        into.mkdir(parents=True, exist_ok=True)
        copies = [shutil.copy2(path, into / path.name) for path in (model, data, reference) if path]
        return FetchedFiles(
            model=Path(copies[0]),
            data=Path(copies[1]),
            reference=Path(copies[2]) if reference else None,
        )

    def publish(self, version: RegistryVersion, decision: PublishedDecision) -> None:
        folder = self._root / version.model / version.version
        record = {
            "status": decision.status,
            "requestId": decision.request_id,
            "decisionId": decision.decision_id,
            "reportSha256": decision.report_sha256,
            "reason": decision.reason,
        }
        _write_atomically(folder / "decision.json", json.dumps(record, indent=2) + "\n")
        if decision.report is not None:
            (folder / "reports").mkdir(exist_ok=True)
            shutil.copy2(decision.report, folder / "reports" / decision.report.name)
        holder = self.alias_holder(version.model)
        if decision.serving and holder != version.version:
            self.move_alias(version.model, version.version)
        elif decision.withdrawn and holder == version.version:
            self.move_alias(version.model, None)

    def alias_holder(self, model: str) -> str | None:
        link = self._root / model / self.alias
        return os.readlink(link) if link.is_symlink() else None

    def move_alias(self, model: str, version: str | None) -> None:
        link = self._root / model / self.alias
        if version is None:
            link.unlink(missing_ok=True)
            return
        staged = link.with_name(f".{self.alias}.new")
        staged.unlink(missing_ok=True)
        staged.symlink_to(version, target_is_directory=True)
        os.replace(staged, link)  # a reader sees the old version or the new one, never none

    def model_sha256(self, model: str, version: str, into: Path) -> str:
        folder = self._root / model / version
        path = next((folder / name for name in MODEL_NAMES if (folder / name).is_file()), None)
        if path is None:
            raise InputError(f"folder {folder}", "has no model", "add model.skops")
        return hashlib.sha256(path.read_bytes()).hexdigest()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _table(folder: Path, stem: str) -> Path | None:
    return next(
        (folder / f"{stem}{s}" for s in TABLE_SUFFIXES if (folder / f"{stem}{s}").is_file()), None
    )


def _write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)
