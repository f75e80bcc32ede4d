"""Load and validate every `functions/*/function.yaml`: the one source of truth for deployments.

Each context declares its deployments (entry point, trigger, routes, topics, schedule, runtime
size, secrets, the http deployments it calls) once; the local runner, the gateway's routing
table, the emulator wiring, Terraform, the deploy scripts and the tests all read them through
this module (Terraform reads the same YAML with `yamldecode`). Validation is strict: an unknown
key, a duplicate deployment name or route, a subscribed topic nobody publishes, an event type
published by more than one context, a `calls` entry that is not another http deployment, an
unknown platform role, or an entry point missing from `main.py` raises `ManifestError` naming
the file(s) and the key. Platform roles (`platform_roles`: the outbox relay, the outbox and
dead-letter operators) are declared here once; Terraform and infra/deploy read them. A
context may declare `retention` rules for the Firestore collections it owns (kind, collection,
timestamp_field, keep_days, description); ops' cleanup applies them (decision 0015). This
module does no I/O beyond reading the manifests and parsing (not importing) each context's
`main.py`.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

# libyaml's parser when PyYAML was built with it: the same safe constructor (the same values),
# ~6x less CPU than the pure-Python parser (~30 ms for the 13 manifests here, paid by every
# process on its first catalog(): create_app and the first health check; decision 0052)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"

Trigger = Literal["http", "event", "schedule"]
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,48}[a-z0-9]$")
_TOPIC = re.compile(r"^[a-z][a-z0-9]*(\.[a-z][a-z0-9_]*)+$")
_ROUTE = re.compile(r"^/((api(/[a-z0-9._-]+)*)|health)?$")
_MEMORY = re.compile(r"^[0-9]+(Mi|Gi)$")
_USES = {"sql", "firestore"}
_MAX_BODY_LIMIT = 32 * 1024 * 1024  # Cloud Run's HTTP/1 request size limit

_MANIFEST_KEYS = {
    "context",
    "description",
    "owns_schema",
    "bootstrap",
    "deployments",
    "retention",
}
_RETENTION_KEYS = {"kind", "collection", "timestamp_field", "keep_days", "description"}
_KIND = re.compile(r"^[a-z][a-z0-9_]{1,48}[a-z0-9]$")
_COLLECTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")  # a top-level Firestore collection
# kinds ops itself applies (functions/ops/service.py BUILTIN_RULES): a context cannot take them
_BUILTIN_RETENTION = {"outbox", "processed"}
_HOOK = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*:[a-z_][a-z0-9_]*$")
_DEPLOYMENT_KEYS = {
    "entry_point",
    "trigger",
    "description",
    "routes",
    "public_routes",
    "internal_routes",
    "publishes",
    "subscribes",
    "retry",
    "schedule",
    "time_zone",
    "runtime",
    "secrets",
    "uses",
    "ingress",
    "env",
    "calls",
    "platform_roles",
    "max_body_bytes",
}

# Platform roles: the grants a deployment gets beyond what its own manifest entry implies.
# Terraform (infra/modules/manifests) and infra/deploy/deploy.py read them from the manifests.
PlatformRole = Literal["outbox-relay", "outbox-operator", "outbox-purger", "dead-letter-operator"]
PLATFORM_ROLES: dict[str, str] = {
    "outbox-relay": "publishes every topic (pending outbox rows of every context); SELECT and "
    "UPDATE on every context's `outbox` table",
    "outbox-operator": "SELECT on the `outbox` table of every context's schema, nothing else",
    "outbox-purger": "SELECT and DELETE on the `outbox` table of every context's schema "
    "(retention), nothing else",
    "dead-letter-operator": "reads every dead-letter --keep subscription and republishes to "
    "the topics that have one (redrive)",
}
# Roles that read or write the outbox tables need the database.
_SQL_ROLES = {"outbox-relay", "outbox-operator", "outbox-purger"}
_RUNTIME_DEFAULTS: dict[str, Any] = {
    "memory": "256Mi",
    "cpu": 1,
    "timeout_s": 60,
    "min_instances": 0,
    "max_instances": 10,
    "concurrency": 40,
}
# A schedule deployment runs one tick at a time (Cloud Scheduler fires once per schedule time;
# the job is idempotent per schedule time), so one instance is its default (decision 0040).
_TRIGGER_RUNTIME_DEFAULTS: dict[str, dict[str, Any]] = {"schedule": {"max_instances": 1}}
# Database connections one instance may hold (shared.db's pool; no overflow): at most this
# many, fewer when the instance serves fewer requests at once. Terraform, infra/deploy and the
# local stack set DB_POOL_SIZE to `Deployment.db_pool` (`pool_env`); the Cloud SQL connection
# budget counts it (0040).
DB_POOL_MAX = 2
_RETRY_DEFAULTS: dict[str, Any] = {"max_attempts": 5, "min_backoff_s": 10, "max_backoff_s": 600}


class ManifestError(ValueError):
    """A manifest is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Runtime:
    memory: str
    cpu: float
    timeout_s: int
    min_instances: int
    max_instances: int
    concurrency: int


