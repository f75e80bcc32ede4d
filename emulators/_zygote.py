"""A fork server for deployment processes (decision 0051): `python emulators/_zygote.py FD`.

Every deployment process of `make dev` imports the same third-party stack (flask, werkzeug,
functions_framework, gunicorn, pydantic, sqlalchemy, jwt, cryptography): ~0.6 s of CPU per
start, 27 times. The zygote imports them once and forks one child per start instead; a child
imports only the deployment's own code (`shared`, `functions`: never preloaded, so a reload
sees new code).

The zygote runs as a script (it imports nothing of `emulators`, `shared` or `functions`), with
no threads, and nothing that is not fork-safe: grpc and google-cloud are imported (modules
only: no client, channel or thread exists before a fork; checked after the preload). It talks to the
supervisor over one Unix SOCK_SEQPACKET socket (FD), one JSON message per packet:

  zygote -> supervisor  {"ready": pid, "preload_s": s}            once, after the preload
  supervisor -> zygote  {"argv", "env", "cwd"} + fds [out, listen...]   a fork request
  zygote -> supervisor  {"forked": pid} + fds [pidfd]  or  {"error": text}
  zygote -> supervisor  {"exit": pid, "code": n}                  when it reaps a child

A child: its own session, `cwd`, `env` (the environ replaced), stdin from /dev/null, stdout
and stderr on `out` (a pipe the supervisor's pump reads), the listening sockets on fds 3, 4, ...
with LISTEN_FDS/LISTEN_PID (as `_serve.py` does), then functions-framework's CLI in-process
with `argv` (no exec: that would throw the preload away). End of file on the socket (the
supervisor stopped or died) makes the zygote stop its children's groups and exit.

The supervisor side is `Zygote` (started by the stack) and `Forked`, a Popen-like handle
`emulators._procs.Child` uses for a forked child. `SWITCHYARD_ZYGOTE=0` turns it off.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

MAX_PACKET = 1 << 20
MAX_FDS = 16
READY_TIMEOUT_S = 30.0  # the preload under a loaded machine; then the stack uses Popen
REPLY_TIMEOUT_S = 10.0
PRELOAD = (
    "flask",
    "werkzeug",
    "werkzeug.serving",
    "click",
    "functions_framework",
    "functions_framework._cli",
    "functions_framework._http",
    "functions_framework._http.gunicorn",
    "gunicorn.app.base",
    "gunicorn.arbiter",
    "gunicorn.workers.gthread",
    "gunicorn.glogging",
    "pydantic",
    "pydantic.main",
    "pydantic.fields",
    "pydantic.json_schema",
    "annotated_types",
    "zoneinfo",
    "yaml",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.engine",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "jwt",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "cryptography.hazmat.primitives.serialization",
    "requests",
    # the gateway's event loop and its upstream client (decisions 0053, 0058)
    "anyio",
    "aiohttp",
    "starlette.applications",
    "starlette.routing",
    "starlette.requests",
    "starlette.responses",
    "a2wsgi",
    # the clients every health check and event path builds (decision 0051): importing them
    # starts no thread and initialises no gRPC core (that happens with a channel, in a child);
    # the zygote checks that it is still single-threaded, natively too, after the preload
    "grpc",
    "google.auth",
    "google.auth.transport.requests",
    "google.api_core.exceptions",
    "google.api_core.grpc_helpers",
    "google.protobuf",
    "proto",
    "google.cloud.pubsub_v1",
    "google.cloud.firestore",
    "opentelemetry.trace",
    "opentelemetry.context",
    "opentelemetry.sdk.trace",
)


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    """False when SWITCHYARD_ZYGOTE is 0/false/no/off (debugging: every start execs)."""
    return env.get("SWITCHYARD_ZYGOTE", "1").strip().lower() not in {"0", "false", "no", "off"}


class ZygoteError(Exception):
    """The zygote cannot fork (not ready, dead, or it refused): use Popen instead."""


# -- the zygote process ------------------------------------------------------------------------
def _send(sock: socket.socket, msg: dict[str, object], fds: Sequence[int] = ()) -> None:
    data = json.dumps(msg).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _preload() -> float:
    t = time.process_time()
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    return time.process_time() - t


def _serve(ctrl_fd: int) -> None:
    ctrl = socket.socket(fileno=ctrl_fd)
    preload_s = _preload()
    native = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if threading.active_count() != 1 or native != 1:  # forking a threaded process is not safe
        print(
            f"zygote: {threading.active_count()} threads ({native} native) after the preload",
            file=sys.stderr,
        )
        sys.exit(3)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when it stops
    children: set[int] = set()
    _send(ctrl, {"ready": os.getpid(), "preload_s": round(preload_s, 3)})
    while True:
        try:
            ready, _, _ = select.select([ctrl.fileno(), wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
        _reap(ctrl, children)
        if ctrl.fileno() not in ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, MAX_PACKET, MAX_FDS)
        except InterruptedError:
            continue
        except OSError:
            data, fds = b"", []
        if not data:  # the supervisor is gone: leave nothing behind
            _stop_children(children)
            return
        try:
            req = json.loads(data)
            pid = os.fork()
        except (ValueError, OSError) as e:
            for fd in fds:
                os.close(fd)
            _send(ctrl, {"error": f"{type(e).__name__}: {e}"})
            continue
        if pid == 0:
            _child(req, fds, ctrl)  # never returns
        for fd in fds:
            os.close(fd)
        children.add(pid)
        pidfd = os.pidfd_open(pid)  # not reaped yet: this is that process
        _send(ctrl, {"forked": pid}, [pidfd])
        os.close(pidfd)


def _reap(ctrl: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        with contextlib.suppress(OSError):
            _send(ctrl, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _stop_children(children: set[int]) -> None:
    for pid in children:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
    end = time.monotonic() + 5
    while children and time.monotonic() < end:
        with contextlib.suppress(ChildProcessError):
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid:
                children.discard(pid)
                continue
        time.sleep(0.05)
    for pid in children:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def _child(req: dict[str, object], fds: list[int], ctrl: socket.socket) -> None:
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        ctrl.detach()  # its fd is closed below; the object must not close a reused number
        out, listen = fds[0], fds[1:]
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) for fd in listen]  # out of 3, 4, ...'s way
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, 1000)  # the zygote's own fds, the originals of `fds`
        for n, fd in enumerate(high):
            os.dup2(fd, 3 + n)  # inheritable
        os.closerange(3 + len(listen), 65536)  # as an exec that passes only these fds
        env = {str(k): str(v) for k, v in cast("dict[str, str]", req["env"]).items()}
        env["LISTEN_FDS"] = str(len(listen))
        env["LISTEN_PID"] = str(os.getpid())
        os.environ.clear()
        os.environ.update(env)
        os.chdir(str(req["cwd"]))
        argv = [str(a) for a in cast("list[str]", req["argv"])]
        # the sys.path the exec'd script would have: its directory, PYTHONPATH, site-packages
        extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        rest = [p for p in sys.path[1:] if p not in extra]
        sys.path[:] = [str(Path(argv[0]).resolve().parent), *extra, *rest]
        sys.argv = argv
        import importlib

        importlib.invalidate_caches()
        from functions_framework._cli import _cli

        _cli.main(args=argv[1:], prog_name=Path(argv[0]).name)
        code = 0
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - a child must never return into the zygote's loop
        import traceback

        with contextlib.suppress(BaseException):
            traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# -- the supervisor's side ---------------------------------------------------------------------
class Forked:
    """A child of the zygote, as `Child` sees a `subprocess.Popen`: pid, poll, wait, stdout.

    Its exit code comes from the zygote (its parent). If the zygote died, the exit is seen on
    the pidfd and the code read from /proc (a zombie's exit status), -1 when it is gone."""

    def __init__(self, zygote: Zygote, pid: int, pidfd: int, stdout: IO[bytes]) -> None:
        self.zygote = zygote
        self.pid = pid
        self.pidfd = pidfd
        self.stdout = stdout
        self.returncode: int | None = None
        self.exited = threading.Event()

    def _set(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self.exited.set()
            with contextlib.suppress(OSError):
                os.close(self.pidfd)

    def poll(self) -> int | None:
        if self.returncode is None and not self.zygote.alive:
            ready, _, _ = select.select([self.pidfd], [], [], 0)
            if ready and self.returncode is None:
                self._set(_zombie_code(self.pid))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = 0.05 if end is None else min(0.05, end - time.monotonic())
            if left <= 0:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            self.exited.wait(left)
        assert self.returncode is not None
        return self.returncode


def _zombie_code(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return os.waitstatus_to_exitcode(int(fields[-1]))  # field 52, exit_code
    except (OSError, ValueError, IndexError):
        return -1


class Zygote:
    """The zygote process and its control socket, owned by the stack."""

    def __init__(self, *, env: Mapping[str, str], cwd: Path, log: Callable[[str], None]) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.preload_s: float | None = None
        self.forks = 0
        self._ready = threading.Event()
        self._dead = threading.Event()
        self._lock = threading.Lock()  # one fork request at a time
        self._replies: list[tuple[dict[str, Any], list[int]]] = []
        self._reply = threading.Condition()
        self._children: dict[int, Forked] = {}
        self._early: dict[int, int] = {}  # exit reports that came before the fork's reply
        self._reader: threading.Thread | None = None
        self._stopping = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and not self._dead.is_set()

    def start(self) -> Zygote:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), str(theirs.fileno())],
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(theirs.fileno(),),
            )
        except OSError as e:
            ours.close()
            self._dead.set()
            self.log(f"!!! zygote: could not start ({e}); deployments start with Popen")
            return self
        finally:
            theirs.close()
        self.sock = ours
        self._reader = threading.Thread(target=self._read, name="zygote", daemon=True)
        self._reader.start()
        threading.Thread(target=self._pump, name="log-zygote", daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.log("zygote: " + raw.decode("utf-8", errors="replace").rstrip())
        self.proc.stdout.close()

    def _read(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, MAX_PACKET, MAX_FDS)
            except OSError:
                data, fds = b"", []
            if not data:
                break
            msg = json.loads(data)
            if "ready" in msg:
                self.preload_s = float(msg.get("preload_s", 0))
                self._ready.set()
            elif "exit" in msg:
                pid, code = int(msg["exit"]), int(msg["code"])
                with self._reply:
                    child = self._children.pop(pid, None)
                    if child is None:
                        self._early[pid] = code
                if child is not None:
                    child._set(code)
            else:
                with self._reply:
                    self._replies.append((msg, list(fds)))
                    self._reply.notify_all()
        self._dead.set()
        with self._reply:
            self._reply.notify_all()
        if not self._stopping:
            died = self.proc.poll() if self.proc else None
            self.log(
                f"!!! zygote (pid {self.proc.pid if self.proc else '?'}) died"
                + (f" with code {died}" if died is not None else "")
                + ": the next deployment starts use Popen (the running ones keep running)"
            )

    def fork(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        listen_fds: Sequence[int],
    ) -> Forked:
        """Fork a deployment process; raises ZygoteError when the zygote cannot."""
        if self.sock is None or not self.alive:
            raise ZygoteError("the zygote is not running")
        if not self._ready.is_set():
            end = time.monotonic() + READY_TIMEOUT_S
            while not self._ready.wait(0.1):
                if not self.alive or time.monotonic() > end:
                    raise ZygoteError("the zygote did not finish its preload")
        r, w = os.pipe()
        try:
            with self._lock:
                try:
                    _send(
                        self.sock,
                        {"argv": list(argv), "env": dict(env), "cwd": str(cwd)},
                        [w, *listen_fds],
                    )
                except OSError as e:
                    raise ZygoteError(f"the zygote does not answer: {e}") from e
                os.close(w)
                w = -1
                end = time.monotonic() + REPLY_TIMEOUT_S
                with self._reply:
                    while not self._replies:
                        if not self.alive or time.monotonic() > end:
                            raise ZygoteError("the zygote did not answer a fork request")
                        self._reply.wait(0.1)
                    msg, fds = self._replies.pop(0)
                    if "forked" not in msg or not fds:
                        for fd in fds:
                            os.close(fd)
                        raise ZygoteError(f"the zygote could not fork: {msg.get('error')}")
                    pid = int(msg["forked"])
                    child = Forked(self, pid, fds[0], os.fdopen(r, "rb"))
                    r = -1
                    if pid in self._early:
                        child._set(self._early.pop(pid))
                    else:
                        self._children[pid] = child
                    self.forks += 1
                    return child
        finally:
            for fd in (r, w):
                if fd >= 0:
                    os.close(fd)

    def stop(self, timeout: float = 7.0) -> None:
        """Close the control socket: the zygote stops what is left of its children and exits."""
        self._stopping = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.log("!!! zygote did not exit: killed (SIGKILL), with what it forked")
            with self._reply:
                left = [*self._children, self.proc.pid]
            for pgid in left:  # its children are session leaders: their own groups
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)
        if self._reader is not None:
            self._reader.join(timeout=2)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
