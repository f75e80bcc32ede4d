"""The Pub/Sub and Firestore emulators, each in its own process group.

`Emulator(kind, port).start()` checks the tools and the port, starts the emulator, waits until
`GET http://host:port/` answers "Ok", and `stop()` stops its process group. With a
`data_dir` and `persist=True`, the Firestore emulator imports the last export at start and
exports its data (of `project`) at stop: gcloud's own `--export-on-exit` is not used because
this emulator version does not export when its process group is signalled.

The emulator's Java is started directly, with the arguments gcloud's launcher scripts give it
(read from the Cloud SDK), the `java` on PATH (the one `_tools.prefer_java` chose), C1 only,
the serial GC and a class archive of the emulator made on its first run (decision 0055): ready
in 1-3 s instead of 6-13 s. An unknown SDK layout, or SWITCHYARD_EMULATORS_VIA_GCLOUD=1, starts
it through `gcloud` as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
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
ROOT = Path(__file__).resolve().parents[1]
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


# Decision 0055: C1 only and the serial GC start the JVM faster on 2 busy cores (an emulator's
# throughput does not matter); a class archive of the emulator skips loading and verifying
# its classes from the jar: a dynamic CDS archive (Java 13+), written by the JVM when it exits
# (SIGTERM included) after a first run. Java 25's AOT cache (JEP 483/514) started no faster
# here and takes 11-29 s to write at exit instead of 3-7 s.
JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
_ARCHIVE = {  # mode: (least Java major, flag that writes it, flag that uses it, suffix)
    "cds": (13, "-XX:ArchiveClassesAtExit=", "-XX:SharedArchiveFile=", ".jsa"),
}
ARCHIVE_GRACE = 60.0  # the JVM writes the archive at exit: 3-7 s on a busy machine
ARCHIVE_UNUSED_DAYS = 30
VIA_GCLOUD = "SWITCHYARD_EMULATORS_VIA_GCLOUD"


def jvm_cache_dir() -> Path:
    """Where the class archives are kept: `<local dir>/jvm` (the stack's `.local`)."""
    return Path(os.environ.get("SWITCHYARD_LOCAL_DIR") or ROOT / ".local") / "jvm"


# The JVM's archive messages (its unified logging) stay in the log files; "class archive
# written" (this module's line) says what happened.
_JVM_ARCHIVE_LOG = re.compile(r"^\[[\d.]+s\]\[\w+ *\]\[(cds|aot)")


def _console(line: str) -> bool:
    text = line.strip()
    if not text or text in ("[pubsub]", "[firestore]"):
        return False
    if _JVM_ARCHIVE_LOG.match(text):
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
        jvm_cache: Path | None = None,
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
        self.jvm_cache = jvm_cache  # None: jvm_cache_dir()
        self.archive: Path | None = None  # the class archive this start uses or writes
        self._writing: Path | None = None  # where this run's JVM writes it at exit
        self._no_archive = False  # an archive failed this start: the retry goes without

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
    def _pubsub_data(self) -> Path:
        if self.data_dir is not None:
            data = self.data_dir
        else:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="pubsub-emulator-")
            data = Path(self._tmp.name)
        data.mkdir(parents=True, exist_ok=True)  # gcloud writes env.yaml there
        return data

    def argv(self, env: dict[str, str] | None = None) -> list[str]:
        """The command that starts the emulator: its Java directly, else through gcloud."""
        env = dict(os.environ) if env is None else env
        self.archive = self._writing = None
        direct = None if env.get(VIA_GCLOUD) == "1" else _tools.emulator_jar(self.kind)
        java = shutil.which("java", path=env.get("PATH")) if direct else None
        if direct is None or java is None:
            return self._gcloud_argv()
        argv = [java, *JVM_FLAGS, *self._archive_flags(java, direct.jar)]
        if self.kind == "pubsub":
            data = self._pubsub_data()
            with contextlib.suppress(OSError):  # what gcloud writes there (`env-init` reads it)
                (data / "env.yaml").write_text(f"{self.env_var}: {self.host}\n")
            opts = f"{env.get('JAVA_OPTS', '')} {env.get('CLOUD_PUBSUB_EMULATOR_OPTS', '')}"
            return [*argv, *shlex.split(opts), "-jar", str(direct.jar), *self._java_args()]
        assert direct.main_class is not None
        argv += ["-Duser.language=en", "-cp", str(direct.jar), direct.main_class]
        return [*argv, *self._java_args()]

    def _java_args(self) -> list[str]:
        """The emulator's own arguments, as gcloud passes them."""
        address = [f"--host={HOST}", f"--port={self.port}"]
        if self.kind == "pubsub":
            return address
        args = ["start", *address, "--database-mode=firestore-native"]
        snapshot = self._snapshot()
        if snapshot is not None:
            args.append(f"--import-data={snapshot}")
        return args

    def _archive_flags(self, java: str, jar: Path) -> list[str]:
        """Use the class archive of this jar and Java, or write it at exit when there is none
        yet. Never fatal: without a usable cache folder the JVM runs without one."""
        if self._no_archive:
            return []
        major = _tools.java_major(java) or 0
        mode = next((m for m, spec in _ARCHIVE.items() if major >= spec[0]), None)
        if mode is None:
            return []
        _least, write, use, suffix = _ARCHIVE[mode]
        try:
            stat = jar.stat()
            key = "\n".join(
                [str(jar), str(stat.st_mtime_ns), str(stat.st_size)]
                + [_tools.java_runtime_id(java), *JVM_FLAGS]
            )
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            folder = self.jvm_cache or jvm_cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.hub.line(self.name, f"no class archive (cache folder: {exc}): a slower start")
            return []
        self.archive = folder / f"{self.kind}-{mode}-{digest}{suffix}"
        if self.archive.is_file():
            with contextlib.suppress(OSError):
                os.utime(self.archive)  # its mtime is its last use (see _prune_archives)
            return [use + str(self.archive)]
        self._writing = folder / f".{self.archive.name}.{os.getpid()}.{id(self)}.tmp"
        self.hub.line(self.name, f"no class archive yet: this run writes {self.archive} at exit")
        return [write + str(self._writing)]

    def _keep_archive(self) -> None:
        """After the JVM exited: keep the archive it wrote (whole), or forget the attempt."""
        writing, self._writing = self._writing, None
        if writing is None or self.archive is None or self.child is None:
            return
        killed = self.child.returncode is not None and self.child.returncode < 0
        try:
            if not killed and writing.is_file() and writing.stat().st_size > 0:
                writing.replace(self.archive)
                self.hub.line(self.name, f"class archive written: {self.archive}")
                self._prune_archives()
                return
            self.hub.line(self.name, f"no class archive written (exit {self.child.returncode})")
        except OSError as exc:
            self.hub.line(self.name, f"no class archive written: {exc}")
        with contextlib.suppress(OSError):
            writing.unlink()

    def _prune_archives(self) -> None:
        """Delete this kind's archives not used for ARCHIVE_UNUSED_DAYS (an older jar or Java
        left them; the tests' Java and the stack's each keep theirs while in use)."""
        if self.archive is None:
            return
        cutoff = time.time() - ARCHIVE_UNUSED_DAYS * 86400
        for old in self.archive.parent.glob(f"{self.kind}-*"):
            with contextlib.suppress(OSError):
                if old != self.archive and old.stat().st_mtime < cutoff:
                    old.unlink()

    def _gcloud_argv(self) -> list[str]:
        if self.kind == "pubsub":
            data = self._pubsub_data()
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
        self.child = Child(self.name, self.argv(env), hub=self.hub, env=env, console=_console)
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
                    self._drop_refused_archive()
                    self.ready_at = datetime.now(UTC)
                    self.generation += 1
                    return self
            if not self.child.running:
                time.sleep(0.2)  # let the pump catch the last lines
                if self._retry_without_archive():
                    continue
                self.stop()
                raise StartupError(self._failure(f"exited with code {self.child.returncode}"))
            if time.monotonic() > deadline:
                self.stop()
                raise StartupError(self._failure(f"did not answer within {timeout:.0f} s"))
            time.sleep(0.05)

    def _drop_refused_archive(self) -> None:
        """The JVM runs without the archive it was given (a bad one is refused silently; a
        used one is mapped in its memory): delete it, so that the next start writes one."""
        if self.archive is None or self._writing is not None or self.child is None:
            return
        try:
            mapped = str(self.archive) in Path(f"/proc/{self.child.pid}/maps").read_text()
        except OSError:
            return  # no /proc: not checked
        if not mapped:
            with contextlib.suppress(OSError):
                self.archive.unlink()
            self.hub.line(
                self.name,
                f"the JVM did not use {self.archive}: deleted, the next start writes one",
            )

    def _retry_without_archive(self) -> bool:
        """The JVM exited before it answered while using or writing a class archive: drop the
        archive and launch once more without one (one log line). False when that was done."""
        if self._no_archive or self.archive is None or self.child is None:
            return False
        used = self._writing is None
        self._keep_archive()  # forgets a half-written one (the exit was not a clean stop)
        if used:
            with contextlib.suppress(OSError):
                self.archive.unlink()
        self.hub.line(
            self.name,
            f"exited with code {self.child.returncode} with the class archive {self.archive}: "
            "started again without one",
        )
        self._no_archive = True
        wait_closed(self.port, timeout=2.0)
        launched_at = self._launched_at
        try:
            self.launch()
        finally:
            self._no_archive = False  # the next start tries an archive again
            self._launched_at = launched_at  # started_in counts the failed start too
        return True

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
        if self._writing is not None and self.running:
            grace = max(grace, ARCHIVE_GRACE)  # the JVM writes its class archive as it exits
        self.child.stop(grace)
        self._keep_archive()
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
