"""Service settings: environment variables win over the settings file, which wins over the
embedded defaults; a bad settings file is refused with the key and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from governance.config import MIB, Settings
from governance.domain.errors import InputError
from governance.resources import PACKAGED_POLICIES


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("HOME", "DATABASE_URL", "POLICIES", "SIGNING_KEY", "MAX_UPLOAD_MB", "CONFIG")
    for name in (*names, "PASSWORD_HASHING"):
        monkeypatch.delenv(f"GOVERNANCE_{name}", raising=False)


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env()
    assert settings.home == Path("governance-data")
    assert settings.database_url == f"sqlite:///{tmp_path / 'governance-data' / 'governance.db'}"
    assert settings.policies == PACKAGED_POLICIES
    assert settings.default_signing_key and settings.max_upload_bytes == 512 * MIB
    assert settings.password_hashing == "rfc9106-low-memory"


def test_password_hashing_is_one_of_the_named_parameter_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOVERNANCE_PASSWORD_HASHING", "owasp-minimum")
    assert Settings.from_env().password_hashing == "owasp-minimum"
    monkeypatch.setenv("GOVERNANCE_PASSWORD_HASHING", "md5")
    with pytest.raises(InputError) as refused:
        Settings.from_env()
    assert refused.value.subject == "GOVERNANCE_PASSWORD_HASHING"
    assert "rfc9106-low-memory, owasp-minimum" in refused.value.fix


def test_file_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = tmp_path / "governance.yaml"
    file.write_text(
        "home: /srv/gov\ndatabase_url: postgresql://db/gov\nsigning_key: /etc/gov/key.pem\n"
        "max_upload_mb: 64\n"
    )
    monkeypatch.setenv("GOVERNANCE_CONFIG", str(file))
    settings = Settings.from_env()
    assert (settings.home, settings.database_url) == (Path("/srv/gov"), "postgresql://db/gov")
    assert settings.signing_key == Path("/etc/gov/key.pem") and not settings.default_signing_key
    assert settings.max_upload_bytes == 64 * MIB

    monkeypatch.setenv("GOVERNANCE_DATABASE_URL", "sqlite:////tmp/x.db")
    monkeypatch.setenv("GOVERNANCE_MAX_UPLOAD_MB", "2")
    settings = Settings.from_env()
    assert settings.database_url == "sqlite:////tmp/x.db" and settings.max_upload_bytes == 2 * MIB
    assert Settings.from_env(database="postgresql://explicit/db").database_url.endswith(
        "explicit/db"
    )


def test_a_bad_settings_file_names_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = tmp_path / "governance.yaml"
    file.write_text("home: /srv/gov\ndatabase: sqlite:///typo.db\n")
    monkeypatch.setenv("GOVERNANCE_CONFIG", str(file))
    with pytest.raises(InputError, match="unknown keys database") as caught:
        Settings.from_env()
    assert "database_url" in caught.value.fix
    monkeypatch.setenv("GOVERNANCE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(InputError, match="cannot be read"):
        Settings.from_env()


def test_one_cached_read_that_each_cli_command_renews(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`settings()` reads the environment once; the CLI reads it again for each command, so
    the file GOVERNANCE_CONFIG names decides the CLI's data directory and key too."""
    from typer.testing import CliRunner

    from governance import config
    from governance.cli import app

    file = tmp_path / "governance.yaml"
    file.write_text(f"home: {tmp_path / 'from-file'}\n")
    monkeypatch.setenv("GOVERNANCE_CONFIG", str(file))
    config.settings.cache_clear()
    first = config.settings()
    assert first.home == tmp_path / "from-file" and not first.database_configured
    monkeypatch.setenv("GOVERNANCE_HOME", str(tmp_path / "from-env"))
    assert config.settings() is first  # cached until cleared
    result = CliRunner().invoke(app, ["audit", "keygen"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "signing-key.pem").exists()
    assert config.settings().home == tmp_path / "from-env"
    config.settings.cache_clear()


EXAMPLE = Path(__file__).resolve().parents[2] / "governance.example.yaml"


def test_the_example_settings_file_has_every_key_at_its_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """governance.example.yaml is what the README points operators to: it must name every
    key the settings file takes, and each at the value the service uses without it."""
    import yaml

    from governance.config import SETTINGS_FILE_KEYS

    for name in [n for n in os.environ if n.startswith("GOVERNANCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert sorted(yaml.safe_load(EXAMPLE.read_text())) == sorted(SETTINGS_FILE_KEYS)
    defaults = Settings.from_env()
    monkeypatch.setenv("GOVERNANCE_CONFIG", str(EXAMPLE))
    assert Settings.from_env() == defaults


def test_webhook_hosts_are_a_yaml_list_or_a_comma_separated_string(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("webhook_allow_hosts: [hooks.internal, 'ci:8443']\n")
    monkeypatch.setenv("GOVERNANCE_CONFIG", str(config))
    assert Settings.from_env().webhook_allow_hosts == ("hooks.internal", "ci:8443")
    monkeypatch.setenv("GOVERNANCE_WEBHOOK_ALLOW_HOSTS", " hooks.internal , ci:8443,")
    assert Settings.from_env().webhook_allow_hosts == ("hooks.internal", "ci:8443")


def test_the_check_process_limits_may_be_set_in_the_settings_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("check_memory_mb: 2048\ncheck_timeout_seconds: 120\n")
    monkeypatch.delenv("GOVERNANCE_CHECK_MEMORY_MB", raising=False)
    monkeypatch.delenv("GOVERNANCE_CHECK_TIMEOUT_SECONDS", raising=False)
    monkeypatch.setenv("GOVERNANCE_CONFIG", str(config))
    settings = Settings.from_env()
    assert (settings.check_memory_mb, settings.check_timeout_seconds) == (2048, 120.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [("CHECK_MEMORY_MB", "2g"), ("CHECK_MEMORY_MB", "-1"), ("CHECK_TIMEOUT_SECONDS", "inf"),
     ("CHECK_TIMEOUT_SECONDS", "0"), ("CHECK_TIMEOUT_SECONDS", "nan")],
)  # fmt: skip
def test_the_check_process_limits_are_finite_numbers_above_zero(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"GOVERNANCE_{name}", value)
    with pytest.raises(InputError) as refused:
        Settings.from_env()
    assert refused.value.subject == f"GOVERNANCE_{name}"
