"""Least privilege (issue 12 item 4, decision 0033), in both deployment paths: the Terraform plan
of dev and prod (offline, schema-only provider) and the gcloud script (a dry run, parsed).

- Firestore: roles/datastore.user only with an IAM condition naming the platform's database;
- the internet-facing gateway: run.invoker on http deployments only, run.viewer (state for
  /api/health) on the event and schedule deployments;
- the dead-letter operator publishes only to the topics it can redrive to;
- runtime secrets (decision 0030) granted by the gcloud script as Terraform grants them."""

from __future__ import annotations

import importlib.util
import io
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import celpy
import pytest
from infra_support import (
    INFRA,
    PROJECT,
    REGION,
    account_id,
    expected_plan,
    instances,
    planned,
)
from test_context_infra import OPERATION_PERMISSIONS, expected_runtime_secrets

from shared.manifests import Catalog

NUMBER = "123456789"
ENVS = ("dev", "prod")


def _sa(name: str) -> str:
    return f"serviceAccount:{account_id(name)}@{PROJECT}.iam.gserviceaccount.com"


def _deploy_module() -> ModuleType:
    name = "switchyard_infra_deploy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, INFRA / "deploy" / "deploy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _condition(flag: str) -> dict[str, str]:
    """`--condition=...` of gcloud (ArgDict, with an optional ^delimiter^ escape)."""
    body, delim = flag, ","
    if body.startswith("^"):
        delim, body = body[1:].split("^", 1)
    return dict(item.split("=", 1) for item in body.split(delim))


@pytest.fixture(scope="module")
def dry_run(catalog: Catalog) -> list[list[str]]:
    """Every gcloud command of a dry run of all deployments (project number 123456789)."""
    deploy = _deploy_module()
    out = io.StringIO()
    deployer = deploy.Deployer(
        catalog, deploy.Gcloud(PROJECT, dry_run=True, out=out), REGION, "dev", Path("build")
    )
    deployer.gcloud.value = (
        lambda placeholder, *args: (  # type: ignore[method-assign]
            NUMBER if args[:2] == ("projects", "describe") else placeholder
        )
    )
    deployer.deploy(sorted(catalog.deployments))
    commands = []
    for line in out.getvalue().splitlines():
        words = shlex.split(line)
        if words[:1] == ["if"]:  # create-or-update: keep the create
            words = words[words.index("else") + 1 :] if "else" in words else []
        commands.append([w for w in words if w not in ("fi", ";")])
    return commands


def _flags(words: list[str]) -> dict[str, str]:
    return dict(w[2:].split("=", 1) for w in words if w.startswith("--") and "=" in w)


def _bindings(commands: list[list[str]], *prefix: str) -> list[dict[str, str]]:
    n = len(prefix)
    return [
        _flags(c) | {"_target": c[n + 1]}
        for c in commands
        if c[:n] == list(prefix) and c[n : n + 1] == ["add-iam-policy-binding"]
    ]


# --- Firestore ------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_terraform_grants_firestore_only_on_the_database(env, offline_plans, catalog):
    plan = offline_plans(env)
    firestore = instances(plan, "google_project_iam_member", "firestore")
    want = expected_plan(catalog)["firestore_bindings"]
    assert set(firestore) == set(want)
    for m in firestore.values():
        assert m["role"] == "roles/datastore.user"
        (condition,) = m["condition"]
        assert condition["expression"] == (
            f'resource.name == "projects/{PROJECT}/databases/(default)"'
        )
        program = _cel(condition["expression"])
        assert _allows(program, f"projects/{PROJECT}/databases/(default)")
        assert not _allows(program, f"projects/{PROJECT}/databases/other")
        assert not _allows(program, "projects/someone-else/databases/(default)")
    # No other Firestore (datastore) role anywhere in the plan.
    others = [
        m
        for a, m in planned(plan, "google_project_iam_member").items()
        if ".firestore[" not in a and m.get("role", "").startswith("roles/datastore.")
    ]
    assert not others


def test_the_deploy_script_grants_firestore_with_the_same_condition(dry_run, catalog):
    want = expected_plan(catalog, project=PROJECT)["firestore_bindings"]
    got = {
        b["member"]: b
        for b in _bindings(dry_run, "gcloud", "projects")
        if b["role"].startswith("roles/datastore.")
    }
    assert set(got) == {_sa(n) for n in want}
    for n, binding in want.items():
        condition = _condition(got[_sa(n)]["condition"])
        assert condition["expression"] == binding["condition"]
        assert condition["title"]


