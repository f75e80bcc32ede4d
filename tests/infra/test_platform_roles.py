"""Platform roles (the outbox relay, the outbox and dead-letter operators) are declared once, in
the manifests' `platform_roles`, and both Terraform (infra/modules/manifests, by yamldecode) and
the gcloud deploy script (infra/deploy/deploy.py, through shared.manifests) read them there.

The proof moves the roles: the ops deployments lose them and a new context's deployments
declare them; both derivations must follow, with no edit to Terraform or the deploy script."""

from __future__ import annotations

import importlib.util
import io
import re
import shlex
import shutil
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from infra_support import INFRA, PROJECT, REGION, ROOT, account_id, expected_plan, tf_files

from shared.manifests import Catalog, load

ROLES = ("outbox-relay", "outbox-operator", "outbox-purger", "dead-letter-operator")

MOVED = {
    "function.yaml": """\
        context: platform
        description: Stand-ins that take over the platform roles.
        deployments:
          platform-relay:
            entry_point: relay
            trigger: schedule
            schedule: "* * * * *"
            uses: [sql]
            platform_roles: [outbox-relay, outbox-operator]
          platform-redrive:
            entry_point: api
            trigger: http
            routes: [/api/platform]
            uses: [sql]
            platform_roles: [dead-letter-operator, outbox-operator]
          platform-purge:
            entry_point: purge
            trigger: schedule
            schedule: "0 3 * * *"
            uses: [sql]
            platform_roles: [outbox-purger]
    """,
    "main.py": """\
        def relay(request): ...
        def api(request): ...
        def purge(request): ...
    """,
}


def _deploy_module() -> ModuleType:
    name = "switchyard_infra_deploy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, INFRA / "deploy" / "deploy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module's annotations through it
    spec.loader.exec_module(module)
    return module


def _sa(name: str) -> str:
    return f"serviceAccount:{account_id(name)}@{PROJECT}.iam.gserviceaccount.com"


def deploy_script_grants(cat: Catalog) -> dict[str, set[tuple[str, str]]]:
    """The pubsub grants infra/deploy/deploy.py makes for `cat` (a dry run, parsed)."""
    deploy = _deploy_module()
    out = io.StringIO()
    deployer = deploy.Deployer(
        cat, deploy.Gcloud(PROJECT, dry_run=True, out=out), REGION, "dev", Path("build")
    )
    deployer.deploy(sorted(cat.deployments))
    grants: dict[str, set[tuple[str, str]]] = {"publisher": set(), "keep": set()}
    for line in out.getvalue().splitlines():
        words = shlex.split(line)
        if words[:4] not in (
            ["gcloud", "pubsub", "topics", "add-iam-policy-binding"],
            ["gcloud", "pubsub", "subscriptions", "add-iam-policy-binding"],
        ):
            continue
        opts = dict(w[2:].split("=", 1) for w in words if w.startswith("--") and "=" in w)
        if opts["member"].startswith("serviceAccount:service-"):
            continue  # the Pub/Sub service agent (dead-letter forwarding, push tokens)
        if words[2] == "topics" and opts["role"] == "roles/pubsub.publisher":
            grants["publisher"].add((words[4], opts["member"]))
        elif words[4].endswith(".dead-letter--keep"):
            grants["keep"].add((words[4], opts["member"]))
    return grants


