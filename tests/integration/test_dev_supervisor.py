"""The supervisor of `make dev` keeps deployments up: crash restart with backoff (as Cloud Run
starts a new instance), and a stop of the restarts after five crashes in a minute.

Runs the real supervisor, emulators and functions-framework processes on the tiny repository of
test_local_stack.py (one context: an http, an event and a schedule deployment).
"""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emulators import Stack, is_listening
from emulators._procs import group_alive
from tests.integration.test_local_stack import (
    _AUTH,
    _MAIN,
    _MANIFEST,
    _MIGRATE,
    OUTPUT,
    _tiny_stack,
)
from tests.waiting import wait_for

BACKOFF = (0.5, 1.0, 1.5, 2.0)  # shorter than make dev's 1, 2, 4, 8 s; the same policy


def write_tiny_repo(repo: Path, extra: dict[str, str] | None = None) -> Path:
    """test_local_stack.py's tiny repository (context `hello`), plus `extra` files."""
    files = {
        "functions/__init__.py": "",
        "functions/hello/__init__.py": "",
        "functions/hello/function.yaml": _MANIFEST,
        "functions/hello/main.py": _MAIN,
        "shared/__init__.py": "",
        "shared/migrate.py": _MIGRATE,
        "shared/auth.py": _AUTH,
        **(extra or {}),
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text))
    return repo


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("supervisor")
    repo = write_tiny_repo(base / "repo")
    s = _tiny_stack(
        repo,
        base / "local",
        OUTPUT / "stack-supervisor",
        scheduler=False,
        restart_backoff_s=BACKOFF,
        ready_timeout_s=180.0,  # a bound, not a performance claim (a loaded 2-core machine)
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


def health(s: Stack, name: str) -> int | None:
    dep = s.catalog.deployments[name]
    try:
        return requests.get(s.url_of(name) + dep.health_path, timeout=5).status_code
    except requests.RequestException:
        return None


def test_a_killed_deployment_is_restarted_and_healthy_again(tiny: Stack) -> None:
    name = "hello-api"
    old = tiny.pid_of(name)
    assert old is not None and health(tiny, name) == 200
    os.killpg(old, signal.SIGKILL)
    # a request made while it is down waits in the kept socket and is served by the new process
    r = requests.get(tiny.url_of(name) + "/api/hello", timeout=60)
    assert r.status_code == 200 and r.json()["env"]["SWITCHYARD_DEPLOYMENT"] == name
    new = wait_for(lambda: tiny.pid_of(name), timeout=60)
    assert new != old and not group_alive(old)
    wait_for(lambda: health(tiny, name) == 200, timeout=60)
    log = wait_for(lambda: "hello-api is healthy again" in tiny.logs() and tiny.logs(), 60)
    assert f"hello-api exited unexpectedly with code {-signal.SIGKILL}" in log
    assert "hello-api: restarting it in 0.5 s (crash 1 in 60 s" in log
    assert "hello-api restarted after a crash" in log
    assert tiny.health[name] == 200
    # the others never stopped
    assert health(tiny, "hello-on-said") == 200


def test_five_crashes_in_a_minute_stop_the_restarts(tiny: Stack) -> None:
    name = "hello-on-said"
    port = tiny.port_of[name]
    for crash in range(1, 6):
        pid = wait_for(lambda: tiny.pid_of(name), timeout=60)
        wait_for(lambda: health(tiny, name) == 200, timeout=60)
        os.kill(pid, signal.SIGKILL)  # only the gunicorn master: the supervisor reaps the rest
        wait_for(lambda pid=pid: tiny.pid_of(name) != pid, timeout=30)
        if crash < 5:
            wait_for(lambda c=crash: f"(crash {c} in 60 s" in tiny.logs(), timeout=30)
    log = wait_for(lambda: "NOT restarting it" in tiny.logs() and tiny.logs(), timeout=30)
    assert f"{name}: crashed 5 times in 60 s: NOT restarting it" in log
    assert "restarting it in 2 s (crash 4 in 60 s" in log  # the backoff grew: 0.5, 1, 1.5, 2
    assert name in tiny.gave_up
    # given up: its port is closed (callers are refused, not left waiting) and it stays down
    wait_for(lambda: not is_listening(port), timeout=10)
    assert tiny.pid_of(name) is None
    # starting it by hand clears the count
    tiny.start_deployment(name)
    assert health(tiny, name) == 200 and name not in tiny.gave_up
