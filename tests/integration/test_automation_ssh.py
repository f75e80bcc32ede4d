"""The SSH transport against a real OpenSSH server (tests/sshd.py): commands and their output
streamed line by line, exit codes, stderr, timeouts and cancel killing the remote command,
parameters that cannot inject, and the connection refused for a wrong host key, an unpinned
one, a wrong client key, a closed port and an unknown host name."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime

import pytest

from functions.automation import model, transports
from tests.waiting import wait_for

pytest_plugins = ["tests.sshd"]


def target(sshd, **options) -> model.Target:
    now = datetime.now(UTC)
    opts = {"user": sshd.user, "host_key": sshd.host_fingerprint, **options}
    return model.Target(
        id="t1",
        name="sshd",
        kind="ssh",
        host=sshd.host,
        port=sshd.port,
        tags=(),
        options=opts,
        credential_id="c1",
        internal=True,
        created_at=now,
        updated_at=now,
        version=1,
    )


def key(sshd) -> transports.Secret:
    return transports.Secret("private_key", sshd.private_key)


class Collect:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.event = threading.Event()

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))
        self.event.set()

    def of(self, stream: str) -> list[str]:
        return [text for s, text in self.lines if s == stream]


def never() -> bool:
    return False


def test_command_output_exit_code_and_stderr(sshd):
    out = Collect()
    with transports.open_ssh(target(sshd), key(sshd)) as session:
        result = session.run(
            "echo one; echo two; echo oops >&2; printf 'no newline'; exit 3",
            timeout_s=20,
            on_line=out,
            should_stop=never,
        )
        assert result == transports.CommandResult(3)
        assert out.of("stdout") == ["one", "two", "no newline"]
        assert out.of("stderr") == ["oops"]  # the pid announcement is not shown
        ok = session.run("true", timeout_s=20, on_line=out, should_stop=never)
        assert ok.exit_code == 0


def test_the_output_of_a_short_command_is_whole_at_its_exit(sshd):
    """The exit status can overtake the last output on the channel: the run waits for EOF, so
    every line of a command that writes and exits at once is kept (seen lost once in CI)."""
    with transports.open_ssh(target(sshd), key(sshd)) as session:
        for n in range(30):
            out = Collect()
            result = session.run(
                f"seq 1 400; echo err-{n} >&2", timeout_s=20, on_line=out, should_stop=never
            )
            assert result == transports.CommandResult(0)
            assert out.of("stdout") == [str(i) for i in range(1, 401)], n
            assert out.of("stderr") == [f"err-{n}"]


def test_a_background_child_holding_the_output_does_not_hold_the_run(sshd):
    """No EOF comes while a child the command left behind keeps its output open: the run ends
    a grace after the exit status, with what was written, not at its timeout."""
    out = Collect()
    with transports.open_ssh(target(sshd), key(sshd)) as session:
        result = session.run(
            "sleep 30 & echo started", timeout_s=15, on_line=out, should_stop=never
        )
    assert result == transports.CommandResult(0)  # not timed out
    assert out.of("stdout") == ["started"]


def test_parameters_cannot_inject(sshd, tmp_path):
    marker = tmp_path / "pwned"
    evil = f"x'; touch {marker}; echo '$(touch {marker})`touch {marker}`"
    command = model.shell_command('printf "%s|%s\\n" "$NAME" {{NAME}}', {"NAME": evil})
    out = Collect()
    with transports.open_ssh(target(sshd), key(sshd)) as session:
        result = session.run(command, timeout_s=20, on_line=out, should_stop=never)
    assert result.exit_code == 0
    assert out.of("stdout") == [f"{evil}|{evil}"]
    assert not marker.exists()


def test_timeout_kills_the_remote_command(sshd, tmp_path):
    flag = tmp_path / "still-running"
    # a duration no other process on the machine sleeps, so pgrep below finds only this one
    nap = f"30.{secrets.randbelow(10**6):06d}"
    out = Collect()
    with transports.open_ssh(target(sshd), key(sshd)) as session:
        result = session.run(
            f"echo started; sleep {nap}; touch {flag}",
            timeout_s=1.5,
            on_line=out,
            should_stop=never,
        )
        assert result.timed_out and result.exit_code is None
        assert out.of("stdout") == ["started"]
        # the remote sleep is gone: no process of that command is left (the kill is sent at
        # once; the process may take a moment to exit, so wait for it rather than race it)

        def gone() -> bool:
            check = Collect()
            session.run(
                f"pgrep -f 'slee[p] {nap}' || echo none",
                timeout_s=10,
                on_line=check,
                should_stop=never,
            )
            return check.of("stdout") == ["none"]

        wait_for(gone, timeout=10)


def test_cancel_stops_a_running_command(sshd):
    out = Collect()
    stop = threading.Event()
    results = []
    with transports.open_ssh(target(sshd), key(sshd)) as session:
        worker = threading.Thread(
            target=lambda: results.append(
                session.run(
                    "echo go; sleep 60", timeout_s=120, on_line=out, should_stop=stop.is_set
                )
            )
        )
        worker.start()
        assert out.event.wait(15)
        stop.set()
        worker.join(15)
        assert not worker.is_alive()
    assert results[0].cancelled and results[0].exit_code is None


def test_output_arrives_while_the_command_runs(sshd):
    out = Collect()
    release = threading.Event()
    seen_early = []

    def on_line(stream, line):
        out(stream, line)
        if line == "first":
            seen_early.append(time.monotonic())
            release.set()

    with transports.open_ssh(target(sshd), key(sshd)) as session:
        result = session.run(
            "echo first; sleep 2; echo second", timeout_s=20, on_line=on_line, should_stop=never
        )
    assert result.exit_code == 0 and out.of("stdout") == ["first", "second"]
    assert release.is_set()


def test_wrong_host_key_refused(sshd):
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(transports.ConnectError) as err:
        transports.open_ssh(target(sshd, host_key=wrong), key(sshd))
    assert err.value.stage == "host_key" and err.value.presented == sshd.host_fingerprint


def test_unpinned_host_key_refused_and_named(sshd):
    t = target(sshd)
    t = model.Target(**{**t.__dict__, "options": {"user": sshd.user}})
    with pytest.raises(transports.ConnectError) as err:
        transports.open_ssh(t, key(sshd))
    assert err.value.stage == "host_key" and sshd.host_fingerprint in err.value.message


def test_wrong_client_key_refused(sshd):
    with pytest.raises(transports.ConnectError) as err:
        transports.open_ssh(target(sshd), transports.Secret("private_key", sshd.other_key))
    assert err.value.stage == "auth"
    with pytest.raises(transports.ConnectError) as err:
        transports.open_ssh(target(sshd), transports.Secret("password", "not-it"))
    assert err.value.stage == "auth"


def test_closed_port_and_unknown_host(sshd, free_port):
    t = target(sshd)
    closed = model.Target(**{**t.__dict__, "port": free_port()})
    with pytest.raises(transports.ConnectError) as err:
        transports.open_ssh(closed, key(sshd))
    assert err.value.stage == "tcp"
    unknown = model.Target(**{**t.__dict__, "host": "no-such-host.invalid"})
    with pytest.raises(transports.ConnectError) as err:
        transports.open_ssh(unknown, key(sshd))
    assert err.value.stage == "dns"