@pytest.fixture()
def functions_with_moved_roles(tmp_path: Path) -> Path:
    functions = tmp_path / "functions"
    shutil.copytree(
        ROOT / "functions", functions, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    ops = functions / "ops" / "function.yaml"
    stripped = re.sub(r"^\s*platform_roles:.*\n", "", ops.read_text(), flags=re.M)
    assert stripped != ops.read_text(), "the ops manifest declares no platform role"
    ops.write_text(stripped)
    # Not every topic subscribed: the redrive must not publish where no dead letter can be.
    audit = functions / "audit" / "function.yaml"
    every = audit.read_text()
    assert 'subscribes: "*"' in every
    audit.write_text(every.replace('subscribes: "*"', "subscribes: [user.created]"))
    (functions / "platform").mkdir()
    for name, text in MOVED.items():
        (functions / "platform" / name).write_text(textwrap.dedent(text))
    return functions


def test_the_repository_declares_the_platform_roles_in_the_ops_manifest(catalog):
    assert catalog.with_role("outbox-relay") == ("ops-outbox-relay",)
    assert catalog.with_role("dead-letter-operator") == ("ops-api",)
    assert catalog.with_role("outbox-operator") == ("ops-api", "ops-cleanup", "ops-outbox-relay")
    assert catalog.with_role("outbox-purger") == ("ops-cleanup",)
    holders = {n for r in ROLES for n in catalog.with_role(r)}
    for path in (*tf_files(INFRA / "modules" / "manifests"), INFRA / "deploy" / "deploy.py"):
        text = path.read_text()
        for name in holders:
            assert name not in text, f"{path.relative_to(ROOT)} names {name}: read the manifest"


def test_terraform_reads_the_platform_roles_from_the_manifests(
    functions_with_moved_roles, terraform_plan
):
    before = {p: p.read_bytes() for p in tf_files()}
    cat = load(functions_with_moved_roles)
    got = terraform_plan(functions_with_moved_roles)
    assert got["platform_roles"] == {
        "outbox-relay": ["platform-relay"],
        "outbox-operator": ["platform-redrive", "platform-relay"],
        "outbox-purger": ["platform-purge"],
        "dead-letter-operator": ["platform-redrive"],
    }
    topics = got["topics"]
    published = {(b["deployment"], b["topic"]) for b in got["publisher_bindings"].values()}
    # The relay publishes every topic; the redrive only those that can hold dead letters.
    subscribed = {t for _, t in cat.subscriptions()}
    assert subscribed < set(topics)  # some topic has no subscriber: nothing to redrive there
    assert {t for d, t in published if d == "platform-relay"} == set(topics)
    assert {t for d, t in published if d == "platform-redrive"} == subscribed
    assert not {t for d, t in published if d == "platform-purge"}
    # the ops deployments lost what the roles gave them
    assert not {t for d, t in published if d in ("ops-outbox-relay", "ops-api")}
    assert {b["deployment"] for b in got["dead_letter_bindings"].values()} == {"platform-redrive"}
    for users in got["sql_grants"].values():
        outbox = sorted(u for u in users if ":outbox" in u)
        assert outbox == [
            f"platform-purge@{PROJECT}.iam:outbox:delete,select",
            f"platform-redrive@{PROJECT}.iam:outbox:select",
            f"platform-relay@{PROJECT}.iam:outbox:select,update",
        ]
    want = expected_plan(cat)
    for key in ("publisher_bindings", "dead_letter_bindings", "sql_grants", "platform_roles"):
        assert got[key] == want[key], key
    assert {p: p.read_bytes() for p in tf_files()} == before


def test_the_deploy_script_reads_the_platform_roles_from_the_manifests(
    functions_with_moved_roles,
):
    cat = load(functions_with_moved_roles)
    plan = expected_plan(cat)
    grants = deploy_script_grants(cat)
    assert grants["publisher"] == {
        (b["topic"], _sa(b["deployment"])) for b in plan["publisher_bindings"].values()
    }
    assert grants["keep"] == {
        (f"{b['topic']}.dead-letter--keep", _sa(b["deployment"]))
        for b in plan["dead_letter_bindings"].values()
    }
    assert {m for _, m in grants["keep"]} == {_sa("platform-redrive")}
    relay = {t for t, m in grants["publisher"] if m == _sa("platform-relay")}
    assert relay == set(cat.topics)
    redrive = {t for t, m in grants["publisher"] if m == _sa("platform-redrive")}
    assert redrive == {t for _, t in cat.subscriptions()}
    assert not {t for t, m in grants["publisher"] if m == _sa("ops-outbox-relay")}


def test_the_deploy_script_and_terraform_agree_on_the_repository(catalog, terraform_plan):
    got = terraform_plan(ROOT / "functions")
    grants = deploy_script_grants(catalog)
    assert grants["publisher"] == {
        (b["topic"], _sa(b["deployment"])) for b in got["publisher_bindings"].values()
    }
    assert grants["keep"] == {
        (f"{b['topic']}.dead-letter--keep", _sa(b["deployment"]))
        for b in got["dead_letter_bindings"].values()
    }
    assert got["platform_roles"] == {r: list(catalog.with_role(r)) for r in ROLES}
