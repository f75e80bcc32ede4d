"""How the runner reaches a target: SSH (paramiko), WinRM (pywinrm), and the connection test.

`open_ssh(target, secret)` walks the four steps a connection needs and names the one that
failed in plain words (`ConnectError.stage`: dns, tcp, host_key, auth): the host name is
resolved, a TCP connection is opened, the server's host key must match the fingerprint the
target pins (`options.host_key`, `SHA256:...` as `ssh-keygen -lf` prints it; an unpinned or
different key is refused, the error names the key the server presented), then the user
authenticates with the credential's private key or password. `SshSession.run` executes one
command in its own channel and streams stdout and stderr line by line to a callback while it
runs; a timeout or a cancel stops it within about a second by killing the remote command's
process group (sshd makes each session's shell a session leader; the wrapper announces its
pid on stderr before the command starts, and a second channel sends TERM then KILL), then
closing the channel. `open_winrm` / `WinrmSession.run` do the same over WS-Management with
pywinrm (a shell per session, output polled in operation-timeout slices; cancel and timeout
send the terminate signal and close the shell). Secrets are used here and never logged.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import select
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.automation import model

OnLine = Callable[[str, str], None]  # (stream: stdout|stderr, line)
ShouldStop = Callable[[], bool]
MAX_LINE = 4000
_PID_MARK = "__SWITCHYARD_PID="
CONNECT_TIMEOUT_S = 10.0
EOF_GRACE_S = 2.0  # output still arriving after the exit status (see SshSession.run)


class ConnectError(Exception):
    """A connection step failed; `stage` is dns, tcp, host_key, auth or protocol."""

    def __init__(self, stage: str, message: str, presented: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.presented = presented  # the host key fingerprint the server showed


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class Secret:
    """A credential's value and its kind (password or private_key), held only in memory."""

    kind: str
    value: str
    username: str | None = None

    def __repr__(self) -> str:
        return f"Secret(kind={self.kind!r}, value=<hidden>)"


