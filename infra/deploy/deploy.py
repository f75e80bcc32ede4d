"""Deploy Switchyard with gcloud, straight from the manifests, for teams that do not use Terraform.

    infra/deploy/deploy.sh [--dry-run] [--project P] [--region R] [--env dev|prod] [DEPLOYMENT ...]

Deploys the named deployments (default: all) from `build/<deployment>/` (run `make package`
first): their service accounts and project roles, the topics they touch with dead-letter topics
and `--keep` subscriptions, secret access, the functions (gen2, HTTP, ingress and sizes from the
manifest, the gateways last because they need the others' URLs), run.invoker grants (the
gateways on every deployment; any other deployment only on the http deployments its manifest
`calls`, whose URLs alone it gets in SERVICE_URLS), push subscriptions `<deployment>--<topic>`
with OIDC, retry and dead-letter policies, and Cloud Scheduler jobs with OIDC. Idempotent:
`describe` chooses create or update, IAM bindings are additive, `gcloud functions deploy`
creates or updates. `--dry-run` prints every command (a shell script: create-or-update becomes
`if describe; then update; else create; fi`) and runs none; values that need a call (the
project number, function URLs) print as <placeholders>.

Functions send all egress through the VPC connector `--vpc-connector` (calls between functions
must come from the VPC to reach internal-only ingress). It creates no network, Cloud SQL
instance, Firestore database or secret value: docs/deploy.md gives those one-time commands.
Platform roles (the outbox relay and the dead-letter operator publish every topic; the latter
also reads every --keep subscription) come from the manifests' `platform_roles`. The same
derivation exists in Terraform (infra/modules/manifests); tests/infra checks both against the
manifests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from shared.manifests import (  # noqa: E402
    Catalog,
    Deployment,
    ManifestError,
    dead_letter_subscription,
    dead_letter_topic,
    load,
    subscription_name,
)

RUNTIME = "python312"
GATEWAY_CONTEXT = "gateway"
PUSH_INVOKER = "switchyard-push-invoker"
SCHEDULER_INVOKER = "switchyard-scheduler"
BUILDER = "switchyard-builder"
BUILDER_ROLES = (
    "roles/artifactregistry.writer",
    "roles/logging.logWriter",
    "roles/storage.objectViewer",
)

# Every runtime account writes its deployment's spans to Cloud Trace (shared.tracing).
TRACE_ROLE = "roles/cloudtrace.agent"


def account_id(deployment: str) -> str:
    """Service account id of a deployment (6-30 characters); same rule as Terraform."""
    if len(deployment) > 30:
        return f"{deployment[:25]}-{hashlib.sha256(deployment.encode()).hexdigest()[:4]}"
    return f"{deployment}-fn" if len(deployment) < 6 else deployment


def secret_env_name(secret: str) -> str:
    return secret.upper().replace("-", "_")


def project_roles(d: Deployment) -> list[str]:
    """Unconditional project roles (Firestore's is conditional: firestore_condition)."""
    return ["roles/cloudsql.client", "roles/cloudsql.instanceUser"] if d.uses_sql else []


def uses_datastore(d: Deployment) -> bool:
    """Event deployments always write Firestore: processed/{subscription}:{event_id}."""
    return d.uses_firestore or d.trigger == "event"


def firestore_condition(project: str, database: str = "(default)") -> dict[str, str]:
    """The IAM condition of roles/datastore.user: the platform's database only (0033)."""
    return {
        "expression": f'resource.name == "projects/{project}/databases/{database}"',
        "title": f"firestore {database}",
        "description": "Firestore of the platform's database only (decision 0033).",
    }


# --- runtime secrets (decision 0030): the table of infra/modules/switchyard/runtime_secrets.tf


RUNTIME_SECRETS_TF = ROOT / "infra" / "modules" / "switchyard" / "runtime_secrets.tf"


@dataclass(frozen=True)
class SecretGrant:
    """One conditional binding: `deployment` may do shared.secrets `operation` on `name`
    (every secret whose id starts with it when `match` is "prefix", else that one secret)."""

    deployment: str
    name: str
    match: str
    operation: str

    def role_id(self) -> str:
        return f"switchyardSecret{self.operation.title()}"

    def condition(self, project_number: str) -> dict[str, str]:
        root = f"projects/{project_number}/secrets/"
        if self.match == "prefix":
            expression = f'resource.name.startsWith("{root}{self.name}")'
        else:
            expression = (
                f'resource.name == "{root}{self.name}" || '
                f'resource.name.startsWith("{root}{self.name}/")'
            )
        star = "*" if self.match == "prefix" else ""
        return {
            "expression": expression,
            "title": f"secrets {self.operation} {self.name}{star}"[:100],
            "description": (
                f"shared.secrets.{self.operation} on runtime-created secrets (decision 0030)."
            ),
        }


def runtime_secret_tables(
    path: Path = RUNTIME_SECRETS_TF,
) -> tuple[dict[str, list[str]], list[SecretGrant]]:
    """(operation -> Secret Manager permissions, the grants), read from the Terraform file
    that declares them, so Terraform and this script grant the same."""
    import hcl2
    from hcl2 import SerializationOptions

    tree = hcl2.loads(
        path.read_text(),
        serialization_options=SerializationOptions(
            strip_string_quotes=True, explicit_blocks=False, with_comments=False
        ),
    )
    values: dict[str, Any] = {}  # HCL values, as the file declares them
    for block in tree.get("locals", []):
        values.update(block)
    operations = {op: list(perms) for op, perms in dict(values["secret_operations"]).items()}
    grants = [
        SecretGrant(deployment, g["name"], g["match"], op)
        for deployment, entries in dict(values["runtime_secrets"]).items()
        for g in entries
        for op in g["operations"]
    ]
    for g in grants:
        if g.operation not in operations or g.match not in ("prefix", "exact"):
            raise ManifestError(f"{path}: runtime_secrets {g} is not a known operation/match")
    return operations, grants


def clamp(value: float, low: int, high: int) -> int:
    return int(min(max(value, low), high))


class GcloudError(RuntimeError):
    pass


@dataclass
class Gcloud:
    """Runs gcloud, or prints the commands when `dry_run`."""

    project: str
    dry_run: bool = False
    out: TextIO = field(default=sys.stdout)

    def _cmd(self, args: Iterable[str]) -> list[str]:
        return ["gcloud", *args, f"--project={self.project}", "--quiet"]

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def run(self, *args: str) -> None:
        cmd = self._cmd(args)
        if self.dry_run:
            self._print(shlex.join(cmd))
            return
        self._print("+ " + shlex.join(cmd))
        done = subprocess.run(cmd, text=True, capture_output=True)
        if done.returncode != 0:
            raise GcloudError(f"{shlex.join(cmd)} failed ({done.returncode}):\n{done.stderr}")

    def exists(self, *describe: str) -> bool:
        cmd = self._cmd([*describe, "--format=value(name)"])
        return subprocess.run(cmd, text=True, capture_output=True).returncode == 0

    def value(self, placeholder: str, *args: str) -> str | None:
        """stdout of a read-only command; `placeholder` in a dry run; None if it fails."""
        if self.dry_run:
            return placeholder
        cmd = self._cmd(args)
        done = subprocess.run(cmd, text=True, capture_output=True)
        return done.stdout.strip() or None if done.returncode == 0 else None

    def bind(self, what: str, name: str, member: str, role: str, *extra: str) -> None:
        """Add an IAM binding (idempotent): `what` is e.g. "pubsub topics"."""
        self.run(
            *what.split(),
            "add-iam-policy-binding",
            name,
            f"--member={member}",
            f"--role={role}",
            *extra,
            "--format=none",
        )

    def bind_if_exists(
        self, describe: list[str], what: str, name: str, member: str, role: str, *extra: str
    ) -> bool:
        """`bind` when `describe` succeeds; False when the resource does not exist."""
        args = [
            *what.split(),
            "add-iam-policy-binding",
            name,
            f"--member={member}",
            f"--role={role}",
            *extra,
            "--format=none",
        ]
        if self.dry_run:
            check = shlex.join(self._cmd([*describe, "--format=value(name)"])) + " >/dev/null 2>&1"
            self._print(f"if {check}; then {shlex.join(self._cmd(args))}; fi")
            return True
        if not self.exists(*describe):
            return False
        self.run(*args)
        return True

    def upsert(self, describe: list[str], create: list[str], update: list[str] | None) -> None:
        """Create when `describe` fails, else update (or leave alone when update is None)."""
        if self.dry_run:
            check = shlex.join(self._cmd([*describe, "--format=value(name)"])) + " >/dev/null 2>&1"
            then = shlex.join(self._cmd(update)) if update else ":"
            self._print(f"if {check}; then {then}; else {shlex.join(self._cmd(create))}; fi")
        elif not self.exists(*describe):
            self.run(*create)
        elif update:
            self.run(*update)


def _labels(values: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(values.items()))


def _kv(flag: str, values: dict[str, str]) -> str:
    """--flag=K=V,... with a gcloud escape delimiter when a value contains a comma."""
    joined = [f"{k}={v}" for k, v in sorted(values.items())]
    for delim in (",", "@", "|", "~", "#", "^^"):
        if not any(delim in item for item in joined):
            break
    body = delim.join(joined)
    return f"{flag}={body}" if delim == "," else f"{flag}=^{delim}^{body}"


@dataclass
class Deployer:
    catalog: Catalog
    gcloud: Gcloud
    region: str
    env: str
    source_dir: Path
    sql_instance: str = "switchyard"
    vpc_connector: str = "switchyard"
    max_instances_cap: int | None = None  # Terraform's max_instances_cap (decision 0040)
    project_number: str = "<project-number>"
    _urls: dict[str, str | None] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return self.gcloud.project

    def email(self, account: str) -> str:
        return f"{account}@{self.project}.iam.gserviceaccount.com"

    def sa_email(self, deployment: str) -> str:
        return self.email(account_id(deployment))

    def member(self, account_email: str) -> str:
        return f"serviceAccount:{account_email}"

    # --- derived from the manifests ------------------------------------------------------

    @property
    def gateways(self) -> list[str]:
        return sorted(
            n for n, d in self.catalog.deployments.items() if d.context == GATEWAY_CONTEXT
        )

    def max_instances(self, d: Deployment) -> int:
        """The manifest's max_instances under the environment's cap, as Terraform sets it."""
        cap = self.max_instances_cap
        return d.runtime.max_instances if cap is None else min(d.runtime.max_instances, cap)

    def published_topics(self, d: Deployment) -> tuple[str, ...]:
        # Manifest `platform_roles`: the outbox relay publishes every topic (every context's
        # pending rows); the dead-letter operator also the topics it can redrive to, those with
        # a push subscription (only they have a dead-letter policy).
        if "outbox-relay" in d.platform_roles:
            return self.catalog.topics
        if "dead-letter-operator" in d.platform_roles:
            subscribed = {t for _, t in self.catalog.subscriptions()}
            return tuple(sorted(set(d.publishes) | subscribed))
        return d.publishes

    def invokers(self) -> list[tuple[str, str]]:
        """(target deployment, invoker service account email) pairs for roles/run.invoker."""
        pairs = []
        for d in self.catalog.deployments.values():
            if d.trigger == "event":
                pairs.append((d.name, self.email(PUSH_INVOKER)))
            elif d.trigger == "schedule":
                pairs.append((d.name, self.email(SCHEDULER_INVOKER)))
            # The internet-facing gateways call the http deployments (routing, /api/health)
            # and no other (decision 0033); any other caller is declared by the manifest
            # `calls` of its deployment (shared.clients.call).
            callers = set(self.callers(d.name))
            if d.name not in self.gateways and d.trigger == "http":
                callers.update(self.gateways)
            pairs += [(d.name, self.sa_email(c)) for c in sorted(callers - {d.name})]
        return pairs

    def health_viewers(self) -> list[tuple[str, str]]:
        """(event or schedule deployment, gateway email) pairs for roles/run.viewer: the
        gateways read those deployments' state for /api/health without invoking them."""
        return [
            (d.name, self.sa_email(g))
            for d in self.catalog.deployments.values()
            if d.trigger in ("event", "schedule")
            for g in self.gateways
        ]

    def callers(self, target: str) -> list[str]:
        """Deployments whose manifest `calls` names `target`."""
        return sorted(n for n, d in self.catalog.deployments.items() if target in d.calls)

    def service_urls(self, d: Deployment) -> dict[str, str]:
        """SERVICE_URLS of a non-gateway deployment: the deterministic Cloud Run URL of each
        deployment it `calls`, and no other."""
        return {
            n: f"https://{n}-{self.project_number}.{self.region}.run.app" for n in sorted(d.calls)
        }

    def environment(self, d: Deployment) -> dict[str, str]:
        env = dict(d.env)
        env.update(
            SWITCHYARD_ENV=self.env,
            GOOGLE_CLOUD_PROJECT=self.project,
            GOOGLE_CLOUD_REGION=self.region,
            SWITCHYARD_DEPLOYMENT=d.name,
        )
        if d.uses_sql:
            env.update(
                INSTANCE_CONNECTION_NAME=f"{self.project}:{self.region}:{self.sql_instance}",
                DB_NAME="switchyard",
                DB_USER=self.sa_email(d.name).removesuffix(".gserviceaccount.com"),
                DB_IAM_AUTH="true",
                **d.pool_env,  # the pool the connection budget counts (decision 0040)
            )
        if d.name not in self.gateways and d.calls:
            env["SERVICE_URLS"] = json.dumps(self.service_urls(d), separators=(",", ":"))
        if d.name in self.gateways:
            urls = {}
            for n in sorted(self.catalog.deployments):
                if n not in self.gateways:
                    url = self.url(n)
                    if url is None:
                        print(
                            f"warning: {n} is not deployed; the gateway cannot route to it",
                            file=sys.stderr,
                        )
                    else:
                        urls[n] = url
            env["SERVICE_URLS"] = json.dumps(urls, separators=(",", ":"))
        return env

    def url(self, name: str) -> str | None:
        if name not in self._urls:
            self._urls[name] = self.gcloud.value(
                f"<url-of-{name}>",
                "functions",
                "describe",
                name,
                "--gen2",
                f"--region={self.region}",
                "--format=value(serviceConfig.uri)",
            )
        return self._urls[name]

    # --- steps ---------------------------------------------------------------------------

    def deploy(self, names: list[str]) -> None:
        deps = [self.catalog.deployments[n] for n in names]
        selected = set(names)
        g = self.gcloud
        number = g.value(
            "<project-number>",
            "projects",
            "describe",
            self.project,
            "--format=value(projectNumber)",
        )
        if number is None:
            raise GcloudError(f"cannot read the number of project {self.project}")
        agent = f"service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com"
        self.project_number = number
        # Grants are made when their target is deployed (its callers' accounts are created),
        # and a deployment's own `calls` grants when it is deployed, if the callee exists: a
        # newly declared callee needs no redeploy of the callee.
        invokers = [(t, i) for t, i in self.invokers() if t in selected]
        own_calls = [
            (c, self.sa_email(d.name)) for d in deps for c in sorted(d.calls) if c not in selected
        ]

        # Service accounts (the invokers' too) and project roles.
        accounts = {account_id(d.name): (d.name, d.description) for d in deps}
        accounts[BUILDER] = ("function builder", "Builds Cloud Run function images.")
        for _, inv in invokers:
            acc = inv.split("@")[0]
            if acc == PUSH_INVOKER:
                accounts[acc] = ("Pub/Sub push invoker", "Identity of push subscriptions.")
            elif acc == SCHEDULER_INVOKER:
                accounts[acc] = ("Cloud Scheduler invoker", "Identity of Scheduler jobs.")
            else:
                dep = next(
                    d for d in self.catalog.deployments.values() if account_id(d.name) == acc
                )
                accounts[acc] = (dep.name, dep.description)
        for acc, (title, description) in sorted(accounts.items()):
            email = self.email(acc)
            meta = [f"--display-name=Switchyard {title}", f"--description={description[:256]}"]
            g.upsert(
                ["iam", "service-accounts", "describe", email],
                ["iam", "service-accounts", "create", acc, *meta],
                ["iam", "service-accounts", "update", email, *meta],
            )
        roles = [(BUILDER, r) for r in BUILDER_ROLES]
        roles += [(account_id(d.name), r) for d in deps for r in project_roles(d)]
        roles += [(account_id(d.name), TRACE_ROLE) for d in deps]  # its spans (decision 0046)
        for acc, role in roles:
            g.bind("projects", self.project, self.member(self.email(acc)), role, "--condition=None")
        for d in deps:
            if uses_datastore(d):
                g.bind(
                    "projects",
                    self.project,
                    self.member(self.sa_email(d.name)),
                    "roles/datastore.user",
                    _kv("--condition", firestore_condition(self.project)),
                )
        for d in deps:
            if d.uses_sql:
                user = self.sa_email(d.name).removesuffix(".gserviceaccount.com")
                g.upsert(
                    ["sql", "users", "describe", user, f"--instance={self.sql_instance}"],
                    [
                        "sql",
                        "users",
                        "create",
                        user,
                        f"--instance={self.sql_instance}",
                        "--type=cloud_iam_service_account",
                    ],
                    None,
                )

        # Topics, dead-letter topics and their --keep subscriptions; publisher grants.
        topics = sorted({t for d in deps for t in (*self.published_topics(d), *d.subscribes)})
        for t in topics:
            self.topic(t, agent)
        for d in deps:
            for t in self.published_topics(d):
                g.bind(
                    "pubsub topics", t, self.member(self.sa_email(d.name)), "roles/pubsub.publisher"
                )
            if "dead-letter-operator" in d.platform_roles:
                for t in self.catalog.topics:
                    g.bind(
                        "pubsub subscriptions",
                        dead_letter_subscription(t),
                        self.member(self.sa_email(d.name)),
                        "roles/pubsub.subscriber",
                    )

        # Secrets: containers (values come from the operator) and accessor grants.
        for d in deps:
            for s in d.secrets:
                g.upsert(
                    ["secrets", "describe", s],
                    ["secrets", "create", s, "--replication-policy=automatic"],
                    None,
                )
                g.bind(
                    "secrets",
                    s,
                    self.member(self.sa_email(d.name)),
                    "roles/secretmanager.secretAccessor",
                )

        # Secrets the code creates and reads at run time (decision 0030): one custom role per
        # shared.secrets operation, bound per deployment with a condition on the secret name.
        self.runtime_secrets(deps, number)

        # Functions: the gateways last, they need the URLs of the others.
        for d in sorted(deps, key=lambda d: (d.name in self.gateways, d.name)):
            self.function(d)
            self._urls.pop(d.name, None)

        # Who may invoke whom.
        if any(d.trigger == "event" for d in deps):
            g.bind(
                "iam service-accounts",
                self.email(PUSH_INVOKER),
                f"serviceAccount:{agent}",
                "roles/iam.serviceAccountTokenCreator",
            )
        for target, inv in invokers:
            g.bind(
                "run services",
                target,
                self.member(inv),
                "roles/run.invoker",
                f"--region={self.region}",
            )
        for target, viewer in self.health_viewers():
            if target in selected:
                g.bind(
                    "run services",
                    target,
                    self.member(viewer),
                    "roles/run.viewer",
                    f"--region={self.region}",
                )
        for target, inv in own_calls:
            describe = ["run", "services", "describe", target, f"--region={self.region}"]
            if not g.bind_if_exists(
                describe,
                "run services",
                target,
                self.member(inv),
                "roles/run.invoker",
                f"--region={self.region}",
            ):
                print(
                    f"warning: {target} is not deployed; its invoker grant to {inv} is made "
                    "when it is",
                    file=sys.stderr,
                )

        # Push subscriptions and Scheduler jobs.
        for d in deps:
            for t in d.subscribes:
                self.subscription(d, t, agent)
            if d.trigger == "schedule":
                self.schedule(d)

    def runtime_secrets(self, deps: list[Deployment], project_number: str) -> None:
        """The grants of runtime_secrets.tf for `deps`: the custom roles they use (created or
        updated with exactly their permissions), the conditional project bindings, and the
        (empty) containers of the single secrets (values: the operator, docs/deploy.md)."""
        operations, grants = runtime_secret_tables()
        names = {d.name for d in deps}
        mine = [gr for gr in grants if gr.deployment in names]
        g = self.gcloud
        for op in sorted({gr.operation for gr in mine}):
            role_id = SecretGrant("", "", "", op).role_id()
            meta = [
                f"--title=Switchyard secret {op}",
                f"--description=What shared.secrets.{op} needs; granted only with a "
                "condition on the secret name.",
                f"--permissions={','.join(operations[op])}",
                "--stage=GA",
            ]
            g.upsert(
                ["iam", "roles", "describe", role_id],
                ["iam", "roles", "create", role_id, *meta],
                ["iam", "roles", "update", role_id, *meta],
            )
        for gr in mine:
            g.bind(
                "projects",
                self.project,
                self.member(self.sa_email(gr.deployment)),
                f"projects/{self.project}/roles/{gr.role_id()}",
                _kv("--condition", gr.condition(project_number)),
            )
        for name in sorted({gr.name for gr in mine if gr.match == "exact"}):
            g.upsert(
                ["secrets", "describe", name],
                ["secrets", "create", name, "--replication-policy=automatic"],
                None,
            )

    def topic(self, t: str, agent: str) -> None:
        g = self.gcloud
        wiring = {
            "publishers": "_".join(
                sorted(n for n, d in self.catalog.deployments.items() if t in d.publishes)
            )[:63],
            "subscribers": "_".join(
                sorted(d.name for d, s in self.catalog.subscriptions() if s == t)
            )[:63],
            "app": "switchyard",
            "env": self.env,
        }
        g.upsert(
            ["pubsub", "topics", "describe", t],
            ["pubsub", "topics", "create", t, f"--labels={_labels(wiring)}"],
            ["pubsub", "topics", "update", t, f"--update-labels={_labels(wiring)}"],
        )
        dlt = dead_letter_topic(t)
        g.upsert(
            ["pubsub", "topics", "describe", dlt],
            ["pubsub", "topics", "create", dlt, "--labels=app=switchyard"],
            None,
        )
        keep = ["--ack-deadline=60", "--message-retention-duration=7d", "--expiration-period=never"]
        g.upsert(
            ["pubsub", "subscriptions", "describe", dead_letter_subscription(t)],
            [
                "pubsub",
                "subscriptions",
                "create",
                dead_letter_subscription(t),
                f"--topic={dlt}",
                *keep,
            ],
            ["pubsub", "subscriptions", "update", dead_letter_subscription(t), *keep],
        )
        g.bind("pubsub topics", dlt, f"serviceAccount:{agent}", "roles/pubsub.publisher")

    def function(self, d: Deployment) -> None:
        source = self.source_dir / d.name
        if not self.gcloud.dry_run and not (source / "main.py").exists():
            raise GcloudError(f"{source} is missing: run `make package` first")
        rt = d.runtime
        public = d.ingress == "all"
        args = [
            "functions",
            "deploy",
            d.name,
            "--gen2",
            f"--runtime={RUNTIME}",
            f"--region={self.region}",
            f"--source={source}",
            f"--entry-point={d.entry_point}",
            "--trigger-http",
            "--allow-unauthenticated" if public else "--no-allow-unauthenticated",
            f"--ingress-settings={'all' if public else 'internal-only'}",
            f"--memory={rt.memory}",
            f"--cpu={rt.cpu:g}",
            f"--timeout={rt.timeout_s}s",
            f"--min-instances={rt.min_instances}",
            f"--max-instances={self.max_instances(d)}",
            f"--concurrency={rt.concurrency}",
            f"--service-account={self.sa_email(d.name)}",
            *(
                [f"--vpc-connector={self.vpc_connector}", "--egress-settings=all"]
                if self.vpc_connector
                else []
            ),
            f"--build-service-account=projects/{self.project}/serviceAccounts/"
            f"{self.email(BUILDER)}",
            _kv("--set-env-vars", self.environment(d)),
        ]
        if d.secrets:
            args.append(
                _kv("--set-secrets", {secret_env_name(s): f"{s}:latest" for s in d.secrets})
            )
        else:
            args.append("--clear-secrets")
        args.append(
            _kv(
                "--update-labels",
                {"app": "switchyard", "env": self.env, "context": d.context, "trigger": d.trigger},
            )
        )
        self.gcloud.run(*args)

    def subscription(self, d: Deployment, t: str, agent: str) -> None:
        url = self.url(d.name)
        if url is None:
            raise GcloudError(f"cannot read the URL of {d.name}")
        name = subscription_name(d.name, t)
        r = d.retry
        common = [
            f"--push-endpoint={url}/projects/{self.project}/topics/{t}",
            f"--push-auth-service-account={self.email(PUSH_INVOKER)}",
            f"--push-auth-token-audience={url}",
            f"--ack-deadline={clamp(d.runtime.timeout_s, 10, 600)}",
            f"--dead-letter-topic={dead_letter_topic(t)}",
            f"--max-delivery-attempts={clamp(r.max_attempts, 5, 100)}",
            f"--min-retry-delay={clamp(r.min_backoff_s, 0, 600)}s",
            f"--max-retry-delay={clamp(max(r.max_backoff_s, r.min_backoff_s), 0, 600)}s",
            "--message-retention-duration=7d",
            "--expiration-period=never",
        ]
        self.gcloud.upsert(
            ["pubsub", "subscriptions", "describe", name],
            [
                "pubsub",
                "subscriptions",
                "create",
                name,
                f"--topic={t}",
                *common,
                f"--labels=app=switchyard,deployment={d.name}",
            ],
            ["pubsub", "subscriptions", "update", name, *common],
        )
        self.gcloud.bind(
            "pubsub subscriptions", name, f"serviceAccount:{agent}", "roles/pubsub.subscriber"
        )

    def schedule(self, d: Deployment) -> None:
        url = self.url(d.name)
        if url is None:
            raise GcloudError(f"cannot read the URL of {d.name}")
        common = [
            f"--location={self.region}",
            f"--schedule={d.schedule}",
            f"--time-zone={d.time_zone}",
            f"--uri={url}",
            "--http-method=POST",
            "--message-body={}",
            f"--oidc-service-account-email={self.email(SCHEDULER_INVOKER)}",
            f"--oidc-token-audience={url}",
            f"--attempt-deadline={clamp(d.runtime.timeout_s, 15, 1800)}s",
            "--max-retry-attempts=0",
            f"--description={d.description[:500]}",
        ]
        self.gcloud.upsert(
            ["scheduler", "jobs", "describe", d.name, f"--location={self.region}"],
            [
                "scheduler",
                "jobs",
                "create",
                "http",
                d.name,
                *common,
                "--headers=Content-Type=application/json",
            ],
            [
                "scheduler",
                "jobs",
                "update",
                "http",
                d.name,
                *common,
                "--update-headers=Content-Type=application/json",
            ],
        )


DEV_MAX_INSTANCES_CAP = 3  # infra/environments/dev: max_instances_cap's default (0040)


def _cap(raw: str, env: str) -> int | None:
    """--max-instances-cap: unset is the environment's default, `none` no cap."""
    if not raw:
        return DEV_MAX_INSTANCES_CAP if env == "dev" else None
    if raw.lower() == "none":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise GcloudError(
            f"--max-instances-cap is a number of instances >= 1 or 'none', got {raw!r}"
        )
    return int(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Deploy Switchyard deployments with gcloud from the manifests."
    )
    parser.add_argument(
        "deployments",
        nargs="*",
        metavar="DEPLOYMENT",
        help="deployments to deploy (default: $DEPLOYMENT, else all)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    parser.add_argument(
        "--project",
        default=os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("CLOUDSDK_CORE_PROJECT"),
    )
    parser.add_argument("--region", default=os.environ.get("REGION", "europe-west1"))
    parser.add_argument(
        "--env", default=os.environ.get("SWITCHYARD_ENV", "dev"), choices=["dev", "prod"]
    )
    parser.add_argument("--sql-instance", default=os.environ.get("SQL_INSTANCE", "switchyard"))
    parser.add_argument(
        "--vpc-connector",
        default=os.environ.get("VPC_CONNECTOR", "switchyard"),
        help="Serverless VPC Access connector for all egress ('' for none; docs/deploy.md)",
    )
    parser.add_argument(
        "--max-instances-cap",
        default=os.environ.get("MAX_INSTANCES_CAP", ""),
        help=f"ceiling on every deployment's max instances ('none' for the manifests'); "
        f"default {DEV_MAX_INSTANCES_CAP} in dev (its database's connections), none in prod",
    )
    parser.add_argument(
        "--source-dir",
        type=Path,
        default=ROOT / "build",
        help="where `make package` wrote build/<deployment>/",
    )
    parser.add_argument(
        "--functions-dir", type=Path, default=ROOT / "functions", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    names = args.deployments or os.environ.get("DEPLOYMENT", "").replace(",", " ").split()
    try:
        catalog = load(args.functions_dir.resolve())
        unknown = sorted(set(names) - set(catalog.deployments))
        if unknown:
            raise GcloudError(
                f"unknown deployment(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(catalog.deployments))}"
            )
        project = args.project
        if not project:
            project = (
                "<project>"
                if args.dry_run
                else subprocess.run(
                    ["gcloud", "config", "get-value", "project"], text=True, capture_output=True
                ).stdout.strip()
            )
        if not project:
            raise GcloudError("no project: pass --project or set GOOGLE_CLOUD_PROJECT")
        try:
            source_dir = args.source_dir.resolve().relative_to(Path.cwd())
        except ValueError:
            source_dir = args.source_dir.resolve()
        deployer = Deployer(
            catalog,
            Gcloud(project, dry_run=args.dry_run),
            args.region,
            args.env,
            source_dir,
            args.sql_instance,
            args.vpc_connector,
            _cap(args.max_instances_cap, args.env),
        )
        deployer.deploy(names or sorted(catalog.deployments))
    except (GcloudError, ManifestError) as exc:
        print(f"deploy: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