@dataclass(frozen=True)
class Retry:
    max_attempts: int
    min_backoff_s: int
    max_backoff_s: int


@dataclass(frozen=True)
class Deployment:
    """One deployed Cloud Run function."""

    name: str
    context: str
    entry_point: str
    trigger: Trigger
    description: str
    source_dir: Path
    owns_schema: str | None
    routes: tuple[str, ...] = ()
    public_routes: tuple[str, ...] = ()
    # under `routes`, served to other deployments only (shared.clients.call): the gateway
    # never forwards them and the merged OpenAPI document leaves them out
    internal_routes: tuple[str, ...] = ()
    publishes: tuple[str, ...] = ()
    subscribes: tuple[str, ...] = ()  # resolved: "*" expands to every published topic
    subscribes_all: bool = False
    retry: Retry = field(default_factory=lambda: Retry(**_RETRY_DEFAULTS))
    schedule: str | None = None
    time_zone: str = "Etc/UTC"
    runtime: Runtime = field(default_factory=lambda: Runtime(**_RUNTIME_DEFAULTS))
    secrets: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    ingress: Literal["internal", "all"] = "internal"
    env: tuple[tuple[str, str], ...] = ()
    # http deployments this one calls service-to-service (shared.clients.call): they alone get
    # it run.invoker and SERVICE_URLS in the cloud, and `call` refuses any other.
    calls: tuple[str, ...] = ()
    # platform roles (PLATFORM_ROLES) of this deployment, sorted
    platform_roles: tuple[str, ...] = ()
    # the largest request body the gateway lets through to this deployment (None: the
    # platform's MAX_BODY_BYTES); e.g. GitHub webhook deliveries of up to 25 MB
    max_body_bytes: int | None = None

    @property
    def health_path(self) -> str:
        """Path that answers the health check of this deployment."""
        if self.trigger == "http" and self.routes and self.routes[0] not in ("/", "/health"):
            return self.routes[0] + "/health"
        return "/health"

    @property
    def uses_sql(self) -> bool:
        return "sql" in self.uses

    @property
    def db_pool(self) -> int:
        """Connections one instance may hold: min(concurrency, DB_POOL_MAX); 0 without sql."""
        return min(self.runtime.concurrency, DB_POOL_MAX) if self.uses_sql else 0

    @property
    def pool_env(self) -> dict[str, str]:
        """The pool settings an instance runs with (infra/deploy, and the local stack: the same
        as Terraform's module manifests): `db_pool` connections, no overflow. An overflow
        connection is closed when it is given back, so with more requests at once than the pool
        each one beyond it would open (TCP, TLS attempt, authentication) and close its own."""
        return {"DB_POOL_SIZE": str(self.db_pool), "DB_MAX_OVERFLOW": "0"} if self.uses_sql else {}

    @property
    def uses_firestore(self) -> bool:
        return "firestore" in self.uses


