"""infra/deploy/deploy.sh against a recording fake `gcloud` first on PATH (no network).

The fake appends each argv to a log as one JSON line. `describe` fails (the resource is
missing) unless FAKE_GCLOUD_EXISTING=1; the project number and function URLs are answered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from infra_support import ROOT, account_id, blocks, expected_plan

DEPLOY = ROOT / "infra" / "deploy" / "deploy.sh"
PROJECT = "proj"
REGION = "europe-west1"
PUSH_INVOKER = f"switchyard-push-invoker@{PROJECT}.iam.gserviceaccount.com"
SCHEDULER_INVOKER = f"switchyard-scheduler@{PROJECT}.iam.gserviceaccount.com"

FAKE_GCLOUD = """\
#!{python} -S
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_GCLOUD_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
fmt = next((a for a in args if a.startswith("--format=")), "")
if args[:2] == ["projects", "describe"]:
    print("123456789")
elif args[:2] == ["functions", "describe"] and "serviceConfig.uri" in fmt:
    print(f"https://{{args[2]}}-abc123-ew.a.run.app")
elif args[:2] == ["config", "get-value"]:
    print("{project}")
elif "describe" in args and os.environ.get("FAKE_GCLOUD_EXISTING") != "1":
    print("ERROR: (gcloud) NOT_FOUND", file=sys.stderr)
    sys.exit(1)
else:
    print("{{}}")
