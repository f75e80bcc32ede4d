"""The Terraform in infra/ against the manifests and the security contract (design.md 8, 13).

Terraform derives everything per deployment in infra/modules/manifests (no provider), which is
evaluated here by Terraform itself and compared with the plan re-derived in Python from
shared.manifests (conftest.expected_plan). The resources of infra/modules/switchyard are
checked structurally: they iterate over those derived maps and carry the required settings.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from infra_support import (
    INFRA,
    ROOT,
    blocks,
    expected_plan,
    parse,
    terraform_env,
    tf_files,
)

from shared.manifests import load

MODULES = INFRA / "modules"
SWITCHYARD = MODULES / "switchyard"
ENVIRONMENTS = sorted(p for p in (INFRA / "environments").iterdir() if p.is_dir())


def refs(node: object, pattern: str) -> set[str]:
    return set(re.findall(pattern, json.dumps(node)))


# --- the derivation, evaluated by Terraform -------------------------------------------------


def test_terraform_derives_the_plan_of_the_manifests(catalog, terraform_plan):
    got = terraform_plan(ROOT / "functions")
    want = expected_plan(catalog)
    for key, value in want.items():
        assert got[key] == value, f"module.manifests output {key!r} differs from the manifests"
    for name, d in got["deployments"].items():
        m = catalog.deployments[name]
        assert d["ingress"] == m.ingress
        assert d["runtime"] == {k: getattr(m.runtime, k) for k in d["runtime"]}
        assert d["retry"] == {k: getattr(m.retry, k) for k in d["retry"]}
        assert d["entry_point"] == m.entry_point and d["trigger"] == m.trigger
        assert d["subscribes"] == list(m.subscribes)  # "*" expanded like shared.manifests


def test_service_to_service_invokers_and_urls_are_only_the_declared_calls(catalog, terraform_plan):
    got = terraform_plan(ROOT / "functions")
    gateways = set(got["gateways"])
    assert gateways == {"gateway"}
    granted = {(b["invoker"], b["target"]) for b in got["invoker_bindings"].values()}
    # users-api sets credentials on auth-api; the console's BFF logs in through it.
    assert ("users-api", "auth-api") in granted and ("console-web", "auth-api") in granted
    for invoker, target in granted:
        if invoker in gateways:
            # routing and GET /health: the http deployments only (decision 0033)
            assert catalog.deployments[target].trigger == "http", target
            continue
        if invoker == "@push":
            assert catalog.deployments[target].trigger == "event"
        elif invoker == "@scheduler":
            assert catalog.deployments[target].trigger == "schedule"
        else:
            assert target in catalog.deployments[invoker].calls, (
                f"{invoker} may invoke {target} without declaring it in `calls`"
            )
    # The internet-facing gateways invoke every other http deployment and no event or schedule
    # deployment (their state is read with run.viewer); nobody invokes what it does not call.
    http = {n for n, d in catalog.deployments.items() if d.trigger == "http"}
    assert {(i, t) for i, t in granted if i in gateways} == {
        (g, n) for g in gateways for n in http - gateways
    }
    viewers = {(b["viewer"], b["target"]) for b in got["health_viewer_bindings"].values()}
    assert viewers == {(g, n) for g in gateways for n in set(catalog.deployments) - http - gateways}
    assert ("maintenance-api", "auth-api") not in granted
    assert ("users-api", "users-api") not in granted
    # SERVICE_URLS: a non-gateway deployment knows only its callees (none: no variable).
    for n, d in catalog.deployments.items():
        if n in gateways:
            continue
        urls = got["environment"][n].get("SERVICE_URLS")
        assert (json.loads(urls) if urls else {}) == {
            c: f"https://{c}-123456789.europe-west1.run.app" for c in d.calls
        }, n
    assert set(got["service_urls"]) == {
        n for n, d in catalog.deployments.items() if d.calls and n not in gateways
    }


def test_terraform_refuses_a_call_to_a_deployment_that_is_not_http(tmp_path, terraform_plan):
    """shared.manifests refuses it first; Terraform does not rely on that (output condition)."""
    functions = tmp_path / "functions"
    shutil.copytree(
        ROOT / "functions", functions, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    manifest = functions / "users" / "function.yaml"
    manifest.write_text(
        manifest.read_text().replace("calls: [auth-api]", "calls: [auth-api, audit-ingest]")
    )
    with pytest.raises(AssertionError, match="not another http deployment"):
        terraform_plan(functions)


def test_plan_covers_every_deployment_topic_and_schedule(catalog):
    plan = expected_plan(catalog)
    assert set(plan["account_ids"]) == set(catalog.deployments)
    assert plan["topics"] == list(catalog.topics)
    subscribed = {(s["deployment"], s["topic"]) for s in plan["subscriptions"].values()}
    assert subscribed == {(d.name, t) for d, t in catalog.subscriptions()}
    # audit-ingest subscribes "*": one subscription per published topic.
    assert {t for d, t in subscribed if d == "audit-ingest"} == set(catalog.topics)
    assert set(plan["schedules"]) == {
        n for n, d in catalog.deployments.items() if d.trigger == "schedule"
    }
    assert set(plan["secrets"]) == {s for d in catalog.deployments.values() for s in d.secrets}
    assert all(5 <= s["max_delivery_attempts"] <= 100 for s in plan["subscriptions"].values())


NEW_CONTEXT = {
    "function.yaml": """\
        context: reports
        description: Reports built from user events.
        owns_schema: reports
        deployments:
          reports-api:
            entry_point: api
            trigger: http
            routes: [/api/reports]
            publishes: [report.generated]
            uses: [sql]
            secrets: [jwt-public-keys, reports-export-key]
            calls: [users-api]
          reports-on-user-created:
            entry_point: on_user_created
            trigger: event
            subscribes: [user.created]
            retry: {max_attempts: 200, min_backoff_s: 30}
            runtime: {timeout_s: 120}
          reports-nightly:
            entry_point: nightly
            trigger: schedule
            schedule: "0 3 * * *"
            time_zone: Europe/Paris
    """,
    "main.py": """\
        def api(request): ...
        def on_user_created(request): ...
        def nightly(request): ...
    """,
}


@pytest.fixture()
def functions_with_new_context(tmp_path: Path) -> Path:
    functions = tmp_path / "functions"
    shutil.copytree(
        ROOT / "functions", functions, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    (functions / "reports").mkdir()
    for name, text in NEW_CONTEXT.items():
        (functions / "reports" / name).write_text(textwrap.dedent(text))
    return functions


def test_a_new_deployment_needs_no_terraform_change(functions_with_new_context, terraform_plan):
    before = {p: p.read_bytes() for p in tf_files()}
    cat = load(functions_with_new_context)
    want = expected_plan(cat)
    assert "reports-on-user-created--user.created" in want["subscriptions"]
    sub = want["subscriptions"]["reports-on-user-created--user.created"]
    assert sub["max_delivery_attempts"] == 100 and sub["ack_deadline_s"] == 120
    assert "audit-ingest--report.generated" in want["subscriptions"]  # "*" follows new topics
    assert want["schedules"]["reports-nightly"]["time_zone"] == "Europe/Paris"
    assert "reports-api/gateway" in want["invoker_bindings"]
    assert want["invoker_bindings"]["users-api/reports-api"] == {
        "target": "users-api",
        "invoker": "reports-api",
    }
    assert json.loads(want["environment"]["reports-api"]["SERVICE_URLS"]) == {
        "users-api": "https://users-api-123456789.europe-west1.run.app"
    }
    assert "reports-export-key" in want["secrets"]
    assert want["sql_grants"]["reports"] == [
        "ops-api@proj.iam:outbox:select",
        "ops-cleanup@proj.iam:outbox:delete,select",
        "ops-outbox-relay@proj.iam:outbox:select,update",
        "reports-api@proj.iam",
    ]

    got = terraform_plan(functions_with_new_context)
    for key, value in want.items():
        assert got[key] == value, f"module.manifests output {key!r} misses the new context"
    assert {p: p.read_bytes() for p in tf_files()} == before


def test_resources_iterate_over_the_derived_plan():
    """Every per-deployment resource loops over a module.manifests output: nothing by hand."""
    resources = blocks(SWITCHYARD, "resource")
    modules = blocks(SWITCHYARD, "module")
    for_each = {
        ("resource", "google_pubsub_subscription.push"): "module.manifests.subscriptions",
        (
            "resource",
            "google_pubsub_subscription_iam_member.service_agent",
        ): "module.manifests.subscriptions",
        (
            "resource",
            "google_pubsub_topic_iam_member.publisher",
        ): "module.manifests.publisher_bindings",
        (
            "resource",
            "google_pubsub_subscription_iam_member.dead_letter_reader",
        ): "module.manifests.dead_letter_bindings",
        (
            "resource",
            "google_cloud_run_v2_service_iam_member.invoker",
        ): "module.manifests.invoker_bindings",
        ("module", "topic"): "module.manifests.topic_wiring",
        ("module", "scheduled_job"): "module.manifests.schedules",
        ("module", "service_account"): "module.manifests.deployments",
        ("module", "function"): "local.backends",
        ("module", "gateway"): "local.gateways",
    }
    for (kind, name), expr in for_each.items():
        body = resources[name] if kind == "resource" else modules[name]
        assert body["for_each"] == "${" + expr + "}", f"{name} must iterate over {expr}"
    local = blocks(SWITCHYARD, "locals")
    assert "module.manifests.deployments" in local["backends"]
    assert "module.manifests.deployments" in local["gateways"]
    # Secrets: every manifest secret plus the platform's, accessors from the manifests.
    secrets = modules["secrets"]
    assert "module.manifests.secrets" in secrets["secret_ids"]
    assert "module.manifests.secret_bindings" in secrets["accessors"]
    platform = blocks(SWITCHYARD, "variable")["platform_secrets"]["default"]
    assert {
        "jwt-signing-key",
        "jwt-public-keys",
        "bootstrap-admin-password",
        "github-webhook-secret",
    } <= set(platform)
    # The manifests are read with fileset + yamldecode.
    manifests_locals = blocks(MODULES / "manifests", "locals")
    assert 'fileset(var.functions_dir, "*/function.yaml")' in manifests_locals["manifest_files"]
    assert "yamldecode(file(" in manifests_locals["manifests"]


def _code(node: object) -> object:
    """The parsed HCL without descriptions and error messages (prose may give examples)."""
    if isinstance(node, dict):
        return {k: _code(v) for k, v in node.items() if k not in ("description", "error_message")}
    if isinstance(node, list):
        return [_code(v) for v in node]
    return node


# The one table keyed by deployment name: access to secrets the code creates at run time,
# which the manifests cannot declare (decision 0030; test_context_infra.py checks it).
RUNTIME_SECRETS = SWITCHYARD / "runtime_secrets.tf"


def _without_runtime_secrets_table(tree: dict) -> dict:
    return {
        **tree,
        "locals": [
            {k: v for k, v in block.items() if k != "runtime_secrets"}
            for block in tree.get("locals", [])
        ],
    }


def test_no_deployment_or_topic_is_named_in_terraform(catalog):
    # documented defaults of infra/modules/manifests (the platform's outbox and dead-letter tools)
    allowed = {"ops-outbox-relay", "ops-api", "ops-cleanup"}
    names = (set(catalog.deployments) - {"gateway"} - allowed) | set(catalog.topics)
    for path in tf_files():
        tree = parse(path)
        if path == RUNTIME_SECRETS:
            tree = _without_runtime_secrets_table(tree)
        text = json.dumps(_code(tree))
        for name in names:
            assert not re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text), (
                f"{path.relative_to(ROOT)} names {name!r}: derive it from the manifests"
            )


# --- security -------------------------------------------------------------------------------


def _granted_roles(node: object) -> list[str]:
    """Every value of a `role` or `project_roles` argument under `node`."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("role", "project_roles", "roles"):
                found += re.findall(r"roles/[\w.]+", json.dumps(value))
            found += _granted_roles(value)
    elif isinstance(node, list):
        for item in node:
            found += _granted_roles(item)
    return found