@dataclass(frozen=True)
class Retention:
    """A retention rule a context declares for a Firestore collection it owns: ops' cleanup
    removes its documents whose `timestamp_field` is more than `keep_days` old (decision
    0015)."""

    kind: str
    collection: str
    timestamp_field: str
    keep_days: int
    description: str


@dataclass(frozen=True)
class Context:
    name: str
    description: str
    owns_schema: str | None
    path: Path
    deployments: tuple[Deployment, ...]
    # `module:function` run by `python -m shared.migrate` after the migrations (data every
    # environment needs, e.g. the bootstrap admin); declared here so shared/ imports no context
    bootstrap: str | None = None
    # retention rules for the Firestore collections it owns (ops applies them)
    retention: tuple[Retention, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """Every context and deployment, validated together."""

    contexts: tuple[Context, ...]

    @property
    def deployments(self) -> dict[str, Deployment]:
        return {d.name: d for c in self.contexts for d in c.deployments}

    @property
    def topics(self) -> tuple[str, ...]:
        """Every event type published by some deployment, sorted."""
        return tuple(sorted({t for d in self.deployments.values() for t in d.publishes}))

    @property
    def schemas(self) -> tuple[str, ...]:
        return tuple(c.owns_schema for c in self.contexts if c.owns_schema)

    def context(self, name: str) -> Context:
        for c in self.contexts:
            if c.name == name:
                return c
        raise KeyError(name)

    @functools.cached_property
    def _routes(self) -> tuple[tuple[str, Deployment], ...]:
        pairs = [(r, d) for d in self.deployments.values() for r in d.routes]
        return tuple(sorted(pairs, key=lambda p: len(p[0]), reverse=True))

    def routes(self) -> list[tuple[str, Deployment]]:
        """(prefix, deployment) pairs, longest prefix first: the gateway's routing table."""
        return list(self._routes)

    def route(self, path: str) -> Deployment | None:
        """The deployment serving `path` by longest route prefix, or None."""
        for prefix, dep in self._routes:
            if _under(path, prefix):
                return dep
        return None

    @functools.cached_property
    def _exact_public(self) -> frozenset[str]:
        paths = {"/health"}
        for d in self.deployments.values():
            paths.add(d.health_path)
            if d.routes and d.routes[0].startswith("/api/"):
                paths.add(d.routes[0].rstrip("/") + "/openapi.json")
        return frozenset(paths)

    @functools.cached_property
    def _public_prefixes(self) -> re.Pattern[str]:
        return _prefixes_pattern(p for d in self.deployments.values() for p in d.public_routes)

    def is_public(self, path: str) -> bool:
        """True when `path` is served without a JWT: a declared `public_routes` prefix, or
        exactly a deployment's health path or OpenAPI document `<first /api route>/openapi.json`
        (exact, so a catch-all route cannot smuggle `.../health` past the JWT check)."""
        if path in self._exact_public:
            return True
        return self._public_prefixes.match(path) is not None

    @functools.cached_property
    def _internal_prefixes(self) -> re.Pattern[str]:
        return _prefixes_pattern(p for d in self.deployments.values() for p in d.internal_routes)

    def is_internal(self, path: str) -> bool:
        """True when `path` is for service-to-service calls only (a declared
        `internal_routes` prefix): the gateway answers 404 as for an unknown path."""
        return self._internal_prefixes.match(path) is not None

    def with_role(self, role: str) -> tuple[str, ...]:
        """Names of the deployments that declare platform role `role`, sorted."""
        if role not in PLATFORM_ROLES:
            raise KeyError(role)
        return tuple(sorted(n for n, d in self.deployments.items() if role in d.platform_roles))

    def publishes_everything(self, d: Deployment) -> bool:
        """True when `d` may publish every topic: the outbox relay, the dead-letter operator."""
        return bool({"outbox-relay", "dead-letter-operator"} & set(d.platform_roles))

    def subscriptions(self) -> list[tuple[Deployment, str]]:
        """(event deployment, topic) pairs: one push subscription each."""
        return [(d, t) for d in self.deployments.values() for t in d.subscribes]


def _under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or below it. The root route `/` (a web front end) covers every path
    except the API: `/api/...` never falls through to it, nor to a public `/`."""
    if prefix == "/":
        return not (path == "/api" or path.startswith("/api/"))
    base = prefix.rstrip("/")
    # `prefix:verb` is a custom method of the collection (AIP-136), served where prefix is
    return path == prefix or path.startswith(base + "/") or path.startswith(base + ":")


def _prefixes_pattern(prefixes: Iterable[str]) -> re.Pattern[str]:
    """One pattern that matches a path `_under` any of `prefixes` (compiled once per process:
    the auth hook and the gateway ask of every request)."""
    alternatives = []
    for prefix in prefixes:
        if prefix == "/":
            alternatives.append(r"(?!/api(?:/|\Z))")
        else:
            base = re.escape(prefix.rstrip("/"))
            alternatives.append(rf"{re.escape(prefix)}\Z|{base}[/:]")
    return re.compile("|".join(alternatives) if alternatives else r"(?!)")


def subscription_name(deployment: str, topic: str) -> str:
    """The Pub/Sub subscription feeding `deployment` from `topic` (same locally and in cloud)."""
    return f"{deployment}--{topic}"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dead-letter"


def _rel(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _fail(path: Path, key: str, message: str) -> ManifestError:
    return ManifestError(f"{_rel(path)}: {key}: {message}")


def _str_list(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, key, "must be a list of strings")
    return tuple(value)


def _merged(path: Path, key: str, value: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    if value is None:
        return dict(defaults)
    if not isinstance(value, dict):
        raise _fail(path, key, "must be a mapping")
    unknown = set(value) - set(defaults)
    if unknown:
        raise _fail(path, f"{key}.{sorted(unknown)[0]}", "unknown key")
    merged = {**defaults, **value}
    for k, v in merged.items():
        if k != "memory" and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise _fail(path, f"{key}.{k}", "must be a non-negative number")
    return merged


def _entry_points(main: Path) -> set[str]:
    if not main.exists():
        return set()
    tree = ast.parse(main.read_text(), filename=str(main))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _deployment(path: Path, ctx: str, schema: str | None, name: str, raw: Any) -> Deployment:
    where = f"deployments.{name}"
    if not _NAME.match(name):
        raise _fail(path, where, "deployment names are kebab-case, 3-50 characters")
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a mapping")
    unknown = set(raw) - _DEPLOYMENT_KEYS
    if unknown:
        raise _fail(path, f"{where}.{sorted(unknown)[0]}", "unknown key")
    trigger = raw.get("trigger")
    if trigger not in ("http", "event", "schedule"):
        raise _fail(path, f"{where}.trigger", "must be http, event or schedule")
    entry = raw.get("entry_point")
    if not isinstance(entry, str) or not entry.isidentifier():
        raise _fail(path, f"{where}.entry_point", "must name a function in main.py")
    if entry not in _entry_points(path.parent / "main.py"):
        raise _fail(path, f"{where}.entry_point", f"{entry!r} is not defined in main.py")
    routes = _str_list(path, f"{where}.routes", raw.get("routes"))
    public = _str_list(path, f"{where}.public_routes", raw.get("public_routes"))
    for r in routes + public:
        if not _ROUTE.match(r):
            raise _fail(path, f"{where}.routes", f"{r!r} is not /, /health or /api/<resource>")
    if trigger == "http" and not routes:
        raise _fail(path, f"{where}.routes", "an http deployment needs at least one route")
    if trigger != "http" and (routes or public):
        raise _fail(path, f"{where}.routes", "only http deployments have routes")
    for p in public:
        if not any(_under(p, r) for r in routes):
            raise _fail(path, f"{where}.public_routes", f"{p!r} is not under a route")
    internal = _str_list(path, f"{where}.internal_routes", raw.get("internal_routes"))
    for p in internal:
        if not _ROUTE.match(p) or not any(_under(p, r) for r in routes):
            raise _fail(path, f"{where}.internal_routes", f"{p!r} is not under a route")
        if any(_under(p, q) or _under(q, p) for q in public):
            raise _fail(path, f"{where}.internal_routes", f"{p!r} overlaps a public route")
    publishes = _str_list(path, f"{where}.publishes", raw.get("publishes"))
    for t in publishes:
        if not _TOPIC.match(t):
            raise _fail(path, f"{where}.publishes", f"{t!r} is not <entity>.<verb> lowercase")
    subscribes = raw.get("subscribes")
    subscribes_all = subscribes == "*" or subscribes == ["*"]
    subs = () if subscribes_all else _str_list(path, f"{where}.subscribes", subscribes)
    if trigger == "event" and not (subs or subscribes_all):
        raise _fail(path, f"{where}.subscribes", "an event deployment subscribes to topics")
    if trigger != "event" and (subs or subscribes_all):
        raise _fail(path, f"{where}.subscribes", "only event deployments subscribe")
    schedule = raw.get("schedule")
    if trigger == "schedule":
        if not isinstance(schedule, str) or len(schedule.split()) != 5:
            raise _fail(path, f"{where}.schedule", "a schedule deployment needs a 5-field cron")
    elif schedule is not None:
        raise _fail(path, f"{where}.schedule", "only schedule deployments have a schedule")
    uses = _str_list(path, f"{where}.uses", raw.get("uses"))
    if set(uses) - _USES:
        raise _fail(path, f"{where}.uses", f"must be among {sorted(_USES)}")
    ingress = raw.get("ingress", "internal")
    if ingress not in ("internal", "all"):
        raise _fail(path, f"{where}.ingress", "must be internal or all")
    memory = (raw.get("runtime") or {}).get("memory", _RUNTIME_DEFAULTS["memory"])
    if not isinstance(memory, str) or not _MEMORY.match(memory):
        raise _fail(path, f"{where}.runtime.memory", "must look like 512Mi or 1Gi")
    env = raw.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise _fail(path, f"{where}.env", "must map names to strings")
    calls = _str_list(path, f"{where}.calls", raw.get("calls"))
    if len(set(calls)) != len(calls):
        raise _fail(path, f"{where}.calls", "names a deployment twice")
    roles = _str_list(path, f"{where}.platform_roles", raw.get("platform_roles"))
    for role in roles:
        if role not in PLATFORM_ROLES:
            raise _fail(
                path, f"{where}.platform_roles", f"{role!r} is not among {sorted(PLATFORM_ROLES)}"
            )
        if role in _SQL_ROLES and "sql" not in uses:
            raise _fail(path, f"{where}.platform_roles", f"{role!r} needs `uses: [sql]`")
    if len(set(roles)) != len(roles):
        raise _fail(path, f"{where}.platform_roles", "names a role twice")
    max_body = raw.get("max_body_bytes")
    if max_body is not None and (
        isinstance(max_body, bool)
        or not isinstance(max_body, int)
        or not 1 <= max_body <= _MAX_BODY_LIMIT
    ):
        raise _fail(path, f"{where}.max_body_bytes", f"must be an integer in 1..{_MAX_BODY_LIMIT}")
    if max_body is not None and trigger != "http":
        raise _fail(path, f"{where}.max_body_bytes", "only http deployments take bodies")
    return Deployment(
        name=name,
        context=ctx,
        entry_point=entry,
        trigger=trigger,
        description=str(raw.get("description", "")),
        source_dir=path.parent,
        owns_schema=schema,
        routes=routes,
        public_routes=public,
        internal_routes=internal,
        publishes=publishes,
        subscribes=subs,
        subscribes_all=subscribes_all,
        retry=Retry(**_merged(path, f"{where}.retry", raw.get("retry"), _RETRY_DEFAULTS)),
        schedule=schedule,
        time_zone=str(raw.get("time_zone", "Etc/UTC")),
        runtime=Runtime(
            **_merged(
                path,
                f"{where}.runtime",
                raw.get("runtime"),
                {**_RUNTIME_DEFAULTS, **_TRIGGER_RUNTIME_DEFAULTS.get(trigger, {})},
            )
        ),
        secrets=_str_list(path, f"{where}.secrets", raw.get("secrets")),
        uses=uses,
        ingress=ingress,
        env=tuple(sorted(env.items())),
        calls=calls,
        platform_roles=tuple(sorted(roles)),
        max_body_bytes=max_body,
    )


def load_file(path: Path) -> Context:
    """Parse and check one manifest on its own (cross-manifest checks are in `load`)."""
    try:
        raw = yaml.load(path.read_text(), Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise _fail(path, "(yaml)", str(exc)) from None
    if not isinstance(raw, dict):
        raise _fail(path, "(root)", "must be a mapping")
    unknown = set(raw) - _MANIFEST_KEYS
    if unknown:
        raise _fail(path, sorted(unknown)[0], "unknown key")
    ctx = raw.get("context")
    if ctx != path.parent.name:
        raise _fail(path, "context", f"must equal the folder name {path.parent.name!r}")
    schema = raw.get("owns_schema")
    if schema is not None and not (isinstance(schema, str) and schema.isidentifier()):
        raise _fail(path, "owns_schema", "must be an identifier")
    hook = raw.get("bootstrap")
    if hook is not None and not (isinstance(hook, str) and _HOOK.match(hook)):
        raise _fail(path, "bootstrap", "must be `module.path:function`")
    deployments = raw.get("deployments")
    if not isinstance(deployments, dict) or not deployments:
        raise _fail(path, "deployments", "must map at least one deployment name")
    built = tuple(_deployment(path, ctx, schema, n, d) for n, d in sorted(deployments.items()))
    retention = _retention(path, raw.get("retention"))
    if retention and not any(d.uses_firestore for d in built):
        raise _fail(path, "retention", "rules are for Firestore collections the context uses")
    return Context(
        name=ctx,
        description=str(raw.get("description", "")),
        owns_schema=schema,
        path=path.parent,
        deployments=built,
        bootstrap=hook,
        retention=retention,
    )


def _retention(path: Path, value: Any) -> tuple[Retention, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(path, "retention", "must be a list of rules")
    rules: list[Retention] = []
    for i, raw in enumerate(value):
        where = f"retention[{i}]"
        if not isinstance(raw, dict):
            raise _fail(path, where, "must be a mapping")
        unknown = set(raw) - _RETENTION_KEYS
        if unknown:
            raise _fail(path, f"{where}.{sorted(unknown)[0]}", "unknown key")
        missing = sorted(_RETENTION_KEYS - set(raw))
        if missing:
            raise _fail(path, f"{where}.{missing[0]}", "is required")
        kind = raw["kind"]
        if not (isinstance(kind, str) and _KIND.match(kind)):
            raise _fail(path, f"{where}.kind", "must be snake_case, 3-50 characters")
        if kind in _BUILTIN_RETENTION:
            raise _fail(path, f"{where}.kind", f"{kind!r} is a rule of ops itself")
        if any(r.kind == kind for r in rules):
            raise _fail(path, f"{where}.kind", f"duplicate kind {kind!r}")
        collection = raw["collection"]
        if not (isinstance(collection, str) and _COLLECTION.match(collection)):
            raise _fail(path, f"{where}.collection", "must be a top-level collection id")
        field_ = raw["timestamp_field"]
        if not (isinstance(field_, str) and field_.isidentifier()):
            raise _fail(path, f"{where}.timestamp_field", "must be a field name")
        days = raw["keep_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise _fail(path, f"{where}.keep_days", "must be an integer from 1 to 3650")
        text = raw["description"]
        if not (isinstance(text, str) and text.strip()):
            raise _fail(path, f"{where}.description", "must say what is removed")
        rules.append(Retention(kind, collection, field_, days, text.strip()))
    return tuple(rules)


def load(functions_dir: Path | None = None) -> Catalog:
    """Load every manifest under `functions_dir` and check them against each other."""
    base = functions_dir or FUNCTIONS_DIR
    contexts = [load_file(p) for p in sorted(base.glob("*/function.yaml"))]
    seen_names: dict[str, Path] = {}
    seen_routes: dict[str, Path] = {}
    seen_schemas: dict[str, Path] = {}
    seen_kinds: dict[str, Path] = {}
    for c in contexts:
        mf = c.path / "function.yaml"
        for rule in c.retention:
            if rule.kind in seen_kinds:
                raise _fail(
                    mf,
                    "retention",
                    f"kind {rule.kind!r} also declared in {_rel(seen_kinds[rule.kind])}",
                )
            seen_kinds[rule.kind] = mf
        if c.owns_schema:
            if c.owns_schema in seen_schemas:
                raise _fail(
                    mf,
                    "owns_schema",
                    f"{c.owns_schema!r} also owned in {_rel(seen_schemas[c.owns_schema])}",
                )
            seen_schemas[c.owns_schema] = mf
        for d in c.deployments:
            if d.name in seen_names:
                raise _fail(
                    mf,
                    f"deployments.{d.name}",
                    f"duplicate deployment name (also in {_rel(seen_names[d.name])})",
                )
            seen_names[d.name] = mf
            for r in d.routes:
                if r in seen_routes:
                    raise _fail(
                        mf,
                        f"deployments.{d.name}.routes",
                        f"duplicate route {r!r} (also in {_rel(seen_routes[r])})",
                    )
                seen_routes[r] = mf
    _one_publishing_context(contexts)
    published = {t for c in contexts for d in c.deployments for t in d.publishes}
    triggers = {d.name: d.trigger for c in contexts for d in c.deployments}
    resolved = []
    for c in contexts:
        deps = []
        for d in c.deployments:
            mf, where = c.path / "function.yaml", f"deployments.{d.name}.calls"
            for callee in d.calls:
                if callee == d.name:
                    raise _fail(mf, where, "a deployment does not call itself")
                if callee not in triggers:
                    raise _fail(mf, where, f"{callee!r} is no deployment")
                if triggers[callee] != "http":
                    raise _fail(
                        mf,
                        where,
                        f"{callee!r} is not an http deployment (trigger: "
                        f"{triggers[callee]}); only http deployments can be called",
                    )
            for t in d.subscribes:
                if t not in published:
                    raise _fail(
                        c.path / "function.yaml",
                        f"deployments.{d.name}.subscribes",
                        f"topic {t!r} is published by no deployment",
                    )
            if d.subscribes_all:
                d = _replace(d, subscribes=tuple(sorted(published)))
            deps.append(d)
        resolved.append(_replace(c, deployments=tuple(deps)))
    return Catalog(contexts=tuple(resolved))


def _one_publishing_context(contexts: list[Context]) -> None:
    """An event type has exactly one publishing context (its schema lives in that context's
    events.py); several deployments of that one context may publish it."""
    first: dict[str, tuple[Path, str]] = {}
    for c in contexts:
        mf = c.path / "function.yaml"
        for d in c.deployments:
            for t in d.publishes:
                owner = first.setdefault(t, (mf, d.name))
                if owner[0] != mf:
                    raise _fail(
                        mf,
                        f"deployments.{d.name}.publishes",
                        f"event type {t!r} is also published by {owner[1]} in "
                        f"{_rel(owner[0])}; an event type has exactly one publishing context",
                    )


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


@functools.cache
def catalog() -> Catalog:
    """The catalog of this checkout, loaded once per process."""
    return load()


def dead_letter_subscription(topic: str) -> str:
    """The pull subscription that keeps the dead letters of `topic` for inspection/redrive."""
    return f"{dead_letter_topic(topic)}--keep"
