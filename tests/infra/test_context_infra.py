"""Terraform for the contexts that keep runtime secrets and Firestore documents (decision 0030).

- Secrets the code creates at run time (automation's credentials, source's webhook secrets and
  GitHub token): each deployment gets exactly the shared.secrets operations its code performs,
  as custom roles bound with an IAM condition on the secret's resource name. The table is
  evaluated by Terraform itself and every condition by a CEL interpreter (cel-python) against
  the names the contexts build and names they must not reach.
- Firestore: a TTL policy on every collection whose documents carry `expires_at`, and exactly
  the composite indexes of the queries the code runs (the agents' list filters are recorded by
  calling the real service functions over every parameter combination).
- The Cloud SQL connection budget of infra/modules/switchyard/sql.tf, evaluated by Terraform
  over today's manifests, equals min(max_instances, the environment's cap) x pool summed in
  Python, and fits each environment's max_connections (decision 0040).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import celpy
import pytest
from infra_support import (
    INFRA,
    MANIFESTS_MODULE,
    PROJECT_NUMBER,
    ROOT,
    blocks,
    parse,
    terraform_env,
    tf_files,
)

from shared.config import settings
from shared.manifests import DB_POOL_MAX, Catalog

SWITCHYARD = INFRA / "modules" / "switchyard"
RUNTIME_SECRETS = SWITCHYARD / "runtime_secrets.tf"
SECRETS_ROOT = f"projects/{PROJECT_NUMBER}/secrets/"
OPERATIONS = ("put", "get", "versions", "delete", "exists")

# shared.secrets operation -> the Secret Manager permissions of its REST call (shared/secrets.py).
OPERATION_PERMISSIONS = {
    "put": {"secretmanager.secrets.create", "secretmanager.versions.add"},
    "get": {"secretmanager.versions.access"},
    "versions": {"secretmanager.versions.list"},
    "delete": {"secretmanager.secrets.delete"},
    "exists": {"secretmanager.secrets.get"},
}


def _prefixes() -> dict[str, str]:
    from functions.automation import model as automation
    from functions.source import model as source

    credential = automation.secret_name("")
    webhook = source.webhook_secret_name("")
    assert automation.secret_name("c1") == credential + "c1"
    assert source.webhook_secret_name("r1") == webhook + "r1"
    return {"credential": credential, "webhook": webhook}


def expected_runtime_secrets() -> dict[str, dict[tuple[str, str], set[str]]]:
    """deployment -> {(name, match): operations}, from reading each deployment's code:
    automation-api creates, rotates, lists, reads (connection test) and deletes credentials;
    automation-runner reads them; source-api stores and forgets webhook secrets and runs the
    monitor once (GitHub token); source-webhook verifies signatures; source-monitor polls."""
    p = _prefixes()
    token = settings().github_token_secret
    return {
        "automation-api": {(p["credential"], "prefix"): {"put", "get", "versions", "delete"}},
        "automation-runner": {(p["credential"], "prefix"): {"get"}},
        "source-api": {
            (p["webhook"], "prefix"): {"put", "delete"},
            (token, "exact"): {"exists", "get"},
        },
        "source-webhook": {(p["webhook"], "prefix"): {"get"}},
        "source-monitor": {(token, "exact"): {"exists", "get"}},
    }


def _declared_table() -> dict[str, dict[tuple[str, str], set[str]]]:
    table = blocks(SWITCHYARD, "locals")["runtime_secrets"]
    return {
        n: {(g["name"], g["match"]): set(g["operations"]) for g in grants}
        for n, grants in table.items()
    }


# --- secrets: the table ---------------------------------------------------------------------


def test_runtime_secret_table_is_exactly_what_each_deployment_does(catalog: Catalog) -> None:
    declared = _declared_table()
    assert set(declared) <= set(catalog.deployments), (
        "runtime_secrets names a deployment no manifest has"
    )
    assert declared == expected_runtime_secrets()


def _secret_calls(path: Path) -> set[str]:
    """The shared.secrets operations a module calls, whatever it names the module."""
    tree = ast.parse(path.read_text())
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "shared":
            aliases |= {a.asname or a.name for a in node.names if a.name == "secrets"}
        if isinstance(node, ast.ImportFrom) and node.module == "shared.secrets":
            raise AssertionError(f"{path}: import the module, not names from it")
    getters = {
        f.name
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef)
        and any(
            isinstance(r, ast.Return) and isinstance(r.value, ast.Name) and r.value.id in aliases
            for r in ast.walk(f)
        )
    }
    used: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        target = node.func.value
        if (isinstance(target, ast.Name) and target.id in aliases) or (
            isinstance(target, ast.Call)
            and isinstance(target.func, ast.Name)
            and target.func.id in getters
        ):
            assert node.func.attr in OPERATIONS, f"{path}: unknown shared.secrets.{node.func.attr}"
            used.add(node.func.attr)
    return used


def test_each_context_is_granted_exactly_the_secret_operations_its_code_calls(
    catalog: Catalog,
) -> None:
    declared = _declared_table()
    for ctx in catalog.contexts:
        used = set().union(*(_secret_calls(p) for p in sorted(ctx.path.rglob("*.py"))))
        granted = {
            op for d in ctx.deployments for ops in declared.get(d.name, {}).values() for op in ops
        }
        assert granted == used, (
            f"{ctx.name}: its code calls shared.secrets {sorted(used)}, "
            f"Terraform grants {sorted(granted)}"
        )
    # The detector sees the calls it must see (automation aliases the module as `vault`,
    # source reaches it through a `_secrets()` getter).
    assert _secret_calls(ROOT / "functions/automation/service.py") == {
        "put",
        "get",
        "versions",
        "delete",
    }
    assert _secret_calls(ROOT / "functions/source/service.py") == {"put", "delete"}


# --- secrets: Terraform's evaluation and the conditions --------------------------------------


def _locals_block(path: Path) -> str:
    """The text of the first top-level `locals { ... }` block of a file."""
    text = path.read_text()
    m = re.search(r"^locals \{\n.*?^\}\n", text, flags=re.S | re.M)
    assert m, f"{path}: no locals block"
    return m.group(0)


def _apply(terraform: str, work: Path, main_tf: str) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.tf").write_text(main_tf)
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
    out = subprocess.run(
        [terraform, f"-chdir={work}", "output", "-json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {k: v["value"] for k, v in json.loads(out.stdout).items()}


@pytest.fixture(scope="module")
def runtime_grants(terraform: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The locals of runtime_secrets.tf, evaluated by Terraform (project number 123456789)."""
    body = _locals_block(RUNTIME_SECRETS).replace(
        "data.google_project.this.number", "var.project_number"
    )
    main_tf = (
        'variable "project_number" {\n'
        f'  type    = string\n  default = "{PROJECT_NUMBER}"\n}}\n\n'
        f"{body}\n"
        'output "grants" {\n  value = local.runtime_secret_grants\n}\n'
        'output "ids" {\n  value = local.runtime_secret_ids\n}\n'
        'output "operations" {\n  value = local.secret_operations\n}\n'
    )
    return _apply(terraform, tmp_path_factory.mktemp("tf-runtime-secrets"), main_tf)