def test_no_basic_roles_anywhere():
    granted = []
    for path in tf_files():
        tree = parse(path)
        for kind in ("resource", "module", "locals", "data"):
            granted += _granted_roles(tree.get(kind, []))
    assert granted and not {"roles/editor", "roles/owner", "roles/viewer"} & set(granted)
    # The service_account module refuses them as project roles.
    validation = blocks(MODULES / "service_account", "variable")["project_roles"]["validation"]
    assert "roles/editor" in json.dumps(validation) and "roles/owner" in json.dumps(validation)
    # The project roles derived from the manifests are only the ones the contract names.
    allowed = {"roles/cloudsql.client", "roles/cloudsql.instanceUser"}
    manifests_locals = blocks(MODULES / "manifests", "locals")
    assert set(re.findall(r"roles/[\w.]+", manifests_locals["project_roles"])) == allowed
    # Firestore's role is granted apart, only with a condition naming the database.
    assert set(re.findall(r"roles/[\w.]+", json.dumps(manifests_locals["firestore_bindings"]))) == {
        "roles/datastore.user"
    }


def test_ingress_internal_unless_the_manifest_says_all(catalog):
    fn = blocks(MODULES / "function", "resource")
    service = fn["google_cloudfunctions2_function.this"]["service_config"][0]
    assert service["ingress_settings"] == (
        '${var.ingress == "all" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"}'
    )
    assert service["all_traffic_on_latest_revision"] is True
    assert service["service_account_email"] == "${var.service_account_email}"
    public = fn["google_cloud_run_v2_service_iam_member.public"]
    assert public["member"] == "allUsers" and public["role"] == "roles/run.invoker"
    assert public["count"] == '${var.ingress == "all" ? 1 : 0}'
    assert blocks(MODULES / "function", "variable")["ingress"]["default"] == "internal"
    for name in ("function", "gateway"):
        call = blocks(SWITCHYARD, "module")[name]
        assert call["ingress"] == "${each.value.ingress}"
        # Calls between functions reach internal-only ingress only from the VPC.
        assert call["vpc_connector"] == "${module.network.connector_id}"
    assert "ALL_TRAFFIC" in service["vpc_connector_egress_settings"]
    # allUsers appears nowhere else.
    for path in tf_files():
        if path.parent.name != "function":
            assert "allUsers" not in json.dumps(parse(path)), path
    # Public ingress only for the gateway and for intake whose every route is public (it
    # authenticates each request itself, e.g. the GitHub webhook's signature, decision 0025).
    public_ingress = {n for n, d in catalog.deployments.items() if d.ingress == "all"}
    assert "gateway" in public_ingress
    for name in public_ingress - {"gateway"}:
        d = catalog.deployments[name]
        assert d.routes and set(d.routes) <= set(d.public_routes), (
            f"{name} has ingress all but routes behind the JWT: {d.routes}"
        )


