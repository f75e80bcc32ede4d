"""The fork server of `make dev` (emulators._zygote, decision 0051): deployment processes forked
from a process that preloaded their third-party imports serve as exec'd ones do; their exits
(with the code) are seen and crash-restarted; their output reaches the hub; stop leaves no
process; a dead zygote is reported and the next start uses Popen.

Real supervisor, zygote, emulators and functions-framework processes on the tiny repository
of test_local_stack.py (its main.py prints a line when imported).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emulators import Stack, _runfile, free_port, is_listening
from emulators._ports import port_is_free
from emulators._procs import group_alive
from emulators._zygote import Forked, enabled
from tests.integration.test_dev_supervisor import health, write_tiny_repo
from tests.integration.test_local_stack import _MAIN, OUTPUT, ROOT, _tiny_stack
from tests.waiting import wait_for

BACKOFF = (0.5, 1.0, 1.5, 2.0)
MAIN = _MAIN.replace(
    "import functions_framework\n",
    "import functions_framework\n\nprint('main.py imported in', os.getpid(), flush=True)\n",
)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture(scope="module")
def zs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("zygote")
    repo = write_tiny_repo(base / "repo", {"functions/hello/main.py": MAIN})
    s = _tiny_stack(
        repo,
        base / "local",
        OUTPUT / "stack-zygote",
        scheduler=False,
        restart_backoff_s=BACKOFF,
        ready_timeout_s=180.0,  # a bound, not a performance claim (a loaded 2-core machine)
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_the_switch_reads_the_environment() -> None:
    assert enabled({}) and enabled({"SWITCHYARD_ZYGOTE": "1"})
    for off in ("0", "false", "No", " off "):
        assert not enabled({"SWITCHYARD_ZYGOTE": off})


def test_deployments_are_forked_by_the_zygote_and_serve(zs: Stack) -> None:
    assert zs.zygote is not None and zs.zygote.alive and zs.zygote.proc is not None
    assert zs.zygote.forks >= 3
    for name, child in zs.children.items():
        assert isinstance(child.proc, Forked), name
        assert child.pid is not None and _ppid(child.pid) == zs.zygote.proc.pid
        assert os.getpgid(child.pid) == child.pid  # its own session and group
        assert health(zs, name) == 200
    env = requests.get(zs.url_of("hello-api") + "/api/hello", timeout=10).json()["env"]
    assert env["SWITCHYARD_DEPLOYMENT"] == "hello-api"  # the environ was replaced
    assert env["HELLO_FROM_MANIFEST"] == "yes"
    assert env["PYTHONPATH"] == str(zs.root)
    # stdout of the forked process reaches the hub, under its name
    pid = zs.pid_of("hello-api")
    wait_for(lambda: f"main.py imported in {pid}" in "\n".join(zs.hub.tail("hello-api")), 10)


def test_the_run_file_names_forked_deployments_by_start_time_and_the_zygote(zs: Stack) -> None:
    entries = {e["name"]: e for e in zs.process_groups()}
    assert zs.zygote is not None and zs.zygote.proc is not None
    assert entries["zygote"]["pgid"] == zs.zygote.proc.pid
    assert _runfile.group_matches(zs.zygote.proc.pid, entries["zygote"]["markers"])
    for name in zs.children:
        pid = zs.pid_of(name)
        markers = entries[name]["markers"]
        assert _runfile.start_marker(pid) in markers
        # its command line is the zygote's, not `--port N`: only the start time matches it
        assert not _runfile.group_matches(pid, markers[:1])
        assert _runfile.group_matches(pid, markers)


def test_a_start_marker_matches_that_process_only(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        marker = _runfile.start_marker(proc.pid)
        assert marker is not None and marker.startswith("start:")
        assert not _runfile.group_matches(proc.pid, ["start:1"])  # another process's start
        assert _runfile.group_matches(proc.pid, [marker])
        run = tmp_path / "stack.json"
        dead = subprocess.Popen(["true"])
        dead.wait()  # the run file's owner: a pid that is gone
        _runfile.write(run, [{"name": "x", "pgid": proc.pid, "markers": [marker]}], dead.pid)
        assert _runfile.reap(run) == 1
        assert proc.wait(10) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


STUBBORN = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a JVM busy in its shutdown hooks
heap = [bytearray(1 << 20) for _ in range(256)]  # a JVM's heap: its exit takes a moment
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
time.sleep(60)
"""