def _cel(expression: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression))


def _allows(program: Any, name: str) -> bool:
    return bool(program.evaluate({"resource": celpy.json_to_cel({"name": name})}))


def test_terraform_grants_one_conditional_binding_per_deployment_and_operation(
    runtime_grants: dict[str, Any],
) -> None:
    want = {
        (d, name, match, op)
        for d, grants in expected_runtime_secrets().items()
        for (name, match), ops in grants.items()
        for op in ops
    }
    got = {
        (g["deployment"], g["name"], g["match"], g["operation"])
        for g in runtime_grants["grants"].values()
    }
    assert got == want
    assert {k: set(v) for k, v in runtime_grants["operations"].items()} == OPERATION_PERMISSIONS
    # Single secrets get their container from Terraform; families are created by the code.
    assert runtime_grants["ids"] == [settings().github_token_secret]


def test_every_condition_admits_its_own_names_and_nothing_else(
    runtime_grants: dict[str, Any],
) -> None:
    p = _prefixes()
    token = settings().github_token_secret
    ours = {
        "credential": f"{SECRETS_ROOT}{p['credential']}3f2a9c1e",
        "webhook": f"{SECRETS_ROOT}{p['webhook']}7b1d",
        "token": f"{SECRETS_ROOT}{token}",
    }
    others = [
        f"{SECRETS_ROOT}jwt-signing-key",
        f"{SECRETS_ROOT}sql-migrator-password",
        f"{SECRETS_ROOT}github-webhook-secret",
        f"{SECRETS_ROOT}{token}-2",  # an exact name is not a prefix
        f"{SECRETS_ROOT}{p['credential'].rstrip('-')}",  # the family's stem alone
        f"projects/987654321/secrets/{p['credential']}x",  # another project
        f"projects/{PROJECT_NUMBER}",
    ]
    for key, g in runtime_grants["grants"].items():
        expression = g["expression"]
        # Only resource.name comparisons, joined by ||: nothing that could widen the grant.
        term = r'resource\.name(?:\.startsWith\("[^"]+"\)| == "[^"]+")'
        assert re.fullmatch(rf"{term}(?: \|\| {term})*", expression), expression
        program = _cel(expression)
        family = (
            "token"
            if g["name"] == token
            else "credential"
            if g["name"] == p["credential"]
            else "webhook"
        )
        own = ours[family]
        assert _allows(program, own), f"{key} refuses {own}"
        assert _allows(program, f"{own}/versions/4"), f"{key} refuses a version of {own}"
        assert _allows(program, f"{own}/versions/latest")
        for name in [v for f, v in ours.items() if f != family] + others:
            assert not _allows(program, name), f"{key} admits {name}"
            assert not _allows(program, f"{name}/versions/1"), f"{key} admits {name}'s versions"


