"""Configuration loading (docs/configuration.md with embedded defaults)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attune.errors import ConfigError
from attune.settings import async_url, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("ATTUNE"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_describe_the_embedded_deployment(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.database.url == f"sqlite:///{tmp_path / 'data' / 'attune.db'}"
    assert settings.message_queue.url == "memory://"
    assert settings.packs_base_dir == tmp_path / "packs"
    assert settings.runtime_envs_dir == tmp_path / "data" / "runtime_envs"
    assert settings.artifacts_dir == tmp_path / "data" / "artifacts"
    assert settings.server.port == 8080
    # Not reachable from the network unless told so (docs/security.md).
    assert (settings.server.host, settings.notifier.host) == ("127.0.0.1", "127.0.0.1")
    assert settings.security.allow_self_registration is False


def test_env_overrides_yaml_and_nested_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text(
        "server:\n  port: 9000\n  cors_origins: http://a, http://b\nlog:\n  level: debug\n"
    )
    monkeypatch.setenv("ATTUNE__SERVER__PORT", "9100")
    monkeypatch.setenv("ATTUNE__DATA_DIR", str(tmp_path / "d"))
    settings = load_settings()
    assert settings.server.port == 9100
    assert settings.server.cors_origins == ["http://a", "http://b"]
    assert settings.log.level == "debug"
    assert settings.database.url == f"sqlite:///{tmp_path / 'd' / 'attune.db'}"


def test_environment_file_is_layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text("server:\n  port: 9000\n  host: 127.0.0.1\n")
    (tmp_path / "config.staging.yaml").write_text("server:\n  port: 9001\n")
    monkeypatch.setenv("ATTUNE__ENVIRONMENT", "staging")
    settings = load_settings()
    assert (settings.server.port, settings.server.host) == (9001, "127.0.0.1")


def test_development_generates_and_keeps_secrets(tmp_path: Path) -> None:
    first = load_settings()
    assert first.security.jwt_secret and first.security.encryption_key
    assert len(first.security.encryption_key) >= 32
    stored = json.loads((tmp_path / "data" / "secrets.json").read_text())
    second = load_settings()
    assert second.security.jwt_secret == first.security.jwt_secret == stored["jwt_secret"]
    # The service credential is generated beside them, in a file only its owner can read.
    assert second.security.service_token == first.security.service_token == stored["service_token"]
    assert len(stored["service_token"]) >= 32
    assert (tmp_path / "data" / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_production_refuses_default_secrets_and_open_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTUNE__ENVIRONMENT", "production")
    monkeypatch.setenv("ATTUNE__SECURITY__JWT_SECRET", "attune-insecure-default-secret-change-me-please!")
    monkeypatch.setenv("ATTUNE__SECURITY__ENCRYPTION_KEY", "y" * 40)
    with pytest.raises(
        ConfigError, match=r"security\.jwt_secret is a default .*ATTUNE__SECURITY__JWT_SECRET"
    ):
        load_settings()
    monkeypatch.setenv("ATTUNE__SECURITY__JWT_SECRET", "too-short")
    with pytest.raises(ConfigError, match=r"security\.jwt_secret is a default or too short"):
        load_settings()
    monkeypatch.setenv("ATTUNE__SECURITY__JWT_SECRET", "x" * 40)
    monkeypatch.setenv("ATTUNE__SECURITY__ALLOW_SELF_REGISTRATION", "true")
    with pytest.raises(ConfigError, match=r"ATTUNE__SECURITY__ALLOW_SELF_REGISTRATION=false"):
        load_settings()
    monkeypatch.delenv("ATTUNE__SECURITY__ALLOW_SELF_REGISTRATION")
    settings = load_settings()
    # No service credential in production unless configured: the internal token route is closed.
    assert settings.security.service_token is None


def test_production_requires_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTUNE__ENVIRONMENT", "production")
    with pytest.raises(
        ConfigError, match=r"security\.jwt_secret is not set .*security\.encryption_key is not set"
    ):
        load_settings()
    monkeypatch.setenv("ATTUNE__SECURITY__JWT_SECRET", "x" * 40)
    monkeypatch.setenv("ATTUNE__SECURITY__ENCRYPTION_KEY", "y" * 40)
    assert load_settings().security.jwt_secret == "x" * 40


def test_invalid_values_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTUNE__SECURITY__ENCRYPTION_KEY", "short")
    with pytest.raises(ConfigError, match="encryption_key"):
        load_settings()
    monkeypatch.delenv("ATTUNE__SECURITY__ENCRYPTION_KEY")
    monkeypatch.setenv("ATTUNE__LOG__LEVEL", "loud")
    with pytest.raises(ConfigError, match=r"log\.level"):
        load_settings()


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_async_url_mapping() -> None:
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert async_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"
