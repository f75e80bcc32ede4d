"""A pytest plugin with a real OpenSSH server: `sshd` (session scope).

Debian's `openssh-server` (`/usr/sbin/sshd`), run as the current user with its own config on
a free loopback port: a generated ed25519 host key, a generated client key in its own
authorized_keys file, public-key login only. No system service is touched (only
/run/sshd, the privilege-separation directory sshd insists on, is created when missing).
Use it with `pytest_plugins = ["tests.sshd"]`. The fixture yields an `Sshd` with host, port,
user, the client's private key (PEM text), a second key that is not authorized, and the host
key's fingerprint; it stops the server (its process group) at the end.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    user: str
    private_key: str
    other_key: str
    host_fingerprint: str
    folder: Path


def _keygen(path: Path) -> None:
    subprocess.run(
        [KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "switchyard-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_banner(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-2.0"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("sshd did not answer in time")


@contextlib.contextmanager
def running_sshd(folder: Path) -> Iterator[Sshd]:
    """Start sshd with its keys and config in `folder`; stop it (its process group) after."""
    if not os.path.exists(SSHD):
        raise RuntimeError(
            "OpenSSH server missing: apt-get install -y openssh-server (make test installs it)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    _keygen(folder / "other_key")
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = _free_port()
    (folder / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "PrintMotd no",
                "PrintLastLog no",
                "MaxSessions 200",
                "MaxStartups 200:30:400",
                "LogLevel INFO",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open(folder / "sshd.log", "wb")  # noqa: SIM115 - closed after the process ends
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_banner(port, proc)
        fp = subprocess.run(
            [KEYGEN, "-l", "-f", str(folder / "host_key.pub")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[1]
        yield Sshd(
            host="127.0.0.1",
            port=port,
            user=getpass.getuser(),
            private_key=(folder / "client_key").read_text(),
            other_key=(folder / "other_key").read_text(),
            host_fingerprint=fp,
            folder=folder,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A running sshd for the session (see the module doc)."""
    try:
        with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
            yield server
    except RuntimeError as exc:
        if "missing" in str(exc):
            pytest.fail(str(exc), pytrace=False)
        raise