def test_runtime_secret_resources_use_the_table_and_no_broad_role() -> None:
    resources = blocks(SWITCHYARD, "resource")
    role = resources["google_project_iam_custom_role.secret_operation"]
    assert role["for_each"] == "${local.secret_operations}"
    assert role["permissions"] == "${each.value}"
    binding = resources["google_project_iam_member.runtime_secret"]
    assert binding["for_each"] == "${local.runtime_secret_grants}"
    assert binding["role"] == (
        "${google_project_iam_custom_role.secret_operation[each.value.operation].name}"
    )
    assert binding["member"] == "${module.service_account[each.value.deployment].member}"
    assert binding["condition"][0]["expression"] == "${each.value.expression}"
    root = blocks(SWITCHYARD, "locals")["secrets_root"]
    assert root == "projects/${data.google_project.this.number}/secrets/"
    assert "local.runtime_secret_ids" in blocks(SWITCHYARD, "module")["secrets"]["secret_ids"]
    # No Secret Manager admin, no IAM-policy or version-state permission, anywhere.
    for path in tf_files():
        text = json.dumps(parse(path))  # code, not comments
        for broad in (
            "roles/secretmanager.admin",
            "secretmanager.secrets.setIamPolicy",
            "secretmanager.secrets.update",
            "secretmanager.secrets.list",
            "secretmanager.versions.destroy",
        ):
            assert broad not in text, f"{path.relative_to(ROOT)} grants {broad}"


# --- Firestore: TTL policies --------------------------------------------------------------


def _ttl_fields() -> set[tuple[str, str]]:
    default = blocks(SWITCHYARD, "variable")["firestore_ttl_fields"]["default"]
    return {(f["collection"], f["field"]) for f in default}


def _writes_expires_at(path: Path, collection_expr: str) -> bool:
    text = path.read_text()
    return collection_expr in text and '"expires_at"' in text


def expected_ttl_fields() -> set[tuple[str, str]]:
    from functions.agents import store as agents
    from functions.source import rawstore

    automation_logs = ROOT / "functions/automation/logs.py"
    want = {
        ("processed", "expires_at"),  # shared.events consumers
        ("auth_revoked_tokens", "expires_at"),  # shared.auth revocations
        ("auth_not_before", "expires_at"),  # shared.auth per-user "not before" (0032)
        ("idempotency", "expires_at"),  # Idempotency-Key records without a schema (0045)
        (agents.DIFFS, "expires_at"),  # agents_diffs/{analysis_id}
        ("lines", "expires_at"),  # automation_run_logs/{run_id}/lines/{seq}
        (rawstore.COLLECTION, "expires_at"),  # source_deliveries/{id}
        (rawstore.CHUNKS, "expires_at"),  # source_deliveries/{id}/chunks/{n}
        ("realtime_feed", "expires_at"),  # realtime feeds, 7 days
        ("realtime_applied", "expires_at"),  # realtime's applied-event markers
        ("realtime_tickets", "expires_at"),  # stream tickets, a minute
    }
    assert _writes_expires_at(automation_logs, '.collection("lines")')
    auth = (ROOT / "shared/auth.py").read_text()
    assert 'NOT_BEFORE = "auth_not_before"' in auth and 'REVOKED = "auth_revoked_tokens"' in auth
    assert "collection(NOT_BEFORE).document(sub).set(" in auth
    assert _writes_expires_at(ROOT / "functions/agents/store.py", "_col(DIFFS)")
    assert _writes_expires_at(ROOT / "functions/source/rawstore.py", "collection(CHUNKS)")
    realtime = ROOT / "functions/realtime/store.py"
    if realtime.exists():  # the context is being built; its names are checked when present
        text = realtime.read_text()
        assert 'FEED = "realtime_feed"' in text and 'APPLIED = "realtime_applied"' in text
        assert '"expires_at": now + FEED_TTL' in text and 'TICKETS = "realtime_tickets"' in text
        assert '"expires_at": datetime.fromtimestamp(expires' in (
            realtime.with_name("service.py").read_text()
        )
    return want


