"""Executing one run: claimed once, its targets in parallel up to the job's concurrency, steps
in order, output streamed to the run log, statuses in SQL, events through the outbox.

`execute(run_id)` is what `automation-runner` does with a `job.run.requested`. The claim
(queued -> running, one guarded UPDATE) is the "one request, one execution" rule: a
redelivered or duplicated request for a claimed, finished or cancelled run does nothing. A
watcher thread beats the run's heartbeat and reads its cancel flag about every second and
enforces the job's overall timeout; a running command is stopped through its transport (the
remote process group killed), HTTP steps and not-yet-started steps see it between steps.
A target that cannot be reached ends `unreachable` (and emits `target.unreachable`); a failed
step ends its target `failed` unless the step has `continue_on_error`. The run ends
succeeded (every target succeeded), failed, cancelled or timed_out (docs/decisions/0022).
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from functions.automation import logs, model, service, store, transports
from functions.automation.events import JobRunStarted, TargetUnreachable
from shared import db
from shared import logging as slog
from shared.events import emit

_log = slog.get_logger("switchyard.automation.runner")
WATCH_S = 1.0
HEARTBEAT_S = 15.0
HTTP_BODY_LINES = 20


def _now() -> datetime:
    return datetime.now(UTC)


class Secrets:
    """A run's credential values, read once per credential (many targets share one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}

    def of(self, credential_id: str | None) -> Any:
        if not credential_id:
            return None
        with self._lock:
            if credential_id not in self._values:
                self._values[credential_id] = service.secret_of(credential_id)
            return self._values[credential_id]


