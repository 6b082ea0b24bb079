"""Configuration tree (docs/configuration.md).

Sources, later overriding earlier: ``$ATTUNE_CONFIG`` or ``config.yaml``; ``config.<env>.yaml``;
environment variables ``ATTUNE__SECTION__KEY``. Defaults describe the embedded deployment: SQLite
under the data directory and the in-process bus.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from attune.domain.budget import RenderLimits
from attune.domain.safe_yaml import YamlLimits
from attune.errors import ConfigError

SECRETS_FILE = "secrets.json"


def _hostname() -> str:
    return socket.gethostname()


class DatabaseSettings(BaseModel):
    url: str = ""
    max_connections: int = 50
    min_connections: int = 5
    connect_timeout: int = 30
    idle_timeout: int = 600
    log_statements: bool = False
    #: SQLite only: queued writers share one transaction opened at most this long ago
    #: (docs/performance.md "Group commit"); 0 commits every unit on its own.
    group_commit_window_ms: float = Field(default=2.0, ge=0, le=1000)
    schema_: str | None = Field(default=None, alias="schema")

    model_config = {"populate_by_name": True}


class MessageQueueSettings(BaseModel):
    url: str = "memory://"
    #: Prepended to every exchange and queue name, so several deployments can share one broker.
    prefix: str = ""
    exchange: str = "attune"
    enable_dlq: bool = True
    message_ttl: int = 3600


class RedisSettings(BaseModel):
    url: str = "redis://localhost:6379"
    pool_size: int = 10


class ServerSettings(BaseModel):
    #: Loopback by default: a development server is not reachable from the network unless told
    #: so (``attune server --host 0.0.0.0`` / ``ATTUNE__SERVER__HOST``; docs/security.md).
    host: str = "127.0.0.1"
    port: int = 8080
    #: The API base URL handed to actions and sensors (``$ATTUNE_API_URL`` too); None: the local
    #: server at ``http://127.0.0.1:<port>``.
    api_url: str | None = None
    request_timeout: int = 30
    enable_cors: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    max_body_size: int = 2 * 1024 * 1024
    #: Peers (IPs or CIDR networks) whose X-Forwarded-For / X-Real-IP headers are believed, by the
    #: webhook allow-list, the login throttle and uvicorn's proxy headers alike. Empty: none.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Requests that may wait for a run at once (``?wait=`` on ``GET /executions/{id}`` and on
    #: the webhook receiver); more answer 429 with ``Retry-After`` so that waiting clients cannot
    #: exhaust the server (docs/api.md, "Waiting for a run").
    max_waiters: int = Field(default=256, ge=0)
    #: Upper bound of any ``?wait=`` in seconds; longer requests are clamped to it.
    max_wait_seconds: int = Field(default=60, ge=0)
    #: Events and runs that may wait for the pipeline (the executor's event queue, executions
    #: ``requested``/``scheduled``) before the webhook receiver holds new calls, then answers 429
    #: with ``Retry-After``; 0 = no bound (docs/webhooks.md, "Back-pressure").
    max_backlog: int = Field(default=1000, ge=0)

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class LogSettings(BaseModel):
    level: Literal["trace", "debug", "info", "warn", "error"] = "info"
    format: Literal["json", "pretty"] = "pretty"
    console: bool = True
    file: str | None = None


class SecuritySettings(BaseModel):
    """Secrets, sign-up and sessions (docs/security.md, docs/configuration.md)."""

    jwt_secret: str | None = None
    encryption_key: str | None = None
    jwt_access_expiration: int = 3600
    jwt_refresh_expiration: int = 604800
    enable_auth: bool = True
    #: The credential internal callers present to ``POST /auth/internal/sensor-token``
    #: (``X-Attune-Service-Token``). Generated into ``secrets.json`` in development; without it
    #: (production default) the route answers 401 to everybody.
    service_token: str | None = None
    #: Whether ``POST /auth/register`` creates identities. Off everywhere by default: an admin
    #: creates users (``attune user create``, ``POST /api/v1/identities``).
    allow_self_registration: bool = False
    #: Failed logins allowed per login, and per client address, within ``login_failure_window``
    #: seconds; further attempts answer 429 with ``Retry-After`` until the window has passed.
    login_max_failures: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    login_failure_window: int = Field(default=300, ge=1)

    @field_validator("encryption_key")
    @classmethod
    def _key_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("security.encryption_key must be at least 32 characters")
        return value

    @field_validator("service_token")
    @classmethod
    def _service_token_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("security.service_token must be at least 32 characters")
        return value


def _name_list(value: Any) -> Any:
    """A comma-separated string (the form environment variables use) as a list; empty: None."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()] or None
    return value


