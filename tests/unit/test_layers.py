"""The layer rules of docs/how-a-context-is-built.md, checked on every context's code.

- a context never imports another context (it calls its API or keeps a copy fed by events);
- `model.py` is plain domain code: importing it loads no web framework, JWT, crypto, SQL or
  Google client library;
- entry points and routes (`main.py`, `api.py`) hold no SQL or Firestore: they call services;
- `shared/` never imports a context.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from shared.manifests import catalog

ROOT = Path(__file__).resolve().parents[2]
CONTEXTS = [c.name for c in catalog().contexts]
MODELS = [c for c in CONTEXTS if (ROOT / "functions" / c / "model.py").exists()]
HEAVY = (
    "flask",
    "werkzeug",
    "jwt",
    "cryptography",
    "sqlalchemy",
    "google.cloud.firestore",
    "google.cloud.pubsub_v1",
    "google.cloud.sql",
)
NO_STORAGE_IN = ("main.py", "api.py")
STORAGE = ("sqlalchemy", "google.cloud.firestore", "google.cloud.pubsub_v1")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)]
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_context_imports_no_other_context(context: str) -> None:
    folder = ROOT / "functions" / context
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in folder.rglob("*.py")
        for line, module in _imports(path)
        if _under(module, "functions")
        and module.split(".")[1:2] != [context]
        and module != "functions"
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("context", MODELS)
def test_the_domain_model_loads_no_framework(context: str) -> None:
    code = (
        f"import sys, functions.{context}.model\n"
        f"print(sorted({{h for h in {HEAVY!r} for m in sys.modules "
        f"if m == h or m.startswith(h + '.')}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", f"functions/{context}/model.py loads {out.stdout.strip()}"


@pytest.mark.parametrize("context", CONTEXTS)
def test_entry_points_and_routes_hold_no_storage_code(context: str) -> None:
    bad = []
    for name in NO_STORAGE_IN:
        path = ROOT / "functions" / context / name
        if not path.exists():
            continue
        bad += [
            f"{path.relative_to(ROOT)}:{line} imports {module}"
            for line, module in _imports(path)
            if any(_under(module, s) for s in STORAGE)
        ]
    assert not bad, "storage belongs in store.py (called through service.py):\n" + "\n".join(bad)


def test_shared_imports_no_context() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in (ROOT / "shared").rglob("*.py")
        for line, module in _imports(path)
        if _under(module, "functions")
    ]
    assert not bad, "\n".join(bad)


def test_every_test_module_has_a_name_of_its_own():
    """Test folders are not packages (pytest's rootdir imports): two test files of one name in
    two folders stop the whole run at collection ("import file mismatch")."""
    from collections import Counter

    root = Path(__file__).resolve().parents[1]
    names = Counter(p.name for p in root.rglob("test_*.py") if "vendor" not in p.parts)
    assert [n for n, count in names.items() if count > 1] == []
