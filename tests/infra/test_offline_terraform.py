"""`terraform validate` and `terraform plan` of dev and prod, offline, against the hashicorp/google
6.50 schema: Terraform itself checks every argument, nested block, type and required argument
through the schema-only provider of infra/offline (decision 0033), so a wrong argument fails
here, not at the first apply. The committed lock files pin the real provider for Cloud Build."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
from pathlib import Path

import pytest
from infra_support import (
    GOOGLE,
    INFRA,
    OFFLINE,
    OFFLINE_SCHEMA,
    ROOT,
    offline_init,
    offline_plan,
    offline_schema,
    offline_workspace,
    planned,
    run_terraform,
)

from shared.manifests import Catalog

ENVS = sorted(p.name for p in (INFRA / "environments").iterdir() if p.is_dir())


def _used_types() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"resource": set(), "data": set()}
    for path in INFRA.rglob("*.tf"):
        if ".terraform" in path.parts:
            continue
        for kind, name in re.findall(r'^(resource|data) "([a-z0-9_]+)"', path.read_text(), re.M):
            found[kind].add(name)
    return found


def test_the_offline_schema_is_the_pinned_extraction_and_covers_every_type_infra_uses():
    schema = offline_schema()
    recorded = (OFFLINE / "google-schema.json.sha256").read_text().split()[0]
    assert hashlib.sha256(OFFLINE_SCHEMA.read_bytes()).hexdigest() == recorded, (
        "google-schema.json was edited by hand: regenerate it with infra/offline/extract_schema.py"
    )
    spec = importlib.util.spec_from_file_location("extract_schema", OFFLINE / "extract_schema.py")
    assert spec and spec.loader
    extractor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extractor)
    assert schema["source"]["package"] == f"{extractor.PACKAGE}@{extractor.PACKAGE_VERSION}"
    assert extractor.PACKAGE == "@cdktf/provider-google"
    assert extractor.PACKAGE_VERSION.startswith("16.12.")
    assert schema["source"]["integrity"] == extractor.INTEGRITY
    # The types it extracts are the ones infra/ uses (the same scan as below).
    assert extractor.used_types() == _used_types()
    assert schema["source"]["provider_version"] == "6.50.0"
    google = schema["provider_schemas"][GOOGLE]
    used = _used_types()
    assert used["resource"] <= set(google["resource_schemas"]), (
        f"not in the offline schema (run infra/offline/extract_schema.py): "
        f"{used['resource'] - set(google['resource_schemas'])}"
    )
    assert used["data"] <= set(google["data_source_schemas"])


def test_lock_files_pin_the_schema_version_with_registry_hashes():
    version = offline_schema()["source"]["provider_version"]
    for env in ENVS:
        lock = (INFRA / "environments" / env / ".terraform.lock.hcl").read_text()
        blocks = re.findall(r'provider "([^"]+)" \{(.*?)\n\}', lock, re.S)
        assert [b[0] for b in blocks] == [GOOGLE], env
        body = blocks[0][1]
        assert re.search(rf'version\s+=\s+"{re.escape(version)}"', body), env
        hashes = re.findall(r'"((?:zh|h1):[^"]+)"', body)
        # zh: the SHA-256 of each platform's release zip (the registry's SHA256SUMS).
        assert hashes and all(re.fullmatch(r"zh:[0-9a-f]{64}", h) for h in hashes), hashes
        assert len(set(hashes)) == len(hashes) >= 10
    cloudbuild = (ROOT / "cloudbuild.yaml").read_text()
    init = cloudbuild[cloudbuild.index("id: terraform-init") :].split("- id:")[0]
    assert "-lockfile=readonly" in init  # Cloud Build installs exactly the locked provider


@pytest.mark.parametrize("env", ENVS)
def test_validate_and_plan_run_offline_against_the_provider_schema(
    env, terraform, offline_infra, offline_plans, catalog: Catalog
):
    env_dir = offline_infra / "environments" / env
    done = run_terraform(terraform, env_dir, "validate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The configuration is valid" in done.stdout

    plan = offline_plans(env)
    assert {r["change"]["actions"][0] for r in plan["resource_changes"]} == {"create"}
    functions = planned(plan, "google_cloudfunctions2_function")
    assert len(functions) == len(catalog.deployments)
    subscriptions = planned(plan, "google_pubsub_subscription")
    assert len(subscriptions) == len(list(catalog.subscriptions())) + len(catalog.topics)
    # Computed attributes are unknown until apply, configured ones are what the config says.
    push = [s for s in subscriptions.values() if s["push_config"]]
    assert push and all(s["push_config"][0]["oidc_token"] for s in push)
    buckets = planned(plan, "google_storage_bucket")
    assert all(b["public_access_prevention"] == "enforced" for b in buckets.values())


def test_vertex_ai_is_granted_only_to_a_deployment_given_the_narrative_model(
    terraform, offline_infra, offline_plans
):
    """The agents' optional narrative (decision 0050): roles/aiplatform.user and the API only
    when an environment sets AGENTS_NARRATIVE_MODEL for a deployment, and only to it."""

    def vertex(plan: dict) -> tuple[set[str], bool]:
        users = {a for a in planned(plan, "google_project_iam_member") if "vertex_ai_user" in a}
        apis = {s["service"] for s in planned(plan, "google_project_service").values()}
        return users, "aiplatform.googleapis.com" in apis

    assert vertex(offline_plans("dev")) == (set(), False)
    overrides = '{"agents-worker" = {AGENTS_NARRATIVE_MODEL = "gemini-2.5-flash"}}'
    plan = offline_plan(
        terraform, offline_infra / "environments" / "dev", f"-var=environment_overrides={overrides}"
    )
    users, api = vertex(plan)
    assert users == {'module.switchyard.google_project_iam_member.vertex_ai_user["agents-worker"]'}
    assert api
    (grant,) = [v for a, v in planned(plan, "google_project_iam_member").items() if a in users]
    assert grant["role"] == "roles/aiplatform.user"


# (edit to a copy of infra/, what Terraform must say)
WRONG = {
    "unknown argument": (
        "modules/switchyard/pubsub.tf",
        "  ack_deadline_seconds       = each.value.ack_deadline_s\n",
        "  ack_deadline_seconds       = each.value.ack_deadline_s\n  ack_deadline      = 10\n",
        'An argument named "ack_deadline" is not expected here',
    ),
    "argument of a nested block": (
        "modules/switchyard/pubsub.tf",
        "      audience              = local.functions[each.value.deployment].url\n",
        "      audiences             = [local.functions[each.value.deployment].url]\n",
        'An argument named "audiences" is not expected here',
    ),
    "unknown block": (
        "modules/switchyard/pubsub.tf",
        "  retry_policy {",
        "  retry {",
        'Blocks of type "retry" are not expected here',
    ),
    "missing required argument": (
        "modules/event_topic/main.tf",
        None,  # drop the `name =` line of the first google_pubsub_topic
        None,
        'The argument "name" is required, but no definition was found',
    ),
    "wrong type": (
        "modules/switchyard/pubsub.tf",
        '  message_retention_duration = "604800s"\n',
        '  message_retention_duration = "604800s"\n  retain_acked_messages      = ["yes"]\n',
        "Incorrect attribute value type",
    ),
}


def _drop_first_name(text: str) -> str:
    start = text.index('resource "google_pubsub_topic"')
    name = re.compile(r"^\s+name\s+=.*\n", re.M).search(text, start)
    assert name
    return text[: name.start()] + text[name.end() :]


def test_a_wrong_argument_fails_validate(terraform, offline_plugins, tmp_path):
    work = offline_workspace(tmp_path)
    env_dir = work / "infra" / "environments" / "dev"
    offline_init(terraform, env_dir, offline_plugins)
    ok = run_terraform(terraform, env_dir, "validate")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for case, (file, old, new, message) in WRONG.items():
        path: Path = work / "infra" / file
        original = path.read_text()
        if old is None:
            edited = _drop_first_name(original)
        else:
            assert old in original, f"{case}: {file} changed; update the case"
            edited = original.replace(old, new, 1)
        path.write_text(edited)
        try:
            done = run_terraform(terraform, env_dir, "validate")
        finally:
            path.write_text(original)
        out = " ".join((done.stdout + done.stderr).split())
        assert done.returncode != 0, f"{case}: validate accepted it"
        assert message in out, f"{case}: {out[-2000:]}"


def test_a_type_missing_from_the_offline_schema_fails(terraform, offline_plugins, tmp_path):
    work = offline_workspace(tmp_path)
    env_dir = work / "infra" / "environments" / "dev"
    extra = work / "infra" / "modules" / "switchyard" / "extra.tf"
    extra.write_text('resource "google_pubsub_schema" "x" {\n  name = "x"\n  type = "AVRO"\n}\n')
    offline_init(terraform, env_dir, offline_plugins)
    done = run_terraform(terraform, env_dir, "validate")
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0
    assert "google_pubsub_schema" in out
    shutil.rmtree(work / "infra")