class PythonPoolSettings(BaseModel):
    """Warm Python interpreters that Python actions are forked from (docs/performance.md)."""

    enabled: bool = True
    #: Warm interpreters per (interpreter, flags, start-up environment).
    size: int = Field(default=1, ge=1)
    #: Runs forked from one interpreter before it is replaced by a fresh one.
    max_runs: int = Field(default=100, ge=1)


class WorkerSettings(BaseModel):
    name: str = Field(default_factory=lambda: f"worker-{_hostname()}")
    #: Runtimes this worker serves (``$ATTUNE_WORKER_RUNTIMES``, comma separated); they win over
    #: ``capabilities.runtimes`` and detection.
    runtimes: list[str] | None = None
    worker_type: Literal["local", "remote", "container"] = "local"
    runtime_id: int | None = None
    host: str = Field(default_factory=_hostname)
    port: int | None = None
    capabilities: dict[str, Any] | None = None
    max_concurrent_tasks: int = 10
    heartbeat_interval: float = 30
    task_timeout: int = 300
    max_stdout_bytes: int = 10 * 1024 * 1024
    max_stderr_bytes: int = 10 * 1024 * 1024
    shutdown_timeout: int = 30
    stream_logs: bool = True
    #: core.noop and core.echo run inside the engine instead of starting /bin/sh (docs/performance.md).
    in_process_actions: bool = True
    python_pool: PythonPoolSettings = Field(default_factory=PythonPoolSettings)

    _runtimes = field_validator("runtimes", mode="before")(_name_list)


class SensorSettings(BaseModel):
    worker_name: str = Field(default_factory=lambda: f"sensor-{_hostname()}")
    host: str = Field(default_factory=_hostname)
    #: Runtimes advertised for sensors (``$ATTUNE_SENSOR_RUNTIMES``, comma separated); they win
    #: over ``capabilities.runtimes`` and detection.
    runtimes: list[str] | None = None
    capabilities: dict[str, Any] | None = None
    max_concurrent_sensors: int | None = None
    heartbeat_interval: float = 30
    poll_interval: float = 30
    sensor_timeout: int = 30
    shutdown_timeout: int = 30

    _runtimes = field_validator("runtimes", mode="before")(_name_list)


class NotifierSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8081
    max_connections: int = 10000


class RegistryIndex(BaseModel):
    url: str
    priority: int = 100
    enabled: bool = True
    name: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class PackRegistrySettings(BaseModel):
    enabled: bool = True
    cache_enabled: bool = True
    cache_ttl: int = 3600
    timeout: int = 120
    verify_checksums: bool = True
    allow_http: bool = False
    indices: list[RegistryIndex] = Field(default_factory=list)


class PackInstallSettings(BaseModel):
    """How ``POST /packs/install`` builds and checks a pack before swapping it in (docs/packs.md)."""

    #: pip ``--retries`` and ``--timeout`` (seconds) while building a pack's Python environment, so a
    #: requirement that cannot be found fails fast instead of retrying for minutes.
    pip_retries: int = Field(default=0, ge=0)
    pip_timeout: float = Field(default=15, gt=0)
    #: Upper bound (seconds) for each environment command (create, install) during an install.
    env_build_timeout: float = Field(default=600, gt=0)
    #: Upper bound (seconds) for git clones and archive downloads.
    fetch_timeout: float = Field(default=300, gt=0)
    #: Largest downloaded archive, and largest unpacked pack (bytes).
    max_archive_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    max_unpacked_bytes: int = Field(default=512 * 1024 * 1024, gt=0)


class ExecutorSettings(BaseModel):
    scheduled_timeout: int = 300
    timeout_check_interval: int = 60
    enable_timeout_monitor: bool = True
    #: How long a request waits for a live worker with its runtime before it fails.
    no_worker_timeout: float = 60
    #: How often policies are re-read from the database (a committed change applies at once).
    policy_refresh_interval: float = 5
    #: Seconds queue-statistics changes are gathered before one write (docs/policies.md).
    queue_stats_interval: float = Field(default=1.0, ge=0)
    #: Tasks a workflow may declare; a larger definition is refused with 422 (docs/workflows.md).
    workflow_max_tasks: int = Field(default=1_000, gt=0)


class RetentionSettings(BaseModel):
    """The purge job (docs/development.md): rows older than these ages are deleted in batches."""

    #: Events, enforcements, terminal executions and execution history; 0 disables the job.
    max_age_days: int = Field(default=90, ge=0)
    #: Worker history is kept longer (the original 180-day policy); 0 keeps it forever.
    worker_history_max_age_days: int = Field(default=180, ge=0)
    #: Seconds between two runs of the retention service.
    interval: float = Field(default=3600, gt=0)
    #: Rows deleted per statement (and per transaction).
    batch_size: int = Field(default=1000, ge=1)


