"""TEMPORARY (auth/users engineer): emulator and PostgreSQL fixtures until tests/conftest.py
lands. Load with `-p tests.integration._tmp_conftest`; delete once the shared one exists."""

import os
import signal
import socket
import subprocess
import time
import uuid

import pytest
from sqlalchemy import create_engine, text


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"emulator on {port} did not start")


def _start(args, env_name, port):
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait(port)
    time.sleep(0.5)
    os.environ[env_name] = f"127.0.0.1:{port}"
    return proc


def _stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def firestore_emulator():
    port = _free_port()
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "switchyard-test")
    proc = _start(["gcloud", "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}",
                   f"--project={os.environ['GOOGLE_CLOUD_PROJECT']}"],
                  "FIRESTORE_EMULATOR_HOST", port)
    yield f"127.0.0.1:{port}"
    _stop(proc)


@pytest.fixture(scope="session")
def pubsub_emulator():
    port = _free_port()
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "switchyard-test")
    proc = _start(["gcloud", "beta", "emulators", "pubsub", "start",
                   f"--host-port=127.0.0.1:{port}",
                   f"--project={os.environ['GOOGLE_CLOUD_PROJECT']}"],
                  "PUBSUB_EMULATOR_HOST", port)
    yield f"127.0.0.1:{port}"
    _stop(proc)


@pytest.fixture(scope="session")
def pg_url():
    base = os.environ.get("TEST_DATABASE_URL", "postgresql+pg8000://postgres@127.0.0.1:5432/postgres")
    name = f"sy_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.rsplit("/", 1)[0] + "/" + name
    from shared import db
    db.reset()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
