"""The local stack itself: emulators, wiring, scheduler, supervisor (`python -m emulators`).

Most tests run the real emulators and real processes. The supervisor is exercised on a tiny
hand-written repository (one context with an http, an event and a schedule deployment, and
stand-ins for `shared.migrate` / `shared.auth`) so it is tested independently of the platform
code; the last tests use the session's `stack` fixture on the real repository.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from emulators import (
    Emulator,
    Job,
    LocalScheduler,
    LocalStackError,
    PortBusyError,
    Ports,
    Stack,
    ToolMissingError,
    assign_ports,
    fire,
    free_port,
    free_port_block,
    is_listening,
    max_delivery_attempts,
    wire,
)
from emulators._procs import group_alive
from emulators._scheduler import control, next_time
from emulators._wiring import clients
from shared import manifests
from shared.manifests import Retry, dead_letter_subscription, dead_letter_topic, subscription_name
from tests.e2e.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"


def _wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    """`wait_for` (tests/e2e/support.py) with the thing waited for named in the failure."""
    try:
        return wait_for(check, timeout=timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}") from None


# -- emulators -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pubsub", "firestore"])
def test_emulator_starts_and_stops_leaving_no_process_or_port(kind: str) -> None:
    em = Emulator(kind, free_port(), log_dir=OUTPUT / "emulators-lifecycle")
    em.start()
    try:
        assert requests.get(em.url + "/", timeout=2).text.strip() == "Ok"
        assert em.env() == {f"{kind.upper()}_EMULATOR_HOST": em.host}
        pgid = em.child.pid
    finally:
        t = time.monotonic()
        em.stop()
        stopped_in = time.monotonic() - t
    print(f"{kind} emulator: started in {em.started_in:.2f} s, stopped in {stopped_in:.2f} s")
    assert not is_listening(em.port)
    assert not group_alive(pgid), "the Java child outlived the gcloud wrapper"
    assert em.started_in is not None  # how long is measured (make bench), not asserted


def test_firestore_data_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.cloud import firestore

    port, project, data = free_port(), f"persist-{secrets.token_hex(3)}", tmp_path / "firestore"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    with Emulator("firestore", port, project=project, data_dir=data, persist=True):
        firestore.Client(project=project).collection("kept").document("one").set({"v": 1})
    assert list((data / "current").glob("*.overall_export_metadata"))
    with Emulator("firestore", port, project=project, data_dir=data, persist=True):
        doc = firestore.Client(project=project).collection("kept").document("one").get()
        assert doc.exists and doc.to_dict() == {"v": 1}


def test_busy_port_is_reported_with_the_setting_that_moves_it(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortBusyError) as err:
            Emulator("pubsub", port).start()
        message = str(err.value)
        assert f"port {port}" in message and "PUBSUB_PORT" in message
        assert "--pubsub-port" in message and f"pid {os.getpid()}" in message
        # the stack checks every port before it starts anything
        ports = Ports(free_port(), free_port(), port, free_port_block(20))
        stack = Stack(ports=ports, local_dir=tmp_path, echo=False, only=["gateway"])
        with pytest.raises(PortBusyError, match="GATEWAY_PORT=<port> or --gateway-port"):
            stack.start()
        assert stack.children == {} and stack.pubsub.child is None


def test_missing_gcloud_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="`gcloud` is not on PATH"):
        Emulator("pubsub", free_port()).start()


def _executable(path: Path, text: str = "#!/bin/sh\nexit 1\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _executable(tmp_path / "gcloud")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="`java` is not on PATH"):
        Emulator("firestore", free_port()).start()


def test_missing_emulator_component_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = tmp_path / "sdk"  # the layout of a Cloud SDK without the emulator components
    _executable(sdk / "bin" / "gcloud")
    _executable(sdk / "lib" / "gcloud.py", "")
    (sdk / "platform").mkdir()
    _executable(tmp_path / "jre" / "java")
    monkeypatch.setenv("PATH", f"{sdk / 'bin'}:{tmp_path / 'jre'}")
    with pytest.raises(ToolMissingError) as err:
        Emulator("pubsub", free_port()).start()
    assert "pubsub-emulator" in str(err.value)
    assert "apt-get install google-cloud-cli-pubsub-emulator" in str(err.value)


# -- wiring ----------------------------------------------------------------------------------


def test_max_delivery_attempts_is_clamped_to_what_pubsub_accepts() -> None:
    assert max_delivery_attempts(Retry(max_attempts=1, min_backoff_s=10, max_backoff_s=600)) == 5
    assert max_delivery_attempts(Retry(max_attempts=7, min_backoff_s=10, max_backoff_s=600)) == 7
    assert max_delivery_attempts(Retry(max_attempts=500, min_backoff_s=1, max_backoff_s=2)) == 100


def _listed(host: str, project: str) -> tuple[set[str], dict[str, object]]:
    pub, sub = clients(host)
    topics = {
        t.name.rsplit("/", 1)[1]
        for t in pub.list_topics(request={"project": f"projects/{project}"})
    }
    subs = {
        s.name.rsplit("/", 1)[1]: s
        for s in sub.list_subscriptions(request={"project": f"projects/{project}"})
    }
    return topics, subs


def test_wiring_creates_what_the_manifests_declare(pubsub_emulator) -> None:  # noqa: ANN001
    catalog = manifests.catalog()
    assert catalog.topics and catalog.subscriptions(), "the manifests declare no events"
    project = f"wiring-{secrets.token_hex(3)}"
    port_of = assign_ports(catalog, Ports())
    plan = wire(catalog, project, port_of)
    endpoint = {p.name: p.push_endpoint for p in plan.push}

    topics, subs = _listed(pubsub_emulator.host, project)
    assert topics == set(catalog.topics) | {dead_letter_topic(t) for t in catalog.topics}
    assert set(subs) == (
        {subscription_name(d.name, t) for d, t in catalog.subscriptions()}
        | {dead_letter_subscription(t) for t in catalog.topics}
    )
    tpath = f"projects/{project}/topics/"
    for dep, topic in catalog.subscriptions():
        s = subs[subscription_name(dep.name, topic)]
        assert s.topic == tpath + topic
        # pulled and pushed by emulators._bridge (decision 0031), to the cloud's push path
        assert not s.push_config.push_endpoint
        assert endpoint[subscription_name(dep.name, topic)] == (
            f"http://127.0.0.1:{port_of[dep.name]}/projects/{project}/topics/{topic}"
        )
        assert s.ack_deadline_seconds == max(10, min(600, dep.runtime.timeout_s))
        assert s.dead_letter_policy.dead_letter_topic == tpath + dead_letter_topic(topic)
        assert s.dead_letter_policy.max_delivery_attempts == max(
            5, min(100, dep.retry.max_attempts)
        )
        assert s.retry_policy.minimum_backoff == timedelta(seconds=dep.retry.min_backoff_s)
        assert s.retry_policy.maximum_backoff == timedelta(seconds=dep.retry.max_backoff_s)
    for topic in catalog.topics:
        keep = subs[dead_letter_subscription(topic)]
        assert keep.topic == tpath + dead_letter_topic(topic)
        assert not keep.push_config.push_endpoint  # a pull subscription


def test_wiring_is_idempotent_and_updates_in_place(
    pubsub_emulator,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = manifests.catalog()
    project = f"rewire-{secrets.token_hex(3)}"
    port_of = assign_ports(catalog, Ports())
    assert wire(catalog, project, port_of).changed
    assert wire(catalog, project, port_of).changed == []

    moved = assign_ports(catalog, Ports(functions_base=9101, gateway=9080))
    monkeypatch.setenv("LOCAL_RETRY_MIN_BACKOFF_S", "1")
    monkeypatch.setenv("LOCAL_RETRY_MAX_BACKOFF_S", "2")
    rewired = wire(catalog, project, moved)
    changed = rewired.changed
    assert changed and all(c.endswith("(updated)") for c in changed)
    _, subs = _listed(pubsub_emulator.host, project)
    dep, topic = catalog.subscriptions()[0]
    s = subs[subscription_name(dep.name, topic)]
    assert rewired.push[0].push_endpoint.startswith(f"http://127.0.0.1:{moved[dep.name]}/")
    assert s.retry_policy.minimum_backoff == timedelta(seconds=1)
    assert s.retry_policy.maximum_backoff == timedelta(seconds=2)
    assert wire(catalog, project, moved, backoff_override=(1, 2)).changed == []


def test_wiring_refuses_to_run_without_an_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    with pytest.raises(LocalStackError, match="PUBSUB_EMULATOR_HOST"):
        wire(manifests.catalog(), "any-project", assign_ports(manifests.catalog(), Ports()))


# -- scheduler -------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Recorder:
    """A tiny HTTP server that records every request it gets."""

    def __init__(self) -> None:
        self.requests: queue.Queue[Seen] = queue.Queue()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                size = int(self.headers.get("Content-Length") or 0)
                recorder.requests.put(
                    Seen("POST", self.path, dict(self.headers.items()), self.rfile.read(size))
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, timeout: float = 5.0) -> Seen:
        return self.requests.get(timeout=timeout)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _assert_cloud_scheduler_request(seen: Seen, job: str) -> None:
    assert seen.method == "POST" and seen.path == "/"
    assert seen.headers["X-CloudScheduler"] == "true"
    assert seen.headers["X-CloudScheduler-JobName"] == job
    assert seen.headers["User-Agent"] == "Google-Cloud-Scheduler"
    assert seen.headers["Content-Type"] == "application/octet-stream"
    assert seen.body == b""
    stamp = seen.headers["X-CloudScheduler-ScheduleTime"]
    assert stamp.endswith("Z")
    assert datetime.fromisoformat(stamp).tzinfo is not None


def test_fire_sends_cloud_schedulers_request(recorder: Recorder) -> None:
    status = fire(recorder.url + "/", "ops-outbox-relay", datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
    assert status == 200
    seen = recorder.get()
    _assert_cloud_scheduler_request(seen, "ops-outbox-relay")
    assert seen.headers["X-CloudScheduler-ScheduleTime"] == "2026-11-21T02:00:00Z"


def test_next_time_follows_the_jobs_time_zone() -> None:
    after = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    assert next_time("0 2 * * *", "Etc/UTC", after) == datetime(2026, 7, 1, 2, 0, tzinfo=UTC)
    # 02:00 in Paris in summer is 00:00 UTC; 00:30 UTC is already past it that day
    assert next_time("0 2 * * *", "Europe/Paris", after) == datetime(2026, 7, 2, 0, 0, tzinfo=UTC)


class FakeClock:
    """The scheduler's injected clock: time moves only when the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _move(sched: LocalScheduler, clock: FakeClock, to: datetime) -> None:
    """Move the clock and wait for the scheduler to have looked for due jobs at `to`."""
    clock.now = to
    sched.poke()
    assert sched.wait_checked(to), f"the scheduler did not look for due jobs at {to}"


