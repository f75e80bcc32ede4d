"""Ports of the local stack: defaults, overrides, the busy-port check and free-port helpers."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from emulators._errors import LocalStackError, PortBusyError

HOST = "127.0.0.1"

# what -> (environment variable, command-line flag) that moves it
SETTINGS: dict[str, tuple[str, str]] = {
    "pubsub": ("PUBSUB_PORT", "--pubsub-port"),
    "firestore": ("FIRESTORE_PORT", "--firestore-port"),
    "gateway": ("GATEWAY_PORT", "--gateway-port"),
    "functions_base": ("FUNCTIONS_BASE_PORT", "--functions-base-port"),
}


@dataclass(frozen=True)
class Ports:
    """Where the stack listens. Functions other than `gateway` get consecutive ports from
    `functions_base`, in catalog order, so a deployment keeps its port across runs."""

    pubsub: int = 8085
    firestore: int = 8086
    gateway: int = 8080
    functions_base: int = 8101

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: int | None) -> Ports:
        """Defaults, then PUBSUB_PORT / FIRESTORE_PORT / GATEWAY_PORT / FUNCTIONS_BASE_PORT,
        then explicit `overrides` that are not None (command-line flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for field, (var, flag) in SETTINGS.items():
            given = overrides.get(field)
            if given is not None:
                values[field] = _valid(given, flag)
            elif env.get(var):
                try:
                    values[field] = _valid(int(env[var]), var)
                except ValueError:
                    raise LocalStackError(
                        f"{var} must be a port number, got {env[var]!r}"
                    ) from None
        return cls(**values)


def _valid(port: int, name: str) -> int:
    if not 1 <= port <= 65535:
        raise LocalStackError(f"{name} must be a port between 1 and 65535, got {port}")
    return port


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a server could bind `host:port` now (SO_REUSEADDR, like the servers we run,
    so a socket lingering in TIME_WAIT does not count as busy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def is_listening(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_closed(port: int, timeout: float = 5.0, host: str = HOST) -> bool:
    """Wait until nothing listens on `port`; True when it is closed."""
    deadline = time.monotonic() + timeout
    while is_listening(port, host):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_free(port: int, timeout: float = 10.0, host: str = HOST) -> bool:
    """Wait until a server could bind `port` (`port_is_free`); True when it could."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port, host):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def ensure_free(port: int, what: str, setting: str | None = None) -> None:
    """Raise PortBusyError naming the port, who holds it (when we can tell) and how to move it.

    `setting` is a key of SETTINGS (pubsub, firestore, gateway, functions_base)."""
    if port_is_free(port):
        return
    owner = port_owner(port) or sockets_on(port)
    held = f" (held by {owner})" if owner else ""
    hint = ""
    if setting in SETTINGS:
        var, flag = SETTINGS[setting]
        hint = f"; stop whatever holds it, or choose another port with {var}=<port> or {flag}"
    raise PortBusyError(f"port {port} for {what} is already in use{held}{hint}", port)


_TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


def sockets_on(port: int) -> str | None:
    """The TCP sockets whose local port is `port` and their states (Linux /proc), when no
    process listens there: what else keeps the port from being bound."""
    states: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 3 and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    name = _TCP_STATES.get(cols[3], cols[3])
                    states[name] = states.get(name, 0) + 1
    if not states:
        return None
    found = ", ".join(f"{n} x{c}" for n, c in sorted(states.items()))
    return f"no process; sockets on it: {found}"


def port_owner(port: int) -> str | None:
    """`pid <n> (<command>)` of the process listening on `port`, best effort (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                        return f"pid {proc.name} ({cmd.strip()[:120]})"
    return None


def free_port(low: int = 20000, high: int = 32000) -> int:
    """A port free now, below Linux's ephemeral range so outgoing connections do not take it."""
    for _ in range(500):
        port = random.randrange(low, high)
        if port_is_free(port):
            return port
    raise LocalStackError(f"no free port found between {low} and {high}")


def free_port_block(count: int, low: int = 20000, high: int = 32000) -> int:
    """The first of `count` consecutive ports that are all free now."""
    for _ in range(500):
        base = random.randrange(low, high - count)
        if all(port_is_free(p) for p in range(base, base + count)):
            return base
    raise LocalStackError(f"no block of {count} free ports found between {low} and {high}")