# Every Firestore document written with `expires_at` (a dict literal with that key, outside
# migrations), file by file: the collection each such write goes to, in the order they appear.
# None is a SQL row with its own cleanup, not a Firestore document. A new one fails
# `test_every_write_with_expires_at_is_accounted_for` until it is listed here and its
# collection has a TTL policy in `firestore_ttl_fields` (infra/modules/switchyard/variables.tf).
EXPIRING_WRITES: dict[str, tuple[str | None, ...]] = {
    "shared/events/_consumer.py": ("processed", "processed"),  # claim; atomic `done`
    "shared/auth.py": ("auth_revoked_tokens", "auth_not_before"),
    "functions/agents/store.py": ("agents_diffs",),
    "functions/automation/logs.py": ("lines",),
    "functions/source/rawstore.py": ("source_deliveries", "chunks"),
    "functions/realtime/store.py": ("realtime_feed", "realtime_applied"),
    "functions/realtime/service.py": ("realtime_tickets",),  # store.save_ticket
    "shared/http/_idempotency.py": (None, "idempotency"),  # SqlStore's row; FirestoreStore
}


def _expires_at_writes() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted([*(ROOT / "functions").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]):
        if "migrations" in path.parts:
            continue
        n = sum(
            1
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Dict)
            and any(isinstance(k, ast.Constant) and k.value == "expires_at" for k in node.keys)
        )
        if n:
            found[path.relative_to(ROOT).as_posix()] = n
    return found


def test_every_write_with_expires_at_is_accounted_for() -> None:
    """A document that carries `expires_at` expires only if its collection has a TTL policy:
    a new expiring write (auth_not_before was one) cannot go unnoticed."""
    found = _expires_at_writes()
    listed = {path: len(writes) for path, writes in EXPIRING_WRITES.items()}
    unknown = {p: n for p, n in found.items() if listed.get(p) != n}
    assert not unknown, (
        f"Firestore writes with expires_at not accounted for: {unknown} (file: how many). "
        "Give each collection a TTL policy in firestore_ttl_fields "
        "(infra/modules/switchyard/variables.tf) and list the write in EXPIRING_WRITES."
    )
    assert found == listed, f"listed writes that are gone: {set(listed) - set(found)}"
    collections = {c for writes in EXPIRING_WRITES.values() for c in writes if c is not None}
    assert collections == {c for c, _ in _ttl_fields()}
    for path, writes in EXPIRING_WRITES.items():
        store = (ROOT / path).with_name("store.py")  # where a context names its collections
        text = (ROOT / path).read_text() + (store.read_text() if store.exists() else "")
        for c in writes:
            assert c is None or f'"{c}"' in text, f"{path}: no collection named {c!r}"


def test_every_expiring_collection_has_a_ttl_policy_and_no_other() -> None:
    assert _ttl_fields() == expected_ttl_fields()
    # The TTL field is exempt from single-field indexing (never queried, only grows).
    ttl = blocks(INFRA / "modules" / "firestore", "resource")["google_firestore_field.ttl"]
    assert ttl["index_config"] == [{}] or ttl["index_config"] == {}
    assert blocks(SWITCHYARD, "module")["firestore"]["ttl_fields"] == "${var.firestore_ttl_fields}"


def test_the_gcloud_path_enables_the_same_ttl_policies() -> None:
    """docs/deploy.md's loop for a project without Terraform names exactly these collections."""
    doc = (INFRA.parent / "docs" / "deploy.md").read_text()
    loop = re.search(r"for c in (.*?); do", doc, re.S)
    assert loop, "docs/deploy.md lost its TTL loop"
    named = set(loop.group(1).replace("\\", " ").split())
    assert named == {collection for collection, _ in _ttl_fields()}


# --- Firestore: composite indexes -----------------------------------------------------------

Index = tuple[str, tuple[tuple[str, str], ...]]