class LimitsSettings(BaseModel):
    """What untrusted input may cost (docs/security.md "Input limits", docs/configuration.md)."""

    #: Seconds one template render (a rule firing, one workflow step) may run.
    template_timeout: float = Field(default=5.0, gt=0)
    #: Largest rendered result, in characters (text, or the JSON form of a typed value).
    template_max_output: int = Field(default=16 * 1024 * 1024, gt=0)
    #: Characters (list elements count 8) a render may build in total, intermediate values included.
    template_max_build: int = Field(default=64 * 1024 * 1024, gt=0)
    #: Threads that render templates; more renders at once wait for a free one.
    template_workers: int = Field(default=4, ge=1)
    #: Deepest nesting of a YAML document users send (packs, workflows, action output).
    yaml_max_depth: int = Field(default=100, ge=1)
    #: Most nodes of a YAML document once its aliases are expanded.
    yaml_max_nodes: int = Field(default=200_000, ge=1)
    #: Most aliases (``*name``) in one YAML document.
    yaml_max_aliases: int = Field(default=1000, ge=0)

    def render_limits(self) -> RenderLimits:
        return RenderLimits(
            timeout=self.template_timeout,
            max_output=self.template_max_output,
            max_build=self.template_max_build,
            workers=self.template_workers,
        )

    def yaml_limits(self) -> YamlLimits:
        return YamlLimits(
            max_depth=self.yaml_max_depth, max_nodes=self.yaml_max_nodes, max_aliases=self.yaml_max_aliases
        )


#: Environment variables older than the ``ATTUNE__SECTION__KEY`` scheme, still read:
#: name → (section, key). ``ATTUNE__SECTION__KEY`` wins over them, and they over the YAML files.
LEGACY_ENV: Mapping[str, tuple[str, str]] = {
    "ATTUNE_API_URL": ("server", "api_url"),
    "ATTUNE_WORKER_RUNTIMES": ("worker", "runtimes"),
    "ATTUNE_SENSOR_RUNTIMES": ("sensor", "runtimes"),
}