"""


def url(name: str) -> str:
    return f"https://{name}-abc123-ew.a.run.app"


def sa(name: str) -> str:
    return f"{account_id(name)}@{PROJECT}.iam.gserviceaccount.com"


@pytest.fixture()
def fake(tmp_path: Path, catalog):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable, project=PROJECT))
    gcloud.chmod(0o755)
    build = tmp_path / "build"
    for name in catalog.deployments:
        (build / name).mkdir(parents=True)
        (build / name / "main.py").write_text("")
    log = tmp_path / "gcloud.log"

    def run(*args: str, existing: bool = False, env: dict[str, str] | None = None):
        log.unlink(missing_ok=True)
        environ = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DEPLOYMENT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
        }
        environ |= {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_GCLOUD_LOG": str(log),
            "FAKE_GCLOUD_EXISTING": "1" if existing else "0",
            **(env or {}),
        }
        done = subprocess.run(
            [
                str(DEPLOY),
                f"--project={PROJECT}",
                f"--region={REGION}",
                f"--source-dir={build}",
                *args,
            ],
            capture_output=True,
            text=True,
            env=environ,
            timeout=280,  # one fake gcloud process per call: hundreds on a busy machine
        )
        assert done.returncode == 0, done.stderr
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return calls, done.stdout

    return run


def find(calls: list[list[str]], *prefix: str) -> list[list[str]]:
    return [c for c in calls if c[: len(prefix)] == list(prefix)]


def flags(call: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in call if a.startswith("--") and "=" in a)


def env_vars(call: list[str]) -> dict[str, str]:
    raw = flags(call)["set-env-vars"]
    delim = ","
    if raw.startswith("^"):
        delim, raw = raw[1:].split("^", 1)
    return dict(item.split("=", 1) for item in raw.split(delim))


def test_one_deployment_users_api(fake, catalog):
    calls, _ = fake(env={"DEPLOYMENT": "users-api"})
    deploys = find(calls, "functions", "deploy")
    assert [c[2] for c in deploys] == ["users-api"]
    call = deploys[0]
    assert {"--gen2", "--trigger-http", "--no-allow-unauthenticated"} <= set(call)
    f = flags(call)
    assert f["runtime"] == "python312" and f["region"] == REGION
    assert f["entry-point"] == "api" and f["source"].endswith("build/users-api")
    assert f["ingress-settings"] == "internal-only"
    assert (f["memory"], f["cpu"], f["timeout"]) == ("256Mi", "1", "60s")
    # dev caps max instances like Terraform's dev (its database's connections, decision 0040)
    assert (f["min-instances"], f["max-instances"], f["concurrency"]) == ("0", "3", "40")
    assert f["service-account"] == sa("users-api")
    assert (f["vpc-connector"], f["egress-settings"]) == ("switchyard", "all")
    assert f["set-secrets"] == "JWT_PUBLIC_KEYS=jwt-public-keys:latest"
    plan = expected_plan(catalog, project=PROJECT, connection=f"{PROJECT}:{REGION}:switchyard")
    assert env_vars(call) == plan["environment"]["users-api"]
    # Its topics exist (created: describe fails), it may publish them, the gateway may call it.
    assert json.loads(env_vars(call)["SERVICE_URLS"]) == {
        "auth-api": f"https://auth-api-123456789.{REGION}.run.app"
    }  # only what it `calls`
    created = {c[3] for c in find(calls, "pubsub", "topics", "create")}
    assert created == {t for t in ("user.created", "user.updated", "user.deleted")} | {
        f"{t}.dead-letter" for t in ("user.created", "user.updated", "user.deleted")
    }
    published = {
        (c[3], flags(c)["member"])
        for c in find(calls, "pubsub", "topics", "add-iam-policy-binding")
        if flags(c)["role"] == "roles/pubsub.publisher"
    }
    assert {t for t, m in published if m == f"serviceAccount:{sa('users-api')}"} == {
        "user.created",
        "user.updated",
        "user.deleted",
    }
    invokers = [
        (c[3], flags(c)["member"])
        for c in find(calls, "run", "services", "add-iam-policy-binding")
        if flags(c)["role"] == "roles/run.invoker"
    ]
    # Only the gateway may call it; its own grant on auth-api waits for auth-api (not deployed).
    assert invokers == [("users-api", f"serviceAccount:{sa('gateway')}")]
    assert "users-api" in {c[3] for c in find(calls, "iam", "service-accounts", "create")}
    roles = {
        flags(c)["role"]
        for c in find(calls, "projects", "add-iam-policy-binding")
        if flags(c)["member"] == f"serviceAccount:{sa('users-api')}"
    }
    firestore = {b["role"] for n, b in plan["firestore_bindings"].items() if n == "users-api"}
    trace = {"roles/cloudtrace.agent"}  # its spans, like Terraform's trace_agent (0046)
    assert roles == set(plan["project_roles"]["users-api"]) | firestore | trace
    pushes = [
        c for c in find(calls, "pubsub", "subscriptions", "create") if "push-endpoint" in flags(c)
    ]
    assert not pushes  # an http deployment
    assert not find(calls, "scheduler")


def test_all_deployments_follow_the_manifests(fake, catalog):
    calls, _ = fake()
    plan = expected_plan(catalog, project=PROJECT, connection=f"{PROJECT}:{REGION}:switchyard")
    deploys = find(calls, "functions", "deploy")
    assert sorted(c[2] for c in deploys) == sorted(catalog.deployments)
    assert deploys[-1][2] == "gateway"  # last: it needs the others' URLs
    by_name = {c[2]: c for c in deploys}
    for name, call in by_name.items():
        public = catalog.deployments[name].ingress == "all"
        assert flags(call)["ingress-settings"] == ("all" if public else "internal-only")
        assert ("--allow-unauthenticated" in call) == public
        expected_env = dict(plan["environment"][name])
        if name in plan["gateways"]:
            expected_env["SERVICE_URLS"] = json.dumps(
                {n: url(n) for n in sorted(catalog.deployments) if n not in plan["gateways"]},
                separators=(",", ":"),
            )
        assert env_vars(call) == expected_env
    # Push subscriptions: exactly the plan's, each with OIDC, retry and dead-letter policies.
    subs = {
        c[3]: flags(c)
        for c in find(calls, "pubsub", "subscriptions", "create")
        if "push-endpoint" in flags(c)
    }
    assert set(subs) == set(plan["subscriptions"])
    for name, s in plan["subscriptions"].items():
        f = subs[name]
        base = url(s["deployment"])
        assert f["topic"] == s["topic"]
        assert f["push-endpoint"] == f"{base}/projects/{PROJECT}/topics/{s['topic']}"
        assert f["push-auth-service-account"] == PUSH_INVOKER
        assert f["push-auth-token-audience"] == base
        assert f["dead-letter-topic"] == s["dead_letter_topic"]
        assert f["max-delivery-attempts"] == str(s["max_delivery_attempts"])
        assert f["min-retry-delay"] == f"{s['min_backoff_s']}s"
        assert f["max-retry-delay"] == f"{s['max_backoff_s']}s"
        assert f["ack-deadline"] == str(s["ack_deadline_s"])
    keep = {
        c[3]
        for c in find(calls, "pubsub", "subscriptions", "create")
        if "push-endpoint" not in flags(c)
    }
    assert keep == {w["keep_subscription"] for w in plan["topic_wiring"].values()}
    # Scheduler jobs with OIDC.
    jobs = {c[4]: flags(c) for c in find(calls, "scheduler", "jobs", "create", "http")}
    assert set(jobs) == set(plan["schedules"])
    for name, job in jobs.items():
        assert job["schedule"] == plan["schedules"][name]["schedule"]
        assert job["uri"] == url(name) and job["oidc-token-audience"] == url(name)
        assert job["oidc-service-account-email"] == SCHEDULER_INVOKER
    # IAM: the same bindings Terraform derives, and never a basic role.
    members = {"@push": PUSH_INVOKER, "@scheduler": SCHEDULER_INVOKER}
    invokers = {
        (c[3], flags(c)["member"])
        for c in find(calls, "run", "services", "add-iam-policy-binding")
        if flags(c)["role"] == "roles/run.invoker"
    }
    viewers = {
        (c[3], flags(c)["member"])
        for c in find(calls, "run", "services", "add-iam-policy-binding")
        if flags(c)["role"] == "roles/run.viewer"
    }
    assert viewers == {
        (b["target"], f"serviceAccount:{sa(b['viewer'])}")
        for b in plan["health_viewer_bindings"].values()
    }
    assert invokers == {
        (b["target"], "serviceAccount:" + members.get(b["invoker"], sa(b["invoker"])))
        for b in plan["invoker_bindings"].values()
    }
    assert ("auth-api", f"serviceAccount:{sa('users-api')}") in invokers
    for target, member in invokers:
        caller = next((n for n in catalog.deployments if member.endswith(f":{sa(n)}")), None)
        if caller is not None and caller not in plan["gateways"]:
            assert target in catalog.deployments[caller].calls, (caller, target)
    publishers = {
        (c[3], flags(c)["member"])
        for c in find(calls, "pubsub", "topics", "add-iam-policy-binding")
        if not flags(c)["member"].startswith("serviceAccount:service-")
    }
    assert publishers == {
        (b["topic"], f"serviceAccount:{sa(b['deployment'])}")
        for b in plan["publisher_bindings"].values()
    }
    secrets = {(c[2], flags(c)["member"]) for c in find(calls, "secrets", "add-iam-policy-binding")}
    assert secrets == {
        (b["secret"], f"serviceAccount:{sa(b['deployment'])}")
        for b in plan["secret_bindings"].values()
    }
    roles = {flags(c)["role"] for c in calls if "add-iam-policy-binding" in c}
    assert not roles & {"roles/editor", "roles/owner", "roles/viewer"}


def test_a_deployment_gets_invoker_on_the_deployments_it_calls_when_they_exist(fake, catalog):
    assert catalog.deployments["users-api"].calls == ("auth-api",)
    calls, _ = fake(existing=True, env={"DEPLOYMENT": "users-api"})
    invokers = [
        (c[3], flags(c)["member"]) for c in find(calls, "run", "services", "add-iam-policy-binding")
    ]
    assert invokers == [
        ("users-api", f"serviceAccount:{sa('gateway')}"),
        ("auth-api", f"serviceAccount:{sa('users-api')}"),
    ]
    assert find(calls, "run", "services", "describe", "auth-api")


def test_second_run_updates_instead_of_creating(fake, catalog):
    calls, _ = fake(existing=True)
    assert not [c for c in calls if "create" in c[:4]]
    assert find(calls, "pubsub", "subscriptions", "update")
    assert find(calls, "scheduler", "jobs", "update", "http")
    assert find(calls, "pubsub", "topics", "update")
    assert find(calls, "iam", "service-accounts", "update")
    assert len(find(calls, "functions", "deploy")) == len(catalog.deployments)


def test_max_instances_follow_terraform_per_environment(fake, catalog):
    """dev caps every deployment at Terraform dev's max_instances_cap, prod keeps the
    manifests', and the cap can be set or lifted per run."""
    from infra.deploy.deploy import DEV_MAX_INSTANCES_CAP

    dev_vars = blocks(ROOT / "infra" / "environments" / "dev", "variable")
    assert dev_vars["max_instances_cap"]["default"] == DEV_MAX_INSTANCES_CAP
    manifest = catalog.deployments["users-api"].runtime.max_instances
    for args, env, expected in (
        ((), {"SWITCHYARD_ENV": "dev"}, min(manifest, DEV_MAX_INSTANCES_CAP)),
        (("--env=prod",), {}, manifest),
        (("--max-instances-cap=none",), {}, manifest),
        (("--env=prod", "--max-instances-cap=2"), {}, 2),
        ((), {"MAX_INSTANCES_CAP": "1"}, 1),
    ):
        calls, _ = fake(*args, env={"DEPLOYMENT": "users-api", **env})
        (deploy,) = find(calls, "functions", "deploy")
        assert flags(deploy)["max-instances"] == str(expected), (args, env)


