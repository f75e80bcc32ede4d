"""Run files: which process groups a supervisor started, so leftovers can be stopped later.

A supervisor killed with SIGKILL (or a test session killed before its teardown) cannot stop its
children: they run in their own process groups and keep their ports. Each supervisor records
`{"pid": <its pid>, "children": [{"name", "pgid", "markers"}]}` in a run file; the next one
(`reap`) stops the groups of a run file whose owner is dead, but only groups that still contain
a process whose command line shows one of the recorded markers (a port flag), or whose start
time is the recorded one (`start:<ticks>`, recorded for every deployment: a forked one's command
line is the zygote's, and gunicorn retitles its processes when setproctitle is installed), so a
process group id reused by an unrelated program is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from emulators._procs import group_alive


def write(path: Path, entries: Iterable[dict[str, object]], owner: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pid": owner or os.getpid(), "children": list(entries)}))
    tmp.replace(path)


def reap(path: Path, log: Callable[[str], None] = lambda _: None, term_s: float = 5.0) -> int:
    """Stop the leftovers recorded in `path` if its owner is dead; how many groups stopped.

    Each group gets SIGTERM, then SIGKILL if it is still there after `term_s`; it returns once
    they are gone (their ports are free again), or 5 s after a SIGKILL."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    owner = int(data.get("pid", 0))
    if owner and owner != os.getpid() and pid_alive(owner):
        return 0  # a live supervisor owns them
    stopped = 0
    for entry in data.get("children", []):
        pgid = int(entry["pgid"])
        if not group_matches(pgid, [str(m) for m in entry.get("markers", [])]):
            continue
        log(
            f"stopping {entry.get('name', '?')} (process group {pgid}) left over by a previous "
            "run that did not stop cleanly"
        )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        if not _gone(pgid, term_s):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            # a killed JVM takes a moment to exit and close its ports, which the caller reuses
            _gone(pgid, 5.0)
        stopped += 1
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return stopped


def _gone(pgid: int, timeout: float) -> bool:
    """Wait up to `timeout` s for group `pgid` to have no live process; True when it has none."""
    end = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_marker(pid: int) -> str | None:
    """`start:<ticks>`: the start time of `pid` since boot (field 22 of /proc/<pid>/stat), which
    names this process and no later one with the same pid; None when it cannot be read."""
    try:
        return f"start:{Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return None


def group_matches(pgid: int, markers: list[str]) -> bool:
    """True when a live process of group `pgid` has one of `markers` in its command line, or
    is the process a `start:` marker names."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if any(m in cmd for m in markers) or f"start:{fields[19]}" in markers:
            return True
    return False
