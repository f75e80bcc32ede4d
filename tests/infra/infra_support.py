"""Helpers of the infrastructure tests: the expected plan, re-derived in Python from the
manifests (the contract of design.md 3, 6, 8 and the infra issue), the evaluation of the same
plan by Terraform itself (infra/modules/manifests, a module without provider, evaluated
offline), and HCL parsing. Named uniquely so `from infra_support import ...` never picks up
another directory's module."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

from shared.manifests import (
    Catalog,
    dead_letter_subscription,
    dead_letter_topic,
    subscription_name,
)

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MANIFESTS_MODULE = INFRA / "modules" / "manifests"
PROJECT = "proj"
PROJECT_NUMBER = "123456789"
REGION = "europe-west1"
CONNECTION = f"{PROJECT}:{REGION}:switchyard"

# The context that routes to every other (Terraform: variable gateway_context). The platform
# roles (outbox relay, outbox and dead-letter operators) come from the manifests.
GATEWAY_CONTEXT = "gateway"


# --- the expected plan ---------------------------------------------------------------------

# PostgreSQL privileges on every `<schema>.outbox` per platform role (decision 0033): the relay
# reads pending rows and marks them published, the operator reads them (the report), the purger
# deletes published ones (retention); UPDATE and DELETE with a WHERE need SELECT.
OUTBOX_ROLE_PRIVILEGES = {
    "outbox-relay": ("select", "update"),
    "outbox-operator": ("select",),
    "outbox-purger": ("select", "delete"),
}


def account_id(name: str) -> str:
    if len(name) > 30:
        return f"{name[:25]}-{hashlib.sha256(name.encode()).hexdigest()[:4]}"
    return f"{name}-fn" if len(name) < 6 else name


def expected_plan(
    cat: Catalog,
    project: str = PROJECT,
    env: str = "dev",
    connection: str = CONNECTION,
    project_number: str = PROJECT_NUMBER,
    region: str = REGION,
) -> dict[str, Any]:
    """What infra/modules/manifests must output for `cat`, written from the contract."""
    deps = cat.deployments
    topics = list(cat.topics)
    gateways = sorted(n for n, d in deps.items() if d.context == GATEWAY_CONTEXT)
    relays = cat.with_role("outbox-relay")
    operators = cat.with_role("dead-letter-operator")

    def holders(role: str) -> tuple[str, ...]:
        return tuple(sorted(n for n, d in deps.items() if role in d.platform_roles))

    outbox_privileges = {
        n: sorted({p for r in d.platform_roles for p in OUTBOX_ROLE_PRIVILEGES.get(r, ())})
        for n, d in sorted(deps.items())
        if set(d.platform_roles) & set(OUTBOX_ROLE_PRIVILEGES)
    }
    email = {n: f"{account_id(n)}@{project}.iam.gserviceaccount.com" for n in deps}
    db_user = {n: e.removesuffix(".gserviceaccount.com") for n, e in email.items()}

    subscriptions = {}
    for d, t in cat.subscriptions():
        r = d.retry
        subscriptions[subscription_name(d.name, t)] = {
            "name": subscription_name(d.name, t),
            "deployment": d.name,
            "topic": t,
            "dead_letter_topic": dead_letter_topic(t),
            "max_delivery_attempts": min(max(r.max_attempts, 5), 100),
            "min_backoff_s": min(max(r.min_backoff_s, 0), 600),
            "max_backoff_s": min(max(r.max_backoff_s, r.min_backoff_s, 0), 600),
            "ack_deadline_s": min(max(d.runtime.timeout_s, 10), 600),
        }
    # Dead letters exist only on topics with a push subscription: the dead-letter operator
    # publishes (redrives) to those and to its own topics; the relay to every topic.
    subscribed = sorted({t for _, t in cat.subscriptions()})
    publishing = {
        n: topics
        if n in relays
        else sorted(set(d.publishes) | set(subscribed))
        if n in operators
        else list(d.publishes)
        for n, d in deps.items()
    }
    # A deployment calls only the http deployments its manifest `calls` (shared.clients.call),
    # at their deterministic Cloud Run URLs; the gateways use the URLs the functions report
    # (added by the root module).
    service_urls = {
        n: {c: f"https://{c}-{project_number}.{region}.run.app" for c in sorted(d.calls)}
        for n, d in sorted(deps.items())
        if d.calls and n not in gateways and project_number and region
    }
    invokers: dict[str, dict[str, str]] = {}
    for n, d in deps.items():
        if d.trigger == "event":
            invokers[f"{n}/@push"] = {"target": n, "invoker": "@push"}
        elif d.trigger == "schedule":
            invokers[f"{n}/@scheduler"] = {"target": n, "invoker": "@scheduler"}
        if n not in gateways and d.trigger == "http":
            # The gateways call the http deployments only (routing; GET /health).
            invokers.update({f"{n}/{g}": {"target": n, "invoker": g} for g in gateways})
    for n, d in deps.items():
        # Service-to-service: each caller on exactly the callees it declares, nothing more.
        invokers.update({f"{c}/{n}": {"target": c, "invoker": n} for c in d.calls})
    environment = {}
    for n, d in deps.items():
        env_vars = {
            **dict(d.env),
            "SWITCHYARD_ENV": env,
            "GOOGLE_CLOUD_PROJECT": project,
            "GOOGLE_CLOUD_REGION": region,
            "SWITCHYARD_DEPLOYMENT": n,
        }
        if d.uses_sql:
            env_vars |= {
                "INSTANCE_CONNECTION_NAME": connection,
                "DB_NAME": "switchyard",
                "DB_USER": db_user[n],
                "DB_IAM_AUTH": "true",
                "DB_POOL_SIZE": str(d.db_pool),
                "DB_MAX_OVERFLOW": "0",
            }
        if n in service_urls:
            env_vars["SERVICE_URLS"] = json.dumps(service_urls[n], separators=(",", ":"))
        environment[n] = env_vars
    roles = {
        n: ["roles/cloudsql.client", "roles/cloudsql.instanceUser"] if d.uses_sql else []
        for n, d in deps.items()
    }
    firestore = {
        n: {
            "role": "roles/datastore.user",
            "database": "(default)",
            "condition": f'resource.name == "projects/{project}/databases/(default)"',
        }
        for n, d in deps.items()
        if d.uses_firestore or d.trigger == "event"
    }
    health_viewers = {
        f"{n}/{g}": {"target": n, "viewer": g}
        for n, d in deps.items()
        if d.trigger in ("event", "schedule")
        for g in gateways
    }
    sql_grants = {}
    for c in cat.contexts:
        if c.owns_schema:
            users = [db_user[d.name] for d in c.deployments if d.uses_sql]
            users += [
                f"{db_user[n]}:outbox:{','.join(p)}"
                for n, p in outbox_privileges.items()
                if deps[n].uses_sql
            ]
            sql_grants[c.owns_schema] = sorted(set(users))
    return {
        "topics": topics,
        "http_deployments": sorted(n for n, d in deps.items() if d.trigger == "http"),
        "event_deployments": sorted(n for n, d in deps.items() if d.trigger == "event"),
        "gateways": gateways,
        "subscriptions": subscriptions,
        "topic_wiring": {
            t: {
                "publishers": sorted(n for n, d in deps.items() if t in d.publishes),
                "subscribers": sorted(
                    s["deployment"] for s in subscriptions.values() if s["topic"] == t
                ),
                "dead_letter_topic": dead_letter_topic(t),
                "keep_subscription": dead_letter_subscription(t),
            }
            for t in topics
        },
        "schedules": {
            n: {
                "schedule": d.schedule,
                "time_zone": d.time_zone,
                "attempt_deadline_s": min(max(d.runtime.timeout_s, 15), 1800),
            }
            for n, d in deps.items()
            if d.trigger == "schedule"
        },
        "account_ids": {n: account_id(n) for n in deps},
        "db_users": db_user,
        "project_roles": roles,
        "publisher_bindings": {
            f"{n}/{t}": {"deployment": n, "topic": t} for n, ts in publishing.items() for t in ts
        },
        "dead_letter_bindings": {
            f"{n}/{t}": {"deployment": n, "topic": t} for n in operators for t in topics
        },
        "secrets": sorted({s for d in deps.values() for s in d.secrets}),
        "secret_bindings": {
            f"{n}/{s}": {"deployment": n, "secret": s} for n, d in deps.items() for s in d.secrets
        },
        "invoker_bindings": invokers,
        "service_urls": service_urls,
        "environment": environment,
        "secret_environment": {
            n: {s.upper().replace("-", "_"): s for s in d.secrets} for n, d in deps.items()
        },
        "sql_grants": sql_grants,
        "outbox_privileges": outbox_privileges,
        "firestore_bindings": firestore,
        "health_viewer_bindings": health_viewers,
        "platform_roles": {
            "outbox-relay": list(relays),
            "outbox-operator": list(holders("outbox-operator")),
            "outbox-purger": list(holders("outbox-purger")),
            "dead-letter-operator": list(operators),
        },
    }


# --- Terraform -----------------------------------------------------------------------------


def terraform_env() -> dict[str, str]:
    return {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}


def evaluate_manifests_module(terraform: str, functions_dir: Path, work: Path) -> dict[str, Any]:
    """Evaluate infra/modules/manifests for a functions directory: its outputs as JSON.

    The module has no provider, so `terraform init` needs no registry and `apply` creates
    nothing but the outputs (in a throwaway local state in `work`)."""
    source = os.path.relpath(MANIFESTS_MODULE, work)
    (work / "main.tf").write_text(
        'module "manifests" {\n'
        f'  source              = "{source}"\n'
        f'  functions_dir       = "{functions_dir}"\n'
        f'  project_id          = "{PROJECT}"\n'
        f'  project_number      = "{PROJECT_NUMBER}"\n'
        f'  region              = "{REGION}"\n'
        '  env                 = "dev"\n'
        f'  sql_connection_name = "{CONNECTION}"\n'
        "}\n\n"
        'output "plan" {\n  value = module.manifests\n}\n'
    )
    env = terraform_env()
    for cmd in (
        ["init", "-input=false", "-no-color"],
        ["apply", "-auto-approve", "-input=false", "-no-color"],
    ):
        done = subprocess.run(
            [terraform, f"-chdir={work}", *cmd],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"terraform {cmd[0]} failed:\n{done.stderr}"
    done = subprocess.run(
        [terraform, f"-chdir={work}", "output", "-json", "plan"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


# --- HCL -----------------------------------------------------------------------------------

HCL_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


def tf_files(directory: Path = INFRA) -> list[Path]:
    return sorted(p for p in directory.rglob("*.tf") if ".terraform" not in p.parts)


def parse(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(), serialization_options=HCL_OPTIONS)


def blocks(directory: Path, kind: str) -> dict[str, Any]:
    """Merged `kind` blocks (resource, module, variable, output, locals...) of one module dir.

    resource/data -> {"type.name": body}; locals -> {name: expr}; others -> {name: body}."""
    out: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get(kind, []):
            for name, body in block.items():
                if kind in ("resource", "data"):
                    for rname, rbody in body.items():
                        out[f"{name}.{rname}"] = rbody
                else:
                    out[name] = body
    return out


# --- Terraform offline: the schema-only provider (infra/offline, decision 0033) ---------------

OFFLINE = INFRA / "offline"
OFFLINE_SCHEMA = OFFLINE / "google-schema.json"
GOOGLE = "registry.terraform.io/hashicorp/google"


def offline_schema() -> dict[str, Any]:
    return json.loads(OFFLINE_SCHEMA.read_text())


def offline_plugin_dir(directory: Path) -> Path:
    """A local plugin directory (-plugin-dir) holding the schema-only google provider, started
    with this interpreter (it has grpcio, msgpack, cryptography)."""
    import sys

    version = offline_schema()["source"]["provider_version"]
    package = directory / GOOGLE / version / "linux_amd64"
    package.mkdir(parents=True, exist_ok=True)
    launcher = package / f"terraform-provider-google_v{version}"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {OFFLINE / "schema_provider.py"} "$@"\n')
    launcher.chmod(0o755)
    return directory


def offline_workspace(work: Path, functions_dir: Path | None = None) -> Path:
    """A copy of infra/ beside functions/ and a build/ of placeholder zips (what `make package`
    makes; the plan reads only their hashes), with a local backend and without the lock file
    (it pins the real provider's hashes, which the schema-only provider cannot match)."""
    import shutil
    import zipfile

    from shared.manifests import load

    functions_dir = functions_dir or ROOT / "functions"
    shutil.copytree(INFRA, work / "infra", ignore=shutil.ignore_patterns(".terraform*", "tfplan"))
    (work / "functions").symlink_to(functions_dir)
    (work / "build").mkdir()
    for name in load(functions_dir).deployments:
        with zipfile.ZipFile(work / "build" / f"{name}.zip", "w") as z:
            z.writestr("main.py", f"# placeholder package of {name}\n")
    for env in (work / "infra" / "environments").iterdir():
        (env / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    return work


def run_terraform(
    terraform: str, directory: Path, *args: str, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [terraform, f"-chdir={directory}", args[0], "-no-color", *args[1:]],
        env={**terraform_env(), "TF_CLI_CONFIG_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def offline_init(terraform: str, env_dir: Path, plugins: Path) -> None:
    done = run_terraform(terraform, env_dir, "init", "-input=false", f"-plugin-dir={plugins}")
    assert done.returncode == 0, f"terraform init failed:\n{done.stdout}\n{done.stderr}"


def offline_plan(terraform: str, env_dir: Path, *variables: str) -> dict[str, Any]:
    """`terraform plan` of an environment with the schema-only provider: the plan as JSON.
    `variables`: more `-var=...` arguments."""
    done = run_terraform(
        terraform,
        env_dir,
        "plan",
        "-input=false",
        "-lock=false",
        f"-var=project_id={PROJECT}",
        f"-var=region={REGION}",
        *variables,
        "-out=tfplan",
    )
    assert done.returncode == 0, f"terraform plan failed:\n{done.stdout}\n{done.stderr}"
    shown = run_terraform(terraform, env_dir, "show", "-json", "tfplan")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def planned(plan: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """address -> planned values of every `resource_type` the plan creates."""
    return {
        r["address"]: r["change"]["after"]
        for r in plan["resource_changes"]
        if r["type"] == resource_type and "create" in r["change"]["actions"]
    }


def instances(
    plan: dict[str, Any], resource_type: str, name: str, module: str = "module.switchyard"
) -> dict[Any, dict[str, Any]]:
    """for_each key -> planned values of `module`'s `resource_type.name` (values the provider
    computes, such as a new service account's member, are absent: unknown until apply)."""
    return {
        r.get("index"): r["change"]["after"]
        for r in plan["resource_changes"]
        if r.get("module_address") == module and r["type"] == resource_type and r["name"] == name
    }
