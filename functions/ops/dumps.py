"""Local backups: `pg_dump` of the PostgreSQL database, or a consistent copy of the SQLite
files, into `<local dir>/backups/`.

`pg_dump` is looked up on PATH, then under /usr/lib/postgresql/<version>/bin (Debian's
postgresql-client packages put it there), newest version first; when none is found the
backup answers 503 naming the tool and how to install it. The password (if the URL has one)
goes to pg_dump in PGPASSWORD, never on its command line. SQLite files are copied with
SQLite's online backup API (a consistent snapshot while the stack writes), one file per
schema plus `main.db`.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from functions.ops import model
from shared.config import settings

DUMP_TIMEOUT_S = 100.0  # ops-api's own timeout is 120 s
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin/pg_dump"  # Debian's postgresql-client-<version>
_INSTALL_HINT = "install the PostgreSQL client (apt-get install postgresql-client-15)"


def backup_dir() -> Path:
    folder = settings().local_dir / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def find_pg_dump() -> str:
    """The pg_dump to use, or ToolMissing."""
    found = shutil.which("pg_dump")
    if found:
        return found

    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([\d.]+)/bin/", path)
        return tuple(int(p) for p in m.group(1).split(".")) if m else ()

    candidates = sorted(glob.glob(PG_BIN_GLOB), key=version)
    if candidates:
        return candidates[-1]
    raise model.ToolMissing("pg_dump", _INSTALL_HINT)


def pg_dump(database_url: str, target: Path) -> int:
    """Dump the database of `database_url` to `target` (custom format); its size in bytes.
    Raises BackupFailed with pg_dump's own message (nothing is left behind)."""
    tool = find_pg_dump()
    url = make_url(database_url)
    args = [tool, "--format=custom", "--no-owner", "--file", str(target)]
    for flag, value in (("--host", url.host), ("--port", url.port), ("--username", url.username)):
        if value:
            args += [flag, str(value)]
    args += ["--dbname", url.database or "postgres"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    try:
        done = subprocess.run(  # noqa: S603 - fixed program and arguments, no shell
            args, env=env, capture_output=True, text=True, timeout=DUMP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        target.unlink(missing_ok=True)
        raise model.BackupFailed(f"pg_dump did not finish in {DUMP_TIMEOUT_S:.0f} s.") from None
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise model.BackupFailed(f"pg_dump failed ({done.returncode}): {last}")
    return target.stat().st_size


def sqlite_copy(schemas: list[str], target: Path) -> int:
    """Copy `main.db` and each schema's file into the folder `target`; the bytes written."""
    source = settings().local_dir / "sqlite"
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in ["main", *schemas]:
        src = source / f"{name}.db"
        if not src.exists():
            continue
        dest = target / f"{name}.db"
        with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
            a.backup(b)
        a.close()
        b.close()
        total += dest.stat().st_size
    return total