class _LegacyEnvSource(PydanticBaseSettingsSource):
    """The :data:`LEGACY_ENV` variables that are set and not empty, as a nested mapping."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, (section, key) in LEGACY_ENV.items():
            value = os.environ.get(name)
            if value:
                data.setdefault(section, {})[key] = value
        return data


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`, never at import time."""

    model_config = SettingsConfigDict(
        env_prefix="ATTUNE__",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
    )

    service_name: str = "attune"
    environment: str = "development"
    data_dir: Path = Path("./data")
    packs_base_dir: Path = Path("./packs")
    #: Where installed and uploaded packs are unpacked (default ``{data_dir}/packs``), so they
    #: never land in a source checkout's ``packs/``.
    installed_packs_dir: Path | None = None
    runtime_envs_dir: Path | None = None
    artifacts_dir: Path | None = None
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    message_queue: MessageQueueSettings = Field(default_factory=MessageQueueSettings)
    redis: RedisSettings | None = None
    server: ServerSettings = Field(default_factory=ServerSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    sensor: SensorSettings = Field(default_factory=SensorSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    pack_registry: PackRegistrySettings = Field(default_factory=PackRegistrySettings)
    pack_install: PackInstallSettings = Field(default_factory=PackInstallSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML files, which arrive as init kwargs.
        return (env_settings, _LegacyEnvSource(settings_cls), init_settings)

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        # Absolute paths: processes started elsewhere (workers, sensors) and stored results
        # (e.g. ``stderr_log``) must not depend on the working directory.
        self.data_dir = self.data_dir.absolute()
        self.packs_base_dir = self.packs_base_dir.absolute()
        if not self.database.url:
            self.database.url = f"sqlite:///{self.data_dir / 'attune.db'}"
        self.installed_packs_dir = (self.installed_packs_dir or self.data_dir / "packs").absolute()
        self.runtime_envs_dir = (self.runtime_envs_dir or self.data_dir / "runtime_envs").absolute()
        self.artifacts_dir = (self.artifacts_dir or self.data_dir / "artifacts").absolute()
        return self

    @property
    def is_production(self) -> bool:
        return self.environment.lower() == "production"

    @property
    def async_database_url(self) -> str:
        """The database URL with the async driver SQLAlchemy needs."""
        return async_url(self.database.url)

    @property
    def api_url(self) -> str:
        """The API base URL handed to actions and sensors: ``server.api_url`` or the local port."""
        return self.server.api_url or f"http://127.0.0.1:{self.server.port}"

    @property
    def install_dir(self) -> Path:
        """:attr:`installed_packs_dir`, resolved."""
        assert self.installed_packs_dir is not None
        return self.installed_packs_dir

    def pack_directory(self, pack_ref: str, storage_path: str | None) -> Path:
        """Where a pack's files live on this machine: the directory it was registered from, else
        ``{installed_packs_dir}/{ref}`` when that exists, else ``{packs_base_dir}/{ref}``.

        Packs registered in place (``POST /packs/register``) keep their files where they are;
        installed and uploaded packs live under ``installed_packs_dir`` (``{data_dir}/packs``).
        """
        if storage_path:
            stored = Path(storage_path)
            if stored.is_dir():
                return stored
        installed = self.install_dir / pack_ref
        if installed.is_dir():
            return installed
        return self.packs_base_dir / pack_ref

    @property
    def envs_dir(self) -> Path:
        assert self.runtime_envs_dir is not None
        return self.runtime_envs_dir


def async_url(url: str) -> str:
    """Map plain ``postgresql://`` / ``sqlite://`` URLs onto their async drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        key = key.lower()
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read configuration file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Configuration file {path} must contain a mapping")
    return data


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    ensure_secrets: bool = True,
    read_files: bool = True,
) -> Settings:
    """Read YAML files and ``ATTUNE__*`` variables into a validated :class:`Settings`.

    In development a missing JWT secret or encryption key is generated once and kept in the data
    directory; in production their absence is an error.
    """
    env = os.environ
    data: dict[str, Any] = {}
    base = config_file or (Path(env["ATTUNE_CONFIG"]) if env.get("ATTUNE_CONFIG") else Path("config.yaml"))
    if not read_files:
        pass
    elif base.is_file():
        data = _deep_merge(data, _read_yaml(base))
    elif config_file is not None:
        raise ConfigError(f"Configuration file {config_file} does not exist")
    if read_files and config_file is None:
        environment = env.get("ATTUNE__ENVIRONMENT") or str(data.get("environment", "development"))
        env_file = base.parent / f"config.{environment}.yaml"
        if env_file.is_file():
            data = _deep_merge(data, _read_yaml(env_file))
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"Invalid configuration: {problems}") from exc
    if not settings.database.url.strip():
        raise ConfigError("Invalid configuration: database.url must not be empty")
    if ensure_secrets:
        _ensure_secrets(settings)
    return settings


#: Values that are not secrets: the placeholder the runtime once fell back to and the usual
#: examples. Production refuses them (docs/security.md, "What production refuses").
INSECURE_SECRETS = frozenset(
    {
        "attune-insecure-default-secret-change-me-please!",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
    }
)
#: Shortest ``security.jwt_secret`` production accepts (HS256 wants at least 256 bits).
MIN_PRODUCTION_SECRET = 32


def production_refusals(settings: Settings) -> list[str]:
    """Why ``settings`` must not run with ``environment: production`` (empty: nothing).

    Each entry names the setting to change. The development user's password needs the database
    and is checked at start-up by :func:`attune.startup.check_startup`.
    """
    sec = settings.security
    problems: list[str] = []
    for name, env, value in (
        ("security.jwt_secret", "ATTUNE__SECURITY__JWT_SECRET", sec.jwt_secret),
        ("security.encryption_key", "ATTUNE__SECURITY__ENCRYPTION_KEY", sec.encryption_key),
    ):
        if not value:
            problems.append(f"{name} is not set (set {env} to a random string of 32+ characters)")
        elif value.strip().lower() in INSECURE_SECRETS or len(value) < MIN_PRODUCTION_SECRET:
            problems.append(
                f"{name} is a default or too short (set {env} to a random string of 32+ characters)"
            )
    if sec.allow_self_registration:
        problems.append(
            "security.allow_self_registration is true: anyone reaching the port could create an account "
            "(set ATTUNE__SECURITY__ALLOW_SELF_REGISTRATION=false and create users with `attune user create`)"
        )
    return problems


def _ensure_secrets(settings: Settings) -> None:
    sec = settings.security
    if settings.is_production:
        problems = production_refusals(settings)
        if problems:
            raise ConfigError("Refusing to start in production: " + "; ".join(problems))
        return
    if sec.jwt_secret and sec.encryption_key and sec.service_token:
        return
    path = settings.data_dir / SECRETS_FILE
    stored: dict[str, str] = {}
    if path.is_file():
        stored = json.loads(path.read_text())
    changed = False
    for name in ("jwt_secret", "encryption_key", "service_token"):
        if not stored.get(name) and not getattr(sec, name):
            stored[name] = secrets.token_urlsafe(48)
            changed = True
    if changed:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Created with mode 0600 from the start: no window in which another user could read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(stored))
        path.chmod(0o600)
    for name in ("jwt_secret", "encryption_key", "service_token"):
        if not getattr(sec, name):
            setattr(sec, name, stored[name])