def test_push_subscriptions_and_scheduler_jobs_carry_oidc_tokens():
    push = blocks(SWITCHYARD, "resource")["google_pubsub_subscription.push"]
    config = push["push_config"][0]
    assert config["push_endpoint"].endswith(
        "/projects/${var.project_id}/topics/${each.value.topic}"
    )
    token = config["oidc_token"][0]
    assert token["service_account_email"] == "${module.push_invoker.email}"
    assert token["audience"] == "${local.functions[each.value.deployment].url}"
    assert push["retry_policy"][0]["minimum_backoff"] == "${each.value.min_backoff_s}s"
    assert push["dead_letter_policy"][0]["max_delivery_attempts"] == (
        "${each.value.max_delivery_attempts}"
    )
    assert push["ack_deadline_seconds"] == "${each.value.ack_deadline_s}"
    job = blocks(MODULES / "scheduled_job", "resource")["google_cloud_scheduler_job.this"]
    target = job["http_target"][0]
    assert target["http_method"] == "POST"
    assert target["oidc_token"][0]["service_account_email"] == "${var.service_account_email}"
    assert blocks(SWITCHYARD, "module")["scheduled_job"]["service_account_email"] == (
        "${module.scheduler_invoker.email}"
    )
    # Pub/Sub's service agent may dead-letter and mint the push tokens.
    resources = blocks(SWITCHYARD, "resource")
    assert resources["google_pubsub_subscription_iam_member.service_agent"]["role"] == (
        "roles/pubsub.subscriber"
    )
    assert resources["google_service_account_iam_member.pubsub_agent_token_creator"]["role"] == (
        "roles/iam.serviceAccountTokenCreator"
    )
    topic = blocks(MODULES / "event_topic", "resource")
    assert topic["google_pubsub_topic_iam_member.dead_letter_publisher"]["topic"] == (
        "${google_pubsub_topic.dead_letter.name}"
    )
    assert topic["google_pubsub_topic.dead_letter"]["name"] == "${var.name}.dead-letter"
    assert topic["google_pubsub_subscription.keep"]["name"] == "${var.name}.dead-letter--keep"


