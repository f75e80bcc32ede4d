"""One typed settings object, read from the environment once per process (`settings()`).

Every knob of the platform is here, with its environment variable and default; README.md's
configuration table lists the same. Tests override by changing `os.environ` and calling
`settings.cache_clear()`. Outside `SWITCHYARD_ENV=local` the settings refuse placeholder or
missing secrets instead of running with a weak default. This module reads no files and opens
no connections.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """The environment does not describe a usable configuration."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


def _bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    env: str  # local | test | dev | prod
    project_id: str
    deployment: str  # the running deployment's name ("" in tools and tests)
    local_dir: Path
    # database
    database_url: str
    instance_connection_name: str
    db_name: str
    db_user: str
    db_password: str = field(repr=False)
    db_iam_auth: bool = False
    db_ip_type: str = "public"  # public | private | psc (Cloud SQL connector)
    db_pool_size: int = 2
    db_max_overflow: int = 2
    # messaging and documents
    pubsub_emulator_host: str = ""
    firestore_emulator_host: str = ""
    publish_timeout_s: float = 5.0
    # tokens
    jwt_issuer: str = "switchyard"
    jwt_audience: str = "switchyard-api"
    access_ttl_s: int = 900
    refresh_ttl_s: int = 14 * 24 * 3600
    jwt_signing_key: str = field(default="", repr=False)  # PEM; the secret jwt-signing-key
    jwt_signing_kid: str = ""
    jwt_public_keys: str = field(default="", repr=False)  # JWKS JSON; secret jwt-public-keys
    # gateway
    service_urls: dict[str, str] = field(default_factory=dict)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576
    rate_limit_user_per_min: int = 600
    rate_limit_ip_per_min: int = 300
    upstream_timeout_s: float = 30.0
    health_timeout_s: float = 2.0
    # auth
    bootstrap_admin_email: str = ""
    bootstrap_admin_password: str = field(default="", repr=False)
    login_max_failures: int = 5
    login_window_s: int = 900
    # agents: what the investigations call impossible, a stall, off the corridor; route solver
    agents_max_speed_kmh: float = 900.0
    agents_stall_hours: float = 48.0
    agents_corridor_km: float = 200.0
    agents_route_speed_kmh: float = 50.0
    agents_route_time_limit_ms: int = 1000
    # misc
    log_level: str = "INFO"
    in_cloud: bool = False
    # source context: GitHub's REST API (a local fake in tests), the token's secret name, and
    # the region whose Cloud Scheduler runs the jobs (monitor start/stop)
    github_api_url: str = "https://api.github.com"
    github_token_secret: str = "github-token"  # noqa: S105 - a secret name, not a secret
    region: str = ""
    # secrets (shared.secrets): "" = Secret Manager outside local, else the local file store
    secret_backend: str = ""  # "" | local | secretmanager
    secretmanager_endpoint: str = "https://secretmanager.googleapis.com"
    # ops database backups: the Cloud SQL Admin API (a local fake in tests) and the bucket of
    # the exports ("" = <project>-switchyard-backups, as Terraform names it)
    sqladmin_endpoint: str = "https://sqladmin.googleapis.com"
    backup_bucket: str = ""

    @property
    def is_local(self) -> bool:
        return self.env in ("local", "test")


