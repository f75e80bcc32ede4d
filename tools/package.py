"""Build the deployable source of each deployment: `python tools/package.py [DEPLOYMENT ...]`.

For every deployment named (default: all, from the manifests) this writes `build/<deployment>/`
and `build/<deployment>.zip`, the source Cloud Run functions builds:

    main.py                      copy of functions/<context>/main.py (the entry points)
    functions/__init__.py
    functions/<context>/...      the context's code (main.py imports functions.<context>.api)
    functions/<other>/function.yaml + main.py
                                 every other manifest (and the main.py it is checked against),
                                 so shared.manifests.catalog() sees the whole platform at run
                                 time (the gateway's routing table); no other context's code
    shared/...                   the platform library, whole
    requirements.txt             repo-root requirements.txt + functions/<context>/requirements.txt,
                                 merged: one pin per package, conflicting pins are an error

The zip is reproducible (sorted entries, fixed timestamps), so the same commit yields the same
bytes and Terraform's content-addressed source object does not change.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.manifests import Deployment, ManifestError, load  # noqa: E402

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache")
_REQ = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?\s*==\s*(?P<version>[^\s;]+)"
    r"\s*(?P<marker>;.*)?$"
)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class PackageError(RuntimeError):
    """The deployment cannot be packaged; the message says why."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path) -> list[tuple[str, str]]:
    """(canonical name, requirement line) of each pinned requirement in `path`."""
    out = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = _REQ.match(line)
        if not m:
            raise PackageError(f"{path}:{n}: {line!r} is not pinned as name==version")
        out.append((_canonical(m["name"]), line))
    return out


def merge_requirements(*files: Path) -> str:
    """One requirements.txt from `files` in order; the same package twice must be pinned alike."""
    merged: dict[str, tuple[str, Path]] = {}
    for path in files:
        if not path.exists():
            continue
        for name, line in read_requirements(path):
            if name in merged:
                seen, where = merged[name]
                if _pin(seen) != _pin(line):
                    raise PackageError(
                        f"conflicting pins for {name}: {seen!r} ({where}) vs {line!r} ({path})"
                    )
                continue
            merged[name] = (line, path)
    return "".join(f"{line}\n" for line, _ in merged.values())


def _pin(line: str) -> tuple[str, str]:
    m = _REQ.match(line)
    assert m
    return m["version"], (m["marker"] or "").replace(" ", "")


def package(dep: Deployment, contexts: list[Path], out_dir: Path) -> Path:
    """Write build/<deployment>/ and build/<deployment>.zip; return the zip's path."""
    ctx_dir = dep.source_dir
    functions_dir = ctx_dir.parent
    repo = functions_dir.parent
    target = out_dir / dep.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)

    shutil.copy2(ctx_dir / "main.py", target / "main.py")
    (target / "functions").mkdir()
    init = functions_dir / "__init__.py"
    if init.exists():
        shutil.copy2(init, target / "functions" / "__init__.py")
    else:
        (target / "functions" / "__init__.py").write_text("")
    shutil.copytree(ctx_dir, target / "functions" / ctx_dir.name, ignore=_IGNORED)
    for other in contexts:
        if other == ctx_dir:
            continue
        (target / "functions" / other.name).mkdir()
        for name in ("function.yaml", "main.py"):
            if (other / name).exists():
                shutil.copy2(other / name, target / "functions" / other.name / name)
    shutil.copytree(repo / "shared", target / "shared", ignore=_IGNORED)
    (target / "requirements.txt").write_text(
        merge_requirements(repo / "requirements.txt", ctx_dir / "requirements.txt")
    )
    return _zip(target, out_dir / f"{dep.name}.zip")


def _zip(src: Path, dest: Path) -> Path:
    dest.unlink(missing_ok=True)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(src).as_posix(), date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "deployments",
        nargs="*",
        metavar="DEPLOYMENT",
        help="deployment names (default: every deployment)",
    )
    parser.add_argument(
        "--functions-dir", type=Path, default=ROOT / "functions", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build", help="output directory (default: build/)"
    )
    args = parser.parse_args(argv)
    try:
        catalog = load(args.functions_dir.resolve())
        deployments = catalog.deployments
        unknown = sorted(set(args.deployments) - set(deployments))
        if unknown:
            raise PackageError(
                f"unknown deployment(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(deployments))}"
            )
        contexts = [c.path for c in catalog.contexts]
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.deployments or sorted(deployments):
            zip_path = package(deployments[name], contexts, args.out)
            print(f"packaged {name}: {zip_path} ({zip_path.stat().st_size // 1024} KiB)")
    except (PackageError, ManifestError) as exc:
        print(f"package: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
