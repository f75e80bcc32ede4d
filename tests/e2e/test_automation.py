"""automation end to end: the whole local stack driven through the gateway, against a real
OpenSSH server. A credential and a pinned SSH target are created and tested, a two-step job
runs (Pub/Sub -> automation-runner) with its log lines readable by cursor while it runs and
its events in the audit trail; a long run is cancelled; a schedule shows its next fire times
and pauses. Every endpoint group answers problem+json for bad input and 403 for wrong roles."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import PASSWORD, Api, assert_problem, ok, wait_for

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.sshd"]


@pytest.fixture(scope="module")
def viewer(api, admin) -> str:
    email = f"auto-viewer-{uuid.uuid4().hex[:8]}@example.com"
    ok(
        api.req(
            "POST",
            "/api/users",
            admin,
            json={
                "email": email,
                "name": "Automation viewer",
                "roles": ["viewer"],
                "password": PASSWORD,
            },
        ),
        201,
    )
    token = api.login(email, PASSWORD)
    assert token
    return token


@pytest.fixture(scope="module")
def target(api, admin, sshd) -> dict:
    cred = ok(
        api.req(
            "POST",
            "/api/credentials",
            admin,
            json={
                "name": f"e2e-key-{uuid.uuid4().hex[:8]}",
                "kind": "private_key",
                "secret": sshd.private_key,
            },
        ),
        201,
    )
    assert "secret" not in cred
    return ok(
        api.req(
            "POST",
            "/api/targets",
            admin,
            json={
                "name": f"e2e-sshd-{uuid.uuid4().hex[:8]}",
                "kind": "ssh",
                "host": sshd.host,
                "port": sshd.port,
                "tags": ["e2e"],
                "options": {"user": sshd.user, "host_key": sshd.host_fingerprint},
                "credential_id": cred["id"],
            },
        ),
        201,
    )


def job(api: Api, token: str, target: dict, steps: list[dict], **extra) -> dict:
    body = {
        "name": f"e2e-job-{uuid.uuid4().hex[:8]}",
        "steps": steps,
        "target_ids": [target["id"]],
        **extra,
    }
    return ok(api.req("POST", "/api/jobs", token, json=body), 201)


def logs_of(api: Api, token: str, run_id: str) -> list[dict]:
    lines, cursor = [], None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = ok(api.req("GET", f"/api/runs/{run_id}/logs", token, params=params))
        lines += page["items"]
        cursor = page["next_cursor"]
        if not page["items"]:
            return lines


def test_connection_test_through_the_gateway(api, admin, target):
    result = ok(api.req("POST", f"/api/targets/{target['id']}/test", admin))
    assert result["ok"], result


def test_run_a_two_step_job(api, admin, viewer, target):
    j = job(
        api,
        admin,
        target,
        [
            {"kind": "command", "name": "hello", "command": 'echo "hello $WHO"'},
            {"kind": "command", "name": "where", "command": "echo on $(hostname) >&2; exit 0"},
        ],
        parameters=[{"name": "WHO", "default": "fleet"}],
    )
    accepted = ok(
        api.req("POST", f"/api/jobs/{j['id']}/runs", admin, json={"parameters": {"WHO": "e2e"}}),
        202,
    )
    run_id = accepted["run_id"]
    run = wait_for(
        lambda: (
            (r := ok(api.req("GET", f"/api/runs/{run_id}", viewer)))["status"]
            in ("succeeded", "failed")
            and r
        ),
        timeout=60,
    )
    assert run["status"] == "succeeded", run
    assert [s["exit_code"] for s in run["targets"][0]["steps"]] == [0, 0]
    texts = [x["text"] for x in logs_of(api, viewer, run_id)]
    assert "hello e2e" in texts

    # the run's events reach the audit trail (Pub/Sub -> audit-ingest -> Firestore)
    def audited():
        resp = api.req(
            "GET",
            "/api/audit/events",
            admin,
            params={"event_type": "job.run.finished", "limit": 100},
        )
        return resp.status_code == 200 and any(
            e.get("data", {}).get("run_id") == run_id for e in resp.json()["items"]
        )

    wait_for(audited, timeout=60)


def test_cancel_a_long_run(api, admin, viewer, target):
    j = job(
        api,
        admin,
        target,
        [
            {
                "kind": "command",
                "name": "long",
                "command": "echo started; sleep 120",
                "timeout_s": 300,
            }
        ],
    )
    run_id = ok(api.req("POST", f"/api/jobs/{j['id']}/runs", admin, json={}), 202)["run_id"]
    wait_for(lambda: "started" in [x["text"] for x in logs_of(api, viewer, run_id)], timeout=60)
    assert_problem(api.req("POST", f"/api/runs/{run_id}/cancel", viewer), 403)
    ok(api.req("POST", f"/api/runs/{run_id}/cancel", admin), 202)
    run = wait_for(
        lambda: (
            (r := ok(api.req("GET", f"/api/runs/{run_id}", viewer)))["status"] == "cancelled" and r
        ),
        timeout=30,
    )
    assert run["targets"][0]["steps"][0]["status"] == "cancelled"


def test_schedules_and_bad_input(api, admin, viewer, target):
    j = job(api, admin, target, [{"kind": "command", "name": "s", "command": "true"}])
    sched = ok(
        api.req(
            "POST",
            "/api/schedules",
            admin,
            json={"job_id": j["id"], "cron": "0 3 * * *", "time_zone": "Europe/Berlin"},
        ),
        201,
    )
    assert len(sched["next_fire_times"]) == 5
    paused = ok(api.req("POST", f"/api/schedules/{sched['id']}/pause", admin))
    assert paused["next_fire_times"] == []
    listed = ok(api.req("GET", "/api/schedules", viewer, params={"job_id": j["id"]}))
    assert [s["id"] for s in listed["items"]] == [sched["id"]]
    assert api.req("DELETE", f"/api/schedules/{sched['id']}", admin).status_code == 204
    assert_problem(api.req("POST", "/api/targets", viewer, json={}), 403)
    assert_problem(
        api.req("POST", "/api/jobs", admin, json={"name": "x", "steps": [], "bogus": 1}), 422
    )
    assert_problem(
        api.req("POST", "/api/credentials", admin, json={"name": "x", "kind": "password"}), 422
    )
    assert_problem(api.req("GET", f"/api/runs/{uuid.uuid4()}", viewer), 404)
    assert_problem(
        api.req("POST", "/api/schedules", admin, json={"job_id": j["id"], "cron": "nope nope"}), 422
    )
    assert ok(api.req("GET", "/api/targets", viewer))["items"]
    assert api.req("GET", "/api/targets").status_code == 401
