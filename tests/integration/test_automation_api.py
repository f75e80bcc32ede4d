"""automation-api through the Flask test client with real tokens, on PostgreSQL and SQLite with
the Firestore and Pub/Sub emulators and a real OpenSSH server; the runner executes runs directly
(`runner.execute`, what automation-runner does with a job.run.requested): credentials never
leave the secret store, targets and their connection test, jobs and versions, runs with
per-target and per-step status and paged logs, one execution per request, cancel and
timeouts, HTTP steps through the outbound guard, tag grants, schedules and the tick."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import text

from functions.automation import runner, service
from functions.automation.api import app
from shared import db
from shared.migrate import upgrade
from tests.integration import support
from tests.integration.support import configure, reset_platform

pytest_plugins = ["tests.sshd"]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def env_vars(request, firestore_emulator, pubsub_emulator, tmp_path_factory):
    """Every test on PostgreSQL and on SQLite (`make dev` with nothing configured)."""
    local = tmp_path_factory.mktemp(f"automation-{request.param}")
    env = {"SWITCHYARD_LOCAL_DIR": str(local), "SECRET_BACKEND": "local"}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    with pytest.MonkeyPatch.context() as mp:
        configure(mp, **env)
        upgrade("automation")
        upgrade("automation")  # idempotent
        assert db.engine().dialect.name == request.param
    reset_platform()
    return env


@pytest.fixture(autouse=True)
def env(monkeypatch, env_vars):
    configure(monkeypatch, **env_vars)
    yield
    reset_platform()


class Caller(support.Caller):
    def __init__(self, roles=("viewer",), sub=None):
        super().__init__(app, roles, sub)

    def ok(self, method, path, status=200, **kw):
        resp = self.client.open(path, method=method, **kw)
        assert resp.status_code == status, resp.get_data(as_text=True)
        return resp.get_json()


@pytest.fixture()
def admin():
    return Caller(("admin",))


@pytest.fixture()
def manager():
    return Caller(("manager",))


@pytest.fixture()
def operator():
    return Caller(("operator",))


@pytest.fixture()
def viewer():
    return Caller(("viewer",))


def uniq(prefix="x"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def ssh_target(admin, sshd):
    cred = admin.ok(
        "POST",
        "/api/credentials",
        201,
        json={"name": uniq("key"), "kind": "private_key", "secret": sshd.private_key},
    )
    tag = uniq("tag")
    t = admin.ok(
        "POST",
        "/api/targets",
        201,
        json={
            "name": uniq("sshd"),
            "kind": "ssh",
            "host": sshd.host,
            "port": sshd.port,
            "tags": [tag, "fleet"],
            "options": {"user": sshd.user, "host_key": sshd.host_fingerprint},
            "credential_id": cred["id"],
        },
    )
    return {**t, "tag": tag, "credential": cred}


def make_job(manager, target, steps, **extra):
    body = {"name": uniq("job"), "steps": steps, "target_ids": [target["id"]], **extra}
    return manager.ok("POST", "/api/jobs", 201, json=body)


def start(caller, job, status=202, **params):
    resp = caller.client.post(f"/api/jobs/{job['id']}/runs", json={"parameters": params})
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def all_logs(caller, run_id):
    lines, cursor = [], None
    while True:
        q = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = caller.ok("GET", f"/api/runs/{run_id}/logs{q}")
        lines += page["items"]
        cursor = page["next_cursor"]
        if page["finished"] or not page["items"]:
            return lines, page


# --- credentials -----------------------------------------------------------------------------


def test_credentials_are_taken_once_and_never_shown(admin, manager, viewer):
    value = f"pw-{uuid.uuid4().hex}"
    cred = admin.ok(
        "POST",
        "/api/credentials",
        201,
        json={"name": uniq("pw"), "kind": "password", "secret": value},
    )
    assert "secret" not in cred and cred["current_version"] == "1"
    rotated = admin.ok(
        "POST", f"/api/credentials/{cred['id']}/rotate", json={"secret": value + "2"}
    )
    assert rotated["current_version"] == "2"
    one = manager.ok("GET", f"/api/credentials/{cred['id']}")
    assert [v["version"] for v in one["versions"]] == ["2", "1"]
    listed = manager.ok("GET", "/api/credentials?limit=100")
    assert cred["id"] in {c["id"] for c in listed["items"]}
    assert viewer.client.get("/api/credentials").status_code == 403
    assert manager.client.post("/api/credentials", json={}).status_code == 403
    # nowhere in SQL (rows and outbox) and not in any answer
    with db.engine().connect() as conn:
        for table in ("credentials", "outbox", "targets"):
            rows = conn.execute(text(f"SELECT * FROM automation.{table}")).all()
            assert value not in json.dumps([list(map(str, r)) for r in rows])
    assert value not in json.dumps([cred, rotated, one, listed])
    assert service.secret_of(cred["id"]).value == value + "2"
    bad = admin.client.post(
        "/api/credentials", json={"name": uniq("k"), "kind": "private_key", "secret": "nope"}
    )
    assert bad.status_code == 422 and bad.content_type == PROBLEM


def test_credential_in_use_cannot_be_deleted(admin, ssh_target):
    cid = ssh_target["credential"]["id"]
    assert admin.client.delete(f"/api/credentials/{cid}").status_code == 409
    admin.ok("DELETE", f"/api/targets/{ssh_target['id']}", 204)
    assert admin.client.delete(f"/api/credentials/{cid}").status_code == 204
    assert admin.client.get(f"/api/credentials/{cid}").status_code == 404


# --- targets ---------------------------------------------------------------------------------


def test_targets_crud_and_validation(admin, manager, viewer, ssh_target):
    tid = ssh_target["id"]
    assert viewer.ok("GET", f"/api/targets/{tid}")["options"]["host_key"]
    listed = viewer.ok("GET", f"/api/targets?tag={ssh_target['tag']}")
    assert [t["id"] for t in listed["items"]] == [tid]
    changed = admin.ok("PUT", f"/api/targets/{tid}", json={"tags": ["other"], "version": 1})
    assert changed["tags"] == ["other"] and changed["version"] == 2
    assert (
        admin.client.put(f"/api/targets/{tid}", json={"port": 2, "version": 1}).status_code == 409
    )
    assert viewer.ok("GET", f"/api/targets?tag={ssh_target['tag']}")["items"] == []
    assert manager.client.post("/api/targets", json={}).status_code == 403
    for bad in (
        {"name": uniq(), "kind": "ssh", "host": "h", "options": {"user": "u"}, "extra": 1},
        {"name": uniq(), "kind": "ssh", "host": "h", "options": {"user": "u", "host_key": "md5"}},
        {"name": uniq(), "kind": "ssh", "host": "bad host", "options": {"user": "u"}},
        {"name": uniq(), "kind": "ftp", "host": "h"},
        {"name": uniq(), "kind": "ssh", "host": "h"},  # no user
    ):
        resp = admin.client.post("/api/targets", json=bad)
        assert resp.status_code == 422, (bad, resp.get_data(as_text=True))
        assert resp.content_type == PROBLEM
    dup = {**{k: ssh_target[k] for k in ("kind", "host", "port")}, "name": ssh_target["name"]}
    dup["options"] = {"user": "u"}
    assert admin.client.post("/api/targets", json=dup).status_code == 409


def test_unknown_ids_in_a_body_are_422_naming_the_field(admin, manager, ssh_target):
    """The URL's resource exists (or is being created); the body names a credential or a job
    that does not: 422 problem+json with the field, as maintenance answers, not 404."""

    def refused(resp, field):
        assert resp.status_code == 422, resp.get_data(as_text=True)
        assert resp.content_type == PROBLEM
        assert [e["field"] for e in resp.get_json()["errors"]] == [field]

    nobody = str(uuid.uuid4())
    body = {"name": uniq(), "kind": "http", "host": "h.example", "credential_id": nobody}
    refused(admin.client.post("/api/targets", json=body), "credential_id")
    tid = ssh_target["id"]
    refused(
        admin.client.put(f"/api/targets/{tid}", json={"credential_id": nobody}), "credential_id"
    )
    assert admin.ok("GET", f"/api/targets/{tid}")["version"] == 1  # unchanged
    refused(
        manager.client.post("/api/schedules", json={"job_id": nobody, "cron": "* * * * *"}),
        "job_id",
    )
    job = make_job(manager, ssh_target, [{"kind": "command", "name": "s", "command": "true"}])
    sched = manager.ok(
        "POST", "/api/schedules", 201, json={"job_id": job["id"], "cron": "0 * * * *"}
    )
    refused(manager.client.put(f"/api/schedules/{sched['id']}", json={"job_id": nobody}), "job_id")
    # the URL's own resource unknown is still 404
    assert admin.client.put(f"/api/targets/{nobody}", json={"port": 2}).status_code == 404
    assert (
        manager.client.put(f"/api/schedules/{nobody}", json={"enabled": False}).status_code == 404
    )
    manager.ok("DELETE", f"/api/schedules/{sched['id']}", 204)


def test_connection_test_names_what_failed(admin, operator, ssh_target, sshd, free_port):
    tid = ssh_target["id"]
    ok = operator.ok("POST", f"/api/targets/{tid}/test")
    assert ok["ok"] and [s["stage"] for s in ok["steps"]] == ["dns", "tcp", "host_key", "auth"]
    admin.ok(
        "PUT",
        f"/api/targets/{tid}",
        json={"options": {"user": sshd.user, "host_key": "SHA256:" + "B" * 43}},
    )
    wrong = operator.ok("POST", f"/api/targets/{tid}/test")
    assert not wrong["ok"] and wrong["steps"][-1]["stage"] == "host_key"
    assert wrong["presented_host_key"] == sshd.host_fingerprint
    admin.ok("PUT", f"/api/targets/{tid}", json={"options": {"user": sshd.user}})
    unpinned = operator.ok("POST", f"/api/targets/{tid}/test")
    assert (
        unpinned["steps"][-1]["stage"] == "host_key"
        and "pins no host key" in unpinned["steps"][-1]["message"]
    )
    admin.ok(
        "PUT",
        f"/api/targets/{tid}",
        json={
            "options": {"user": sshd.user, "host_key": sshd.host_fingerprint},
            "port": free_port(),
        },
    )
    closed = operator.ok("POST", f"/api/targets/{tid}/test")
    assert closed["steps"][-1]["stage"] == "tcp"
    admin.ok("PUT", f"/api/targets/{tid}", json={"host": "no-such-host.invalid", "port": sshd.port})
    dns = operator.ok("POST", f"/api/targets/{tid}/test")
    assert dns["steps"] == [{"stage": "dns", "ok": False, "message": dns["steps"][0]["message"]}]
    other = admin.ok(
        "POST",
        "/api/credentials",
        201,
        json={"name": uniq("o"), "kind": "private_key", "secret": sshd.other_key},
    )
    admin.ok("PUT", f"/api/targets/{tid}", json={"host": sshd.host, "credential_id": other["id"]})
    auth = operator.ok("POST", f"/api/targets/{tid}/test")
    assert auth["steps"][-1]["stage"] == "auth" and not auth["ok"]


# --- jobs and runs ---------------------------------------------------------------------------


def test_a_run_executes_once_and_reports_every_step(manager, viewer, ssh_target):
    job = make_job(
        manager,
        ssh_target,
        [
            {"kind": "command", "name": "greet", "command": 'echo "hello $WHO"; echo warn >&2'},
            {
                "kind": "command",
                "name": "fail soft",
                "command": "exit 4",
                "continue_on_error": True,
            },
            {"kind": "command", "name": "quoted", "command": "printf '%s\\n' {{WHO}}"},
        ],
        parameters=[{"name": "WHO", "default": "world"}],
    )
    assert job["version"] == 1
    accepted = start(manager, job, WHO="a b; $(id)")
    run_id = accepted["run_id"]
    assert viewer.ok("GET", f"/api/runs/{run_id}")["status"] == "queued"
    assert runner.execute(run_id) == "succeeded"
    assert runner.execute(run_id) == "skipped"  # a redelivered request: no second execution
    run = viewer.ok("GET", f"/api/runs/{run_id}")
    assert run["status"] == "succeeded" and run["job_version"] == 1 and run["duration_s"] >= 0
    (target,) = run["targets"]
    assert target["status"] == "succeeded"
    assert [(s["status"], s["exit_code"]) for s in target["steps"]] == [
        ("succeeded", 0),
        ("failed", 4),
        ("succeeded", 0),
    ]
    lines, last = all_logs(viewer, run_id)
    texts = [(x["stream"], x["text"]) for x in lines]
    assert ("stdout", "hello a b; $(id)") in texts and ("stderr", "warn") in texts
    assert ("stdout", "a b; $(id)") in texts
    assert [x["seq"] for x in lines] == list(range(1, len(lines) + 1))
    assert last["finished"]
    again = viewer.ok("GET", f"/api/runs/{run_id}/logs?cursor={last['next_cursor']}")
    assert again["items"] == [] and again["finished"]
    listed = viewer.ok("GET", f"/api/runs?job_id={job['id']}")
    assert [r["id"] for r in listed["items"]] == [run_id]


def test_failing_step_stops_its_target(manager, ssh_target):
    job = make_job(
        manager,
        ssh_target,
        [
            {"kind": "command", "name": "boom", "command": "echo bad >&2; exit 7"},
            {"kind": "command", "name": "never", "command": "echo never"},
        ],
    )
    run_id = start(manager, job)["run_id"]
    assert runner.execute(run_id) == "failed"
    run = manager.ok("GET", f"/api/runs/{run_id}")
    steps = run["targets"][0]["steps"]
    assert [(s["status"], s["exit_code"]) for s in steps] == [("failed", 7), ("skipped", None)]
    assert run["targets"][0]["status"] == "failed"


def test_job_versions_and_runs_keep_theirs(manager, viewer, ssh_target):
    job = make_job(manager, ssh_target, [{"kind": "command", "name": "v", "command": "echo one"}])
    run_id = start(manager, job)["run_id"]
    body = {k: job[k] for k in ("name", "target_ids", "max_concurrency", "timeout_s")}
    body["steps"] = [{"kind": "command", "name": "v", "command": "echo two"}]
    v2 = manager.ok("PUT", f"/api/jobs/{job['id']}", json={**body, "version": 1})
    assert v2["version"] == 2
    assert (
        manager.client.put(f"/api/jobs/{job['id']}", json={**body, "version": 1}).status_code == 409
    )
    assert runner.execute(run_id) == "succeeded"
    lines, _ = all_logs(viewer, run_id)
    assert "one" in [x["text"] for x in lines]
    old = viewer.ok("GET", f"/api/jobs/{job['id']}/versions/1")
    assert old["steps"][0]["command"] == "echo one"
    assert viewer.client.put(f"/api/jobs/{job['id']}", json=body).status_code == 403


def test_bad_jobs_and_parameters_are_422(manager, ssh_target):
    t = [ssh_target["id"]]
    for steps, extra in (
        ([{"kind": "command", "name": "s", "command": "echo {{NOPE}}"}], {}),
        ([{"kind": "shell", "name": "s", "command": "x"}], {}),
        ([{"kind": "command", "name": "s", "command": "x", "timeout_s": 999}], {}),
        ([{"kind": "http", "name": "h", "url": "ftp://x/"}], {}),
        ([], {}),
        ([{"kind": "command", "name": "s", "command": "x"}], {"max_concurrency": 0}),
    ):
        resp = manager.client.post(
            "/api/jobs", json={"name": uniq(), "steps": steps, "target_ids": t, **extra}
        )
        assert resp.status_code == 422, (steps, extra, resp.get_data(as_text=True))
    job = make_job(
        manager,
        ssh_target,
        [{"kind": "command", "name": "s", "command": "echo $A"}],
        parameters=[{"name": "A", "required": True}],
    )
    assert start(manager, job, 422)["status"] == 422
    assert start(manager, job, 422, A="1", B="2")["status"] == 422


def test_timeout_and_cancel_stop_the_remote_command(manager, operator, viewer, ssh_target, admin):
    job = make_job(
        manager,
        ssh_target,
        [
            {
                "kind": "command",
                "name": "long",
                "command": "echo started; sleep 60; echo late",
                "timeout_s": 2,
            }
        ],
        timeout_s=2,
    )
    run_id = start(manager, job)["run_id"]
    assert runner.execute(run_id) == "timed_out"
    run = viewer.ok("GET", f"/api/runs/{run_id}")
    assert run["targets"][0]["status"] == "timed_out"
    assert run["targets"][0]["steps"][0]["status"] == "timed_out"

    job2 = make_job(
        manager,
        ssh_target,
        [
            {"kind": "command", "name": "long", "command": "echo started; sleep 60"},
            {"kind": "command", "name": "after", "command": "echo after"},
        ],
        timeout_s=120,
    )
    admin.ok("PUT", f"/api/automation/grants/{operator.sub}", json={"tags": [ssh_target["tag"]]})
    run_id = start(operator, job2)["run_id"]
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(runner.execute(run_id)))
    worker.start()
    try:
        from tests.e2e.support import wait_for

        wait_for(
            lambda: any(
                x["text"] == "started"
                for x in viewer.ok("GET", f"/api/runs/{run_id}/logs")["items"]
            ),
            timeout=20,
        )
        other = Caller(("operator",))
        assert other.client.post(f"/api/runs/{run_id}/cancel").status_code == 403
        operator.ok("POST", f"/api/runs/{run_id}/cancel", 202)
    finally:
        worker.join(30)
    assert result == ["cancelled"]
    run = viewer.ok("GET", f"/api/runs/{run_id}")
    assert [s["status"] for s in run["targets"][0]["steps"]] == ["cancelled", "cancelled"]
    assert operator.client.post(f"/api/runs/{run_id}/cancel").status_code == 409


def test_queued_run_cancelled_is_never_executed(manager, ssh_target):
    job = make_job(manager, ssh_target, [{"kind": "command", "name": "s", "command": "echo x"}])
    run_id = start(manager, job)["run_id"]
    assert manager.ok("POST", f"/api/runs/{run_id}/cancel", 202)["status"] == "cancelled"
    assert runner.execute(run_id) == "skipped"


def test_unreachable_target(admin, manager, ssh_target, free_port):
    admin.ok("PUT", f"/api/targets/{ssh_target['id']}", json={"port": free_port()})
    job = make_job(manager, ssh_target, [{"kind": "command", "name": "s", "command": "echo x"}])
    run_id = start(manager, job)["run_id"]
    assert runner.execute(run_id) == "failed"
    run = manager.ok("GET", f"/api/runs/{run_id}")
    assert run["targets"][0]["status"] == "unreachable" and "TCP" in run["targets"][0]["error"]
    with db.engine().connect() as conn:
        types = [
            r[0]
            for r in conn.execute(
                text("SELECT event_type FROM automation.outbox WHERE payload LIKE :p"),
                {"p": f"%{run_id}%"},
            )
        ]
    assert {
        "job.run.requested",
        "job.run.started",
        "target.unreachable",
        "job.run.finished",
    } <= set(types)


def test_fan_out_respects_concurrency(admin, manager, viewer, sshd, ssh_target):
    tag = uniq("fan")
    for i in range(5):
        admin.ok(
            "POST",
            "/api/targets",
            201,
            json={
                "name": uniq(f"fan{i}"),
                "kind": "ssh",
                "host": sshd.host,
                "port": sshd.port,
                "tags": [tag],
                "options": {"user": sshd.user, "host_key": sshd.host_fingerprint},
                "credential_id": ssh_target["credential"]["id"],
            },
        )
    marker = f"/tmp/fan-{uuid.uuid4().hex}"
    command = (
        f"mkdir -p {marker}; touch {marker}/$$; n=$(ls {marker} | wc -l); echo now=$n; "
        f"sleep 1; rm {marker}/$$"
    )
    job = manager.ok(
        "POST",
        "/api/jobs",
        201,
        json={
            "name": uniq("fan"),
            "steps": [{"kind": "command", "name": "c", "command": command}],
            "target_tags": [tag],
            "max_concurrency": 2,
        },
    )
    run_id = start(manager, job)["run_id"]
    assert runner.execute(run_id) == "succeeded"
    lines, _ = all_logs(viewer, run_id)
    seen = [int(x["text"].split("=")[1]) for x in lines if x["text"].startswith("now=")]
    assert len(seen) == 5 and max(seen) <= 2
    assert len(viewer.ok("GET", f"/api/runs/{run_id}")["targets"]) == 5


# --- http steps ------------------------------------------------------------------------------


class Hook:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        hook = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                hook.seen.append(
                    {
                        "path": self.path,
                        "body": self.rfile.read(n).decode(),
                        "auth": self.headers.get("Authorization"),
                    }
                )
                status = 201 if self.path.startswith("/ok") else 500
                self.send_response(status)
                self.send_header("Content-Length", "8")
                self.end_headers()
                self.wfile.write(b"accepted")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def hook():
    h = Hook()
    yield h
    h.close()


def test_http_steps_through_the_guard(admin, manager, viewer, hook):
    cred = admin.ok(
        "POST",
        "/api/credentials",
        201,
        json={"name": uniq("tok"), "kind": "password", "secret": "api-token"},
    )
    base = {
        "kind": "http",
        "host": "127.0.0.1",
        "port": hook.port,
        "options": {"scheme": "http"},
        "credential_id": cred["id"],
    }
    internal = admin.ok(
        "POST", "/api/targets", 201, json={**base, "name": uniq("int"), "internal": True}
    )
    public = admin.ok("POST", "/api/targets", 201, json={**base, "name": uniq("pub")})
    steps = [
        {
            "kind": "http",
            "name": "post",
            "method": "POST",
            "url": "/ok/{{P}}",
            "body": '{"p": "{{P}}"}',
            "expected_status": [201],
        },
        {
            "kind": "http",
            "name": "bad",
            "method": "POST",
            "url": "/fail",
            "continue_on_error": True,
        },
        {
            "kind": "http",
            "name": "meta",
            "url": "http://169.254.169.254/computeMetadata/v1/",
            "continue_on_error": True,
        },
    ]
    job = make_job(manager, internal, steps, parameters=[{"name": "P", "default": "a/b c"}])
    run_id = start(manager, job)["run_id"]
    assert runner.execute(run_id) == "succeeded"
    run = viewer.ok("GET", f"/api/runs/{run_id}")
    assert [(s["status"], s["exit_code"]) for s in run["targets"][0]["steps"]] == [
        ("succeeded", 201),
        ("failed", 500),
        ("failed", None),
    ]
    assert "metadata" in run["targets"][0]["steps"][2]["error"]
    assert hook.seen[0] == {
        "path": "/ok/a%2Fb%20c",
        "body": '{"p": "a/b c"}',
        "auth": "Bearer api-token",
    }
    # the same job on a target not marked internal: its loopback address is refused
    job2 = make_job(manager, public, steps[:1], parameters=[{"name": "P", "default": "x"}])
    run2 = start(manager, job2)["run_id"]
    assert runner.execute(run2) == "failed"
    err = viewer.ok("GET", f"/api/runs/{run2}")["targets"][0]["steps"][0]["error"]
    assert "loopback" in err and len(hook.seen) == 2
    test = admin.ok("POST", f"/api/targets/{public['id']}/test")
    assert not test["ok"] and test["steps"][0]["stage"] == "policy"


# --- permissions -----------------------------------------------------------------------------


def test_operators_run_only_on_granted_tags(admin, manager, operator, viewer, ssh_target):
    job = make_job(manager, ssh_target, [{"kind": "command", "name": "s", "command": "true"}])
    assert start(viewer, job, 403)["status"] == 403
    refused = start(operator, job, 403)
    assert ssh_target["name"] in refused["detail"]
    admin.ok("PUT", f"/api/automation/grants/{operator.sub}", json={"tags": ["fleet"]})
    assert operator.ok("GET", "/api/automation/grants/me")["tags"] == ["fleet"]
    assert start(operator, job)["status"] == "queued"
    admin.ok("PUT", f"/api/automation/grants/{operator.sub}", json={"tags": ["*"]})
    assert start(operator, job)["status"] == "queued"
    assert (
        operator.client.put(
            f"/api/automation/grants/{operator.sub}", json={"tags": ["*"]}
        ).status_code
        == 403
    )
    assert viewer.client.get(f"/api/automation/grants/{operator.sub}").status_code == 403
    assert operator.client.post("/api/jobs", json={}).status_code == 403
    grants = admin.ok("GET", "/api/automation/grants?limit=100")
    assert {"subject": operator.sub, "tags": ["*"]} in grants["items"]


# --- schedules -------------------------------------------------------------------------------


def test_schedules_tick_exactly_once_per_slot(manager, viewer, ssh_target):
    job = make_job(
        manager,
        ssh_target,
        [{"kind": "command", "name": "s", "command": "true"}],
        parameters=[{"name": "X", "default": "1"}],
    )
    sched = manager.ok(
        "POST",
        "/api/schedules",
        201,
        json={
            "job_id": job["id"],
            "cron": "*/5 * * * *",
            "time_zone": "Europe/Berlin",
            "parameters": {"X": "2"},
        },
    )
    assert len(sched["next_fire_times"]) == 5
    # the schedule was created now: take the first slot after creation
    slot = datetime.fromisoformat(sched["next_fire_times"][0].replace("Z", "+00:00"))
    assert service.run_due_schedules(slot - timedelta(seconds=1))["started"] == []
    first = service.run_due_schedules(slot)
    second = service.run_due_schedules(slot)  # Cloud Scheduler fired twice
    late = service.run_due_schedules(slot + timedelta(seconds=50))  # a late replay
    mine = [
        r
        for r in first["started"]
        if viewer.ok("GET", f"/api/runs/{r}")["schedule_id"] == sched["id"]
    ]
    assert len(mine) == 1
    assert not {*second["started"], *late["started"]} & set(mine)
    run = viewer.ok("GET", f"/api/runs/{mine[0]}")
    assert run["parameters"] == {"X": "2"} and run["due_at"].startswith(
        slot.strftime("%Y-%m-%dT%H:%M")
    )
    # paused: the next slot starts nothing
    paused = manager.ok("POST", f"/api/schedules/{sched['id']}/pause")
    assert not paused["enabled"] and paused["next_fire_times"] == []
    nxt = slot + timedelta(minutes=5)
    runs_of = lambda: viewer.ok("GET", f"/api/runs?job_id={job['id']}&limit=100")["items"]  # noqa: E731
    before = len(runs_of())
    service.run_due_schedules(nxt)
    assert len(runs_of()) == before
    resumed = manager.ok("POST", f"/api/schedules/{sched['id']}/resume")
    assert resumed["enabled"] and len(resumed["next_fire_times"]) == 5
    assert viewer.client.post(f"/api/schedules/{sched['id']}/pause").status_code == 403
    bad = manager.client.post("/api/schedules", json={"job_id": job["id"], "cron": "99 * * * *"})
    assert bad.status_code == 422
    bad_tz = manager.client.post(
        "/api/schedules", json={"job_id": job["id"], "cron": "* * * * *", "time_zone": "Nowhere/X"}
    )
    assert bad_tz.status_code == 422
    assert manager.client.delete(f"/api/jobs/{job['id']}").status_code == 409
    manager.ok("DELETE", f"/api/schedules/{sched['id']}", 204)
    manager.ok("DELETE", f"/api/jobs/{job['id']}", 204)
    assert viewer.client.get(f"/api/jobs/{job['id']}").status_code == 404


def test_missed_slots_start_one_run(manager, viewer, ssh_target):
    """Ticks missed for a while: `once` starts one run for the latest missed slot, `skip`
    starts none (the latest slot is not on time) and waits for the next."""
    job = make_job(manager, ssh_target, [{"kind": "command", "name": "s", "command": "true"}])
    body = {"job_id": job["id"], "cron": "*/10 * * * *"}
    once = manager.ok("POST", "/api/schedules", 201, json=body)
    skip = manager.ok("POST", "/api/schedules", 201, json={**body, "catch_up": "skip"})
    slots = [datetime.fromisoformat(x.replace("Z", "+00:00")) for x in once["next_fire_times"]]
    later = slots[2] + timedelta(minutes=5)  # three slots missed, none on time
    out = service.run_due_schedules(later)

    def of(schedule):
        return [
            r
            for r in out["started"]
            if viewer.ok("GET", f"/api/runs/{r}")["schedule_id"] == schedule["id"]
        ]

    (run_id,) = of(once)
    assert viewer.ok("GET", f"/api/runs/{run_id}")["due_at"].startswith(
        slots[2].strftime("%Y-%m-%dT%H:%M")
    )
    assert of(skip) == []
    out = service.run_due_schedules(slots[3])  # the next slot, on time: both start one
    assert len(of(once)) == 1 and len(of(skip)) == 1
    manager.ok("DELETE", f"/api/schedules/{once['id']}", 204)
    manager.ok("DELETE", f"/api/schedules/{skip['id']}", 204)


def test_lost_runner_fails_the_run_without_repeating_it(manager, ssh_target):
    job = make_job(manager, ssh_target, [{"kind": "command", "name": "s", "command": "true"}])
    run_id = start(manager, job)["run_id"]
    past = datetime.now(UTC) - timedelta(hours=1)
    with db.transaction() as s:
        s.execute(
            text(
                "UPDATE automation.runs SET status='running', started_at=:t, heartbeat_at=:t "
                "WHERE id=:id"
            ),
            {"t": past, "id": run_id},
        )
    assert run_id in service.reap_lost_runs(datetime.now(UTC))
    run = manager.ok("GET", f"/api/runs/{run_id}")
    assert run["status"] == "failed" and "not repeated" in run["error"]
    assert runner.execute(run_id) == "skipped"
