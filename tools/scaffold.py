"""`make context NAME=<context>`: write a new bounded context's room in the settled pattern.

Writes `functions/<name>/` (manifest, main/api/service/model/store/events, the first Alembic
revision with its outbox, requirements) and its tests (`tests/unit/test_<name>_model.py`,
`tests/integration/test_<name>_api.py`, `tests/e2e/test_<name>.py`), all passing as written,
from the templates in `tools/scaffold/` (`__ctx__` and `__Ctx__` stand for the name), then
regenerates README.md's catalogue. It refuses a name that is taken or not a plain lower-case
word, and never overwrites a file. docs/how-a-context-is-built.md says what goes where.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "scaffold"
NAME = re.compile(r"^[a-z][a-z0-9]{1,19}$")
TESTS = {
    "tests/test_model.py.tmpl": "tests/unit/test_{name}_model.py",
    "tests/test_integration.py.tmpl": "tests/integration/test_{name}_api.py",
    "tests/test_e2e.py.tmpl": "tests/e2e/test_{name}.py",
}


def plan(name: str, root: Path) -> dict[Path, str]:
    """Every file the scaffold writes for `name` under `root`, with its content."""
    today = datetime.now(UTC).date().isoformat()
    out: dict[Path, str] = {}
    for tmpl in sorted(TEMPLATES.rglob("*.tmpl")):
        rel = tmpl.relative_to(TEMPLATES).as_posix()
        target = TESTS.get(rel, f"functions/{name}/{rel}").format(name=name)
        text = (
            tmpl.read_text()
            .replace("__ctx__", name)
            .replace("__Ctx__", name.capitalize())
            .replace("__date__", today)
        )
        out[root / target.removesuffix(".tmpl")] = text
    return out


def write(name: str, root: Path = ROOT) -> list[Path]:
    if not NAME.match(name):
        raise SystemExit(f"context: {name!r} must be a lower-case word (a-z, 0-9), 2-20 chars")
    if (root / "functions" / name).exists():
        raise SystemExit(f"context: functions/{name}/ exists already")
    files = plan(name, root)
    taken = [p for p in files if p.exists()]
    if taken:
        raise SystemExit(f"context: would overwrite {', '.join(map(str, taken))}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make context", description=__doc__)
    parser.add_argument("name", help="the context's name: a lower-case word, e.g. inventory")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--no-docs", action="store_true", help="skip the README catalogue")
    args = parser.parse_args(argv)
    for path in write(args.name, args.root):
        print(f"  wrote {path.relative_to(args.root)}")
    if not args.no_docs:
        subprocess.run([sys.executable, "tools/catalogue.py"], cwd=args.root, check=True)
    print(
        f"context {args.name}: done. Next: read docs/how-a-context-is-built.md, then "
        f"`make test` (its tests are tests/*/test_{args.name}*.py)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
