"""A real MLflow tracking server on loopback (SQLite backend, local artifact root), started
once per test session, and a way to log a model version to it the way an ML team does.

Load with `pytest_plugins = ["tests.mlflow_fixtures"]`."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import start_group, stop_group
from tests.service_fixtures import free_port

MLFLOW_VERSION = "3.17.2"  # the version these tests were written against (pyproject pins it)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    root: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """`mlflow server` as its own process; a server that does not come up fails the tests
    that need it, with its log."""
    import mlflow

    assert mlflow.__version__ == MLFLOW_VERSION, f"tested with mlflow {MLFLOW_VERSION}"
    mlflow_command = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if mlflow_command is None:
        pytest.fail("the mlflow command is not installed: run scripts/setup", pytrace=False)
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("wb")
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # Its webhooks call the gatekeeper on loopback, over plain HTTP, and see a new
        # webhook within a second rather than a minute.
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    }
    command = [
        mlflow_command, "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = start_group(command, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        if process.poll() is not None or time.monotonic() > deadline:
            stop_group(process, timeout=0)
            output = (root / "server.log").read_text(errors="replace")[-5000:]
            pytest.fail(f"mlflow server did not start on {url}:\n{output}", pytrace=False)
        time.sleep(0.3)
    yield MlflowServer(url, root)
    stop_group(process)


def log_version(
    server: MlflowServer,
    name: str,
    model_file: Path,
    data: Path,
    reference: Path | None,
    tags: dict[str, str],
) -> str:
    """Log a fitted model from a run whose artifacts hold its evaluation data, register it
    under `name`, and tag the new version; returns the version number."""
    from importlib.metadata import version

    import mlflow
    import mlflow.sklearn
    import skops.io
    from mlflow import MlflowClient

    own_types = skops.io.get_untrusted_types(file=model_file)  # the team trusts its own model
    model: Any = skops.io.load(model_file, trusted=own_types)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    mlflow.set_tracking_uri(server.url)
    try:
        with mlflow.start_run() as run:
            logged = mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="skops",
                skops_trusted_types=own_types,
                registered_model_name=name,
                # pinned, as a team that knows its stack does: mlflow infers them otherwise
                # by loading the model in a new interpreter, about 10 s per version
                pip_requirements=[f"{p}=={version(p)}" for p in ("scikit-learn", "skops")],
            )
            client.log_artifact(run.info.run_id, str(data), "governance")
            if reference is not None:
                client.log_artifact(run.info.run_id, str(reference), "governance")
    finally:
        mlflow.set_tracking_uri("")
    version = str(logged.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def log_demo_version(
    server: MlflowServer, name: str, demo_dir: Path, model_file: str, work: Path, **tags: str
) -> str:
    """A demo model logged as the ML team would: its run holds the evaluation data and the
    training data (as `governance/data.parquet` and `governance/reference.parquet`)."""
    from governance.connectors.adult import TARGET

    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo_dir / "test.parquet", work / "data.parquet")
    shutil.copy(demo_dir / "train.parquet", work / "reference.parquet")
    all_tags = {"governance.tier": "high", "governance.label": TARGET, **tags}
    return log_version(
        server,
        name,
        demo_dir / model_file,
        work / "data.parquet",
        work / "reference.parquet",
        all_tags,
    )
