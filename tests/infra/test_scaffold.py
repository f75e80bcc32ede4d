"""`make context NAME=...` writes a context that loads, lints, and passes its own tests.

The scaffold runs in a copy of the project (so the real tree is untouched); the copy's manifest
catalog must accept the new context, its code must pass ruff and mypy, the README catalogue
must pick it up, and its unit and integration tests must pass there (real PostgreSQL and
Pub/Sub emulator, through the copy's own fixtures). Its e2e test is collected, not run: the
whole stack is exercised by tests/e2e already.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAME = "inventory"
COPIED = ("functions", "shared", "tests", "tools", "emulators", "infra", "docs")
FILES = ("pyproject.toml", "README.md", "requirements.txt", "requirements-dev.txt")


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in {"__pycache__", ".terraform", "node_modules"}}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scaffold") / "project"
    root.mkdir()
    for name in COPIED:
        shutil.copytree(ROOT / name, root / name, ignore=_ignore, symlinks=True)
    for name in FILES:
        shutil.copy2(ROOT / name, root / name)
    return root


def _run(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(root)
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_scaffold_writes_a_working_context(project: Path) -> None:
    made = _run(project, "tools/scaffold.py", NAME)
    assert made.returncode == 0, made.stdout + made.stderr
    ctx = project / "functions" / NAME
    for part in ("function.yaml", "main.py", "api.py", "service.py", "model.py", "store.py"):
        assert (ctx / part).is_file(), part
    assert (ctx / "migrations/versions/0001_initial.py").is_file()
    assert f"`{NAME}-api`" in (project / "README.md").read_text()

    again = _run(project, "tools/scaffold.py", NAME)
    assert again.returncode != 0 and "exists already" in again.stderr

    loaded = _run(
        project,
        "-c",
        "from shared.manifests import load; "
        f"print(sorted(d.name for d in load().context({NAME!r}).deployments))",
    )
    assert loaded.stdout.strip() == f"['{NAME}-api']", loaded.stderr

    paths = [f"functions/{NAME}", f"tests/unit/test_{NAME}_model.py"]
    lint = _run(project, "-m", "ruff", "check", *paths)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    types = _run(project, "-m", "mypy", f"functions/{NAME}")
    assert types.returncode == 0, types.stdout + types.stderr


def test_scaffolded_tests_pass(project: Path) -> None:
    if not (project / "functions" / NAME).exists():
        pytest.skip("the scaffold did not run")
    tests = [
        f"tests/unit/test_{NAME}_model.py",
        f"tests/integration/test_{NAME}_api.py",
        f"tests/integration/test_schema_drift.py::test_tables_match_the_alembic_head[{NAME}]",
    ]
    run = _run(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # pytest's summary line (log lines of background threads after it may say "failed")
    summary = [ln for ln in run.stdout.splitlines() if re.match(r"^\d+ (passed|failed)", ln)]
    assert summary, run.stdout[-4000:]
    assert " passed" in summary[-1] and " failed" not in summary[-1], summary[-1]
    collected = _run(project, "-m", "pytest", "--collect-only", "-q", f"tests/e2e/test_{NAME}.py")
    assert collected.returncode == 0, collected.stdout + collected.stderr
