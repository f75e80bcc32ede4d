"""The automation deployments' entry points as functions-framework serves them: the runner
takes the `job.run.requested` push exactly as Pub/Sub delivers it (built from the outbox row
the API wrote) and executes the run once, whatever the redeliveries (a new event id for the same
run included); the tick, fired twice with one ScheduleTime, starts one run; neither entry
point module imports api.py."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import functions_framework
import pytest
from sqlalchemy import text

from functions.automation.api import app
from shared import db
from shared.events import rfc3339
from shared.migrate import upgrade
from tests.integration import support
from tests.integration.support import configure, reset_platform

pytest_plugins = ["tests.sshd"]
ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "functions" / "automation" / "main.py")


@pytest.fixture(scope="module")
def env_vars(pg_url, firestore_emulator, pubsub_emulator, tmp_path_factory):
    env = {
        "DATABASE_URL": pg_url,
        "SWITCHYARD_LOCAL_DIR": str(tmp_path_factory.mktemp("automation-entry")),
        "SECRET_BACKEND": "local",
    }
    with pytest.MonkeyPatch.context() as mp:
        configure(mp, **env)
        upgrade("automation")
    reset_platform()
    return env


@pytest.fixture(autouse=True)
def env(monkeypatch, env_vars):
    configure(monkeypatch, **env_vars)
    yield
    reset_platform()


def as_deployment(monkeypatch, name: str) -> None:
    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", name)
    reset_platform()


@pytest.fixture()
def job(sshd):
    admin = support.Caller(app, ("admin",))
    cred = admin.post(
        "/api/credentials",
        json={
            "name": f"k-{uuid.uuid4().hex[:8]}",
            "kind": "private_key",
            "secret": sshd.private_key,
        },
    ).get_json()
    target = admin.post(
        "/api/targets",
        json={
            "name": f"t-{uuid.uuid4().hex[:8]}",
            "kind": "ssh",
            "host": sshd.host,
            "port": sshd.port,
            "options": {"user": sshd.user, "host_key": sshd.host_fingerprint},
            "credential_id": cred["id"],
        },
    ).get_json()
    resp = admin.post(
        "/api/jobs",
        json={
            "name": f"j-{uuid.uuid4().hex[:8]}",
            "steps": [{"kind": "command", "name": "count", "command": "echo ran"}],
            "target_ids": [target["id"]],
        },
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return admin, resp.get_json()


def outbox_push(run_id: str, event_type: str = "job.run.requested") -> dict:
    with db.engine().connect() as conn:
        row = conn.execute(
            text(
                "SELECT payload, attributes FROM automation.outbox "
                "WHERE event_type = :t AND payload LIKE :p"
            ),
            {"t": event_type, "p": f'%"{run_id}"%'},
        ).one()
    return {
        "message": {
            "data": base64.b64encode(row.payload.encode()).decode(),
            "attributes": json.loads(row.attributes),
            "messageId": uuid.uuid4().hex,
        },
        "subscription": f"projects/test/subscriptions/automation-runner--{event_type}",
    }


def test_runner_executes_a_pushed_request_once(monkeypatch, job):
    admin, j = job
    run_id = admin.post(f"/api/jobs/{j['id']}/runs", json={}).get_json()["run_id"]
    body = outbox_push(run_id)
    as_deployment(monkeypatch, "automation-runner")
    client = functions_framework.create_app(target="runner", source=MAIN).test_client()
    first = client.post("/", json=body)
    assert first.status_code == 200 and first.get_json()["status"] == "processed", first.get_data(
        as_text=True
    )
    assert client.post("/", json=body).get_json()["status"] == "duplicate"
    # a second publish of the same request (new event id): the run is claimed, nothing runs
    body["message"]["attributes"] = {**body["message"]["attributes"], "event_id": str(uuid.uuid4())}
    assert client.post("/", json=body).get_json()["status"] == "processed"
    as_deployment(monkeypatch, "")
    run = admin.get(f"/api/runs/{run_id}").get_json()
    assert run["status"] == "succeeded"
    lines = admin.get(f"/api/runs/{run_id}/logs?limit=1000").get_json()["items"]
    assert [x["text"] for x in lines].count("ran") == 1
    with db.engine().connect() as conn:
        started = conn.execute(
            text(
                "SELECT count(*) FROM automation.outbox "
                "WHERE event_type = 'job.run.started' AND payload LIKE :p"
            ),
            {"p": f'%"{run_id}"%'},
        ).scalar()
    assert started == 1


def test_tick_replayed_with_one_schedule_time_starts_one_run(monkeypatch, job):
    admin, j = job
    manager = support.Caller(app, ("manager",))
    sched = manager.post(
        "/api/schedules", json={"job_id": j["id"], "cron": "*/5 * * * *"}
    ).get_json()
    slot = sched["next_fire_times"][0]
    as_deployment(monkeypatch, "automation-tick")
    client = functions_framework.create_app(target="tick", source=MAIN).test_client()
    headers = {
        "X-CloudScheduler": "true",
        "X-CloudScheduler-JobName": "automation-tick",
        "X-CloudScheduler-ScheduleTime": slot,
    }
    answers = [client.post("/", headers=headers) for _ in range(3)]
    assert all(a.status_code == 200 for a in answers), answers[0].get_data(as_text=True)
    as_deployment(monkeypatch, "")
    runs = admin.get(f"/api/runs?job_id={j['id']}").get_json()["items"]
    assert [r["schedule_id"] for r in runs] == [sched["id"]]
    assert runs[0]["due_at"][:16] == slot[:16]
    # paused: a later ScheduleTime starts nothing
    manager.post(f"/api/schedules/{sched['id']}/pause")
    as_deployment(monkeypatch, "automation-tick")
    later = rfc3339(datetime.fromisoformat(slot.replace("Z", "+00:00")) + timedelta(minutes=5))
    client.post("/", headers={**headers, "X-CloudScheduler-ScheduleTime": later})
    as_deployment(monkeypatch, "")
    assert len(admin.get(f"/api/runs?job_id={j['id']}").get_json()["items"]) == 1


def test_event_and_schedule_entry_points_do_not_import_the_api():
    code = (
        "import sys; import functions.automation.main as m; "
        "import functions.automation.runner, functions.automation.service; "
        "print('functions.automation.api' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_every_event_is_declared_by_the_deployment_that_emits_it(monkeypatch, job):
    """The API as automation-api (cancelling a queued run finishes it there), the runner and
    the tick as themselves: emit() refuses an event a manifest does not declare."""
    admin, j = job
    as_deployment(monkeypatch, "automation-api")
    run_id = admin.post(f"/api/jobs/{j['id']}/runs", json={}).get_json()["run_id"]
    cancelled = admin.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 202, cancelled.get_data(as_text=True)
    other = admin.post(f"/api/jobs/{j['id']}/runs", json={}).get_json()["run_id"]
    assert (
        admin.put(f"/api/automation/grants/{uuid.uuid4()}", json={"tags": ["x"]}).status_code == 200
    )
    as_deployment(monkeypatch, "automation-runner")
    from functions.automation import runner

    assert runner.execute(other) == "succeeded"
    as_deployment(monkeypatch, "automation-tick")
    from functions.automation import service

    assert service.run_due_schedules(datetime.now(UTC))["errors"] == []
