"""One typed settings object, read from the environment once per process (`settings()`).

Every knob of the platform is a field of `Settings` declared with `setting(...)`: its
environment variable, its default and one line saying what it means, in one place. `_load`
reads every field from that declaration, and README.md's configuration table is generated from
the same (`describe()`, by `make docs`; a test fails when it is stale). Add a knob by adding a
field with `setting(...)`. Tests override by changing `os.environ` and calling
`settings.cache_clear()`. Outside `SWITCHYARD_ENV=local` the settings refuse placeholder or
missing secrets instead of running with a weak default. This module reads no files and opens
no connections.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_PASSWORD",
    "LOCAL_ADMIN_PASSWORD",
    "LOCAL_ONLY_PASSWORDS",
    "ROOT",
    "ConfigError",
    "Setting",
    "Settings",
    "describe",
    "setting",
    "settings",
]

ROOT = Path(__file__).resolve().parent.parent

# Documented passwords of local stacks: `make dev`'s bootstrap admin and `make seed`'s demo
# users. Outside local they are refused everywhere (settings, password policy, login).
LOCAL_ADMIN_PASSWORD = "switchyard-local-admin"  # noqa: S105 - local stacks only
DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - local stacks only
LOCAL_ONLY_PASSWORDS = frozenset({LOCAL_ADMIN_PASSWORD, DEMO_PASSWORD})


class ConfigError(RuntimeError):
    """The environment does not describe a usable configuration."""


# --- parsers: raw environment string -> value (raise ValueError with a short reason) ---------


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("must be an integer") from None


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("must be a number") from None


def _bool(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in raw.split(",") if v.strip())


def _env_name(raw: str) -> str:
    if raw not in ("local", "test", "dev", "prod"):
        raise ValueError("must be local, test, dev or prod")
    return raw


def _urls(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object of deployment -> URL")
    return {str(k): str(v).rstrip("/") for k, v in value.items()}


def _trace_exporter(raw: str) -> str:
    value = raw.strip().lower() or "auto"
    if value not in ("auto", "cloudtrace", "log", "none"):
        raise ValueError("must be auto, cloudtrace, log or none")
    return value


def _lower(raw: str) -> str:
    return raw.strip().lower()


def _upper(raw: str) -> str:
    return raw.strip().upper()


def _url(raw: str) -> str:
    return raw.rstrip("/")


_BY_TYPE: dict[type, Callable[[str], Any]] = {
    bool: _bool,
    int: _int,
    float: _float,
    tuple: _list,
    str: str,
}


# An empty value of these means "unset" (the default); other parsers see the empty string.
_EMPTY_IS_UNSET = (_bool, _int, _float, _list)


def setting(
    env: str,
    doc: str,
    default: Any,
    *,
    parse: Callable[[str], Any] | None = None,
    also: tuple[str, ...] = (),
    secret: bool = False,
    shown: str | None = None,
) -> Any:
    """Declare a settings field: read from `env` (else the first of `also` that is set), parsed
    by `parse` (by default from the default's type), `default` when unset. `secret` keeps it out
    of repr; `shown` is the default as the README shows it when the value itself says little."""
    parser = parse or _BY_TYPE[type(default)]
    meta = {"env": env, "also": also, "doc": doc, "parse": parser, "shown": shown}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), repr=not secret, metadata=meta)
    return field(default=default, repr=not secret, metadata=meta)


@dataclass(frozen=True)
class Settings:
    env: str = setting(
        "SWITCHYARD_ENV",
        "`local`, `test`, `dev` or `prod`; outside local, placeholder secrets are refused",
        "local",
        parse=_env_name,
    )
    project_id: str = setting(
        "GOOGLE_CLOUD_PROJECT", "project of topics, Firestore and secrets", "switchyard-local"
    )
    deployment: str = setting(
        "SWITCHYARD_DEPLOYMENT",
        "name of the running deployment (set by the runner; Cloud Run sets `K_SERVICE`)",
        "",
        also=("K_SERVICE",),
    )
    local_dir: Path = setting(
        "SWITCHYARD_LOCAL_DIR",
        "local data: SQLite files, Firestore export, JWT keys, secrets store",
        ROOT / ".local",
        parse=Path,
        shown="`.local/`",
    )
    # database
    database_url: str = setting(
        "DATABASE_URL",
        "SQLAlchemy URL (`postgresql+pg8000://...`) when not using the connector; SQLite under "
        "`.local/` when neither is set",
        "",
    )
    instance_connection_name: str = setting(
        "INSTANCE_CONNECTION_NAME",
        "Cloud SQL instance (`project:region:instance`): connect through the connector",
        "",
    )
    db_name: str = setting("DB_NAME", "database name (Cloud SQL connector)", "switchyard")
    db_user: str = setting("DB_USER", "database user (Cloud SQL connector)", "")
    db_password: str = setting(
        "DB_PASSWORD", "database password, a secret (IAM auth needs none)", "", secret=True
    )
    db_iam_auth: bool = setting("DB_IAM_AUTH", "IAM database authentication (connector)", False)
    db_ip_type: str = setting(
        "DB_IP_TYPE", "`public`, `private` or `psc` (Cloud SQL connector)", "public", parse=_lower
    )
    db_pool_size: int = setting(
        "DB_POOL_SIZE",
        "per-instance pool (concurrency x instances must fit max_connections); a deployment's "
        "is min(concurrency, 2), set by Terraform, `deploy.py` and the local stack",
        2,
    )
    db_max_overflow: int = setting(
        "DB_MAX_OVERFLOW",
        "connections allowed beyond the pool, each closed when given back (0 for a deployment, "
        "in the cloud and the local stack: requests beyond the pool wait for a connection)",
        2,
    )
    db_grants: str = setting(
        "DB_GRANTS",
        "migrations only: JSON `{schema: [db user or user:table]}` (Terraform's `sql_grants`) "
        "granted DML after upgrading",
        "",
    )
    # messaging and documents
    pubsub_emulator_host: str = setting(
        "PUBSUB_EMULATOR_HOST", "Pub/Sub emulator (set by `make dev` and the tests)", ""
    )
    firestore_emulator_host: str = setting(
        "FIRESTORE_EMULATOR_HOST", "Firestore emulator (set by `make dev` and the tests)", ""
    )
    publish_timeout_s: float = setting(
        "PUBLISH_TIMEOUT_S", "how long a publish after commit may take before the relay's turn", 5.0
    )
    outbox_wait_s: float = setting(
        "OUTBOX_WAIT_S",
        "how long a request waits for its own events' publish before answering (Cloud Run "
        "throttles CPU after the response); 0: never, the sender publishes after it",
        0.0,
        shown="`2` on Cloud Run, `0` elsewhere",
    )
    # tokens
    jwt_issuer: str = setting("JWT_ISSUER", "`iss` of every token, checked", "switchyard")
    jwt_audience: str = setting("JWT_AUDIENCE", "`aud` of every token, checked", "switchyard-api")
    access_ttl_s: int = setting("ACCESS_TOKEN_TTL_S", "access token lifetime", 900)
    refresh_ttl_s: int = setting("REFRESH_TOKEN_TTL_S", "refresh token lifetime", 14 * 24 * 3600)
    refresh_family_ttl_s: int = setting(
        "REFRESH_FAMILY_TTL_S",
        "absolute lifetime of a login's refresh tokens, rotations included",
        30 * 24 * 3600,
    )
    jwt_signing_key: str = setting(
        "JWT_SIGNING_KEY",
        "RS256 private key (PEM), auth only; the secret `jwt-signing-key`",
        "",
        secret=True,
        shown="local key in `.local/jwt/`",
    )
    jwt_signing_kid: str = setting(
        "JWT_SIGNING_KID", "`kid` of the signing key (default: its JWK thumbprint)", ""
    )
    jwt_public_keys: str = setting(
        "JWT_PUBLIC_KEYS",
        "JWKS mounted at deploy time; used when the secret below cannot be found",
        "",
        secret=True,
        shown="local JWKS in `.local/jwt/`",
    )
    jwt_public_keys_secret: str = setting(
        "JWT_PUBLIC_KEYS_SECRET",
        "secret holding the JWKS (current and previous key), re-read every minute",
        "jwt-public-keys",
    )
    google_certs_url: str = setting(
        "GOOGLE_CERTS_URL",
        "Google's OAuth2 certificates that verify push, scheduler and service ID tokens",
        "https://www.googleapis.com/oauth2/v1/certs",
        parse=_url,
    )
    # gateway
    service_urls: dict[str, str] = setting(
        "SERVICE_URLS",
        "JSON `{deployment: url}`; the gateway and service-to-service calls route with it",
        {},
        parse=_urls,
    )
    cors_origins: tuple[str, ...] = setting(
        "CORS_ORIGINS", "comma-separated origins the gateway answers CORS for", ()
    )
    max_body_bytes: int = setting("MAX_BODY_BYTES", "request body limit (413)", 1_048_576)
    rate_limit_user_per_min: int = setting(
        "RATE_LIMIT_USER_PER_MIN", "gateway rate limit per user (per instance)", 600
    )
    rate_limit_ip_per_min: int = setting(
        "RATE_LIMIT_IP_PER_MIN", "gateway rate limit per client IP (per instance)", 300
    )
    upstream_timeout_s: float = setting(
        "UPSTREAM_TIMEOUT_S", "gateway timeout of a forwarded request", 30.0
    )
    health_timeout_s: float = setting(
        "HEALTH_TIMEOUT_S", "gateway timeout of each deployment's health check", 2.0
    )
    stream_read_timeout_s: float = setting(
        "STREAM_READ_TIMEOUT_S",
        "gateway read timeout between two chunks of a streamed (text/event-stream) answer",
        60.0,
    )
    realtime_heartbeat_s: float = setting(
        "REALTIME_HEARTBEAT_S", "realtime-stream: seconds of silence before a heartbeat", 15.0
    )
    # auth
    bootstrap_admin_email: str = setting(
        "BOOTSTRAP_ADMIN_EMAIL",
        "first admin, created by `make migrate`; required outside local until an admin exists "
        "(`make dev`: `admin@switchyard.local`)",
        "",
    )
    bootstrap_admin_password: str = setting(
        "BOOTSTRAP_ADMIN_PASSWORD",
        "password of the first admin, a secret (`make dev`: `switchyard-local-admin`)",
        "",
        secret=True,
    )
    login_max_failures: int = setting(
        "LOGIN_MAX_FAILURES",
        "failed logins allowed per (account, client IP) before progressive delays",
        5,
    )
    login_delay_s: int = setting(
        "LOGIN_DELAY_S", "first delay past LOGIN_MAX_FAILURES, doubled at each further failure", 1
    )
    login_ip_max_failures: int = setting(
        "LOGIN_IP_MAX_FAILURES", "failed logins allowed per client IP across accounts", 100
    )
    login_window_s: int = setting("LOGIN_WINDOW_S", "window of the login throttling", 900)
    # agents: what the investigations call impossible, a stall, off the corridor; route solver
    agents_max_speed_kmh: float = setting(
        "AGENTS_MAX_SPEED_KMH", "agents: a faster move between two scans is an anomaly", 900.0
    )
    agents_stall_hours: float = setting(
        "AGENTS_STALL_HOURS", "agents: a package without a scan for longer is stalled", 48.0
    )
    agents_corridor_km: float = setting(
        "AGENTS_CORRIDOR_KM", "agents: farther from the route corridor is off-route", 200.0
    )
    agents_route_speed_kmh: float = setting(
        "AGENTS_ROUTE_SPEED_KMH", "agents: speed the route solver plans with", 50.0
    )
    agents_route_time_limit_ms: int = setting(
        "AGENTS_ROUTE_TIME_LIMIT_MS", "agents: time limit of the route solver", 1000
    )
    # agents: the optional narrative (decision 0050); off while the model is empty
    agents_narrative_model: str = setting(
        "AGENTS_NARRATIVE_MODEL",
        "agents: Vertex AI Gemini model that retells an investigation's findings (empty: off)",
        "",
    )
    agents_narrative_location: str = setting(
        "AGENTS_NARRATIVE_LOCATION", "agents: Vertex AI location of the narrative model", "global"
    )
    agents_narrative_endpoint: str = setting(
        "AGENTS_NARRATIVE_ENDPOINT",
        "agents: base URL of the Vertex AI API (empty: Google's for the location)",
        "",
    )
    agents_narrative_timeout_s: float = setting(
        "AGENTS_NARRATIVE_TIMEOUT_S",
        "agents: longest wait for the narrative model (1-60 s); then it is unavailable",
        10.0,
    )
    # misc
    log_level: str = setting(
        "LOG_LEVEL", "JSON log lines on stdout in Cloud Logging's shape", "INFO", parse=_upper
    )
    # traces (shared.tracing, decision 0046)
    tracing: bool = setting(
        "TRACING",
        "OpenTelemetry spans of every request and event hop; `false`: the traceparent is only "
        "passed on",
        True,
    )
    trace_sample_ratio: float = setting(
        "TRACE_SAMPLE_RATIO",
        "share of new traces sampled (parent-based: a caller's sampling decision is kept)",
        1.0,
    )
    trace_exporter: str = setting(
        "TRACE_EXPORTER",
        "`cloudtrace`, `log` (a JSON line per span, read by the dev dashboard) or `none`; "
        "`auto`: Cloud Trace on Cloud Run, else none (`make dev` sets `log`)",
        "auto",
        parse=_trace_exporter,
    )
    # source context: GitHub's REST API (a local fake in tests), the token's secret name, and
    # the region whose Cloud Scheduler runs the jobs (monitor start/stop)
    github_api_url: str = setting(
        "GITHUB_API_URL",
        "GitHub's REST API (a local fake in tests)",
        "https://api.github.com",
        parse=_url,
    )
    github_token_secret: str = setting(
        "GITHUB_TOKEN_SECRET",
        "name of the secret holding the GitHub token",
        "github-token",
    )
    region: str = setting(
        "GOOGLE_CLOUD_REGION",
        "region of the functions and their Cloud Scheduler jobs",
        "",
        also=("FUNCTION_REGION",),
    )
    # secrets (shared.secrets): "" = Secret Manager outside local, else the local file store
    secret_backend: str = setting(
        "SECRET_BACKEND",
        "`local` or `secretmanager`; unset: Secret Manager outside local, else the local store",
        "",
        parse=_lower,
    )
    # the gateway reads the state of the event and schedule deployments it may not invoke
    run_endpoint: str = setting(
        "RUN_ENDPOINT",
        "Cloud Run Admin API endpoint (a local fake in tests)",
        "https://run.googleapis.com",
        parse=_url,
    )
    secretmanager_endpoint: str = setting(
        "SECRETMANAGER_ENDPOINT",
        "Secret Manager REST endpoint (a local fake in tests)",
        "https://secretmanager.googleapis.com",
        parse=_url,
    )
    # ops database backups: the Cloud SQL Admin API (a local fake in tests) and the bucket of
    # the exports ("" = <project>-switchyard-backups, as Terraform names it)
    sqladmin_endpoint: str = setting(
        "SQLADMIN_ENDPOINT",
        "Cloud SQL Admin API endpoint (a local fake in tests)",
        "https://sqladmin.googleapis.com",
        parse=_url,
    )
    backup_bucket: str = setting(
        "BACKUP_BUCKET",
        "bucket of the database exports (unset: `<project>-switchyard-backups`)",
        "",
    )
    # derived, not read: running on Cloud Run (K_SERVICE set) outside local and test
    in_cloud: bool = False

    @property
    def is_local(self) -> bool:
        return self.env in ("local", "test")


@dataclass(frozen=True)
class Setting:
    """One documented setting: what README.md's configuration table shows."""

    name: str
    env: str
    also: tuple[str, ...]
    default: str
    doc: str
    secret: bool


def _shown(value: Any) -> str:
    if value in ("", (), {}, None):
        return "-"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def describe() -> list[Setting]:
    """Every setting read from the environment, in declaration order."""
    out = []
    for f in dataclasses.fields(Settings):
        if "env" not in f.metadata:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append(
            Setting(
                name=f.name,
                env=f.metadata["env"],
                also=f.metadata["also"],
                default=f.metadata["shown"] or _shown(default),
                doc=f.metadata["doc"],
                secret=not f.repr,
            )
        )
    return out


def _read(f: dataclasses.Field[Any]) -> Any:
    names = (f.metadata["env"], *f.metadata["also"])
    name = next((n for n in names if n in os.environ), None)
    parse = f.metadata["parse"]
    raw = os.environ[name] if name else None
    if raw is None or (raw == "" and parse in _EMPTY_IS_UNSET):
        return dataclasses.MISSING
    try:
        return parse(raw)
    except ValueError as exc:
        shown = "(hidden)" if not f.repr else repr(raw)
        raise ConfigError(f"{name} {exc}, got {shown}") from None


def _load() -> Settings:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if "env" in f.metadata:
            value = _read(f)
            if value is not dataclasses.MISSING:
                values[f.name] = value
    s = Settings(**values)
    s = dataclasses.replace(s, in_cloud=bool(os.environ.get("K_SERVICE")) and not s.is_local)
    if s.in_cloud and "outbox_wait_s" not in values:
        s = dataclasses.replace(s, outbox_wait_s=CLOUD_OUTBOX_WAIT_S)
    if not s.is_local:
        _refuse_placeholders(s)
    return s


CLOUD_OUTBOX_WAIT_S = 2.0  # decision 0041: on Cloud Run a request sees its events published

_PLACEHOLDERS = {"", "changeme", "change-me", "admin", "password", "secret", "switchyard"}


def _refuse_placeholders(s: Settings) -> None:
    if s.bootstrap_admin_password and s.bootstrap_admin_password.lower() in _PLACEHOLDERS:
        raise ConfigError("BOOTSTRAP_ADMIN_PASSWORD is a placeholder; set a real secret")
    if s.bootstrap_admin_password in LOCAL_ONLY_PASSWORDS:
        raise ConfigError("BOOTSTRAP_ADMIN_PASSWORD is the local stack's; set a real secret")
    if s.bootstrap_admin_password and len(s.bootstrap_admin_password) < 12:
        raise ConfigError("BOOTSTRAP_ADMIN_PASSWORD must be at least 12 characters outside local")
    if s.pubsub_emulator_host or s.firestore_emulator_host:
        raise ConfigError("emulator hosts are set but SWITCHYARD_ENV is not local")


@functools.cache
def settings() -> Settings:
    """The settings of this process (cached; `settings.cache_clear()` re-reads)."""
    return _load()