def _declared_indexes() -> set[Index]:
    default = blocks(SWITCHYARD, "variable")["firestore_indexes"]["default"]
    found = [
        (i["collection"], tuple((f["field_path"], f["order"]) for f in i["fields"]))
        for i in default
    ]
    assert len(found) == len(set(found)), "a composite index is declared twice"
    return set(found)


def _recorded_agent_filters(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, tuple[str, ...]]]:
    """(collection, equality fields) of every store.page call the agents' list endpoints make,
    over every combination of their filters."""
    from functions.agents import model, service, store

    seen: set[tuple[str, tuple[str, ...]]] = set()

    def page(collection: str, *, equals: dict[str, str], after: Any, limit: int) -> list[Any]:
        seen.add((collection, tuple(sorted(equals))))
        return []

    monkeypatch.setattr(store, "page", page)
    kinds = [None, model.KINDS[0], model.ANALYSIS_KINDS[0]]
    for kind, status, repository, package_id in itertools.product(
        kinds, [None, model.STATUSES[0]], [None, "acme/widgets"], [None, "pkg-1"]
    ):
        service.interactions(
            kind=kind,
            status_=status,
            repository=repository,
            package_id=package_id,
            after=None,
            limit=10,
        )
    for kind, package_id in itertools.product(kinds[:2], [None, "pkg-1"]):
        service.list_investigations(package_id=package_id, kind=kind, after=None, limit=10)
    return seen


def _query_functions(path: Path) -> set[str]:
    """Functions of a module that filter or order a Firestore query."""
    tree = ast.parse(path.read_text())
    out = set()
    for f in ast.walk(tree):
        if isinstance(f, ast.FunctionDef):
            src = ast.unparse(f)
            if "FieldFilter" in src or re.search(r"\.order_by\(['\"]", src):
                out.add(f.name)
    return out


def test_agents_indexes_are_exactly_the_queries_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.agents import store

    # Every Firestore query of the agents: page (lists), count (status, single field),
    # latest_finished (status + finished_at) and lane_samples (lane + delivered_at).
    assert _query_functions(ROOT / "functions/agents/store.py") == {
        "page",
        "count",
        "latest_finished",
        "lane_samples",
    }
    # store.page is called only by the two list functions exercised below.
    callers = set()
    for path in (ROOT / "functions/agents").glob("*.py"):
        for f in ast.walk(ast.parse(path.read_text())):
            if isinstance(f, ast.FunctionDef) and "store.page(" in ast.unparse(f):
                callers.add(f"{path.stem}.{f.name}")
    assert callers == {"service.list_investigations", "service.interactions"}

    want: set[Index] = set()
    for collection, fields in _recorded_agent_filters(monkeypatch):
        if fields:  # no equality filter: created_at's automatic single-field index
            want.add(
                (
                    collection,
                    tuple((f, "ASCENDING") for f in fields) + (("created_at", "DESCENDING"),),
                )
            )
    for collection in (store.INVESTIGATIONS, store.ANALYSES):
        want.add((collection, (("status", "ASCENDING"), ("finished_at", "DESCENDING"))))
    want.add((store.LANE_SAMPLES, (("lane", "ASCENDING"), ("delivered_at", "DESCENDING"))))
    # investigations: package_id, kind, status and every combination; analyses: repository,
    # kind, status and every combination
    assert len([i for i in want if i[0] == store.INVESTIGATIONS]) == 8
    assert len([i for i in want if i[0] == store.ANALYSES]) == 8

    agent_collections = {store.INVESTIGATIONS, store.ANALYSES, store.LANE_SAMPLES}
    declared = {i for i in _declared_indexes() if i[0] in agent_collections}
    assert declared == want, (
        f"missing: {sorted(want - declared)}; not needed: {sorted(declared - want)}"
    )


def test_the_other_contexts_queries_need_no_other_index() -> None:
    # automation: a run's lines, seq > cursor order by seq, in its own subcollection (the
    # automatic single-field index); source: documents read by id only.
    assert _query_functions(ROOT / "functions/automation/logs.py") == {"read"}
    assert not _query_functions(ROOT / "functions/source/rawstore.py")
    declared = _declared_indexes()
    collections = {c for c, _ in declared}
    assert not {"lines", "automation_run_logs", "source_deliveries", "chunks"} & collections
    # realtime: a stream's feed after a sequence (stream ==, seq >, order by seq); the agents
    # snapshot orders one field only.
    realtime = ROOT / "functions/realtime/store.py"
    if realtime.exists():
        assert _query_functions(realtime) == {"entries_after", "snapshot"}
    assert {i for i in declared if i[0].startswith("realtime_")} == {
        ("realtime_feed", (("stream", "ASCENDING"), ("seq", "ASCENDING")))
    }
    assert blocks(SWITCHYARD, "module")["firestore"]["indexes"] == "${var.firestore_indexes}"


