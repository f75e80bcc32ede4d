"""One supervised child process: its own process group, its output pumped into a LogHub.

Every child starts in a new session (so in its own process group): wrappers such as `gcloud`
spawn the real server (Java) as a grandchild, and only signalling the whole group stops both.
`stop` sends SIGTERM to the group, waits, then SIGKILL, and returns once the group is empty.
A deployment's child can be forked by the zygote instead of exec'd (`zygote`, `fork_argv`,
decision 0051): the same interface, its exit code reported by the zygote; a zygote that cannot
fork is said loudly and the child starts with Popen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from emulators._logs import LogHub
from emulators._zygote import Forked, Zygote, ZygoteError


def group_alive(pgid: int) -> bool:
    """True while any process (not a zombie) is left in process group `pgid`.

    Zombies do not count: an orphan (a zygote's child once the zygote died, a wrapper's
    grandchild) is reaped by init, and where init does not reap (some containers) it would
    otherwise look alive forever."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _live_member(pgid)


def _live_member(pgid: int) -> bool:
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return True
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Child:
    """A named process group whose output lines go to `hub` under `name`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        hub: LogHub,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        console: Callable[[str], bool] | None = None,
        pass_fds: Sequence[int] = (),
        zygote: Zygote | None = None,
        fork_argv: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.hub = hub
        self._console = console
        self.pass_fds = tuple(pass_fds)
        self.zygote = zygote  # forks `fork_argv` (functions-framework's) with `pass_fds`
        self.fork_argv = list(fork_argv) if fork_argv is not None else None
        self.proc: subprocess.Popen[bytes] | Forked | None = None
        self.stopping = False  # set before an intended stop: its exit is not a failure
        self.reported = False  # its unexpected exit has been reported
        self._pump: threading.Thread | None = None
        self.started_at = 0.0  # time.monotonic() of the last start

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def start(self) -> Child:
        self.started_at = time.monotonic()
        self.stopping = False
        self.reported = False
        self.proc = self._fork()
        if self.proc is not None:
            self._pump = threading.Thread(target=self._read, name=f"log-{self.name}", daemon=True)
            self._pump.start()
            return self
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=self.pass_fds,
        )
        self._pump = threading.Thread(target=self._read, name=f"log-{self.name}", daemon=True)
        self._pump.start()
        return self

    def _fork(self) -> Forked | None:
        """The process forked by the zygote; None when there is none or it cannot fork."""
        if self.zygote is None or self.fork_argv is None or not self.zygote.alive:
            return None
        try:
            return self.zygote.fork(
                self.fork_argv,
                self.env if self.env is not None else os.environ,
                self.cwd or Path.cwd(),
                self.pass_fds,
            )
        except ZygoteError as e:
            self.hub.alert(f"!!! {self.name}: the zygote cannot fork it ({e}): started with Popen")
            return None

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            text = raw.decode("utf-8", errors="replace")
            show = self._console(text) if self._console else True
            self.hub.line(self.name, text, console=show)
        self.proc.stdout.close()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process (not its group) to exit; its return code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self._pump is not None:
            self._pump.join(timeout=2)
        return code

    def terminate(self) -> None:
        """SIGTERM the whole group (first half of `stop`, for stopping many at once)."""
        self.stopping = True
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGTERM)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace` seconds; return once empty."""
        if self.proc is None:
            return
        self.terminate()
        self.finish(time.monotonic() + grace)

    def finish(self, deadline: float) -> None:
        """Second half of `stop`: wait until `deadline`, then SIGKILL the group, then reap."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            self.hub.line(self.name, "did not stop in time after SIGTERM: killed (SIGKILL)")
            _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        end = time.monotonic() + 5
        while group_alive(pgid) and time.monotonic() < end:
            _signal_group(pgid, signal.SIGKILL)
            time.sleep(0.05)
        if self._pump is not None:
            self._pump.join(timeout=2)


def stop_all(children: Sequence[Child], grace: float = 5.0) -> None:
    """Stop several children at once: SIGTERM all, one shared grace period, SIGKILL the rest."""
    for c in children:
        c.terminate()
    deadline = time.monotonic() + grace
    for c in children:
        c.finish(deadline)
