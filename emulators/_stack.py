"""The whole local stack: emulators, wiring, migrations, one process per deployment, scheduler.

`Stack` is what `python -m emulators` (`make dev`) runs and what the tests' `stack` fixture
uses, through the same code path. Startup order: emulators (in parallel) -> topic and
subscription wiring -> schema migrations (`python -m shared.migrate upgrade --no-bootstrap`)
-> `python -m shared.auth keygen-local` -> one functions-framework process per deployment (in
parallel) -> wait for every health path while the bootstrap data is written (`python -m
shared.migrate bootstrap`: its events wait in their subscriptions) -> the push bridge, once
every consumer is healthy -> local scheduler. Every child
runs in its own process group and `stop()` stops them all
(functions first, then the emulators), leaving no process and no listening port. A stack killed
with SIGKILL leaves its children running; the next start in the same local dir finds them in
`<local_dir>/run/stack.json` and stops them.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from emulators import _runfile, _tools
from emulators._bridge import PushBridge
from emulators._dashboard import Dashboard
from emulators._emulator import Emulator
from emulators._errors import LocalStackError, StartupError
from emulators._logs import LogHub
from emulators._ports import HOST, Ports, ensure_free, port_is_free, wait_closed, wait_free
from emulators._procs import Child, stop_all
from emulators._reload import Reloader
from emulators._scheduler import Job, LocalScheduler
from emulators._wiring import REPLAY_WINDOW_S, Plan, backoff_from_env, wire
from emulators._zygote import Zygote
from emulators._zygote import enabled as zygote_enabled
from shared import manifests
from shared.manifests import Catalog, Deployment

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROJECT = "switchyard-local"
DEFAULT_ADMIN_EMAIL = "admin@switchyard.local"
DEFAULT_ADMIN_PASSWORD = "switchyard-local-admin"  # noqa: S105 - local stack only
GATEWAY = "gateway"
SERVE = Path(__file__).resolve().with_name("_serve.py")
# Crash restart (as Cloud Run starts a new instance): wait 1, 2, 4, 8 s before restarts 1..4;
# the CRASH_LIMIT-th crash within CRASH_WINDOW_S seconds stops the restarts.
CRASH_LIMIT = 5
CRASH_WINDOW_S = 60.0
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
REPLAY = "pubsub-replay"  # the tool that publishes again what a restarted emulator lost
REPLAY_CODE = "import sys; from emulators._wiring import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class PubsubRecovery:
    """One restart of the Pub/Sub emulator and what the stack did about it (decision 0049)."""

    generation: int  # the emulator's generation that came up empty
    since: datetime  # rows published from then on are checked (the previous one's start)
    down_at: datetime  # when the previous one stopped
    up_at: datetime  # when this one answered
    wired_at: datetime | None = None
    result: dict[str, Any] | None = None  # the replay's {checked, published, failed}
    error: str | None = None
    wired: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


def assign_ports(catalog: Catalog, ports: Ports) -> dict[str, int]:
    """deployment -> port: `gateway` on ports.gateway, the others from ports.functions_base in
    catalog order (stable whatever subset runs)."""
    port_of: dict[str, int] = {}
    nxt = ports.functions_base
    for name in catalog.deployments:
        if name == GATEWAY:
            port_of[name] = ports.gateway
        else:
            port_of[name] = nxt
            nxt += 1
    return port_of


def _functions_framework() -> list[str]:
    script = Path(sys.executable).with_name("functions-framework")
    return [str(script)] if script.exists() else [sys.executable, "-m", "functions_framework"]


class Stack:
    """The local stack; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        root: Path | None = None,
        project: str = DEFAULT_PROJECT,
        ports: Ports | None = None,
        only: Iterable[str] | None = None,
        functions: bool = True,
        local_dir: Path | None = None,
        database_url: str | None = None,
        backoff: tuple[float, float] | None = None,
        log_dir: Path | None = None,
        echo: bool = True,
        color: bool | None = None,
        persist_firestore: bool = True,
        scheduler: bool = True,
        migrate: bool = True,
        strict: bool = True,
        ready_timeout_s: float = 60.0,
        restart_backoff_s: Sequence[float] = RESTART_BACKOFF_S,
        reload: bool = False,
        dashboard: bool = False,
        env: Mapping[str, str] | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.root = (root or ROOT).resolve()
        self.catalog = catalog = catalog or self.catalog_of(self.root)
        self.project = project
        self.ports = ports or Ports.from_env()
        self.port_of = assign_ports(catalog, self.ports)
        deployments = catalog.deployments
        if only is not None:
            wanted = [n.strip() for n in only if n.strip()]
            unknown = [n for n in wanted if n not in deployments]
            if unknown:
                raise LocalStackError(
                    f"unknown deployment(s) {', '.join(unknown)}; known: {', '.join(deployments)}"
                )
            self.selected = [d for n, d in deployments.items() if n in wanted]
            self.only: list[str] | None = wanted
        else:
            self.only = None
            self.selected = list(deployments.values())
        self.run_functions = functions
        self.local_dir = Path(
            local_dir or os.environ.get("SWITCHYARD_LOCAL_DIR") or self.root / ".local"
        ).resolve()
        self.database_url = (
            database_url if database_url is not None else os.environ.get("DATABASE_URL", "")
        )
        self.backoff = backoff or backoff_from_env()
        self.persist_firestore = persist_firestore
        self.use_scheduler = scheduler
        self.migrate = migrate
        self.strict = strict
        self.ready_timeout_s = ready_timeout_s
        self.restart_backoff_s = tuple(restart_backoff_s)
        self.reload = reload
        self.reloader: Reloader | None = None
        self.use_dashboard = dashboard
        self.dashboard: Dashboard | None = None
        self.extra_env = dict(env or {})
        self.admin_email = os.environ.get("BOOTSTRAP_ADMIN_EMAIL") or DEFAULT_ADMIN_EMAIL
        self.admin_password = os.environ.get("BOOTSTRAP_ADMIN_PASSWORD") or DEFAULT_ADMIN_PASSWORD
        self.log_dir = log_dir
        self.hub = LogHub(stream=sys.stdout if echo else None, color=color, log_dir=log_dir)
        self.pubsub = Emulator(
            "pubsub",
            self.ports.pubsub,
            project=project,
            hub=self.hub,
            data_dir=self.local_dir / "pubsub",
        )
        self.firestore = Emulator(
            "firestore",
            self.ports.firestore,
            project=project,
            hub=self.hub,
            data_dir=self.local_dir / "firestore",
            persist=persist_firestore,
        )
        self.children: dict[str, Child] = {}
        self.sockets: dict[str, socket.socket] = {}  # deployment -> its listening socket
        self.crashes: dict[str, collections.deque[float]] = {}  # crash times, last window
        self.gave_up: set[str] = set()  # crashed CRASH_LIMIT times: no more restarts
        self._restart_at: dict[str, float] = {}  # deployment -> when to restart it
        self.health: dict[str, int | None] = {}  # last health status per running deployment
        self.ready_s: dict[str, float] = {}  # seconds from spawn to healthy, per deployment
        self.plan: Plan | None = None
        self.bridge: PushBridge | None = None  # pushes the event subscriptions (decision 0031)
        # Pub/Sub emulator restarts the monitor made up for, by the emulator's generation
        self.pubsub_recoveries: dict[int, PubsubRecovery] = {}
        self._pubsub_wired = 0  # the emulator generation the wiring was made on
        self._pubsub_wired_ready: datetime | None = None  # when that generation came up
        # rows published from then on may still be lost: a recovery has not made up for them
        self._pubsub_owed: datetime | None = None
        self.scheduler: LocalScheduler | None = None
        self.timings: dict[str, float] = {}
        self.started = False
        self._stopping = False
        self._monitor: threading.Thread | None = None
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._tool_children: list[Child] = []  # migrate / keygen while they run
        self._spawned_at = 0.0
        self.zygote: Zygote | None = None  # forks the deployments' processes (0051)

    @staticmethod
    def catalog_of(root: Path) -> Catalog:
        """The manifests of the checkout at `root` (this repo's are loaded once per process)."""
        root = root.resolve()
        return manifests.catalog() if root == ROOT else manifests.load(root / "functions")

    # -- addresses -------------------------------------------------------------------------
    def url_of(self, deployment: str) -> str:
        return f"http://{HOST}:{self.port_of[deployment]}"

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.ports.gateway}"

    @property
    def deployments(self) -> dict[str, Deployment]:
        """The deployments this stack runs (all of the catalog unless `only` was given)."""
        return {d.name: d for d in self.selected}

    @property
    def service_urls(self) -> dict[str, str]:
        return {name: self.url_of(name) for name in self.catalog.deployments}

    def pid_of(self, deployment: str) -> int | None:
        child = self.children.get(deployment)
        return child.pid if child and child.running else None

    @property
    def log_path(self) -> Path | None:
        return self.log_dir / "stack.log" if self.log_dir else None

    def logs(self, name: str | None = None) -> str:
        """The collected log of one process (or all of them) when a log_dir is set."""
        if self.log_dir is None:
            return "\n".join(self.hub.tail(name or "stack", 10_000))
        path = self.log_dir / (f"{name}.log" if name else "stack.log")
        return path.read_text() if path.exists() else ""

    def env(self) -> dict[str, str]:
        """Variables that point a client (a test, a script) at this stack's services."""
        env = {
            "SWITCHYARD_ENV": "local",
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "SWITCHYARD_LOCAL_DIR": str(self.local_dir),
            "SERVICE_URLS": json.dumps(self.service_urls),
            "BOOTSTRAP_ADMIN_EMAIL": self.admin_email,
            "BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
        }
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return env

    def env_for(self, dep: Deployment | None) -> dict[str, str]:
        """The environment of one process of the stack (a deployment, or a tool when None)."""
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.pop("K_SERVICE", None)
        if dep is not None:
            env.update(dict(dep.env))
            for name, value in dep.pool_env.items():  # as in the cloud, unless set here
                env.setdefault(name, value)
        env.update(self.env())
        env.update(
            {
                "SWITCHYARD_DEPLOYMENT": dep.name if dep else "",
                "PYTHONPATH": str(self.root),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.dashboard is not None:  # the gateway forwards /_dev/ there (local only)
            env["SWITCHYARD_DEV_DASHBOARD_URL"] = f"http://{HOST}:{self.dashboard.port}"
            # finished spans as JSON lines on stdout: the dashboard's trace view reads them
            env.setdefault("TRACE_EXPORTER", "log")
        env.update(self.extra_env)
        return env

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Stack:
        t0 = time.monotonic()
        names = ["pubsub", "firestore"]
        if self.run_functions:
            names += ["migrate", "keygen", "scheduler", *(d.name for d in self.selected)]
        self.hub.register("stack", *names)
        try:
            self._reap_orphans()
            self._check_ports()
            self.local_dir.mkdir(parents=True, exist_ok=True)
            self.hub.say(_tools.prefer_java(os.environ))  # gcloud runs the `java` on PATH
            if self.run_functions and zygote_enabled(os.environ):
                # preloads the deployments' third-party imports while the emulators boot
                self.zygote = Zygote(env=self.env_for(None), cwd=self.root, log=self._zlog).start()
            if self.use_dashboard and self.run_functions:
                self.dashboard = Dashboard(self)  # its port goes into the gateway's env
                self.hub.listeners.append(self.dashboard.observer.line)
                self.dashboard.start_server()
            # The emulators (Java, the slowest part) boot while, in a second thread, the
            # migrations and the keys are done and every deployment imports its code: none of
            # that needs an emulator. The health waits start once the wiring is done.
            self.pubsub.launch()
            self.firestore.launch()
            prep = _Background(self._prepare) if self.run_functions else None
            self._step("emulators", self._start_emulators)
            self._save_run()
            self._step("wiring", self._wire)
            if self.dashboard is not None:
                self.dashboard.start_feeds()
            if prep is not None:
                self._step("prepare", prep.join)
                # Bootstrap data (the first admin) runs while the deployments come up: the
                # schemas are migrated and the topics wired, and its events wait in their
                # subscriptions until the push bridge starts, once every consumer is healthy.
                boot = (
                    _Background(
                        lambda: self._step(
                            "bootstrap",
                            lambda: self._tool(
                                "migrate", [sys.executable, "-m", "shared.migrate", "bootstrap"]
                            ),
                        )
                    )
                    if self.migrate
                    else None
                )
                self._step("health", self._await_functions)
                if boot is not None:
                    boot.join()
                assert self.plan is not None
                self.bridge = PushBridge(self.plan, self.pubsub.host, log=self.hub.say).start()
                if self.use_scheduler:
                    self._start_scheduler()
            self._save_run()
            self._monitor = threading.Thread(target=self._watch, name="monitor", daemon=True)
            self._monitor.start()
            if self.reload and self.run_functions:
                self.reloader = Reloader(self).start()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        self.started = True
        self.hub.say(self.table())
        return self

    def _step(self, name: str, fn) -> None:  # noqa: ANN001
        t = time.monotonic()
        fn()
        self.timings[name] = time.monotonic() - t

    def _check_ports(self) -> None:
        ensure_free(self.ports.pubsub, "the Pub/Sub emulator", "pubsub")
        ensure_free(self.ports.firestore, "the Firestore emulator", "firestore")
        if not self.run_functions:
            return
        for d in self.selected:
            setting = "gateway" if d.name == GATEWAY else "functions_base"
            ensure_free(self.port_of[d.name], f"deployment {d.name}", setting)

    def _start_emulators(self) -> None:
        """Wait for both emulators (launched by `start`)."""
        errors: list[BaseException] = []
        for em in (self.pubsub, self.firestore):
            try:
                em.wait_ready(self.ready_timeout_s)  # a bound: they boot next to the imports
            except StartupError as exc:
                errors.append(exc)
        if errors:
            raise StartupError("\n".join(str(e) for e in errors))
        self.timings["pubsub"] = self.pubsub.started_in or 0.0
        self.timings["firestore"] = self.firestore.started_in or 0.0
        self.hub.say(
            f"emulators up: Pub/Sub {self.pubsub.host} ({self.timings['pubsub']:.1f} s), "
            f"Firestore {self.firestore.host} ({self.timings['firestore']:.1f} s)"
        )

    def _wire(self) -> None:
        generation = self.pubsub.generation
        self.plan = wire(
            self.catalog,
            self.project,
            self.port_of,
            backoff_override=self.backoff,
            emulator_host=self.pubsub.host,
        )
        backoff = (
            f", retry backoff {self.backoff[0]:g}..{self.backoff[1]:g} s" if self.backoff else ""
        )
        if generation != self._pubsub_wired:
            self._pubsub_wired, self._pubsub_wired_ready = generation, self.pubsub.ready_at
        self.hub.say(
            f"wired {len(self.plan.topics)} topics, {len(self.plan.push)} push and "
            f"{len(self.plan.keep)} dead-letter subscriptions{backoff}"
        )

    def _tool(self, name: str, argv: list[str], timeout: float = 180.0) -> None:
        shown = ["python", *argv[1:]] if argv[0] == sys.executable else argv
        self.hub.say(f"running {shlex.join(shown)}")
        child = Child(name, argv, hub=self.hub, env=self.env_for(None), cwd=self.root)
        with self._lock:
            if self._stopping:
                raise LocalStackError(f"not running {name}: the stack is stopping")
            self._tool_children.append(child)
            child.start()
        try:
            code = child.wait(timeout)
        except BaseException:
            child.stop()
            raise
        finally:
            with self._lock:
                self._tool_children.remove(child)
        if code != 0:
            tail = "\n".join("    " + ln for ln in self.hub.tail(name, 25))
            raise StartupError(
                f"`python -m {' '.join(argv[2:])}` failed with exit code {code}; "
                f"its last lines:\n{tail}"
            )

    def _listen(self, name: str) -> socket.socket:
        """The listening socket of a deployment, bound once and kept across its restarts."""
        sock = self.sockets.get(name)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, self.port_of[name]))
            except OSError:
                sock.close()
                setting = "gateway" if name == GATEWAY else "functions_base"
                ensure_free(self.port_of[name], f"deployment {name}", setting)
                raise
            sock.listen(2048)  # gunicorn's default backlog
            self.sockets[name] = sock
        return sock

    def _close_socket(self, name: str) -> None:
        sock = self.sockets.pop(name, None)
        if sock is not None:
            sock.close()

    def _argv(self, dep: Deployment, *fds: int) -> list[str]:
        source = dep.source_dir / "main.py"
        with contextlib.suppress(ValueError):
            source = source.relative_to(self.root)
        return [
            sys.executable,
            "-I",
            "-S",
            str(SERVE),
            ",".join(str(fd) for fd in fds),
            *_functions_framework(),
            "--source",
            str(source),
            "--target",
            dep.entry_point,
            "--signature-type",
            "http",
            "--host",
            HOST,
            "--port",
            str(self.port_of[dep.name]),
        ]

    def _zlog(self, text: str) -> None:
        (self.hub.alert if text.startswith("!!!") else self.hub.say)(text)

    def _spawn(self, dep: Deployment) -> Child:
        with self._lock:  # `stop` takes its list of children under the same lock
            if self._stopping:
                raise LocalStackError(f"not starting {dep.name}: the stack is stopping")
            fd = self._listen(dep.name).fileno()
            child = Child(
                dep.name,
                self._argv(dep, fd),
                hub=self.hub,
                env=self.env_for(dep),
                cwd=self.root,
                pass_fds=(fd,),
                zygote=self.zygote,
                fork_argv=self._argv(dep, fd)[5:],  # functions-framework's own argv
            )
            self.children[dep.name] = child
            child.start()
        return child

    def _prepare(self) -> None:
        """Migrations, keys, then every deployment's process (they import while the
        emulators boot); runs in a thread of `start`."""
        if self.migrate:  # independent of each other: side by side
            keygen = _Background(
                lambda: self._step(
                    "keygen",
                    lambda: self._tool(
                        "keygen", [sys.executable, "-m", "shared.auth", "keygen-local"]
                    ),
                )
            )
            self._step(
                "migrate",
                lambda: self._tool(
                    "migrate",
                    [sys.executable, "-m", "shared.migrate", "upgrade", "--no-bootstrap"],
                ),
            )
            keygen.join()
        self._spawned_at = time.monotonic()
        for dep in self.selected:
            self._spawn(dep)
        self._save_run()

    def _await_functions(self) -> None:
        failed = self._wait_healthy(self.selected)
        self.timings["functions"] = time.monotonic() - self._spawned_at
        if failed:
            report = "\n".join(failed.values())
            if self.strict:
                raise StartupError(f"{len(failed)} deployment(s) did not become healthy:\n{report}")
            self.hub.alert(f"!!! {len(failed)} deployment(s) are DOWN:\n{report}")

    def _wait_healthy(self, deps: list[Deployment]) -> dict[str, str]:
        """Wait for every health path to answer < 500, one thread per deployment; name ->
        failure report. The supervisor holds the listening sockets, so a request to a process
        still importing its code waits in the backlog (no connection refused to poll on): each
        thread's request is answered as soon as its process serves."""
        failed: dict[str, str] = {}
        deadline = time.monotonic() + self.ready_timeout_s

        def wait(dep: Deployment) -> None:
            name, child = dep.name, self.children[dep.name]
            session = requests.Session()
            try:
                while True:
                    status = None
                    with contextlib.suppress(requests.RequestException):
                        status = session.get(
                            self.url_of(name) + dep.health_path, timeout=3.0
                        ).status_code
                    self.health[name] = status
                    if status is not None and status < 500:
                        self.ready_s[name] = time.monotonic() - child.started_at
                        return
                    if not child.running:
                        child.reported = True  # reported here, not again by the monitor
                        time.sleep(0.2)
                        failed[name] = self._down(name, f"exited with code {child.returncode}")
                        return
                    if time.monotonic() > deadline:
                        why = f"answered {status}" if status else "did not answer"
                        failed[name] = self._down(
                            name, f"{why} on {dep.health_path} within {self.ready_timeout_s:.0f} s"
                        )
                        return
                    if status is not None:
                        time.sleep(0.1)  # answered >= 500 (a dependency not ready yet)
            finally:
                session.close()

        threads = [threading.Thread(target=wait, args=(d,), name=f"health-{d.name}") for d in deps]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return failed

    def _down(self, name: str, why: str) -> str:
        tail = "\n".join("    " + ln for ln in self.hub.tail(name, 15)) or "    (no output)"
        return f"  {name} ({self.url_of(name)}) {why}; its last lines:\n{tail}"

    def _start_scheduler(self) -> None:
        jobs = [
            Job(
                name=d.name,
                schedule=d.schedule or "",
                time_zone=d.time_zone,
                url=self.url_of(d.name) + "/",
                timeout_s=float(d.runtime.timeout_s),
            )
            for d in self.selected
            if d.trigger == "schedule"
        ]
        self.scheduler = LocalScheduler(
            jobs,
            state_dir=self.local_dir / "scheduler",
            log=lambda text: self.hub.line("scheduler", text),
        )
        self.scheduler.start()

    def _watch(self) -> None:
        """Report loudly any child that dies while the stack runs (the others keep running),
        and restart a deployment that died, with backoff, as Cloud Run starts a new instance."""
        while not self._stopping:
            with self._lock:
                watched = [*self.children.values()]
            for em in (self.pubsub, self.firestore):
                if em.child is not None:
                    watched.append(em.child)
            for child in watched:
                if child.stopping or child.reported or child.running or child.proc is None:
                    continue
                child.reported = True
                time.sleep(0.2)
                tail = "\n".join("    " + ln for ln in self.hub.tail(child.name, 15))
                if self.children.get(child.name) is child:
                    then = self._crashed(child.name)
                elif child is self.pubsub.child:
                    then = self._pubsub_crashed()
                else:
                    then = "the stack keeps running without it"
                self.hub.alert(
                    f"!!! {child.name} exited unexpectedly with code "
                    f"{child.returncode}; its last lines:\n{tail}\n!!! {child.name}: {then}"
                )
            self._notice_pubsub_restart()
            now = time.monotonic()
            for name, at in list(self._restart_at.items()):
                if at <= now and not self._stopping:
                    del self._restart_at[name]
                    with contextlib.suppress(LocalStackError):  # the stack began to stop
                        self._restart_crashed(name)
            time.sleep(0.2)

    # -- a restarted Pub/Sub emulator (decision 0049) --------------------------------------
    def _pubsub_crashed(self) -> str:
        """The Pub/Sub emulator died: start it again (its recovery follows, as for a restart)."""

        def again() -> None:
            try:
                self.pubsub.stop()  # what is left of its process group (the Java child)
                self.pubsub.start(timeout=60)
            except Exception as exc:  # noqa: BLE001 - said loudly; the stack keeps running
                self.hub.alert(f"!!! pubsub could not be started again: {exc}")

        threading.Thread(target=again, name="pubsub-again", daemon=True).start()
        return "starting it again, then wiring it and publishing again what it held"

    def _notice_pubsub_restart(self) -> None:
        """A Pub/Sub emulator that answers with a generation the wiring was not made on has
        restarted empty: recover it (in a thread; the monitor goes on)."""
        gen = self.pubsub.generation
        if (
            self._stopping
            or self.plan is None
            or gen == self._pubsub_wired
            or gen in self.pubsub_recoveries
            or not self.pubsub.running
        ):
            return
        now = datetime.now(UTC)
        up_at = self.pubsub.ready_at or now
        down_at = self.pubsub.stopped_at or up_at
        # What the previous emulator held was published while it lived; a recovery that did
        # not finish (a restart during a restart) or failed still owes what it was making up.
        lived = self._pubsub_wired_ready or down_at
        since = min(lived, self._pubsub_owed or lived)
        since = max(since, down_at - timedelta(seconds=REPLAY_WINDOW_S))
        self._pubsub_owed = since
        rec = PubsubRecovery(generation=gen, since=since, down_at=down_at, up_at=up_at)
        self.pubsub_recoveries[gen] = rec
        threading.Thread(
            target=self._recover_pubsub, args=(rec,), name="pubsub-recovery", daemon=True
        ).start()

    def _recover_pubsub(self, rec: PubsubRecovery) -> None:
        """Wire the restarted emulator again, then publish again what it lost: the outbox rows
        published while the previous emulator lived (at most REPLAY_WINDOW_S back) or during
        this wiring that some subscription has not processed (emulators._wiring.replay)."""
        self.hub.alert(
            f"!!! the Pub/Sub emulator restarted (generation {rec.generation}) and holds "
            "nothing: wiring it again and publishing again what it lost"
        )
        try:
            self._wire()
            rec.wired_at = datetime.now(UTC)
            if self.dashboard is not None:
                with contextlib.suppress(Exception):  # the dev dashboard's taps: best effort
                    self.dashboard.tap.rewire()
            rec.wired.set()
            if self.run_functions:
                self._replay(rec)
            if rec.generation == max(self.pubsub_recoveries):  # nothing newer is owed
                self._pubsub_owed = None
            self.hub.say(f"Pub/Sub emulator recovered: {rec.result or 'wired'}")
        except Exception as exc:  # noqa: BLE001 - said loudly; the stack keeps running
            rec.error = str(exc)
            self.hub.alert(
                f"!!! recovering the restarted Pub/Sub emulator failed: {exc}\n!!! what it "
                "lost is published again at its next restart (or restart `make dev`)"
            )
        finally:
            rec.done.set()

    def _replay(self, rec: PubsubRecovery, attempts: int = 3) -> None:
        """Run the replay tool; again when it failed on this same emulator (a database or
        Firestore hiccup). A newer emulator's recovery takes over what this one owed."""
        assert rec.wired_at is not None
        self.hub.register(REPLAY)
        argv = [sys.executable, "-c", REPLAY_CODE, "replay"]
        argv += [rec.since.isoformat(), rec.up_at.isoformat(), rec.wired_at.isoformat()]
        for attempt in range(1, attempts + 1):
            try:
                self._tool(REPLAY, argv, timeout=300)
            except StartupError:
                if attempt == attempts or self.pubsub.generation != rec.generation:
                    tail = "\n".join("    " + ln for ln in self.hub.tail(REPLAY, 5))
                    newer = self.pubsub.generation != rec.generation
                    raise LocalStackError(
                        f"the replay failed (attempt {attempt}"
                        f"{', the emulator restarted again meanwhile' if newer else ''}); "
                        f"its last lines:\n{tail}"
                    ) from None
                continue
            with contextlib.suppress(ValueError, IndexError):
                rec.result = json.loads(self.hub.tail(REPLAY, 1)[-1])
            return

    def _crashed(self, name: str) -> str:
        """Count a crash of deployment `name`; schedule its restart or give up. Says which."""
        times = self.crashes.setdefault(name, collections.deque())
        now = time.monotonic()
        times.append(now)
        while times and times[0] < now - CRASH_WINDOW_S:
            times.popleft()
        self.health[name] = None
        if len(times) >= CRASH_LIMIT:
            self.gave_up.add(name)
            self._close_socket(name)  # callers are refused now, not left waiting
            self._save_run()
            return (
                f"crashed {len(times)} times in {CRASH_WINDOW_S:.0f} s: NOT restarting it "
                "again; fix it, then save a file of its context (live reload) or restart "
                "`make dev`"
            )
        steps = self.restart_backoff_s
        delay = steps[min(len(times), len(steps)) - 1]
        self._restart_at[name] = now + delay
        return (
            f"restarting it in {delay:g} s (crash {len(times)} in {CRASH_WINDOW_S:.0f} s; "
            f"restarts stop at {CRASH_LIMIT}); requests to it wait meanwhile"
        )

    def _restart_crashed(self, name: str) -> None:
        dep = self.catalog.deployments[name]
        old = self.children.get(name)
        if old is not None and old.proc is not None:
            old.finish(time.monotonic())  # what is left of its process group
        t = time.monotonic()
        child = self._spawn(dep)
        self._save_run()
        self.hub.alert(f"!!! {name} restarted after a crash (pid {child.pid})")
        threading.Thread(
            target=self._report_healthy, args=(dep, child, t), name=f"up-{name}", daemon=True
        ).start()

    def _report_healthy(self, dep: Deployment, child: Child, since: float) -> None:
        """Say when a restarted deployment answers its health path (its death is the
        monitor's to report)."""
        session = requests.Session()
        deadline = since + self.ready_timeout_s
        try:
            while not self._stopping and child.running and time.monotonic() < deadline:
                status = None
                with contextlib.suppress(requests.RequestException):
                    status = session.get(
                        self.url_of(dep.name) + dep.health_path, timeout=2
                    ).status_code
                if status is not None and status < 500:
                    self.health[dep.name] = status
                    self.hub.say(
                        f"{dep.name} is healthy again ({status} on {dep.health_path}, "
                        f"{time.monotonic() - since:.1f} s after its restart)"
                    )
                    return
                time.sleep(0.1)
        finally:
            session.close()

    def stop_deployment(self, name: str) -> None:
        """Stop one deployment (its port closes); the rest of the stack keeps running."""
        child = self.children.get(name)
        if child is None:
            raise LocalStackError(f"deployment {name!r} is not running in this stack")
        self._restart_at.pop(name, None)
        child.stop()
        self._close_socket(name)
        wait_closed(self.port_of[name])
        self.hub.say(f"{name} stopped")

    def start_deployment(self, name: str, *, wait: bool = True) -> None:
        """(Re)start one deployment of the catalog and, with `wait`, wait for its health."""
        dep = self.catalog.deployments[name]
        old = self.children.get(name)
        if old is not None and old.running:
            raise LocalStackError(f"deployment {name!r} is already running")
        self._restart_at.pop(name, None)
        self.gave_up.discard(name)
        self.crashes.pop(name, None)
        if name not in self.sockets:
            ensure_free(
                self.port_of[name],
                f"deployment {name}",
                "gateway" if name == GATEWAY else "functions_base",
            )
        if dep not in self.selected:
            self.selected.append(dep)
        self._spawn(dep)
        self._save_run()
        if wait:
            failed = self._wait_healthy([dep])
            if failed:
                raise StartupError("\n".join(failed.values()))
        self.hub.say(f"{name} started on {self.url_of(name)}")

    def reload_deployment(self, name: str) -> bool:
        """Replace a deployment's process by a new one (new code) without dropping a request.

        The new process gets the deployment's listening socket and a private probe socket; it
        must answer its health path on the probe before the old process is stopped (SIGTERM:
        gunicorn finishes the requests in flight). A new process that exits (an import error)
        or does not become healthy is stopped and the old one keeps serving. A deployment that
        is down (crashed too often, failed at start) is simply started. True when the new
        process serves."""
        dep = self.catalog.deployments[name]
        old = self.children.get(name)
        self._restart_at.pop(name, None)
        self.gave_up.discard(name)
        self.crashes.pop(name, None)
        if old is None or not old.running:
            if old is not None:
                old.finish(time.monotonic())
            self._spawn(dep)
            self._save_run()
            failed = self._wait_healthy([dep])
            if failed:
                self.hub.alert(f"!!! {name} did not start:\n{failed[name]}")
            return not failed
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.bind((HOST, 0))
        probe.listen(64)
        probe_url = f"http://{HOST}:{probe.getsockname()[1]}{dep.health_path}"
        with self._lock:
            if self._stopping:
                probe.close()
                return False
            fds = (self._listen(name).fileno(), probe.fileno())
            new = Child(
                name,
                self._argv(dep, *fds),
                hub=self.hub,
                env=self.env_for(dep),
                cwd=self.root,
                pass_fds=fds,
                zygote=self.zygote,
                fork_argv=self._argv(dep, *fds)[5:],
            )
            new.reported = True  # its failure is reported here, not by the monitor
            new.start()
        probe.close()  # the new process holds its own copy
        status: int | None = None
        session = requests.Session()
        deadline = time.monotonic() + self.ready_timeout_s
        try:
            while new.running and time.monotonic() < deadline and not self._stopping:
                with contextlib.suppress(requests.RequestException):
                    status = session.get(probe_url, timeout=2).status_code
                if status is not None and status < 500:
                    break
                time.sleep(0.05)
        finally:
            session.close()
        if status is None or status >= 500:
            why = (
                f"exited with code {new.returncode}"
                if not new.running
                else f"answered {status} on {dep.health_path}"
            )
            new.stop()
            tail = "\n".join("    " + ln for ln in self.hub.tail(name, 20))
            self.hub.alert(
                f"!!! reload of {name} failed: the new process {why}; the old one keeps "
                f"serving. Its last lines:\n{tail}"
            )
            return False
        with self._lock:
            new.reported = False  # from now on the monitor restarts it if it dies
            self.children[name] = new
        self.health[name] = status
        self._save_run()
        threading.Thread(target=old.stop, name=f"retire-{name}", daemon=True).start()
        return True

    def apply_catalog(self, catalog: Catalog) -> set[str]:
        """Take changed manifests: re-wire topics and subscriptions, stop removed deployments,
        give new ones a port; the names of the deployments to (re)start. A deployment whose
        manifest entry changed restarts; the gateway restarts when routes changed (it reads
        them at start); all restart when deployments came or went (SERVICE_URLS changed)."""
        old = self.catalog.deployments
        new = catalog.deployments
        self.catalog = catalog
        selected = {d.name for d in self.selected}
        added = [n for n in new if n not in old]
        removed = [n for n in old if n not in new]
        for name in added:
            port = max(self.port_of.values()) + 1
            while not port_is_free(port):
                port += 1
            self.port_of[name] = port
        self.selected = [new[n] for n in new if n in selected or (n in added and self.only is None)]
        self._wire()
        if self.bridge is not None and self.plan is not None:  # push the new subscriptions too
            self.bridge.stop()
            self.bridge = PushBridge(self.plan, self.pubsub.host, log=self.hub.say).start()
        if self.dashboard is not None:
            with contextlib.suppress(Exception):  # the feed of new topics; never a blocker
                self.dashboard.tap.rewire()
        for name in removed:
            if name in self.children:
                with contextlib.suppress(LocalStackError):
                    self.stop_deployment(name)
                del self.children[name]
            self.port_of.pop(name, None)
        running = {d.name for d in self.selected}
        restart = {n for n in running if n in old and new[n] != old[n]} | (set(added) & running)
        if added or removed:
            restart |= running
        if GATEWAY in running and {d.routes for d in old.values()} != {
            d.routes for d in new.values()
        }:
            restart.add(GATEWAY)
        if self.scheduler is not None and any(
            n in restart and new[n].trigger == "schedule" for n in running
        ):
            self.scheduler.stop()
            self._start_scheduler()
        return restart

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self, grace: float = 5.0) -> None:
        """Stop everything (idempotent): scheduler, functions, then emulators."""
        if self._stopping:
            return
        self._stopping = True
        t = time.monotonic()
        if self.reloader is not None:
            self.reloader.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.bridge is not None:
            self.bridge.stop()
        with self._lock:
            children = list(self.children.values()) + list(self._tool_children)
        # functions and emulators stop together (the Java emulators take ~2 s to exit);
        # Firestore exports its data first, while the functions are finishing
        threads = [
            threading.Thread(target=em.stop, args=(grace,)) for em in (self.pubsub, self.firestore)
        ]
        for th in threads:
            th.start()
        stop_all(children, grace)
        if self.zygote is not None:  # after its children: it reports their exits
            self.zygote.stop()
        for th in threads:
            th.join()
        for name in list(self.sockets):
            self._close_socket(name)
        for c in children:
            wait_closed(self.port_of[c.name], timeout=2.0)
        with contextlib.suppress(FileNotFoundError):
            (self.local_dir / "run" / "stack.json").unlink()
        if self.started:
            self.hub.say(f"stopped in {time.monotonic() - t:.1f} s")
        self.hub.close()

    # -- leftovers of a stack that was killed ----------------------------------------------
    def _run_file(self) -> Path:
        return self.local_dir / "run" / "stack.json"

    def process_groups(self) -> list[dict[str, object]]:
        """Run-file entries (name, pgid, markers) of every live child, emulators included."""
        entries = [e for e in (self.pubsub.run_entry(), self.firestore.run_entry()) if e]
        with self._lock:
            for name, c in self.children.items():
                if c.pid and c.running:
                    markers = [f"--port {self.port_of[name]}"]
                    # a forked one's command line is the zygote's, and gunicorn retitles its
                    # processes when setproctitle is installed: its start time names it too
                    if start := _runfile.start_marker(c.pid):
                        markers.append(start)
                    entries.append({"name": name, "pgid": c.pid, "markers": markers})
        z = self.zygote
        if z is not None and z.alive and z.proc is not None:
            entries.append({"name": "zygote", "pgid": z.proc.pid, "markers": ["_zygote.py"]})
        return entries

    def _save_run(self) -> None:
        with self._run_lock:  # `start`'s two threads both record what they started
            _runfile.write(self._run_file(), self.process_groups())

    def _reap_orphans(self) -> None:
        if not _runfile.reap(self._run_file(), self.hub.say):
            return
        # the leftovers held this stack's ports (likely the same ones): they may take a moment
        # to be bindable again once their processes are gone
        ports = [self.ports.pubsub, self.ports.firestore]
        if self.run_functions:
            ports += [self.port_of[d.name] for d in self.selected]
        deadline = time.monotonic() + 10.0
        for port in ports:
            wait_free(port, timeout=max(0.0, deadline - time.monotonic()))

    # -- the table -------------------------------------------------------------------------
    def timing_line(self) -> str:
        """Where the start's time went. The emulators boot while migrate, keygen and the
        deployments' imports run in parallel; `functions` is spawn -> every one healthy."""
        t = self.timings
        slow = sorted(self.ready_s.items(), key=lambda kv: -kv[1])[:3]
        slowest = ", ".join(f"{n} {s:.1f}" for n, s in slow)
        return (
            f"Healthy in {t.get('total', 0):.1f} s (emulators {t.get('emulators', 0):.1f} s | "
            f"in parallel: migrate {t.get('migrate', 0):.1f} s, keygen "
            f"{t.get('keygen', 0):.1f} s, functions {t.get('functions', 0):.1f} s"
            + (f" (slowest: {slowest})" if slowest else "")
            + f" | wiring {t.get('wiring', 0):.1f} s, bootstrap {t.get('bootstrap', 0):.1f} s"
            " beside the health waits)."
        )

    def table(self) -> str:
        lines = []
        if self.run_functions:
            rows = [("deployment", "trigger", "port", "url", "status", "routes / topics / cron")]
            for d in self.selected:
                if d.trigger == "http":
                    what = " ".join(d.routes)
                elif d.trigger == "event":
                    what = (
                        "<- * (every topic)" if d.subscribes_all else "<- " + " ".join(d.subscribes)
                    )
                else:
                    what = f"{d.schedule} ({d.time_zone})"
                status = self.health.get(d.name)
                state = (
                    "up"
                    if status == 200
                    else (f"up ({status})" if status and status < 500 else "DOWN")
                )
                rows.append(
                    (d.name, d.trigger, str(self.port_of[d.name]), self.url_of(d.name), state, what)
                )
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            for r in rows:
                cells = "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:5]))
                lines.append(f"{cells}  {r[5]}")
            lines.append("")
        lines.append(f"Pub/Sub emulator:   export PUBSUB_EMULATOR_HOST={self.pubsub.host}")
        lines.append(f"Firestore emulator: export FIRESTORE_EMULATOR_HOST={self.firestore.host}")
        lines.append(f"Project:            {self.project}")
        if self.run_functions:
            gw = self.gateway_url.replace(HOST, "localhost")
            body = json.dumps({"email": self.admin_email, "password": self.admin_password})
            db = _safe_url(self.database_url) or f"SQLite in {self.local_dir}"
            lines += [
                f"Database:           {db}",
                f"Gateway:            {gw}",
            ]
            if self.dashboard is not None:
                lines.append(
                    f"Dev dashboard:      {gw}/_dev/ (served by this supervisor on "
                    f"{self.dashboard.url})"
                )
            lines += [
                f"Admin login:        {self.admin_email} / {self.admin_password}",
                "",
                "Try:",
                f"  curl -s {gw}/api/health",
                f"  curl -s -X POST {gw}/api/auth/login -H 'Content-Type: application/json' \\",
                f"       -d '{body}'",
                f"  TOKEN=$(curl -s -X POST {gw}/api/auth/login -H 'Content-Type: application/json'"
                f" -d '{body}' | python3 -c 'import json,sys; print(json.load(sys.stdin)"
                '["access_token"])\')',
                f'  curl -s {gw}/api/users -H "Authorization: Bearer $TOKEN"',
            ]
            if self.scheduler and self.scheduler.jobs:
                job = next(iter(self.scheduler.jobs))
                lines.append(f"  python -m emulators scheduler list|pause|resume|run {job}")
            lines.append("")
            lines.append(self.timing_line() + " Ctrl-C stops everything.")
        return "\n".join(lines)


def _safe_url(url: str) -> str:
    if not url:
        return ""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url.split("@")[-1]


class _Background:
    """Run `fn` in a thread; `join()` waits and re-raises what it raised."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name="prepare", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to join()
            self._error = exc

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error
