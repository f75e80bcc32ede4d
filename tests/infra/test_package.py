"""tools/package.py: the layout of build/<deployment>/, the merged requirements, and (slow) one
packaged deployment served by functions-framework from a fresh virtualenv built from nothing
but its own requirements.txt."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from infra_support import ROOT

PACKAGE = ROOT / "tools" / "package.py"
_spec = importlib.util.spec_from_file_location("switchyard_tools_package", PACKAGE)
assert _spec and _spec.loader
package = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package)
SLOW_DEPLOYMENT = "ops-outbox-relay"  # schedule deployment: only shared/ behind it


def run_package(out: Path, *names: str) -> None:
    done = subprocess.run(
        [sys.executable, str(PACKAGE), f"--out={out}", *names],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_merge_requirements_dedupes_and_refuses_conflicts(tmp_path):
    shared = tmp_path / "shared.txt"
    shared.write_text("# shared\nFlask==3.1.3\nPyJWT==2.15.1  # tokens\n\n")
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("flask==3.1.3\nargon2-cffi==25.1.0\n")
    merged = package.merge_requirements(shared, ctx, tmp_path / "missing.txt")
    assert merged.splitlines() == ["Flask==3.1.3", "PyJWT==2.15.1", "argon2-cffi==25.1.0"]
    ctx.write_text("pyjwt==2.14.0\n")
    with pytest.raises(package.PackageError, match="conflicting pins for pyjwt"):
        package.merge_requirements(shared, ctx)
    ctx.write_text("requests>=2\n")
    with pytest.raises(package.PackageError, match="not pinned"):
        package.merge_requirements(shared, ctx)


def test_package_layout(tmp_path, catalog):
    run_package(tmp_path, "users-api", SLOW_DEPLOYMENT)
    for name in ("users-api", SLOW_DEPLOYMENT):
        dep = catalog.deployments[name]
        root = tmp_path / name
        assert (root / "main.py").read_bytes() == (dep.source_dir / "main.py").read_bytes()
        assert (root / "functions" / "__init__.py").exists()
        assert (root / "functions" / dep.context / "function.yaml").exists()
        assert (root / "shared" / "manifests.py").exists()
        assert not list(root.rglob("__pycache__"))
        # Every manifest (the gateway's routing table needs them), no other context's code.
        for other in catalog.contexts:
            assert (root / "functions" / other.name / "function.yaml").exists()
            if other.name != dep.context:
                assert {p.name for p in (root / "functions" / other.name).iterdir()} <= {
                    "function.yaml",
                    "main.py",
                }
        reqs = (root / "requirements.txt").read_text().splitlines()
        root_reqs = [
            line
            for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert reqs[: len(root_reqs)] == root_reqs
        ctx_reqs = dep.source_dir / "requirements.txt"
        if ctx_reqs.exists():
            extra = [r.lower() for r in reqs[len(root_reqs) :]]
            for line in package.read_requirements(ctx_reqs):
                assert line[1].lower() in extra or line[1] in root_reqs
        # The zip holds the same tree, and is reproducible.
        with zipfile.ZipFile(tmp_path / f"{name}.zip") as zf:
            names = set(zf.namelist())
        assert names == {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    first = (tmp_path / "users-api.zip").read_bytes()
    run_package(tmp_path, "users-api")
    assert (tmp_path / "users-api.zip").read_bytes() == first


def test_unknown_deployment_is_an_error(tmp_path):
    done = subprocess.run(
        [sys.executable, str(PACKAGE), f"--out={tmp_path}", "nope"], capture_output=True, text=True
    )
    assert done.returncode == 1 and "unknown deployment" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_packaged_deployment_serves_health_from_a_fresh_virtualenv(tmp_path, catalog):
    """The package is self-contained: nothing from the repo or its virtualenv is needed."""
    dep = catalog.deployments[SLOW_DEPLOYMENT]
    build = tmp_path / "build"
    run_package(build, dep.name)
    source = build / dep.name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
            str(source / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=780,
    )
    assert pip.returncode == 0, pip.stderr[-4000:]

    port = _free_port()
    local = tmp_path / "local"
    local.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "SWITCHYARD_ENV": "local",
        "SWITCHYARD_LOCAL_DIR": str(local),
        "SWITCHYARD_DEPLOYMENT": dep.name,
    }
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                str(venv / "bin" / "functions-framework"),
                f"--target={dep.entry_point}",
                "--source=main.py",
                "--signature-type=http",
                f"--port={port}",
            ],
            cwd=source,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        status, body = None, ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}{dep.health_path}", timeout=5
                ) as resp:
                    status, body = resp.status, resp.read().decode()
                break
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read().decode()
                break
            except OSError:
                time.sleep(0.3)
        assert status == 200, (
            f"GET {dep.health_path} -> {status} {body}\nserver log:\n{log.read_text()[-4000:]}"
        )
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
