"""Cold-start import budget: what each deployment loads when its instance starts.

A fresh interpreter per deployment imports the deployment's `main.py` as functions-framework
does, then the modules its entry point imports in its body (the lazy imports the first request
runs, read from `main.py`'s syntax tree), and reports `sys.modules`. Two budgets are checked,
neither a timing (timings are `make bench`, tools/bench_coldstart.py):

- rules per kind of deployment, from its manifest: an event or schedule deployment loads no
  HTTP routes of its context (`api.py`, `webhook.py`), no OpenAPI, no user-JWT code; a
  deployment without `uses: [sql]` loads no SQLAlchemy, no `shared.db`, no outbox; only an
  ASGI entry point (`functions_framework.aio`) loads Starlette and `shared.asgi`; nobody
  loads another context, a Google client library, the Cloud SQL connector, Alembic or test
  code at start (they are created on first use, or never);
- `HEAVY`: third-party libraries that cost tens of milliseconds each, and per deployment the
  ones it may load (`ALLOWED`). A new heavy import fails here until its deployment's budget
  names it, so the cost is a decision, not an accident (decision 0040).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

from shared.manifests import Deployment, catalog

ROOT = Path(__file__).resolve().parents[2]
CATALOG = catalog()
DEPLOYMENTS = sorted(CATALOG.deployments)
CONTEXTS = sorted({d.context for d in CATALOG.deployments.values()})

# Runs in the fresh interpreter: argv = main.py, entry point. Prints one JSON line:
# {"modules": [...], "at_import": [...], "importers": {module: importing module}, "asgi": bool}
# (at_import: after main.py alone, before the entry point's own imports).
PROBE = r"""
import ast, importlib, importlib.util, json, sys

importers = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name not in importers:
            frame = sys._getframe(1)
            while frame is not None:
                mod = frame.f_globals.get("__name__", "")
                if mod == "main" or mod.startswith(("functions.", "shared")):
                    importers[name] = mod
                    break
                frame = frame.f_back
        return None

sys.meta_path.insert(0, Watch())
main, entry = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("main", main)
module = importlib.util.module_from_spec(spec)
sys.modules["main"] = module
spec.loader.exec_module(module)
at_import = sorted(sys.modules)
for node in ast.parse(open(main).read()).body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry:
        for n in ast.walk(node):
            if isinstance(n, ast.Import):
                for a in n.names:
                    importlib.import_module(a.name)
            elif isinstance(n, ast.ImportFrom) and n.module:
                base = importlib.import_module(n.module)
                for a in n.names:
                    if not hasattr(base, a.name):
                        importlib.import_module(f"{n.module}.{a.name}")
from functions_framework import _function_registry as registry
print(json.dumps({
    "modules": sorted(sys.modules),
    "at_import": at_import,
    "importers": importers,
    "asgi": entry in registry.ASGI_FUNCTIONS,
}))
"""

# Third-party modules that cost tens of milliseconds of import each (or pull in a client
# library). Flask, werkzeug, jinja2 and pydantic are not listed: functions-framework and
# every request or event body need them.
HEAVY = (
    "sqlalchemy",
    "pg8000",
    "jwt",
    "cryptography",
    "argon2",
    "requests",
    "aiohttp",
    "starlette",
    "anyio",
    "uvicorn",
    "yaml",
    "croniter",
    "paramiko",
    "winrm",
    "ortools",
    "unidiff",
    "detect_secrets",
    "a2wsgi",
)

# The heavy modules each kind of deployment may load at start.
SQL = {"sqlalchemy"}
HTTP = {"jwt", "cryptography", "yaml"}  # verifies user tokens; routes from the manifests
ASGI = {"starlette", "anyio", "a2wsgi"}  # functions_framework.aio, shared.asgi

# Beyond its kind, what a deployment may load at start, and why.
ALLOWED: dict[str, set[str]] = {
    "automation-api": {"croniter"},  # schedules' next times
    "automation-runner": {"croniter"},  # automation.model
    "automation-tick": {"croniter"},  # due schedules
    "console-web": {"requests"},  # calls the other contexts' APIs
    # the gateway: nothing beyond its kind (aiohttp comes with the first forwarded request, the
    # health fan-out loads requests when first asked)
    "maintenance-api": {"croniter"},  # PM schedules
    "maintenance-on-user-event": {"croniter"},  # maintenance.model
    "maintenance-pm-tick": {"croniter"},  # PM schedules
    "ops-cleanup": {"yaml"},  # retention rules of every manifest
    "source-api": {"requests"},  # GitHub (the monitor's "poll now")
    "source-monitor": {"requests"},  # GitHub
}

# Never at start, whatever the deployment: created on first use (or used by tools only).
NEVER = (
    "google.cloud.firestore",
    "google.cloud.firestore_v1",
    "google.cloud.pubsub_v1",
    "google.pubsub_v1",
    "google.cloud.sql.connector",
    "grpc",
    # shared.tracing makes its provider on the first span (~100 ms of OpenTelemetry API and
    # SDK) and the Cloud Trace exporter on the first export, in its batch thread (decision 0046)
    "opentelemetry",
    # agents-worker loads google-genai (~1.7 s) only when the narrative is on (decision 0050)
    "google.genai",
    "alembic",
    "pytest",
    "shared.migrate",
    "shared.testing",
    "emulators",
    "tests",
    "tools",
)


def _probe(dep: Deployment) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "INSTANCE_CONNECTION_NAME", "K_SERVICE", "PYTHONSTARTUP"}
    }
    env.update(dict(dep.env))
    env.update(
        SWITCHYARD_DEPLOYMENT=dep.name,
        PYTHONPATH=str(ROOT),
        SWITCHYARD_LOCAL_DIR=str(ROOT / ".local"),
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dep.source_dir / "main.py"), dep.entry_point],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"{dep.name}: importing main.py failed:\n{out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@cache
def loaded() -> dict[str, dict]:
    """Every deployment's start, probed side by side (fresh interpreters)."""
    deps = [CATALOG.deployments[n] for n in DEPLOYMENTS]
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(DEPLOYMENTS, pool.map(_probe, deps), strict=True))