def test_scheduler_fires_on_cron_pauses_resumes_and_runs_now(
    recorder: Recorder, tmp_path: Path
) -> None:
    state = tmp_path / "scheduler"
    t0 = datetime(2026, 11, 21, 0, 0, 30, tzinfo=UTC)
    clock = FakeClock(t0)
    job = Job(name="tick-job", schedule="* * * * *", url=recorder.url + "/")  # every minute
    logs: list[str] = []
    sched = LocalScheduler([job], state_dir=state, log=logs.append, clock=clock).start()
    try:
        assert job.next_run == t0.replace(minute=1, second=0)
        _move(sched, clock, t0.replace(minute=1, second=0))
        seen = recorder.get(timeout=10)
        _assert_cloud_scheduler_request(seen, "tick-job")
        assert seen.headers["X-CloudScheduler-ScheduleTime"] == "2026-11-21T00:01:00Z"
        _wait_for(lambda: not job.running and job.last_status == "200", 10, "the first run")

        assert control(state, "pause", "tick-job")["state"] == "PAUSED"
        assert json.loads((state / "paused.json").read_text()) == ["tick-job"]
        # two due times pass while paused: the scheduler looks, and dispatches nothing
        _move(sched, clock, t0.replace(minute=3, second=0))
        assert not job.running and recorder.requests.empty(), "a paused job fired"
        assert job.last_run == t0.replace(minute=1, second=0)

        assert control(state, "resume", "tick-job")["state"] == "ENABLED"
        assert job.next_run == t0.replace(minute=4, second=0)  # missed runs are not made up
        _move(sched, clock, t0.replace(minute=4, second=0))
        seen = recorder.get(timeout=10)
        assert seen.headers["X-CloudScheduler-ScheduleTime"] == "2026-11-21T00:04:00Z"
        _wait_for(lambda: not job.running, 10, "the resumed run")

        control(state, "pause", "tick-job")
        clock.now = t0.replace(minute=4, second=10)
        ran = control(state, "run", "tick-job")  # run now works on a paused job, as in gcloud
        assert ran["last_status"] == "200"
        seen = recorder.get(timeout=10)
        _assert_cloud_scheduler_request(seen, "tick-job")
        assert seen.headers["X-CloudScheduler-ScheduleTime"] == "2026-11-21T00:04:10Z"
        assert recorder.requests.empty()

        out = subprocess.run(
            [sys.executable, "-m", "emulators", "--local-dir", str(tmp_path), "scheduler", "list"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "tick-job" in out.stdout and "PAUSED" in out.stdout
        with pytest.raises(LocalStackError, match="no scheduler job"):
            control(state, "pause", "no-such-job")
    finally:
        sched.stop()
    assert not (state / "control.json").exists()
    assert any("paused" in line for line in logs)

    # the paused state survives a restart, as in Cloud Scheduler
    again = LocalScheduler(
        [Job(name="tick-job", schedule="* * * * *", url=recorder.url)],
        state_dir=state,
        log=logs.append,
    )
    assert again.jobs["tick-job"].paused
    # with no running stack, pause/resume are saved for the next start and run is refused
    assert "next start" in control(state, "resume", "tick-job")["note"]
    assert json.loads((state / "paused.json").read_text()) == []
    with pytest.raises(LocalStackError, match="no running stack"):
        control(state, "run", "tick-job")


# -- the supervisor, on a tiny repository ----------------------------------------------------

_MANIFEST = """\
context: hello
description: A tiny context that exercises the local stack.
deployments:
  hello-api:
    entry_point: api
    trigger: http
    routes: [/api/hello]
    publishes: [hello.said]
    env: {HELLO_FROM_MANIFEST: "yes"}
  hello-on-said:
    entry_point: on_said
    trigger: event
    subscribes: [hello.said]
    retry: {max_attempts: 5}
  hello-tick:
    entry_point: tick
    trigger: schedule
    schedule: "0 0 1 1 *"
"""

_MAIN = """\
import json
import os
import pathlib

import functions_framework

ENV = ("SWITCHYARD_ENV", "GOOGLE_CLOUD_PROJECT", "PUBSUB_EMULATOR_HOST",
       "FIRESTORE_EMULATOR_HOST", "SWITCHYARD_DEPLOYMENT", "SWITCHYARD_LOCAL_DIR",
       "DATABASE_URL", "SERVICE_URLS", "BOOTSTRAP_ADMIN_EMAIL", "BOOTSTRAP_ADMIN_PASSWORD",
       "PYTHONPATH", "PYTHONUNBUFFERED", "HELLO_FROM_MANIFEST")


def record(kind, **fields):
    path = pathlib.Path(os.environ["SWITCHYARD_LOCAL_DIR"]) / "records.jsonl"
    with path.open("a") as f:
        f.write(json.dumps({"kind": kind, **fields}) + "\\n")


@functions_framework.http
def api(request):
    if request.path == "/api/hello/health":
        return {"status": "ok"}
    return {"env": {k: os.environ.get(k) for k in ENV}}


@functions_framework.http
def on_said(request):
    if request.method == "GET":
        return {"status": "ok"}
    attributes = request.get_json()["message"].get("attributes", {})
    record("event", path=request.path, attributes=attributes)
    if attributes.get("fail"):
        return ("failing on purpose", 500)
    return ("", 204)


@functions_framework.http
def tick(request):
    if request.method == "GET":
        return {"status": "ok"}
    record("tick", path=request.path, headers=dict(request.headers),
           body=request.get_data(as_text=True))
    return {"ticked": True}
"""

_MIGRATE = """\
import os
import pathlib

local = pathlib.Path(os.environ["SWITCHYARD_LOCAL_DIR"])
local.mkdir(parents=True, exist_ok=True)
(local / "migrated").write_text(os.environ.get("DATABASE_URL", ""))
print("migrated")
"""

_AUTH = """\
import os
import pathlib
import sys

if __name__ == "__main__":
    assert sys.argv[1:] == ["keygen-local"], sys.argv
    (pathlib.Path(os.environ["SWITCHYARD_LOCAL_DIR"]) / "keys").write_text("k")
    print("keys made")
"""


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    """A repository with one context (http + event + schedule) and stand-in platform tools."""
    repo = tmp_path / "repo"
    files = {
        "functions/__init__.py": "",
        "functions/hello/__init__.py": "",
        "functions/hello/function.yaml": _MANIFEST,
        "functions/hello/main.py": _MAIN,
        "shared/__init__.py": "",
        "shared/migrate.py": _MIGRATE,
        "shared/auth.py": _AUTH,
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text))
    return repo


def _records(local: Path, kind: str) -> list[dict]:
    path = local / "records.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["kind"] == kind]


def _tiny_stack(repo: Path, local: Path, log_dir: Path, **kwargs: object) -> Stack:
    shutil.rmtree(log_dir, ignore_errors=True)
    ports = Ports(free_port(), free_port(), free_port(), free_port_block(3))
    return Stack(
        root=repo,
        project="tiny-stack",
        ports=ports,
        local_dir=local,
        backoff=(1, 2),
        log_dir=log_dir,
        echo=False,
        persist_firestore=False,
        **kwargs,
    )


def test_stack_runs_every_deployment_and_stops_leaving_nothing(
    tiny_repo: Path, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    s = _tiny_stack(tiny_repo, local, OUTPUT / "stack-tiny", database_url="sqlite:///x.db")
    s.start()
    print(f"tiny stack healthy in {s.timings['total']:.1f} s: {s.timings}")
    try:
        pgids = [c.pid for c in s.children.values()] + [s.pubsub.child.pid, s.firestore.child.pid]
        ports = [*s.port_of.values(), s.ports.pubsub, s.ports.firestore]
        assert set(s.children) == {"hello-api", "hello-on-said", "hello-tick"}
        assert s.health == {"hello-api": 200, "hello-on-said": 200, "hello-tick": 200}
        # migrations and keys came before the functions
        assert (local / "migrated").read_text() == "sqlite:///x.db"
        assert (local / "keys").exists()
        table = s.table()
        for name in s.children:
            assert name in table and str(s.port_of[name]) in table

        # each process gets the environment of a deployment
        env = requests.get(s.url_of("hello-api") + "/api/hello", timeout=5).json()["env"]
        assert env["SWITCHYARD_ENV"] == "local"
        assert env["SWITCHYARD_DEPLOYMENT"] == "hello-api"
        assert env["GOOGLE_CLOUD_PROJECT"] == "tiny-stack"
        assert env["PUBSUB_EMULATOR_HOST"] == s.pubsub.host
        assert env["FIRESTORE_EMULATOR_HOST"] == s.firestore.host
        assert env["SWITCHYARD_LOCAL_DIR"] == str(local)
        assert env["DATABASE_URL"] == "sqlite:///x.db"
        assert json.loads(env["SERVICE_URLS"]) == {
            n: f"http://127.0.0.1:{p}" for n, p in s.port_of.items()
        }
        assert env["BOOTSTRAP_ADMIN_EMAIL"] == s.admin_email
        assert env["PYTHONPATH"] == str(tiny_repo) and env["PYTHONUNBUFFERED"] == "1"
        assert env["HELLO_FROM_MANIFEST"] == "yes"

        # an event reaches its deployment through the push subscription, topic in the path
        from google.cloud import pubsub_v1

        os.environ.update(s.env())
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(s.project, "hello.said")
        publisher.publish(topic, b"{}", n="1").result(timeout=10)
        event = _wait_for(
            lambda: [r for r in _records(local, "event") if r["attributes"].get("n") == "1"],
            10,
            "the pushed event",
        )
        assert event[0]["path"] == "/projects/tiny-stack/topics/hello.said"

        # a failing event is retried with the short backoff, then dead-lettered
        publisher.publish(topic, b"{}", fail="1", n="2").result(timeout=10)
        subscriber = pubsub_v1.SubscriberClient()
        keep = subscriber.subscription_path(s.project, dead_letter_subscription("hello.said"))
        dead = _wait_for(
            lambda: (
                subscriber.pull(
                    request={"subscription": keep, "max_messages": 10}, timeout=5
                ).received_messages
            ),
            40,
            "the dead letter",
        )
        assert dead[0].message.attributes["n"] == "2"
        tries = [r for r in _records(local, "event") if r["attributes"].get("n") == "2"]
        assert len(tries) == 5  # max_delivery_attempts of the manifest's retry

        # the scheduler's "run now" reaches the schedule deployment as Cloud Scheduler would
        assert s.scheduler is not None
        assert s.scheduler.run("hello-tick").last_status == "200"
        tick = _records(local, "tick")[-1]
        assert tick["path"] == "/" and tick["body"] == ""
        assert tick["headers"]["X-Cloudscheduler-Jobname"] == "hello-tick"

        # one deployment can be taken down and brought back
        s.stop_deployment("hello-api")
        assert not is_listening(s.port_of["hello-api"])
        s.start_deployment("hello-api")
        assert requests.get(s.url_of("hello-api") + "/api/hello/health", timeout=5).ok
        pgids.append(s.children["hello-api"].pid)

        # a child that dies is reported loudly; the others keep running
        os.killpg(s.pid_of("hello-tick"), signal.SIGKILL)
        _wait_for(lambda: "hello-tick exited unexpectedly" in s.logs(), 10, "the death report")
        assert requests.get(s.url_of("hello-on-said") + "/health", timeout=5).ok
    finally:
        s.stop()
    for pgid in pgids:
        assert not group_alive(pgid), f"process group {pgid} outlived the stack"
    for port in ports:
        assert not is_listening(port), f"port {port} still open after stop"
    assert not (local / "run" / "stack.json").exists()


def test_a_failing_deployment_is_reported_with_its_last_lines(
    tiny_repo: Path, tmp_path: Path
) -> None:
    main = tiny_repo / "functions" / "hello" / "main.py"
    main.write_text(main.read_text() + "\nraise RuntimeError('broken on purpose')\n")
    s = _tiny_stack(tiny_repo, tmp_path / "local", OUTPUT / "stack-broken", scheduler=False)
    with pytest.raises(LocalStackError) as err:
        s.start()
    assert "did not become healthy" in str(err.value)
    assert "broken on purpose" in str(err.value)
    assert not is_listening(s.ports.pubsub) and not is_listening(s.ports.firestore)


def test_a_killed_supervisor_leaves_children_the_next_start_stops(tmp_path: Path) -> None:
    local, pubsub, firestore = tmp_path / "local", free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "emulators",
        "--no-functions",
        "--no-persist",
        "--local-dir",
        str(local),
        "--pubsub-port",
        str(pubsub),
        "--firestore-port",
        str(firestore),
    ]
    sup = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert sup.stdout is not None
    seen = []
    for line in sup.stdout:
        seen.append(line)
        if "Project:" in line:  # the summary: emulators up and wired
            break
    assert "Project:" in "".join(seen), "".join(seen)
    sup.kill()  # no chance to clean up: the emulators are orphans now
    sup.wait()
    sup.stdout.close()
    assert is_listening(pubsub) and is_listening(firestore)
    again = Stack(
        ports=Ports(pubsub, firestore, free_port(), free_port_block(20)),
        local_dir=local,
        functions=False,
        echo=False,
        persist_firestore=False,
    )
    try:
        again.start()  # finds the leftovers, stops them, then starts its own
        assert "left over by a previous run" in "\n".join(again.hub.tail("stack", 50))
    finally:
        again.stop()
    assert not is_listening(pubsub) and not is_listening(firestore)


# -- the whole stack of this repository (session fixture) ------------------------------------


def test_the_stack_serves_every_deployment(stack: Stack) -> None:
    print(
        f"stack healthy in {stack.timings['total']:.1f} s: "
        + ", ".join(f"{k} {v:.1f}" for k, v in stack.timings.items())
    )
    for name, dep in stack.catalog.deployments.items():
        r = requests.get(stack.url_of(name) + dep.health_path, timeout=5)
        assert r.status_code == 200, f"{name}: {r.status_code} {r.text[:200]}"
    assert requests.get(stack.gateway_url + "/health", timeout=5).status_code == 200
    assert requests.get(stack.gateway_url + "/api/health", timeout=10).status_code == 200


def test_a_deployment_taken_down_shows_in_the_gateway_health(stack: Stack) -> None:
    name = "users-api"
    stack.stop_deployment(name)
    try:
        assert not is_listening(stack.port_of[name])
        # anonymous callers share one check for HEALTH_CACHE_S (3 s): the next one sees it
        wait_for(
            lambda: requests.get(stack.gateway_url + "/api/health", timeout=10).status_code == 503,
            timeout=15,
        )
    finally:
        stack.start_deployment(name)
    wait_for(
        lambda: requests.get(stack.gateway_url + "/api/health", timeout=10).status_code == 200,
        timeout=15,
    )