def fingerprint(key_bytes: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (`SHA256:` + unpadded base64)."""
    digest = hashlib.sha256(key_bytes).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConnectError(
            "dns", f"The host name {host!r} could not be resolved ({exc})."
        ) from None
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


def tcp_connect(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    last = ""
    for address in resolve(host, port):
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except TimeoutError:
            last = f"no answer from {address}:{port} within {timeout:g} s"
        except OSError as exc:
            last = f"{address}:{port} refused or unreachable ({exc.strerror or exc})"
    raise ConnectError("tcp", f"Could not open a TCP connection: {last}.")


class _Lines:
    """Splits a byte stream into lines for the callback (the last partial line on flush)."""

    def __init__(self, stream: str, on_line: OnLine, on_pid: Callable[[str], None] | None) -> None:
        self.stream, self.on_line, self.on_pid = stream, on_line, on_pid
        self.buf = b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            raw, self.buf = self.buf.split(b"\n", 1)
            self._emit(raw)
        if len(self.buf) > MAX_LINE * 4:
            self._emit(self.buf)
            self.buf = b""

    def flush(self) -> None:
        if self.buf:
            self._emit(self.buf)
            self.buf = b""

    def _emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if self.on_pid is not None and text.startswith(_PID_MARK):
            self.on_pid(text[len(_PID_MARK) :])
            self.on_pid = None
            return
        self.on_line(self.stream, text[:MAX_LINE])


def _load_key(text: str, passphrase: str | None = None) -> Any:
    import paramiko

    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except (paramiko.SSHException, ValueError):
            continue
    raise ConnectError("auth", "The credential is not a private key paramiko can read.")


class SshSession:
    def __init__(self, transport: Any, target: model.Target) -> None:
        self.transport = transport
        self.target = target

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _kill(self, pid: str | None) -> None:
        if not pid or not pid.isdigit():
            return
        script = (
            f"kill -TERM -- -{pid} 2>/dev/null; sleep 1; kill -KILL -- -{pid} 2>/dev/null; true"
        )
        for _attempt in range(3):  # a busy sshd may refuse a new session for a moment
            try:
                chan = self.transport.open_session(timeout=5)
                chan.exec_command(script)
                chan.recv_exit_status()
                chan.close()
                return
            except Exception:  # noqa: BLE001 - the kill is best effort; retried, then given up
                time.sleep(0.2)

    def run(
        self, command: str, *, timeout_s: float, on_line: OnLine, should_stop: ShouldStop
    ) -> CommandResult:
        """Run `command` (already carrying its quoted parameters) and stream its output."""
        pid: list[str] = []
        wrapped = f"printf '{_PID_MARK}%s\\n' \"$$\" >&2; exec /bin/sh -c {shlex.quote(command)}"
        chan = self.transport.open_session(timeout=CONNECT_TIMEOUT_S)
        out = _Lines("stdout", on_line, None)
        err = _Lines("stderr", on_line, pid.append)
        deadline = time.monotonic() + timeout_s
        next_check = 0.0
        stopped: str | None = None
        exited_at = 0.0

        def read_ready() -> None:
            while chan.recv_ready():
                out.feed(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.feed(chan.recv_stderr(65536))

        def read_until(done: Callable[[], bool], seconds: float) -> None:
            until = time.monotonic() + seconds
            while not done() and not chan.closed and time.monotonic() < until:
                select.select([chan], [], [], 0.05)
                read_ready()
            read_ready()

        try:
            chan.exec_command(wrapped)
            while True:
                select.select([chan], [], [], 0.2)
                read_ready()
                if (
                    chan.exit_status_ready()
                    and not chan.recv_ready()
                    and not chan.recv_stderr_ready()
                ):
                    # The exit status can arrive before the last output, which is whole at
                    # the channel's EOF. A command that left a background child holding its
                    # output open sends no EOF until that child ends: EOF_GRACE_S at most.
                    exited_at = exited_at or time.monotonic()
                    if chan.eof_received or time.monotonic() - exited_at >= EOF_GRACE_S:
                        break
                now = time.monotonic()
                if now >= deadline:
                    stopped = "timeout"
                elif now >= next_check:
                    next_check = now + 0.5
                    if should_stop():
                        stopped = "cancel"
                if stopped:
                    read_until(lambda: bool(pid), 2.0)  # the pid line may still be in flight
                    self._kill(pid[0] if pid else None)
                    # what the command wrote before it was killed may still be on its way
                    read_until(lambda: chan.eof_received, EOF_GRACE_S)
                    break
            out.flush()
            err.flush()
            if stopped:
                return CommandResult(
                    None, timed_out=stopped == "timeout", cancelled=stopped == "cancel"
                )
            code = chan.recv_exit_status()
            return CommandResult(code if code >= 0 else None)
        finally:
            with contextlib.suppress(Exception):
                chan.close()


def open_ssh(target: model.Target, secret: Secret | None) -> SshSession:
    """Connect and authenticate (see module doc); raises ConnectError naming the stage."""
    import paramiko

    sock = tcp_connect(target.host, target.port)
    transport = paramiko.Transport(sock)
    try:
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT_S)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectError(
                "protocol", f"The SSH handshake with {target.host} failed ({exc})."
            ) from None
        presented = fingerprint(transport.get_remote_server_key().asbytes())
        pinned = target.options.get("host_key")
        if not pinned:
            raise ConnectError(
                "host_key",
                f"The target pins no host key; the server presented {presented}. Check it and "
                "set options.host_key to trust it.",
                presented,
            )
        if pinned.rstrip("=") != presented:
            raise ConnectError(
                "host_key",
                f"The server's host key {presented} is not the pinned {pinned}: refused "
                "(a changed server, or someone in between).",
                presented,
            )
        user = str(target.options.get("user") or (secret.username if secret else "") or "")
        if secret is None:
            raise ConnectError("auth", "The target has no credential to log in with.")
        try:
            if secret.kind == "private_key":
                transport.auth_publickey(user, _load_key(secret.value))
            else:
                transport.auth_password(user, secret.value)
        except paramiko.AuthenticationException:
            raise ConnectError(
                "auth", f"The server refused the credential for user {user!r}."
            ) from None
        except paramiko.SSHException as exc:
            raise ConnectError("auth", f"Authentication failed ({exc}).") from None
        if not transport.is_authenticated():
            raise ConnectError("auth", f"The server refused the credential for user {user!r}.")
        return SshSession(transport, target)
    except BaseException:
        transport.close()
        raise


# --- WinRM ---------------------------------------------------------------------------------


class WinrmSession:
    def __init__(self, protocol: Any, shell_id: str) -> None:
        self.protocol = protocol
        self.shell_id = shell_id

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.protocol.close_shell(self.shell_id)

    def __enter__(self) -> WinrmSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self, command: str, *, timeout_s: float, on_line: OnLine, should_stop: ShouldStop
    ) -> CommandResult:
        from winrm.exceptions import WinRMOperationTimeoutError

        encoded = base64.b64encode(command.encode("utf-16-le")).decode()
        command_id = self.protocol.run_command(
            self.shell_id,
            "powershell.exe",
            ["-NoProfile", "-NonInteractive", "-EncodedCommand", encoded],
        )
        out = _Lines("stdout", on_line, None)
        err = _Lines("stderr", on_line, None)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    stdout, stderr, code, done = self.protocol.get_command_output_raw(
                        self.shell_id, command_id
                    )
                except WinRMOperationTimeoutError:  # no output within the operation timeout
                    stdout, stderr, code, done = b"", b"", -1, False
                out.feed(stdout)
                err.feed(stderr)
                if done:
                    out.flush()
                    err.flush()
                    return CommandResult(int(code))
                if time.monotonic() >= deadline:
                    return CommandResult(None, timed_out=True)
                if should_stop():
                    return CommandResult(None, cancelled=True)
        finally:
            with contextlib.suppress(Exception):
                self.protocol.cleanup_command(self.shell_id, command_id)


def open_winrm(target: model.Target, secret: Secret | None) -> WinrmSession:
    """A WinRM shell on the target (DNS and TCP are checked first for plain errors)."""
    from winrm.exceptions import InvalidCredentialsError, WinRMError, WinRMTransportError
    from winrm.protocol import Protocol

    tcp_connect(target.host, target.port).close()
    if secret is None or secret.kind != "password":
        raise ConnectError("auth", "A WinRM target needs a password credential.")
    scheme = str(target.options.get("scheme") or ("https" if target.port == 5986 else "http"))
    endpoint = f"{scheme}://{target.host}:{target.port}/wsman"
    protocol = Protocol(
        endpoint=endpoint,
        transport=target.options.get("transport") or "ntlm",
        username=str(target.options.get("user") or secret.username or ""),
        password=secret.value,
        server_cert_validation="validate" if target.options.get("verify_tls", True) else "ignore",
        operation_timeout_sec=5,
        read_timeout_sec=10,
    )
    try:
        shell_id = protocol.open_shell()
    except InvalidCredentialsError:
        raise ConnectError("auth", "The WinRM server refused the credential.") from None
    except (WinRMTransportError, WinRMError) as exc:
        raise ConnectError("protocol", f"WinRM failed: {str(exc)[:300]}") from None
    except Exception as exc:  # requests' connection errors and the like
        raise ConnectError("protocol", f"WinRM failed: {exc.__class__.__name__}.") from None
    return WinrmSession(protocol, shell_id)


def open_session(target: model.Target, secret: Secret | None) -> SshSession | WinrmSession:
    if target.kind == "ssh":
        return open_ssh(target, secret)
    if target.kind == "winrm":
        return open_winrm(target, secret)
    raise ConnectError("protocol", f"A {target.kind} target runs no commands.")