def _load() -> Settings:
    env = os.environ.get("SWITCHYARD_ENV", "local")
    if env not in ("local", "test", "dev", "prod"):
        raise ConfigError(f"SWITCHYARD_ENV must be local, test, dev or prod, got {env!r}")
    raw_urls = os.environ.get("SERVICE_URLS", "")
    try:
        urls = json.loads(raw_urls) if raw_urls else {}
    except json.JSONDecodeError:
        raise ConfigError("SERVICE_URLS must be a JSON object of deployment -> URL") from None
    if not isinstance(urls, dict):
        raise ConfigError("SERVICE_URLS must be a JSON object of deployment -> URL")
    local_dir = Path(os.environ.get("SWITCHYARD_LOCAL_DIR", str(ROOT / ".local")))
    s = Settings(
        env=env,
        project_id=os.environ.get("GOOGLE_CLOUD_PROJECT", "switchyard-local"),
        deployment=os.environ.get("SWITCHYARD_DEPLOYMENT", os.environ.get("K_SERVICE", "")),
        local_dir=local_dir,
        database_url=os.environ.get("DATABASE_URL", ""),
        instance_connection_name=os.environ.get("INSTANCE_CONNECTION_NAME", ""),
        db_name=os.environ.get("DB_NAME", "switchyard"),
        db_user=os.environ.get("DB_USER", ""),
        db_password=os.environ.get("DB_PASSWORD", ""),
        db_iam_auth=_bool("DB_IAM_AUTH", False),
        db_ip_type=os.environ.get("DB_IP_TYPE", "public").lower(),
        db_pool_size=_int("DB_POOL_SIZE", 2),
        db_max_overflow=_int("DB_MAX_OVERFLOW", 2),
        pubsub_emulator_host=os.environ.get("PUBSUB_EMULATOR_HOST", ""),
        firestore_emulator_host=os.environ.get("FIRESTORE_EMULATOR_HOST", ""),
        publish_timeout_s=float(os.environ.get("PUBLISH_TIMEOUT_S", "5")),
        jwt_issuer=os.environ.get("JWT_ISSUER", "switchyard"),
        jwt_audience=os.environ.get("JWT_AUDIENCE", "switchyard-api"),
        access_ttl_s=_int("ACCESS_TOKEN_TTL_S", 900),
        refresh_ttl_s=_int("REFRESH_TOKEN_TTL_S", 14 * 24 * 3600),
        jwt_signing_key=os.environ.get("JWT_SIGNING_KEY", ""),
        jwt_signing_kid=os.environ.get("JWT_SIGNING_KID", ""),
        jwt_public_keys=os.environ.get("JWT_PUBLIC_KEYS", ""),
        service_urls={str(k): str(v).rstrip("/") for k, v in urls.items()},
        cors_origins=_list("CORS_ORIGINS"),
        max_body_bytes=_int("MAX_BODY_BYTES", 1_048_576),
        rate_limit_user_per_min=_int("RATE_LIMIT_USER_PER_MIN", 600),
        rate_limit_ip_per_min=_int("RATE_LIMIT_IP_PER_MIN", 300),
        upstream_timeout_s=float(os.environ.get("UPSTREAM_TIMEOUT_S", "30")),
        health_timeout_s=float(os.environ.get("HEALTH_TIMEOUT_S", "2")),
        bootstrap_admin_email=os.environ.get("BOOTSTRAP_ADMIN_EMAIL", ""),
        bootstrap_admin_password=os.environ.get("BOOTSTRAP_ADMIN_PASSWORD", ""),
        login_max_failures=_int("LOGIN_MAX_FAILURES", 5),
        login_window_s=_int("LOGIN_WINDOW_S", 900),
        agents_max_speed_kmh=float(os.environ.get("AGENTS_MAX_SPEED_KMH", "900")),
        agents_stall_hours=float(os.environ.get("AGENTS_STALL_HOURS", "48")),
        agents_corridor_km=float(os.environ.get("AGENTS_CORRIDOR_KM", "200")),
        agents_route_speed_kmh=float(os.environ.get("AGENTS_ROUTE_SPEED_KMH", "50")),
        agents_route_time_limit_ms=_int("AGENTS_ROUTE_TIME_LIMIT_MS", 1000),
        log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        in_cloud=bool(os.environ.get("K_SERVICE")) and env not in ("local", "test"),
        github_api_url=os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
        github_token_secret=os.environ.get("GITHUB_TOKEN_SECRET", "github-token"),  # noqa: S105
        region=os.environ.get("GOOGLE_CLOUD_REGION", os.environ.get("FUNCTION_REGION", "")),
        secret_backend=os.environ.get("SECRET_BACKEND", "").strip().lower(),
        secretmanager_endpoint=os.environ.get(
            "SECRETMANAGER_ENDPOINT", "https://secretmanager.googleapis.com"
        ).rstrip("/"),
        sqladmin_endpoint=os.environ.get(
            "SQLADMIN_ENDPOINT", "https://sqladmin.googleapis.com"
        ).rstrip("/"),
        backup_bucket=os.environ.get("BACKUP_BUCKET", ""),
    )
    if not s.is_local:
        _refuse_placeholders(s)
    return s


_PLACEHOLDERS = {"", "changeme", "change-me", "admin", "password", "secret", "switchyard"}


def _refuse_placeholders(s: Settings) -> None:
    if s.bootstrap_admin_password and s.bootstrap_admin_password.lower() in _PLACEHOLDERS:
        raise ConfigError("BOOTSTRAP_ADMIN_PASSWORD is a placeholder; set a real secret")
    if s.bootstrap_admin_password and len(s.bootstrap_admin_password) < 12:
        raise ConfigError("BOOTSTRAP_ADMIN_PASSWORD must be at least 12 characters outside local")
    if s.pubsub_emulator_host or s.firestore_emulator_host:
        raise ConfigError("emulator hosts are set but SWITCHYARD_ENV is not local")


@functools.cache
def settings() -> Settings:
    """The settings of this process (cached; `settings.cache_clear()` re-reads)."""
    return _load()
