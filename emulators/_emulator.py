"""The Pub/Sub and Firestore emulators, started through `gcloud` in their own process group.

`Emulator(kind, port).start()` checks the tools and the port, starts the emulator, waits until
`GET http://host:port/` answers "Ok", and `stop()` stops the wrapper and its Java child. With a
`data_dir` and `persist=True`, the Firestore emulator imports the last export at start and
exports its data (of `project`) at stop: gcloud's own `--export-on-exit` is not used because
this emulator version does not export when its process group is signalled.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import requests

from emulators import _tools
from emulators._errors import StartupError
from emulators._logs import LogHub
from emulators._ports import HOST, ensure_free, wait_closed
from emulators._procs import Child

KINDS = ("pubsub", "firestore")
ENV_VAR = {"pubsub": "PUBSUB_EMULATOR_HOST", "firestore": "FIRESTORE_EMULATOR_HOST"}
DEFAULT_PORT = {"pubsub": 8085, "firestore": 8086}

# The Java emulators log every connection; keep those lines out of the console (not the files).
_NOISE = (
    "io.gapi.emulators.netty.HttpVersionRoutingHandler",
    "Detected HTTP/2 connection",
    "Detected non-HTTP/2 connection",
    "SLF4J:",
)


# A failed push (the consumer is down or starting) is one INFO line plus a Java stack trace;
# the INFO line stays on the console, the trace goes to the log files only.
_JAVA_TRACE = re.compile(
    r"^(\[\w+\] )?(\s+at |\s*\.\.\. \d+ more|Caused by: |java\.\w+\.\w*Exception)"
)
_JAVA_HEADER = re.compile(r"^(\[\w+\] )?\w{3} \d+, \d{4} \d+:\d+:\d+ [AP]M com\.google\.")


def _console(line: str) -> bool:
    text = line.strip()
    if not text or text in ("[pubsub]", "[firestore]"):
        return False
    if _JAVA_TRACE.match(line) or _JAVA_HEADER.match(text):
        return False
    return not any(n in text for n in _NOISE)


class Emulator:
    """One emulator process. `host` is what PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST take."""

    def __init__(
        self,
        kind: str,
        port: int | None = None,
        *,
        project: str = "switchyard-local",
        data_dir: Path | None = None,
        persist: bool = False,
        hub: LogHub | None = None,
        log_dir: Path | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.port = port or DEFAULT_PORT[kind]
        self.project = project
        self.data_dir = data_dir
        self.persist = persist and data_dir is not None
        self._own_hub = hub is None
        self.hub = hub or LogHub(stream=None, log_dir=log_dir)
        self.name = kind
        self.child: Child | None = None
        self.started_in: float | None = None  # seconds from launch to ready
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._launched_at = 0.0
        # Counts the starts that answered (1 after the first); a supervisor that sees it change
        # knows the emulator restarted (Pub/Sub: empty, to be wired again, decision 0049).
        self.generation = 0
        self.ready_at: datetime | None = None  # wall clock of the last start that answered
        self.stopped_at: datetime | None = None  # wall clock of the last stop()

    # -- addresses -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def env_var(self) -> str:
        return ENV_VAR[self.kind]

    def env(self) -> dict[str, str]:
        return {self.env_var: self.host}

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    # -- lifecycle -------------------------------------------------------------------------
    def argv(self) -> list[str]:
        if self.kind == "pubsub":
            if self.data_dir is not None:
                data = self.data_dir
            else:
                self._tmp = tempfile.TemporaryDirectory(prefix="pubsub-emulator-")
                data = Path(self._tmp.name)
            data.mkdir(parents=True, exist_ok=True)  # gcloud writes env.yaml there
            return [
                "gcloud",
                "beta",
                "emulators",
                "pubsub",
                "start",
                f"--host-port={self.host}",
                f"--project={self.project}",
                f"--data-dir={data}",
            ]
        argv = ["gcloud", "emulators", "firestore", "start", f"--host-port={self.host}"]
        snapshot = self._snapshot()
        if snapshot is not None:
            argv.append(f"--import-data={snapshot}")
        return argv

    def launch(self) -> Emulator:
        """Check the tools and the port and start the process (do not wait for it)."""
        _tools.require(self.kind)
        ensure_free(self.port, f"the {_tools.COMPONENTS[self.kind].title}", self.kind)
        env = {**_base_env(), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        self._launched_at = time.monotonic()
        self.child = Child(self.name, self.argv(), hub=self.hub, env=env, console=_console)
        self.child.start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> Emulator:
        """Poll until the emulator answers "Ok"; on failure stop it and raise StartupError."""
        assert self.child is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(requests.RequestException):
                r = requests.get(self.url + "/", timeout=0.5)
                if r.status_code == 200 and r.text.strip() == "Ok":
                    self.started_in = time.monotonic() - self._launched_at
                    self.ready_at = datetime.now(UTC)
                    self.generation += 1
                    return self
            if not self.child.running:
                time.sleep(0.2)  # let the pump catch the last lines
                self.stop()
                raise StartupError(self._failure(f"exited with code {self.child.returncode}"))
            if time.monotonic() > deadline:
                self.stop()
                raise StartupError(self._failure(f"did not answer within {timeout:.0f} s"))
            time.sleep(0.05)

    def start(self, timeout: float = 30.0) -> Emulator:
        return self.launch().wait_ready(timeout)

    def _failure(self, what: str) -> str:
        lines = self.hub.tail(self.name, 20)
        missing = _tools.missing_component_message(self.kind, lines)
        title = _tools.COMPONENTS[self.kind].title
        if missing:
            return f"{title} on port {self.port} {what}: {missing}"
        shown = "\n".join("    " + ln for ln in lines) or "    (no output)"
        snapshot = self._snapshot()
        hint = (
            f"\n  (it imported {snapshot.parent}; delete that folder to start empty)"
            if snapshot
            else ""
        )
        return f"{title} on port {self.port} {what}; its last lines:\n{shown}{hint}"

    def stop(self, grace: float = 5.0) -> None:
        """Export (when persisting), stop the process group, wait until the port is closed."""
        if self.child is None:
            return
        if self.running:
            self.stopped_at = datetime.now(UTC)
        if self.persist and self.running:
            self.export()
        self.child.stop(grace)
        wait_closed(self.port, timeout=2.0)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._own_hub:
            self.hub.close()

    def restart(
        self, timeout: float = 30.0, while_down: Callable[[], object] | None = None
    ) -> Emulator:
        """Stop and start again on the same port (fault tests), calling `while_down` in
        between. Firestore keeps its data (exported before the stop, imported at the start);
        Pub/Sub keeps nothing (topics, subscriptions and messages live in its memory): the
        stack's monitor wires it again and republishes what it held (decision 0049)."""
        keep = self.kind == "firestore" and self.data_dir is not None and self.running
        if keep:
            self.export()
        persist, self.persist = self.persist, False  # exported above, not again by stop()
        own, self._own_hub = self._own_hub, False  # the hub outlives the restart
        try:
            self.stop()
        finally:
            self.persist, self._own_hub = persist or keep, own
        if while_down is not None:
            while_down()
        try:
            return self.start(timeout)
        finally:
            self.persist = persist

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_entry(self) -> dict[str, object] | None:
        """What a run file records to find this emulator's process group later."""
        if self.child is None or not self.child.running:
            return None
        return {
            "name": self.name,
            "pgid": self.child.pid,
            "markers": [f"--host-port={self.host}", f"--port={self.port}"],
        }

    # -- Firestore persistence -------------------------------------------------------------
    def _snapshot(self) -> Path | None:
        if self.kind != "firestore" or not self.persist or self.data_dir is None:
            return None
        found = sorted((self.data_dir / "current").glob("*.overall_export_metadata"))
        return found[0] if found else None

    def export(self) -> Path | None:
        """Export the Firestore data of `project` to `<data_dir>/current` (the previous export
        is replaced only once the new one is complete). None when there is nothing to do."""
        if self.kind != "firestore" or self.data_dir is None:
            return None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="export-", dir=self.data_dir))
        try:
            r = requests.post(
                f"{self.url}/emulator/v1/projects/{self.project}:export",
                json={
                    "database": f"projects/{self.project}/databases/(default)",
                    "export_directory": str(staging),
                },
                timeout=60,
            )
            made = [p for p in staging.iterdir() if p.is_dir()]
            if r.status_code != 200 or len(made) != 1:
                self.hub.line(self.name, f"export failed ({r.status_code}): {r.text[:200]}")
                return None
            current = self.data_dir / "current"
            old = self.data_dir / "previous"
            shutil.rmtree(old, ignore_errors=True)
            if current.exists():
                current.rename(old)
            made[0].rename(current)
            shutil.rmtree(old, ignore_errors=True)
            return current
        except requests.RequestException as exc:
            self.hub.line(self.name, f"export failed: {exc}")
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    # a variable pointing at another emulator must not leak into this one's wrapper
    env.pop("PUBSUB_EMULATOR_HOST", None)
    env.pop("FIRESTORE_EMULATOR_HOST", None)
    # gcloud runs its bundled Python; a venv's variables would only confuse it
    env.pop("PYTHONPATH", None)
    if sys.prefix != sys.base_prefix:
        env.pop("VIRTUAL_ENV", None)
    return env
