"""The environment a check job's child process starts with (`services.isolation`): the
service's secrets stay behind, and numba's JIT is off unless the service chose otherwise."""

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


def test_numba_jit_is_off_in_the_child_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """shap would compile its loops in every job otherwise (bench/isolation.py)."""
    monkeypatch.delenv("NUMBA_DISABLE_JIT", raising=False)
    assert child_environment(tmp_path)["NUMBA_DISABLE_JIT"] == "1"


def test_the_services_own_numba_setting_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "0")
    assert child_environment(tmp_path)["NUMBA_DISABLE_JIT"] == "0"