def test_reap_returns_once_a_group_that_ignores_sigterm_is_killed_and_its_port_free(
    tmp_path: Path,
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", STUBBORN, str(port)],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        run = tmp_path / "stack.json"
        dead = subprocess.Popen(["true"])
        dead.wait()
        marker = _runfile.start_marker(proc.pid)
        entry = {"name": "firestore", "pgid": proc.pid, "markers": [marker]}
        _runfile.write(run, [entry], dead.pid)
        assert _runfile.reap(run, term_s=0.3) == 1
        assert not group_alive(proc.pid)  # gone (a zombie until we wait) when reap returns
        assert port_is_free(port)  # so the next start can bind it at once
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_killed_forked_deployment_is_seen_with_its_code_and_restarted(zs: Stack) -> None:
    name = "hello-tick"
    before = zs.pid_of(name)
    assert before is not None
    os.killpg(before, signal.SIGKILL)
    wait_for(lambda: f"{name} exited unexpectedly with code -9" in zs.logs(), 15)
    wait_for(lambda: zs.pid_of(name) not in (None, before) and health(zs, name) == 200, 60)
    assert isinstance(zs.children[name].proc, Forked)  # forked again
    assert not group_alive(before)


def test_stopping_a_forked_deployment_and_starting_it_again(zs: Stack) -> None:
    name = "hello-api"
    old = zs.pid_of(name)
    zs.stop_deployment(name)
    assert old is not None and not group_alive(old)
    assert zs.children[name].returncode == 0  # gunicorn's clean exit on SIGTERM
    zs.start_deployment(name)
    assert isinstance(zs.children[name].proc, Forked)
    assert health(zs, name) == 200


def test_a_dead_zygote_is_reported_and_the_next_start_uses_popen(zs: Stack) -> None:
    assert zs.zygote is not None and zs.zygote.proc is not None
    os.kill(zs.zygote.proc.pid, signal.SIGKILL)
    wait_for(lambda: "zygote" in zs.logs() and "died" in zs.logs(), 10)
    assert not zs.zygote.alive
    # what it forked keeps serving; a crash of it is still seen and restarted, now with Popen
    name = "hello-on-said"
    assert health(zs, name) == 200
    before = zs.pid_of(name)
    assert before is not None
    os.killpg(before, signal.SIGKILL)
    wait_for(lambda: f"{name} exited unexpectedly with code" in zs.logs(), 15)
    wait_for(lambda: zs.pid_of(name) not in (None, before) and health(zs, name) == 200, 60)
    assert isinstance(zs.children[name].proc, subprocess.Popen)
    assert not group_alive(before)


def test_stop_leaves_no_process(zs: Stack) -> None:
    assert zs.zygote is not None and zs.zygote.proc is not None
    pgids = [c.pid for c in zs.children.values() if c.pid] + [zs.zygote.proc.pid]
    zs.stop()
    for pgid in pgids:
        assert not group_alive(pgid), f"process group {pgid} outlived the stack"


SUPERVISOR = """
import os, socket, sys, time
from pathlib import Path
from emulators._stack import _functions_framework
from emulators._zygote import Zygote

src, port = Path(sys.argv[1]), int(sys.argv[2])
z = Zygote(env=dict(os.environ), cwd=src.parent, log=print).start()
sock = socket.socket()
sock.bind(("127.0.0.1", port))
sock.listen(64)
argv = [*_functions_framework(), "--source", str(src), "--target", "api", "--port", str(port)]
child = z.fork(argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, src.parent, [sock.fileno()])
print("pids", z.proc.pid, child.pid, flush=True)
time.sleep(600)
"""


def test_the_zygote_stops_its_children_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    src = tmp_path / "main.py"
    src.write_text(
        "import functions_framework\n\n"
        "@functions_framework.http\ndef api(request):\n    return {'ok': True}\n"
    )
    port = free_port()
    sup = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(src), str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sup.stdout is not None
        line = sup.stdout.readline()
        assert line.startswith("pids"), line
        zygote, child = (int(x) for x in line.split()[1:])
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=60).json() == {"ok": True}
        sup.kill()  # no chance to clean up: the zygote sees end of file on its socket
        sup.wait()
        wait_for(lambda: not group_alive(child) and not group_alive(zygote), 15)
        assert not is_listening(port)
    finally:
        sup.kill()
        sup.wait()
        if sup.stdout is not None:
            sup.stdout.close()