class Stop:
    """Why the run stops early (None while it goes on): 'cancelled' or 'timed_out'."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.event = threading.Event()

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.event.set()

    def __call__(self) -> bool:
        return self.reason is not None


def _watch(run_id: str, deadline: float, stop: Stop, done: threading.Event) -> None:
    last_beat = 0.0
    while not done.wait(WATCH_S):
        now = time.monotonic()
        if now >= deadline:
            stop.set("timed_out")
        try:
            with db.transaction() as s:
                if now - last_beat >= HEARTBEAT_S:
                    cancelled = store.heartbeat(s, run_id, _now())
                    last_beat = now
                else:
                    cancelled = store.cancel_requested(s, run_id)
            if cancelled:
                stop.set("cancelled")
        except Exception:
            _log.warning("run %s: heartbeat failed", run_id, exc_info=True)


def execute(run_id: str) -> str:
    """Run `run_id` if this call claims it; returns the final status, or 'skipped'."""
    with db.transaction() as s:
        if not store.claim_run(s, run_id, _now()):
            row = store.get_run(s, run_id)
            _log.info("run %s not claimed (status %s)", run_id, row["status"] if row else "missing")
            return "skipped"
        run = store.get_run(s, run_id)
        assert run is not None
        targets, _steps = store.run_details(s, run_id)
        emit(
            s,
            JobRunStarted(
                run_id=run_id,
                job_id=run["job_id"],
                job_version=run["job_version"],
                targets=len(targets),
            ),
            actor=run["requested_by"],
        )
    definition = service.job_at_version(run["job_id"], run["job_version"])
    params = dict(run["parameters"])
    sink = logs.LogSink(run_id)
    vault = Secrets()
    stop = Stop()
    done = threading.Event()
    deadline = time.monotonic() + definition.timeout_s
    watcher = threading.Thread(target=_watch, args=(run_id, deadline, stop, done), daemon=True)
    watcher.start()
    sink.line(
        target_id=None,
        target_name=None,
        step=None,
        stream="system",
        text=f"run of job {definition.name!r} v{run['job_version']} on {len(targets)} target(s), "
        f"at most {definition.max_concurrency} at a time",
    )
    try:
        workers = max(1, min(definition.max_concurrency, len(targets)))
        with ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"run-{run_id[:8]}"
        ) as pool:
            futures = [
                pool.submit(_run_target, run_id, t, definition, params, sink, stop, deadline, vault)
                for t in targets
            ]
            for f in futures:
                f.result()
    except Exception as exc:
        _log.exception("run %s failed inside the runner", run_id)
        stop.set("failed")
        error: str | None = f"runner error: {exc.__class__.__name__}"
    else:
        error = None
    finally:
        done.set()
        watcher.join(timeout=5)
    if stop.reason in ("cancelled", "timed_out", "failed"):
        status = stop.reason
    else:
        with db.transaction() as s:
            counts = store.target_counts(s, run_id)
        status = model.overall_status(
            [k for k, n in counts.items() for _ in range(n)], cancelled=False, timed_out=False
        )
    # Every line is in Firestore before the run reads as finished: a client that polls the
    # log until `finished` never misses the last lines.
    sink.line(target_id=None, target_name=None, step=None, stream="system", text=f"run {status}")
    try:
        sink.close()
    except Exception:  # the run's outcome is still recorded; only log lines are lost
        _log.warning("run %s: could not write the last log lines", run_id, exc_info=True)
    with db.transaction() as s:
        row = store.get_run(s, run_id, lock=True)
        assert row is not None
        service.finish_run(s, row, status, error=error or _why(status), at=_now())
    return status


def _why(status: str) -> str | None:
    return {
        "cancelled": "cancelled on request",
        "timed_out": "the job's overall timeout passed",
    }.get(status)


def _set_target(run_id: str, target_id: str, **values: Any) -> None:
    with db.transaction() as s:
        store.set_run_target(s, run_id, target_id, **values)


def _set_step(run_id: str, target_id: str, index: int, **values: Any) -> None:
    with db.transaction() as s:
        store.set_run_step(s, run_id, target_id, index, **values)


def _run_target(
    run_id: str,
    rt: dict[str, Any],
    definition: model.JobDefinition,
    params: dict[str, str],
    sink: logs.LogSink,
    stop: Stop,
    deadline: float,
    vault: Secrets,
) -> None:
    target_id, name = rt["target_id"], rt["target_name"]
    if stop():
        return  # left pending: finish_run ends it with the run's status
    _set_target(run_id, target_id, status="running", started_at=_now())

    def say(step: int | None, stream: str, text: str) -> None:
        sink.line(target_id=target_id, target_name=name, step=step, stream=stream, text=text)

    with db.transaction() as s:
        row = store.get_target(s, target_id)
    if row is None:
        say(None, "system", "the target was deleted after the run was requested")
        _set_target(run_id, target_id, status="failed", finished_at=_now(), error="target deleted")
        return
    target = service._target(row)
    session: transports.SshSession | transports.WinrmSession | None = None
    status, error = "succeeded", None
    try:
        if any(st.kind == "command" for st in definition.steps):
            try:
                session = transports.open_session(target, vault.of(target.credential_id))
            except transports.ConnectError as exc:
                say(None, "system", f"unreachable ({exc.stage}): {exc.message}")
                with db.transaction() as s:
                    store.set_run_target(
                        s,
                        run_id,
                        target_id,
                        status="unreachable",
                        finished_at=_now(),
                        error=exc.message,
                    )
                    emit(
                        s,
                        TargetUnreachable(
                            target_id=target_id,
                            target_name=name,
                            run_id=run_id,
                            reason=f"{exc.stage}: {exc.message}",
                        ),
                    )
                return
        for index, step in enumerate(definition.steps):
            if stop():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop.set("timed_out")
                break
            _set_step(run_id, target_id, index, status="running", started_at=_now())
            step_line = functools.partial(say, index)
            say(index, "system", f"step {index + 1} {step.name!r} started")
            if step.kind == "command":
                step_status, code, step_error = _command(
                    session,
                    target,
                    step,
                    params,
                    min(step.timeout_s, remaining),
                    step_line,
                    stop,
                )
            else:
                step_status, code, step_error = _http(
                    target,
                    step,
                    params,
                    min(step.timeout_s, remaining),
                    step_line,
                    vault.of(target.credential_id) if target.kind == "http" else None,
                )
            _set_step(
                run_id,
                target_id,
                index,
                status=step_status,
                exit_code=code,
                finished_at=_now(),
                error=step_error,
            )
            say(
                index,
                "system",
                f"step {index + 1} {step_status}" + (f" (exit {code})" if code is not None else ""),
            )
            if step_status in ("cancelled", "timed_out"):
                status, error = step_status, step_error
                break
            if step_status != "succeeded" and not step.continue_on_error:
                status, error = "failed", step_error or f"step {index + 1} failed"
                break
        if stop() and status == "succeeded":
            status = stop.reason or "cancelled"
        if status == "failed" or status in ("cancelled", "timed_out"):
            with db.transaction() as s:
                store.set_run_target(
                    s, run_id, target_id, status=status, finished_at=_now(), error=error
                )
                # the steps after a failure are skipped; after a stop they end with the stop
                for index in range(len(definition.steps)):
                    store.set_run_step_if_open(
                        s, run_id, target_id, index, "skipped" if status == "failed" else status
                    )
        else:
            _set_target(run_id, target_id, status=status, finished_at=_now(), error=error)
    finally:
        if session is not None:
            session.close()


def _command(
    session: Any,
    target: model.Target,
    step: model.Step,
    params: dict[str, str],
    timeout_s: float,
    on_line: transports.OnLine,
    stop: Stop,
) -> tuple[str, int | None, str | None]:
    if session is None or target.kind not in ("ssh", "winrm"):
        return "failed", None, f"a command step needs an ssh or winrm target, not {target.kind}"
    shell = "powershell" if target.kind == "winrm" else "sh"
    command = model.shell_command(step.command or "", params, shell=shell)
    try:
        result = session.run(command, timeout_s=timeout_s, on_line=on_line, should_stop=stop)
    except Exception as exc:  # the connection broke mid-command
        return "failed", None, f"the connection broke: {exc.__class__.__name__}"
    if result.cancelled:  # stopped by the run's stop: a cancel, or the job's overall timeout
        if stop.reason == "timed_out":
            return "timed_out", None, "the job's overall timeout passed"
        return "cancelled", None, "cancelled while running"
    if result.timed_out:
        if stop.reason == "timed_out":
            return "timed_out", None, "the job's overall timeout passed"
        return "failed", None, f"the step took longer than its {step.timeout_s} s timeout"
    if result.exit_code == 0:
        return "succeeded", 0, None
    return "failed", result.exit_code, f"exit code {result.exit_code}"


def _http(
    target: model.Target,
    step: model.Step,
    params: dict[str, str],
    timeout_s: float,
    on_line: transports.OnLine,
    secret: Any,
) -> tuple[str, int | None, str | None]:
    from shared import outbound

    try:
        url, headers, body = model.http_request_parts(step, params)
    except model.BadParameters as exc:
        return "failed", None, str(exc.detail)
    internal = False
    if url.startswith("/"):
        if target.kind != "http":
            return "failed", None, "a relative URL needs an http target"
        scheme = str(target.options.get("scheme") or "https")
        url = f"{scheme}://{target.host}:{target.port}{url}"
        internal = target.internal
    else:
        host = (urlsplit(url).hostname or "").lower()
        internal = target.internal and host == target.host.lower()
    if secret is not None and not any(k.lower() == "authorization" for k in headers):
        import base64

        if secret.username:
            raw = base64.b64encode(f"{secret.username}:{secret.value}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
        else:
            headers["Authorization"] = f"Bearer {secret.value}"
    started = time.monotonic()
    try:
        resp = outbound.request(
            step.method,
            url,
            allow_internal=internal,
            timeout=max(1.0, timeout_s),
            headers=headers,
            data=body.encode() if body is not None else None,
            stream=True,
        )
    except (outbound.OutboundRefused, outbound.OutboundFailed) as exc:
        on_line("stderr", str(exc.detail))
        return "failed", None, str(exc.detail)
    try:
        elapsed = int((time.monotonic() - started) * 1000)
        on_line("stdout", f"HTTP {resp.status_code} {resp.reason} ({elapsed} ms)")
        text = resp.raw.read(16384, decode_content=True).decode("utf-8", errors="replace")
    finally:
        resp.close()
    for line in text.splitlines()[:HTTP_BODY_LINES]:
        on_line("stdout", line)
    if resp.status_code in step.expected_status:
        return "succeeded", resp.status_code, None
    expected = ", ".join(str(c) for c in step.expected_status)
    return "failed", resp.status_code, f"HTTP {resp.status_code}, expected {expected}"
