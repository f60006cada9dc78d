"""The MLflow model registry, through MLflow's own client (`MlflowClient`, tested with
MLflow 3.17.2).

A model version asks to be governed by carrying the tier tag (`governance.tier: high`);
its tags say how to judge it (`governance.label`, and optionally `governance.target`,
`governance.positiveLabel`, `governance.owner`, `governance.data`, `governance.reference`).
The model is read from the version's artifacts (scikit-learn flavour; skops by default,
pickle only where the connector allows it), the evaluation data from the run's artifacts.
The decision goes back as tags on the version, the signed report as a run artifact, and
the governed alias (e.g. `production`) is set on promotion and removed on revocation.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from governance.connectors.settings import MlflowConnector
from governance.domain.errors import InputError, UnauthenticatedError
from governance.services.ports import FetchedFiles, PublishedDecision, RegistryVersion

TAG = "governance."
DEFAULT_DATA = "governance/data.parquet"
DEFAULT_REFERENCE = "governance/reference.parquet"
MAX_TAG_CHARS = 500
EVENT_MAX_AGE_SECONDS = 300
SKLEARN_FILES = {"skops": "model.skops", "pickle": "model.pkl", "cloudpickle": "model.pkl"}


class MlflowRegistry:
    """One MLflow tracking server (and its model registry)."""

    def __init__(self, settings: MlflowConnector) -> None:
        from mlflow import MlflowClient

        self.name = settings.name
        self.settings = settings
        self._uri = settings.tracking_uri
        self._client = MlflowClient(tracking_uri=self._uri, registry_uri=self._uri)

    @property
    def alias(self) -> str:
        return self.settings.alias

    @property
    def verify_digest(self) -> bool:
        return self.settings.verify_digest

    def discover(self) -> list[RegistryVersion]:
        found: list[RegistryVersion] = []
        tier_tag = self.settings.tier_tag
        page_token = None
        while True:
            page = self._client.search_model_versions(
                filter_string=f"tags.`{tier_tag}` != ''", page_token=page_token
            )
            found.extend(self._offer(version) for version in page if self._governs(version.name))
            page_token = page.token
            if not page_token:
                break
        return sorted(found, key=lambda v: (v.model, int(v.version)))

    def _governs(self, model: str) -> bool:
        return self.settings.models is None or model in self.settings.models

    def _offer(self, version: Any) -> RegistryVersion:
        tags: dict[str, str] = dict(version.tags)
        tier = tags[self.settings.tier_tag].strip().lower()
        label = tags.get(f"{TAG}label", "").strip()
        problem = None
        if tier not in ("low", "medium", "high"):
            problem = f"tag {self.settings.tier_tag} is {tier!r}: set it to low, medium or high"
        elif not label:
            problem = f"tag {TAG}label is missing: set it to the label column of the data"
        elif not version.run_id:
            problem = "the version has no run: log it from a run whose artifacts hold the data"
        return RegistryVersion(
            connector=self.name,
            model=version.name,
            version=str(version.version),
            risk_tier=tier,
            target=tags.get(f"{TAG}target", self.settings.target),
            label=label,
            source_uri=str(version.source),
            run_id=version.run_id or None,
            owner=tags.get(f"{TAG}owner") or version.user_id or None,
            positive_label=tags.get(f"{TAG}positiveLabel") or None,
            data_path=tags.get(f"{TAG}data", DEFAULT_DATA),
            reference_path=tags.get(f"{TAG}reference"),
            status=tags.get(f"{TAG}status"),
            problem=problem,
        )

    def fetch(self, version: RegistryVersion, into: Path) -> FetchedFiles:
        model = self._download_model(version.model, version.version, into / "model")
        assert version.run_id is not None  # `discover` reports a version without a run
        data = self._run_artifact(version, version.data_path, into / "data", f"{TAG}data")
        reference = None
        if version.reference_path is not None:
            reference = self._run_artifact(
                version, version.reference_path, into / "reference", f"{TAG}reference"
            )
        elif self._has_artifact(version.run_id, DEFAULT_REFERENCE):
            reference = self._run_artifact(
                version, DEFAULT_REFERENCE, into / "reference", f"{TAG}reference"
            )
        return FetchedFiles(model=model, data=data, reference=reference)

    def _download_model(self, model: str, version: str, into: Path) -> Path:
        import mlflow.artifacts

        uri = self._client.get_model_version_download_uri(model, version)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(into), tracking_uri=self._uri
            )
        )
        where = f"MLflow model {model} version {version}"
        try:
            flavours = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))["flavors"]
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            raise InputError(where, "has no readable MLmodel file", "log it with mlflow") from None
        sklearn = flavours.get("sklearn")
        if sklearn is None:
            raise InputError(
                where,
                f"has flavours {', '.join(sorted(flavours))}, not sklearn",
                "log a scikit-learn-compatible model with mlflow.sklearn.log_model",
            )
        serialization = sklearn.get("serialization_format", "cloudpickle")
        if serialization != "skops" and not self.settings.allow_pickle:
            raise InputError(
                where,
                f"is saved as {serialization}, which runs code when it is loaded",
                "log it with serialization_format='skops', or set allowPickle on the connector "
                "if you trust everyone who can write to this registry",
            )
        path = local / sklearn.get("pickled_model", SKLEARN_FILES.get(serialization, ""))
        if not path.is_file():
            raise InputError(where, f"has no {path.name}", "log the model again with mlflow")
        return path

    def _has_artifact(self, run_id: str, path: str) -> bool:
        parent = str(Path(path).parent)
        listed = self._client.list_artifacts(run_id, None if parent == "." else parent)
        return any(item.path == path for item in listed)

    def _run_artifact(self, version: RegistryVersion, path: str, into: Path, tag: str) -> Path:
        assert version.run_id is not None
        if not self._has_artifact(version.run_id, path):
            raise InputError(
                f"MLflow run {version.run_id} of {version.model} version {version.version}",
                f"has no artifact {path}",
                f"log the table with mlflow.log_artifact(..., artifact_path="
                f"{str(Path(path).parent)!r}) or name its path in the {tag} tag",
            )
        into.mkdir(parents=True, exist_ok=True)
        return Path(self._client.download_artifacts(version.run_id, path, str(into)))

    def publish(self, version: RegistryVersion, decision: PublishedDecision) -> None:
        """Report, alias, then tags: the tags go last so that a reader who sees
        `reportSha256` sees a publication that is finished, alias included."""
        if decision.report is not None and version.run_id is not None:
            self._client.log_artifact(version.run_id, str(decision.report), "governance/reports")
        holder = self.alias_holder(version.model)
        if decision.serving and holder != version.version:
            self.move_alias(version.model, version.version)
        elif decision.withdrawn and holder == version.version:
            self.move_alias(version.model, None)
        tags = {
            "status": decision.status,
            "requestId": decision.request_id,
            "decisionId": decision.decision_id or "",
            "reportSha256": decision.report_sha256 or "",
            "reason": (decision.reason or "")[:MAX_TAG_CHARS],
        }
        for key, value in tags.items():
            if value:
                self._client.set_model_version_tag(version.model, version.version, TAG + key, value)
            elif key in ("reason", "reportSha256"):
                self._delete_tag(version, TAG + key)

    def _delete_tag(self, version: RegistryVersion, key: str) -> None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # not set: nothing to delete
            self._client.delete_model_version_tag(version.model, version.version, key)

    def alias_holder(self, model: str) -> str | None:
        aliases: dict[str, str] = self._client.get_registered_model(model).aliases
        holder = aliases.get(self.alias)
        return None if holder is None else str(holder)

    def move_alias(self, model: str, version: str | None) -> None:
        if version is None:
            self._client.delete_registered_model_alias(model, self.alias)
        else:
            self._client.set_registered_model_alias(model, self.alias, version)

    def verify_event(self, headers: Mapping[str, str], body: bytes) -> None:
        """MLflow signs a webhook delivery as `v1,` + base64(HMAC-SHA256(secret,
        "{delivery id}.{timestamp}.{body}")); a delivery older than five minutes is
        refused, so a captured one cannot be replayed later."""
        variable = self.settings.webhook_secret_env
        secret = os.environ.get(variable) if variable else None
        if not secret:
            raise UnauthenticatedError(
                f"connector {self.name} takes no events: set webhookSecretEnv and that variable"
            )
        delivery = headers.get("x-mlflow-delivery-id", "")
        stamp = headers.get("x-mlflow-timestamp", "")
        signed = f"{delivery}.{stamp}.".encode() + body
        expected = (
            "v1,"
            + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
        )
        if not hmac.compare_digest(expected, headers.get("x-mlflow-signature", "")):
            raise UnauthenticatedError("the event's X-MLflow-Signature does not verify")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > EVENT_MAX_AGE_SECONDS:
            raise UnauthenticatedError("the event's X-MLflow-Timestamp is not within 5 minutes")

    def model_sha256(self, model: str, version: str, into: Path) -> str:
        path = self._download_model(model, version, into)
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
