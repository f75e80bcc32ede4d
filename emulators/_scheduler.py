"""The local Cloud Scheduler: fires every `schedule` deployment on its cron, as the cloud does.

Each firing is an HTTP POST to the deployment's `/` with Cloud Scheduler's headers and an empty
body. Jobs can be paused, resumed and run now, like `gcloud scheduler jobs pause|resume|run`:
the paused set is kept in `<state_dir>/paused.json` (it survives restarts, as in the cloud), and
a running scheduler listens on a small control endpoint on 127.0.0.1 whose address it writes to
`<state_dir>/control.json`; `control()` is the client `python -m emulators scheduler` uses.
Missed runs are not made up, and a run is skipped while the previous one of the same job is
still in flight (one local instance, no overlap).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
from croniter import croniter

from emulators._errors import LocalStackError

USER_AGENT = "Google-Cloud-Scheduler"


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC "Zulu" time, as in X-CloudScheduler-ScheduleTime."""
    utc = moment.astimezone(UTC)
    frac = f".{utc.microsecond // 1000:03d}" if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def scheduler_headers(job_name: str, schedule_time: datetime) -> dict[str, str]:
    return {
        "X-CloudScheduler": "true",
        "X-CloudScheduler-JobName": job_name,
        "X-CloudScheduler-ScheduleTime": rfc3339(schedule_time),
        "User-Agent": USER_AGENT,
        "Content-Type": "application/octet-stream",
    }


def fire(url: str, job_name: str, schedule_time: datetime, *, timeout_s: float = 180.0) -> int:
    """POST to `url` as Cloud Scheduler would; the HTTP status (raises requests errors)."""
    r = requests.post(
        url, data=b"", headers=scheduler_headers(job_name, schedule_time), timeout=timeout_s
    )
    return r.status_code


def next_time(schedule: str, time_zone: str, after: datetime) -> datetime:
    """The first firing of `schedule` (cron, in `time_zone`) strictly after `after`, in UTC."""
    start = after.astimezone(ZoneInfo(time_zone))
    nxt = croniter(schedule, start).get_next(datetime)
    return nxt.astimezone(UTC)


@dataclass
class Job:
    name: str
    schedule: str
    url: str
    time_zone: str = "Etc/UTC"
    timeout_s: float = 180.0
    paused: bool = False
    next_run: datetime | None = None
    last_run: datetime | None = None
    last_status: str = ""
    running: bool = False

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "schedule": self.schedule,
            "time_zone": self.time_zone,
            "url": self.url,
            "state": "PAUSED" if self.paused else "ENABLED",
            "next_run": rfc3339(self.next_run) if self.next_run and not self.paused else None,
            "last_run": rfc3339(self.last_run) if self.last_run else None,
            "last_status": self.last_status,
        }


def now_utc() -> datetime:
    return datetime.now(UTC)


