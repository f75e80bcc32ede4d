"""`upgrade_all` skips Alembic when every schema is at the heads of unchanged migration files,
and takes the full path whenever the database or the files say otherwise (SQLite and
PostgreSQL, each in a fresh process: whether Alembic was imported is what is checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import fresh_database

ROOT = Path(__file__).resolve().parents[2]
RUN = (
    "import sys; from shared import migrate; "
    "done = migrate.upgrade_all(with_bootstrap=False); "
    "print('alembic' if 'alembic.command' in sys.modules else 'skipped', len(done))"
)


def migrate(local: Path, database_url: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"SWITCHYARD_LOCAL_DIR": str(local), "DATABASE_URL": database_url}
    out = subprocess.run(
        [sys.executable, "-c", RUN], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):  # noqa: ANN001, ANN201
    if request.param == "sqlite":
        yield tmp_path, ""
    else:
        with fresh_database() as url:
            yield tmp_path, url


def test_a_current_database_skips_alembic_and_a_reset_one_does_not(database):
    local, url = database
    first = migrate(local, url)
    assert first.startswith("alembic")
    contexts = int(first.split()[1])
    assert contexts >= 5
    assert migrate(local, url) == f"skipped {contexts}"

    # one schema dropped, as a reset database would be: the full path builds it again
    if url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text('DROP SCHEMA "users" CASCADE'))
        engine.dispose()
    else:
        (local / "sqlite" / "users.db").unlink()
    assert migrate(local, url) == f"alembic {contexts}"
    assert migrate(local, url) == f"skipped {contexts}"


def test_a_changed_migration_file_or_a_lost_cache_takes_the_full_path(tmp_path):
    assert migrate(tmp_path).startswith("alembic")
    heads = tmp_path / "migrate-heads.json"
    cached = json.loads(heads.read_text())
    assert set(cached) == {"digest", "heads"} and cached["heads"]["users"]

    cached["digest"] = "0" * 64  # what an edited or added file does to the digest
    heads.write_text(json.dumps(cached))
    assert migrate(tmp_path).startswith("alembic")
    assert json.loads(heads.read_text())["digest"] != "0" * 64  # remembered again
    assert migrate(tmp_path).startswith("skipped")

    heads.write_text("not json")
    assert migrate(tmp_path).startswith("alembic")
    assert migrate(tmp_path).startswith("skipped")
