"""Shared fixtures: the real emulators, a PostgreSQL database per session, the whole local stack.

Fixture names are a contract other tests rely on:
    _restore_environ   (autouse) os.environ restored and settings re-read after each test
    pubsub_emulator    (session) Pub/Sub emulator on a free port; PUBSUB_EMULATOR_HOST and
                       GOOGLE_CLOUD_PROJECT=switchyard-test set for the session; .host, .project
    firestore_emulator (session) the same for Firestore (FIRESTORE_EMULATOR_HOST)
    pg_url             (session) SQLAlchemy URL of a fresh database `switchyard_test_<random>` on
                       TEST_DATABASE_URL's server, dropped at the end
    stack              (session) the whole local stack (emulators.Stack) on free ports, against
                       pg_url, retry backoff 1..2 s; logs under test-output/stack/
    free_port          a callable returning a TCP port that is free now
Emulators and the stack get random free ports, so tests run next to a `make dev`. The process
groups they start are recorded in test-output/run/<pid>.json; a session killed before its
teardown leaves them running, and the next session stops them (SIGTERM, e.g. from `timeout`,
is turned into KeyboardInterrupt so the teardown does run).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import emulators
from emulators import _runfile
from tests.vertex import FakeVertex, narrative_env, service_account_key

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
TEST_PROJECT = "switchyard-test"
DEFAULT_TEST_DATABASE_URL = "postgresql+pg8000://postgres@127.0.0.1:5432/postgres"
STACK_BACKOFF = (1.0, 2.0)  # seconds: retry and dead-letter tests finish quickly


RUN_DIR = OUTPUT / "run"


def pytest_sessionstart(session: pytest.Session) -> None:
    for leftover in sorted(RUN_DIR.glob("*.json")):
        _runfile.reap(leftover, print)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class _Registry:
    """The process groups this session started (test-output/run/<pid>.json)."""

    def __init__(self) -> None:
        self.path = RUN_DIR / f"{os.getpid()}.json"
        self.entries: dict[str, list[dict[str, object]]] = {}

    def set(self, key: str, entries: list[dict[str, object]]) -> None:
        self.entries[key] = entries
        self._save()

    def drop(self, key: str) -> None:
        self.entries.pop(key, None)
        self._save()

    def _save(self) -> None:
        every = [e for group in self.entries.values() for e in group]
        if every:
            _runfile.write(self.path, every)
        else:
            self.path.unlink(missing_ok=True)


_registry = _Registry()


def _clear_settings() -> None:
    from shared.config import settings

    settings.cache_clear()


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """Whatever a test does to os.environ is undone after it, and settings are re-read.

    Only what changed is put back: threads of the test's servers and senders may read or set
    variables meanwhile, so os.environ is never emptied (a thread reading settings then would
    see no emulator hosts) and never iterated (`copy()` copies it in one step; iterating it
    while a thread sets a variable raised "dictionary changed size during iteration")."""
    saved = os.environ.copy()
    _clear_settings()
    yield
    now = os.environ.copy()
    for key in now.keys() - saved.keys():
        os.environ.pop(key, None)
    for key, value in saved.items():
        if now.get(key) != value:
            os.environ[key] = value
    _clear_settings()


class _SessionEnv:
    """Set variables for the whole session and put the previous values back at the end."""

    def __init__(self, **values: str) -> None:
        self.values = values
        self.saved = {k: os.environ.get(k) for k in values}

    def __enter__(self) -> None:
        os.environ.update(self.values)
        _clear_settings()

    def __exit__(self, *exc: object) -> None:
        for key, old in self.saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        _clear_settings()


def _start_emulator(kind: str) -> emulators.Emulator:
    em = emulators.Emulator(
        kind, emulators.free_port(), project=TEST_PROJECT, log_dir=OUTPUT / "emulators"
    )
    try:
        em.launch()
        _registry.set(kind, [e for e in [em.run_entry()] if e])
        return em.wait_ready()
    except emulators.LocalStackError as exc:
        problem = str(exc)
    _registry.drop(kind)
    pytest.fail(f"cannot start the {kind} emulator: {problem}", pytrace=False)


def _stop_emulator(em: emulators.Emulator) -> None:
    em.stop()
    _registry.drop(em.kind)


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[emulators.Emulator]:
    """The Pub/Sub emulator for this session (use random topic names per test)."""
    em = _start_emulator("pubsub")
    try:
        with _SessionEnv(PUBSUB_EMULATOR_HOST=em.host, GOOGLE_CLOUD_PROJECT=em.project):
            yield em
    finally:
        _stop_emulator(em)


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[emulators.Emulator]:
    """The Firestore emulator for this session (use random collection or document ids)."""
    em = _start_emulator("firestore")
    try:
        with _SessionEnv(FIRESTORE_EMULATOR_HOST=em.host, GOOGLE_CLOUD_PROJECT=em.project):
            yield em
    finally:
        _stop_emulator(em)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; its SQLAlchemy URL (pg8000)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    base = make_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL)
    name = f"switchyard_test_{secrets.token_hex(4)}"
    shown = base.render_as_string(hide_password=True)
    engine = create_engine(
        base, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"timeout": 10}
    )
    problem = None
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (SQLAlchemyError, OSError) as exc:
        engine.dispose()
        problem = f"{exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}"
    if problem:
        pytest.fail(
            f"PostgreSQL is unreachable at {shown}: {problem}\nStart PostgreSQL (15+) "
            "or point TEST_DATABASE_URL at one "
            "(postgresql+pg8000://user[:password]@host:port/db).",
            pytrace=False,
        )
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session; its SQLAlchemy URL (postgresql+pg8000)."""
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulators.Stack]:
    """The whole local stack, started once per session, as `python -m emulators` runs it."""
    catalog_size = len(emulators.Stack.catalog_of(ROOT).deployments)
    ports = emulators.Ports(
        pubsub=emulators.free_port(),
        firestore=emulators.free_port(),
        gateway=emulators.free_port(),
        functions_base=emulators.free_port_block(catalog_size),
    )
    log_dir = OUTPUT / "stack"
    shutil.rmtree(log_dir, ignore_errors=True)
    # The agents' optional narrative is on, against a local stand-in for Vertex AI (the
    # console shows it: tests/browser/test_console_logistics.py).
    vertex = FakeVertex(text="Two scans 40 minutes apart put this package 750 km away.")
    narrative = narrative_env(
        vertex, service_account_key(), tmp_path_factory.mktemp("adc") / "key.json"
    )
    narrative["AGENTS_NARRATIVE_TIMEOUT_S"] = "20"  # a bound: 30 deployments share 2 cores
    s = emulators.Stack(
        project=TEST_PROJECT,
        ports=ports,
        local_dir=tmp_path_factory.mktemp("switchyard-local"),
        database_url=pg_url,
        backoff=STACK_BACKOFF,
        log_dir=log_dir,
        echo=False,
        persist_firestore=False,
        dashboard=True,  # make dev's dev dashboard (tests/browser/test_dev_dashboard.py)
        strict=True,
        # A bound, not a performance claim: ~30 deployments start at once on 2 cores.
        ready_timeout_s=180.0,
        # Every e2e and browser test is one client IP (127.0.0.1) sharing one gateway; the
        # limits themselves are tested in tests/integration/test_gateway_upstreams.py.
        env={"RATE_LIMIT_IP_PER_MIN": "20000", "RATE_LIMIT_USER_PER_MIN": "20000", **narrative},
    )
    problem = None
    try:
        s.start()
    except emulators.LocalStackError as exc:
        problem = str(exc)
    if problem:
        vertex.close()
        pytest.fail(f"the local stack did not start (logs in {log_dir}):\n{problem}", pytrace=False)
    _registry.set("stack", s.process_groups())
    try:
        yield s
    finally:
        s.stop()
        vertex.close()
        _registry.drop("stack")


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Call it for a TCP port on 127.0.0.1 that is free now."""
    return emulators.free_port