class LocalScheduler:
    """Fires `jobs` on their cron from a background thread."""

    def __init__(
        self,
        jobs: Iterable[Job],
        *,
        state_dir: Path | None = None,
        log: Callable[[str], None] = print,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.jobs = {j.name: j for j in jobs}
        self.state_dir = state_dir
        self.log = log
        self.clock = clock
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._server: ThreadingHTTPServer | None = None
        self._runs: list[threading.Thread] = []
        self._checked: datetime | None = None  # clock time of the loop's last look for due jobs
        for name in self._load_paused():
            if name in self.jobs:
                self.jobs[name].paused = True

    # -- state -----------------------------------------------------------------------------
    @property
    def _paused_file(self) -> Path | None:
        return self.state_dir / "paused.json" if self.state_dir else None

    def _load_paused(self) -> list[str]:
        return load_paused(self.state_dir) if self.state_dir else []

    def _save_paused(self) -> None:
        if self.state_dir is None:
            return
        known = set(self._load_paused()) - set(self.jobs)  # keep jobs not run by this stack
        save_paused(self.state_dir, sorted(known | {n for n, j in self.jobs.items() if j.paused}))

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, control: bool = True) -> LocalScheduler:
        now = self.clock()
        for job in self.jobs.values():
            job.next_run = next_time(job.schedule, job.time_zone, now)
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()
        if control and self.state_dir is not None:
            self._serve_control()
        for job in self.jobs.values():
            state = "paused" if job.paused else f"next {rfc3339(job.next_run)}"  # type: ignore[arg-type]
            self.log(f"job {job.name} [{job.schedule} {job.time_zone}] -> {job.url} ({state})")
        return self

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            if self.state_dir is not None:
                with contextlib.suppress(FileNotFoundError):
                    (self.state_dir / "control.json").unlink()
        for t in self._runs:
            t.join(timeout=1)

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopped:
                    return
                now = self.clock()
                due = [
                    j
                    for j in self.jobs.values()
                    if not j.paused and j.next_run is not None and j.next_run <= now
                ]
                for job in due:
                    scheduled = job.next_run
                    assert scheduled is not None  # filtered above
                    job.next_run = next_time(job.schedule, job.time_zone, max(now, scheduled))
                    self._dispatch(job, scheduled)
                self._checked = now
                self._wake.notify_all()  # wait_checked() callers
                pending = [
                    j.next_run
                    for j in self.jobs.values()
                    if not j.paused and j.next_run is not None
                ]
                wait = min(pending) - self.clock() if pending else None
                seconds = 30.0 if wait is None else max(0.0, min(30.0, wait.total_seconds()))
                if not due:
                    self._wake.wait(seconds)

    def _dispatch(
        self, job: Job, scheduled: datetime, *, manual: bool = False
    ) -> threading.Thread | None:
        if job.running:
            self.log(f"job {job.name}: previous run still in flight, skipped {rfc3339(scheduled)}")
            return None
        job.running = True
        t = threading.Thread(
            target=self._run, args=(job, scheduled, manual), name=f"job-{job.name}", daemon=True
        )
        self._runs = [r for r in self._runs if r.is_alive()] + [t]
        t.start()
        return t

    def _run(self, job: Job, scheduled: datetime, manual: bool) -> None:
        started = time.monotonic()
        how = "run now" if manual else "scheduled"
        try:
            status = fire(job.url, job.name, scheduled, timeout_s=job.timeout_s)
            job.last_status = str(status)
        except requests.RequestException as exc:
            job.last_status = f"error: {exc.__class__.__name__}"
        finally:
            job.running = False
        job.last_run = scheduled
        self.log(
            f"job {job.name} ({how} {rfc3339(scheduled)}) -> {job.last_status} "
            f"in {time.monotonic() - started:.2f} s"
        )

    def poke(self) -> None:
        """Look for due jobs now (the clock may have moved: an injected clock in tests)."""
        with self._wake:
            self._wake.notify_all()

    def wait_checked(self, moment: datetime, timeout_s: float = 10.0) -> bool:
        """Wait until the loop has looked for due jobs at clock time `moment` or later, every
        due job dispatched by then; False on timeout. The positive signal that a job which
        should not fire (paused) indeed did not, without sleeping."""
        with self._wake:
            return self._wake.wait_for(
                lambda: self._checked is not None and self._checked >= moment, timeout_s
            )

    # -- operations (same as gcloud scheduler jobs pause|resume|run) -----------------------
    def _job(self, name: str) -> Job:
        if name not in self.jobs:
            raise LocalStackError(f"no scheduler job {name!r}; jobs: {', '.join(self.jobs) or '-'}")
        return self.jobs[name]

    def pause(self, name: str) -> Job:
        with self._wake:
            job = self._job(name)
            job.paused = True
            self._save_paused()
            self._wake.notify_all()
        self.log(f"job {name} paused")
        return job

    def resume(self, name: str) -> Job:
        with self._wake:
            job = self._job(name)
            job.paused = False
            job.next_run = next_time(job.schedule, job.time_zone, self.clock())
            self._save_paused()
            self._wake.notify_all()
        self.log(f"job {name} resumed, next {rfc3339(job.next_run)}")
        return job

    def run(self, name: str, *, wait: bool = True) -> Job:
        """Fire now, whether paused or not (as `gcloud scheduler jobs run`)."""
        with self._wake:
            job = self._job(name)
            t = self._dispatch(job, self.clock(), manual=True)
        if wait and t is not None:
            t.join(timeout=job.timeout_s + 5)
        return job

    def describe(self) -> list[dict[str, object]]:
        with self._wake:
            return [j.describe() for j in self.jobs.values()]

    # -- control endpoint ------------------------------------------------------------------
    def _serve_control(self) -> None:
        scheduler = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/jobs":
                    self._send(200, scheduler.describe())
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                parts = self.path.strip("/").split("/")
                actions = ("pause", "resume", "run")
                if len(parts) != 3 or parts[0] != "jobs" or parts[2] not in actions:
                    self._send(404, {"error": "use POST /jobs/<name>/pause|resume|run"})
                    return
                try:
                    job = getattr(scheduler, parts[2])(parts[1])
                except LocalStackError as exc:
                    self._send(404, {"error": str(exc)})
                    return
                self._send(200, job.describe())

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="scheduler-control",
            daemon=True,
        ).start()
        assert self.state_dir is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / "control.json.tmp"
        tmp.write_text(json.dumps({"url": self.control_url, "pid": os.getpid()}))
        tmp.replace(self.state_dir / "control.json")

    @property
    def control_url(self) -> str | None:
        if self._server is None:
            return None
        host = self._server.server_address[0]
        if isinstance(host, bytes | bytearray):
            host = host.decode()
        return f"http://{host}:{self._server.server_port}"


def load_paused(state_dir: Path) -> list[str]:
    try:
        data = json.loads((state_dir / "paused.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [str(n) for n in data] if isinstance(data, list) else []


def save_paused(state_dir: Path, names: Iterable[str]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / "paused.json.tmp"
    tmp.write_text(json.dumps(sorted(set(names))))
    tmp.replace(state_dir / "paused.json")


def control(state_dir: Path, action: str, name: str | None = None) -> object:
    """Talk to the running stack's scheduler: `list`, or `pause|resume|run <name>`.

    With no running stack, pause/resume update the saved state (applied at the next start)
    and `run`/`list` raise LocalStackError."""
    if action not in ("list", "pause", "resume", "run"):
        raise LocalStackError("action must be list, pause, resume or run")
    if action != "list" and not name:
        raise LocalStackError(f"`{action}` needs a job (deployment) name")
    url = None
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
        url = json.loads((state_dir / "control.json").read_text())["url"]
    if url:
        try:
            if action == "list":
                r = requests.get(f"{url}/jobs", timeout=5)
            else:
                r = requests.post(f"{url}/jobs/{name}/{action}", timeout=200)
        except requests.ConnectionError:
            url = None  # stale control file: the stack is gone
        else:
            body = r.json()
            if r.status_code != 200:
                raise LocalStackError(body.get("error", r.text))
            return body
    if action in ("pause", "resume"):
        assert name is not None  # checked above
        paused = set(load_paused(state_dir))
        paused = paused | {name} if action == "pause" else paused - {name}
        save_paused(state_dir, paused)
        return {
            "name": name,
            "state": "PAUSED" if action == "pause" else "ENABLED",
            "note": "no running stack: saved, applies at the next start",
        }
    raise LocalStackError(f"no running stack found (no live {state_dir / 'control.json'})")
