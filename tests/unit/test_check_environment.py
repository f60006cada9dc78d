"""The environment a check job's child process starts with (`services.isolation`): the
service's secrets stay behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.services.isolation import child_environment


def test_secrets_stay_behind_and_the_child_lives_in_its_workdir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOVERNANCE_SIGNING_KEY", "/secret/key.pem")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")

    environment = child_environment(tmp_path)

    assert not {"GOVERNANCE_SIGNING_KEY", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY"} & set(
        environment
    )
    assert environment["OMP_NUM_THREADS"] == "1" and environment["LC_ALL"] == "C.UTF-8"
    assert environment["HOME"] == environment["TMPDIR"] == str(tmp_path)


def test_the_child_keeps_compiled_code_where_the_service_says(tmp_path: Path) -> None:
    assert "NUMBA_CACHE_DIR" not in child_environment(tmp_path)
    cache = tmp_path / "numba"
    assert child_environment(tmp_path, cache)["NUMBA_CACHE_DIR"] == str(cache)


def test_the_child_finds_this_code_but_no_site_directory_before_the_standard_library(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """From a checkout the child gets the checkout on PYTHONPATH; from an installed wheel
    the package's folder is site-packages, which the child has already, and which on
    PYTHONPATH would come before the standard library."""
    import site

    import governance

    root = str(Path(governance.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setattr(site, "getsitepackages", lambda: ["/some/site-packages"])
    assert child_environment(tmp_path)["PYTHONPATH"] == f"{root}:/elsewhere"
    monkeypatch.setattr(site, "getsitepackages", lambda: ["/some/site-packages", root])
    assert child_environment(tmp_path)["PYTHONPATH"] == "/elsewhere"