# --- the gateway: invoker on http deployments only -------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_terraform_gives_the_gateway_invoker_on_http_deployments_only(env, offline_plans, catalog):
    plan = offline_plans(env)
    invokers = instances(plan, "google_cloud_run_v2_service_iam_member", "invoker")
    viewers = instances(plan, "google_cloud_run_v2_service_iam_member", "health_viewer")
    http = {n for n, d in catalog.deployments.items() if d.trigger == "http"} - {"gateway"}
    others = {n for n, d in catalog.deployments.items() if d.trigger != "http"}
    assert others, "the repository has event and schedule deployments"
    pairs = {tuple(k.split("/")) for k in invokers}  # (target, invoker)
    assert {t for t, i in pairs if i == "gateway"} == http
    for key, g in invokers.items():
        target, _ = key.split("/")
        assert g["role"] == "roles/run.invoker" and g["name"] == target
    # The event and schedule deployments are invoked by their platform identities alone.
    assert {i for t, i in pairs if t in others} <= {"@push", "@scheduler"}
    assert {tuple(k.split("/")) for k in viewers} == {(t, "gateway") for t in others}
    assert {g["role"] for g in viewers.values()} == {"roles/run.viewer"}


def test_the_deploy_script_gives_the_gateway_invoker_on_http_deployments_only(dry_run, catalog):
    gateway = _sa("gateway")
    runs = [b for b in _bindings(dry_run, "gcloud", "run", "services") if b["member"] == gateway]
    http = {n for n, d in catalog.deployments.items() if d.trigger == "http"} - {"gateway"}
    others = {n for n, d in catalog.deployments.items() if d.trigger != "http"}
    assert {b["_target"] for b in runs if b["role"] == "roles/run.invoker"} == http
    assert {b["_target"] for b in runs if b["role"] == "roles/run.viewer"} == others


# --- the dead-letter operator publishes where it can redrive ----------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_terraform_lets_the_dead_letter_operator_publish_only_where_it_redrives(
    env, offline_plans, catalog
):
    plan = offline_plans(env)
    publishers = instances(plan, "google_pubsub_topic_iam_member", "publisher")
    redrivable = {t for _, t in catalog.subscriptions()}
    for operator in catalog.with_role("dead-letter-operator"):
        assert operator not in catalog.with_role("outbox-relay")
        topics = {k.split("/", 1)[1] for k in publishers if k.split("/", 1)[0] == operator}
        assert topics == redrivable | set(catalog.deployments[operator].publishes)
    for key, p in publishers.items():
        assert p["role"] == "roles/pubsub.publisher"
        assert p["topic"] == key.split("/", 1)[1] and not p["topic"].endswith(".dead-letter")


# --- runtime secrets by the gcloud path (decision 0030) ---------------------------------------


def _cel(expression: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression))


def _allows(program: Any, name: str) -> bool:
    return bool(program.evaluate({"resource": celpy.json_to_cel({"name": name})}))


def test_the_deploy_script_grants_the_runtime_secrets_like_terraform(dry_run, catalog):
    want = {
        (d, name, match, op)
        for d, grants in expected_runtime_secrets().items()
        for (name, match), ops in grants.items()
        for op in ops
    }
    roles = {c[4]: _flags(c) for c in dry_run if c[:4] == ["gcloud", "iam", "roles", "create"]}
    used = {op for *_, op in want}
    assert {r.removeprefix("switchyardSecret").lower() for r in roles} == used
    for role_id, f in roles.items():
        op = role_id.removeprefix("switchyardSecret").lower()
        assert set(f["permissions"].split(",")) == OPERATION_PERMISSIONS[op], role_id
    by_account = {_sa(n): n for n in catalog.deployments}
    got = set()
    root = f"projects/{NUMBER}/secrets/"
    for b in _bindings(dry_run, "gcloud", "projects"):
        if not b["role"].startswith(f"projects/{PROJECT}/roles/switchyardSecret"):
            continue
        op = b["role"].rsplit("switchyardSecret", 1)[1].lower()
        condition = _condition(b["condition"])
        program = _cel(condition["expression"])
        deployment = by_account[b["member"]]
        matches = [
            (name, match)
            for (name, match), ops in expected_runtime_secrets()[deployment].items()
            if op in ops and _allows(program, f"{root}{name}{'x1' if match == 'prefix' else ''}")
        ]
        assert len(matches) == 1, (deployment, op, condition)
        name, match = matches[0]
        got.add((deployment, name, match, op))
        # Nothing else: the platform's own secrets, another family, another project's.
        for other in ("jwt-signing-key", "sql-migrator-password", "bootstrap-admin-password"):
            assert not _allows(program, f"{root}{other}"), (deployment, op, other)
        assert not _allows(program, f"projects/999/secrets/{name}x1")
        if match == "exact":
            assert _allows(program, f"{root}{name}/versions/3")
            assert not _allows(program, f"{root}{name}-2")
    assert got == want
    created = {c[3] for c in dry_run if c[:3] == ["gcloud", "secrets", "create"]}
    exact = {name for _, name, match, _ in want if match == "exact"}
    assert exact <= created