def _has(modules: set[str], name: str) -> bool:
    return name in modules


def _why(result: dict, names: list[str]) -> str:
    importers = result["importers"]
    return ", ".join(f"{n} (imported by {importers.get(n, '?')})" for n in names)


def _forbidden(dep: Deployment, asgi: bool) -> list[str]:
    """Our own modules the deployment's kind must not load."""
    out = [f"functions.{c}" for c in CONTEXTS if c != dep.context]
    if dep.trigger != "http":
        out += [
            f"functions.{dep.context}.api",
            f"functions.{dep.context}.webhook",
            "shared.openapi",
            "shared.auth",
        ]
    if not dep.uses_sql:
        out += ["shared.db", "shared.events._outbox", "shared.events._relay"]
    if not asgi:
        out += ["shared.asgi", "functions_framework.aio"]
    return out


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_start_loads_only_what_the_deployment_uses(name: str) -> None:
    dep = CATALOG.deployments[name]
    result = loaded()[name]
    modules = set(result["modules"])
    asgi = bool(result["asgi"])

    never = [m for m in NEVER if _has(modules, m)]
    assert not never, f"{name} loads at start what is created on first use: {_why(result, never)}"

    ours = [m for m in _forbidden(dep, asgi) if _has(modules, m)]
    assert not ours, (
        f"{name} ({dep.trigger}, uses {list(dep.uses) or 'nothing'}) loads {_why(result, ours)}: "
        "import it inside the entry point or use case that needs it"
    )

    allowed = set(ALLOWED.get(name, set()))
    if dep.uses_sql:
        allowed |= SQL
    if dep.trigger == "http":
        allowed |= HTTP
    if asgi:
        allowed |= ASGI
    heavy = [m for m in HEAVY if _has(modules, m) and m not in allowed]
    assert not heavy, (
        f"{name} loads {_why(result, heavy)} at start, beyond its budget {sorted(allowed)}: "
        "defer the import to where it is used, or add it to ALLOWED with the reason"
    )


def test_budgets_name_real_deployments_and_heavy_modules() -> None:
    """A budget entry for a renamed deployment or an unlisted module would check nothing."""
    assert set(ALLOWED) <= set(DEPLOYMENTS)
    for name, extra in ALLOWED.items():
        assert extra <= set(HEAVY), name
        assert extra, name


def test_allowed_heavy_modules_are_still_loaded() -> None:
    """An entry in ALLOWED that the deployment no longer loads is stale: drop it, so the
    budget stays as tight as the code."""
    stale = {
        name: sorted(m for m in extra if m not in set(loaded()[name]["modules"]))
        for name, extra in ALLOWED.items()
    }
    assert not {n: s for n, s in stale.items() if s}


def test_asgi_entry_points_still_register_as_asgi() -> None:
    """realtime's `stream` registers itself as an ASGI function without importing
    functions_framework.aio (functions/realtime/main.py): the registration must hold, or
    functions-framework would serve it with Flask."""
    assert loaded()["realtime-stream"]["asgi"]
    assert loaded()["gateway"]["asgi"]
    assert not loaded()["realtime-fanout"]["asgi"]


# Loaded by importing main.py alone (before any entry point runs): nothing of a database.
# The health answer of an event or schedule deployment needs only shared.db's ping, on its
# first request; the service, its store, SQLAlchemy's ORM and the outbox come with the entry
# point that runs them (decision 0052).
NOT_AT_IMPORT = ("sqlalchemy", "shared.db", "shared.events._outbox", "shared.events._relay")


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_main_alone_loads_no_database_code(name: str) -> None:
    result = loaded()[name]
    at_import = set(result["at_import"])
    found = [m for m in NOT_AT_IMPORT if _has(at_import, m)]
    assert not found, (
        f"{name}: importing main.py loads {_why(result, found)}: import the service inside the "
        "entry point that runs it"
    )


def test_models_are_built_on_first_use() -> None:
    """The bases of every request, response and event model defer pydantic's schema build
    to the model's first use (`defer_build`): a deployment builds only the models its
    requests use, not the ~15-60 of its context at import (decision 0052)."""
    from shared.events._schema import ConsumedModel, Event
    from shared.http import ApiModel, OutModel

    for base in (ApiModel, OutModel, Event, ConsumedModel):
        assert base.model_config.get("defer_build") is True, base.__name__


def test_manifests_parse_with_libyaml() -> None:
    """Every process parses the 13 manifests on its first `catalog()`: with libyaml's parser
    when PyYAML has it (it has in the venv and the images), ~6x less CPU than PyYAML's own."""
    import yaml

    from shared import manifests

    assert yaml.__with_libyaml__
    assert manifests._LOADER is yaml.CSafeLoader
