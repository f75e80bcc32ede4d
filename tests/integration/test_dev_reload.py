"""Live reload of `make dev` (emulators._reload): a saved file restarts only the deployments it
concerns, each healthy before the old process stops; a syntax error or an import error keeps
the old process serving; a change in shared/ restarts all; a manifest change re-wires.

Real supervisor, emulators, watchfiles and functions-framework processes, on the tiny
repository of test_local_stack.py plus a second context `echo` that imports shared/.
"""

from __future__ import annotations

import shutil
import textwrap
import uuid
from collections.abc import Iterator

import pytest
import requests

from emulators import Ports, Stack, free_port, free_port_block
from emulators._wiring import clients
from tests.integration.test_dev_supervisor import health, write_tiny_repo
from tests.integration.test_local_stack import OUTPUT
from tests.waiting import wait_for

ECHO_MANIFEST = """\
context: echo
description: A second context, to see that a change in one restarts only that one.
deployments:
  echo-api:
    entry_point: api
    trigger: http
    routes: [/api/echo]
"""

ECHO_MAIN = """\
import functions_framework

from shared import version

MARK = "{mark}"


@functions_framework.http
def api(request):
    if request.path == "/api/echo/health":
        return {{"status": "ok"}}
    return {{"mark": MARK, "shared": version.VERSION}}
"""

EVENT_DEPLOYMENT = """\
  echo-on-said:
    entry_point: on_said
    trigger: event
    subscribes: [hello.said]
"""

EVENT_HANDLER = """\


@functions_framework.http
def on_said(request):
    if request.method == "GET":
        return {"status": "ok"}
    return ("", 204)
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("reload")
    repo = write_tiny_repo(
        base / "repo",
        {
            "functions/echo/__init__.py": "",
            "functions/echo/function.yaml": ECHO_MANIFEST,
            "functions/echo/main.py": ECHO_MAIN.format(mark="v1"),
            "shared/version.py": "VERSION = 1\n",
        },
    )
    log_dir = OUTPUT / "stack-reload"
    shutil.rmtree(log_dir, ignore_errors=True)
    s = Stack(
        root=repo,
        project="tiny-reload",
        ports=Ports(free_port(), free_port(), free_port(), free_port_block(8)),
        local_dir=base / "local",
        log_dir=log_dir,
        echo=False,
        persist_firestore=False,
        scheduler=False,
        reload=True,
        ready_timeout_s=180.0,  # a bound, not a performance claim (a loaded 2-core machine)
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _echo(s: Stack) -> dict:
    return requests.get(s.url_of("echo-api") + "/api/echo", timeout=30).json()


def _save(s: Stack, rel: str, text: str) -> int:
    """Write a file of the stack's repository; the reloader's batch count before it."""
    assert s.reloader is not None
    before = s.reloader.reloads
    (s.root / rel).write_text(textwrap.dedent(text))
    return before


def _applied(s: Stack, before: int) -> dict:
    assert s.reloader is not None
    wait_for(lambda: s.reloader.reloads > before, timeout=60)
    return s.reloader.last


def _pids(s: Stack) -> dict[str, int | None]:
    return {n: s.pid_of(n) for n in s.children}


def test_an_edit_reloads_only_its_context(dev: Stack) -> None:
    assert _echo(dev) == {"mark": "v1", "shared": 1}
    pids = _pids(dev)
    last = _applied(dev, _save(dev, "functions/echo/main.py", ECHO_MAIN.format(mark="v2")))
    assert last["reloaded"] == ["echo-api"] and not last["failed"]
    assert _echo(dev) == {"mark": "v2", "shared": 1}
    after = _pids(dev)
    assert after["echo-api"] != pids["echo-api"]
    assert {n: p for n, p in after.items() if n != "echo-api"} == {
        n: p for n, p in pids.items() if n != "echo-api"
    }
    assert "reloaded echo-api in" in dev.logs()


def test_a_syntax_error_shows_the_traceback_and_keeps_the_old_process(dev: Stack) -> None:
    before_mark = _echo(dev)["mark"]
    pid = dev.pid_of("echo-api")
    broken = ECHO_MAIN.format(mark="v3").replace("def api(request):", "def api(request)")
    last = _applied(dev, _save(dev, "functions/echo/main.py", broken))
    assert last["blocked"] == ["echo-api"] and not last["reloaded"]
    (text,) = last["syntax_errors"].values()
    assert "SyntaxError" in text and "def api(request)" in text
    log = dev.logs()
    assert "functions/echo/main.py does not compile" in log and "SyntaxError" in log
    assert dev.pid_of("echo-api") == pid and _echo(dev)["mark"] == before_mark
    # fixed: served
    _applied(dev, _save(dev, "functions/echo/main.py", ECHO_MAIN.format(mark="v4")))
    assert _echo(dev)["mark"] == "v4"


def test_an_import_error_keeps_the_old_process_serving(dev: Stack) -> None:
    pid = dev.pid_of("echo-api")
    failing = ECHO_MAIN.format(mark="v5") + "\nraise RuntimeError('broken at import')\n"
    last = _applied(dev, _save(dev, "functions/echo/main.py", failing))
    assert last["failed"] == ["echo-api"]
    log = dev.logs()
    assert "reload of echo-api failed: the new process exited" in log
    assert "broken at import" in log  # its traceback
    assert dev.pid_of("echo-api") == pid and _echo(dev)["mark"] == "v4"
    _applied(dev, _save(dev, "functions/echo/main.py", ECHO_MAIN.format(mark="v6")))
    assert _echo(dev)["mark"] == "v6"


def test_a_change_in_shared_restarts_every_deployment(dev: Stack) -> None:
    pids = _pids(dev)
    last = _applied(dev, _save(dev, "shared/version.py", "VERSION = 2\n"))
    assert set(last["reloaded"]) == set(pids)
    after = _pids(dev)
    assert all(after[n] != pids[n] for n in pids)
    assert _echo(dev) == {"mark": "v6", "shared": 2}
    assert all(health(dev, n) == 200 for n in after)


def test_a_manifest_change_rewires_and_starts_the_new_deployment(dev: Stack) -> None:
    # the handler first: a manifest naming a missing entry point does not load
    main = ECHO_MAIN.format(mark="v7") + EVENT_HANDLER
    _applied(dev, _save(dev, "functions/echo/main.py", main))
    manifest = ECHO_MANIFEST + EVENT_DEPLOYMENT
    last = _applied(dev, _save(dev, "functions/echo/function.yaml", manifest))
    assert "echo-on-said" in last["reloaded"], last
    assert "echo-on-said" in dev.deployments and health(dev, "echo-on-said") == 200
    _, sub = clients(dev.pubsub.host)
    path = sub.subscription_path(dev.project, "echo-on-said--hello.said")
    assert sub.get_subscription(request={"subscription": path}).topic.endswith("/hello.said")
    # and the push bridge pushes it: an event reaches the new deployment
    pub, _ = clients(dev.pubsub.host)
    event_id = str(uuid.uuid4())
    pub.publish(
        request={
            "topic": pub.topic_path(dev.project, "hello.said"),
            "messages": [{"data": b"{}", "attributes": {"event_id": event_id}}],
        }
    )
    assert dev.bridge is not None
    wait_for(lambda: dev.bridge.acked("echo-on-said--hello.said", event_id) >= 1, timeout=60)
    assert _echo(dev)["mark"] == "v7"