def test_a_bad_instance_cap_is_refused(tmp_path):
    done = subprocess.run(
        [str(DEPLOY), "--dry-run", "--project=p", "--max-instances-cap=0", "users-api"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "--max-instances-cap is a number of instances >= 1 or 'none'" in done.stderr


def test_dry_run_prints_and_runs_nothing(fake):
    calls, out = fake("--dry-run", "users-api")
    assert calls == []  # not even a describe
    lines = [line for line in out.splitlines() if line.startswith("gcloud functions deploy ")]
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith(
        f"gcloud functions deploy users-api --gen2 --runtime=python312 --region={REGION} "
    )
    for flag in (
        "--entry-point=api",
        "--trigger-http",
        "--no-allow-unauthenticated",
        "--ingress-settings=internal-only",
        "--memory=256Mi",
        "--cpu=1",
        "--timeout=60s",
        "--max-instances=3",
        "--concurrency=40",
        f"--service-account={sa('users-api')}",
        "--set-secrets=JWT_PUBLIC_KEYS=jwt-public-keys:latest",
        f"--project={PROJECT}",
    ):
        assert f" {flag}" in line, flag
    # Create-or-update is printed as a shell conditional; a needed value as a placeholder.
    assert any(
        line.startswith("if gcloud pubsub topics describe user.created ")
        for line in out.splitlines()
    )
    assert "service-<project-number>@gcp-sa-pubsub.iam.gserviceaccount.com" in out


def test_dry_run_of_a_new_context(fake, tmp_path):
    functions = tmp_path / "functions"
    shutil.copytree(
        ROOT / "functions", functions, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    (functions / "reports").mkdir()
    (functions / "reports" / "function.yaml").write_text(
        "context: reports\ndeployments:\n  reports-on-user-created:\n    entry_point: on_user\n"
        "    trigger: event\n    subscribes: [user.created]\n"
    )
    (functions / "reports" / "main.py").write_text("def on_user(request): ...\n")
    _, out = fake("--dry-run", f"--functions-dir={functions}", "reports-on-user-created")
    assert "gcloud functions deploy reports-on-user-created --gen2" in out
    assert "gcloud pubsub subscriptions create reports-on-user-created--user.created " in out