# --- Cloud SQL connection budget --------------------------------------------------------------


def _budget(terraform: str, work: Path, cap: int | None) -> dict[str, Any]:
    """sql.tf's budget and functions.tf's capped runtime, evaluated by Terraform over today's
    manifests with max_instances_cap = `cap`."""
    functions_tf = (SWITCHYARD / "functions.tf").read_text()
    runtime = re.search(r"^  runtime = \{\n.*?^  \}\n", functions_tf, re.S | re.M)
    assert runtime, "functions.tf: the capped runtime local changed shape"
    text = (SWITCHYARD / "sql.tf").read_text()
    m = re.search(r"sql_connection_budget = (sum\(concat\(\[0\], \[.*?\]\)\))", text, re.S)
    assert m, "sql.tf: the budget expression changed shape"
    main_tf = (
        'module "manifests" {\n'
        f'  source              = "{MANIFESTS_MODULE}"\n'
        f'  functions_dir       = "{ROOT / "functions"}"\n'
        '  project_id          = "proj"\n'
        f'  project_number      = "{PROJECT_NUMBER}"\n'
        '  region              = "europe-west1"\n'
        '  env                 = "dev"\n'
        '  sql_connection_name = "proj:europe-west1:switchyard"\n'
        "}\n\n"
        'variable "max_instances_cap" {\n'
        "  type     = number\n"
        f"  default  = {'null' if cap is None else cap}\n"
        "  nullable = true\n"
        "}\n\n"
        f"locals {{\n{runtime.group(0)}  sql_connection_budget = {m.group(1)}\n}}\n\n"
        'output "budget" {\n  value = local.sql_connection_budget\n}\n'
        'output "pools" {\n'
        "  value = { for n, d in module.manifests.deployments : n => d.db_pool }\n"
        "}\n"
        'output "env" {\n  value = module.manifests.environment\n}\n'
    )
    return _apply(terraform, work, main_tf)


def _default(path: Path, name: str) -> Any:
    return blocks(path, "variable")[name]["default"]


def test_connection_budget_is_what_the_manifests_imply(
    terraform: str, catalog: Catalog, tmp_path: Path
) -> None:
    """sql.tf's budget, evaluated by Terraform over today's manifests, is the Python sum of
    min(max_instances, cap) x pool, the pool of an instance being min(concurrency, 2) and the
    DB_POOL_SIZE (no overflow) each sql deployment gets; with each environment's defaults the
    check holds, and it is not vacuous: dev's instance cap is what makes dev fit (decision
    0040)."""
    sql = {n: d for n, d in catalog.deployments.items() if d.uses_sql}
    assert sql
    for n, d in catalog.deployments.items():
        assert d.db_pool == (min(d.runtime.concurrency, DB_POOL_MAX) if d.uses_sql else 0), n
    envs = ROOT / "infra" / "environments"
    caps = {"dev": _default(envs / "dev", "max_instances_cap"), "prod": None}
    assert caps["dev"] is not None
    reserved = _default(SWITCHYARD, "sql_reserved_connections")
    for env, cap in caps.items():
        got = _budget(terraform, tmp_path / f"budget-{env}", cap)
        want = sum(
            (d.runtime.max_instances if cap is None else min(d.runtime.max_instances, cap))
            * d.db_pool
            for d in sql.values()
        )
        assert got["budget"] == want, env
        assert got["pools"] == {n: d.db_pool for n, d in catalog.deployments.items()}
        for n, d in sql.items():
            assert got["env"][n]["DB_POOL_SIZE"] == str(d.db_pool), n
            assert got["env"][n]["DB_MAX_OVERFLOW"] == "0", n
        limit = _default(envs / env, "sql_max_connections")
        assert want + reserved < limit, f"{env}: {want} + {reserved} reserved >= {limit}"
    uncapped = sum(d.runtime.max_instances * d.db_pool for d in sql.values())
    assert uncapped + reserved >= _default(envs / "dev", "sql_max_connections")
    text = (SWITCHYARD / "sql.tf").read_text()
    check = re.search(r'check "sql_connection_budget" \{.*?condition\s+=\s+([^\n]+)', text, re.S)
    assert check and check.group(1).strip() == (
        "local.sql_connection_budget + var.sql_reserved_connections < var.sql_max_connections"
    )