def test_stateful_resources_and_data_settings():
    sql = blocks(MODULES / "sql", "resource")
    instance = sql["google_sql_database_instance.this"]
    assert instance["database_version"] == "POSTGRES_15"
    settings = instance["settings"][0]
    backup = settings["backup_configuration"][0]
    assert backup["enabled"] is True and backup["point_in_time_recovery_enabled"] is True
    flags = {f["name"]: f["value"] for f in settings["database_flags"]}
    assert flags["cloudsql.iam_authentication"] == "on"
    assert sql["google_sql_user.iam"]["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert sql["google_sql_database.this"]["name"] == "${var.database_name}"
    envs = {e.name: blocks(e, "module")["switchyard"] for e in ENVIRONMENTS}
    assert envs["prod"]["deletion_protection"] is True
    assert envs["dev"]["deletion_protection"] is False
    fs = blocks(MODULES / "firestore", "resource")
    assert fs["google_firestore_database.this"]["type"] == "FIRESTORE_NATIVE"
    assert fs["google_firestore_database.this"]["name"] == "(default)"
    assert "ttl_config" in fs["google_firestore_field.ttl"]
    variables = blocks(SWITCHYARD, "variable")
    ttl = {(f["collection"], f["field"]) for f in variables["firestore_ttl_fields"]["default"]}
    # the platform's; the contexts' own are checked in test_context_infra.py
    assert {("processed", "expires_at"), ("auth_revoked_tokens", "expires_at")} <= ttl
    indexes = {
        tuple((f["field_path"], f["order"]) for f in i["fields"])
        for i in variables["firestore_indexes"]["default"]
        if i["collection"] == "audit_events"
    }
    assert indexes == {
        ((k, "ASCENDING"), ("occurred_at", "DESCENDING")) for k in ("event_type", "actor", "source")
    }
    apis = blocks(SWITCHYARD, "locals")["apis"]
    for api in (
        "cloudfunctions",
        "run",
        "cloudbuild",
        "artifactregistry",
        "pubsub",
        "sqladmin",
        "firestore",
        "secretmanager",
        "cloudscheduler",
        "iam",
    ):
        assert f"{api}.googleapis.com" in apis


# --- hygiene --------------------------------------------------------------------------------


def test_every_variable_is_typed_and_described_and_every_output_described():
    for path in tf_files():
        tree = parse(path)
        for block in tree.get("variable", []):
            for name, body in block.items():
                assert "type" in body and body.get("description"), f"{path}: variable {name}"
        for block in tree.get("output", []):
            for name, body in block.items():
                assert body.get("description"), f"{path}: output {name}"


def test_environments_pin_providers_and_use_a_gcs_backend():
    assert {e.name for e in ENVIRONMENTS} == {"dev", "prod"}
    for env in ENVIRONMENTS:
        settings = next(iter(parse(env / "versions.tf")["terraform"]))
        assert settings["required_version"]
        google = settings["required_providers"][0]["google"]
        assert google["source"] == "hashicorp/google" and google["version"] == "~> 6.0"
        backend = settings["backend"][0]["gcs"]
        assert backend["prefix"] == f"switchyard/{env.name}"
        assert "bucket" not in backend  # partial configuration: -backend-config=bucket=...
        assert blocks(env, "module")["switchyard"]["source"] == "../../modules/switchyard"


def test_module_calls_match_module_interfaces():
    """A poor man's `terraform validate` that needs no provider: arguments, outputs, vars."""
    module_dirs = [SWITCHYARD, *ENVIRONMENTS, *(p for p in MODULES.iterdir() if p.is_dir())]
    for directory in module_dirs:
        calls = blocks(directory, "module")
        variables = blocks(directory, "variable")
        local_names = set(blocks(directory, "locals"))
        body = [parse(p) for p in sorted(directory.glob("*.tf"))]
        assert refs(body, r"\bvar\.(\w+)") <= set(variables), directory
        assert refs(body, r"\blocal\.(\w+)") <= local_names, directory
        meta = {"source", "for_each", "count", "depends_on", "providers", "version"}
        for name, call in calls.items():
            target = (directory / call["source"]).resolve()
            declared = blocks(target, "variable")
            passed = set(call) - meta
            assert passed <= set(declared), f"{directory.name}.{name}: {passed - set(declared)}"
            required = {v for v, b in declared.items() if "default" not in b}
            assert required <= passed, f"{directory.name}.{name} misses {required - passed}"
            outputs = set(blocks(target, "output"))
            used = refs(body, rf"\bmodule\.{name}(?:\[[^\]]*\])?\.(\w+)")
            assert used <= outputs, f"{directory.name}: module.{name} has no {used - outputs}"


def test_terraform_fmt(terraform):
    done = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        env=terraform_env(),
    )
    assert done.returncode == 0, f"terraform fmt -recursive infra needed:\n{done.stdout}"
