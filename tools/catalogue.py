"""The endpoint and event catalogue of README.md, generated from the manifests and the code.

`python tools/catalogue.py` rewrites the part of README.md between the catalogue markers;
`--check` exits 1 when README.md is stale (a test runs it, so the README stays true).
Deployments come from the manifests, endpoints from each context's Flask URL map (first line
of each view's docstring or its `describe()` summary), events from the registered schemas.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.manifests import catalog  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"


def _cell(values: object) -> str:
    if isinstance(values, list | tuple):
        return ", ".join(f"`{v}`" for v in values) if values else "-"
    return str(values) if values else "-"


def _endpoints() -> list[tuple[str, str, str, str]]:
    cat = catalog()
    rows = []
    for ctx in cat.contexts:
        apis = [d for d in ctx.deployments if d.trigger == "http"]
        if not apis or not (ctx.path / "api.py").exists():
            continue
        app = importlib.import_module(f"functions.{ctx.name}.api").app
        for rule in app.url_map.iter_rules():
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            view = app.view_functions[rule.endpoint]
            meta = getattr(view, "__openapi__", {}) or {}
            health = {d.health_path for d in ctx.deployments}
            if (
                rule.endpoint == "static"
                or meta.get("hidden")
                or path in health
                or path.endswith("/openapi.json")
                and ctx.name != "gateway"
            ):
                continue
            summary = meta.get("summary") or (view.__doc__ or "").strip().split("\n")[0]
            dep = cat.route(path.split("{")[0].rstrip("/") or "/")
            name = dep.name if dep else apis[0].name
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                access = "public" if cat.is_public(path) else "bearer"
                rows.append((f"`{method} {path}`", name, access, summary))
    return rows


def render() -> str:
    from shared.events import registry

    cat = catalog()
    for ctx in cat.contexts:  # import event schemas so the registry is complete
        if (ctx.path / "events.py").exists():
            importlib.import_module(f"functions.{ctx.name}.events")
    lines = [
        "### Deployments",
        "",
        "| deployment | trigger | routes | publishes | subscribes / schedule |",
        "|---|---|---|---|---|",
    ]
    for name, d in sorted(cat.deployments.items()):
        sub = d.schedule and f"`{d.schedule}` ({d.time_zone})"
        if d.trigger == "event":
            sub = "every topic (`*`)" if d.subscribes_all else _cell(d.subscribes)
        lines.append(
            f"| `{name}` | {d.trigger} | {_cell(d.routes)} | {_cell(d.publishes)} | {sub or '-'} |"
        )
    lines += [
        "",
        "### Endpoints",
        "",
        "| endpoint | deployment | auth | what |",
        "|---|---|---|---|",
    ]
    lines += [f"| {e} | `{d}` | {a} | {s} |" for e, d, a, s in _endpoints()]
    lines += [
        "",
        "### Events",
        "",
        "| event (= topic) | v | payload fields | published by | consumed by |",
        "|---|---|---|---|---|",
    ]
    schemas = registry()
    for topic in cat.topics:
        model = schemas.get(topic)
        fields = (
            ", ".join(f"`{f.alias or n}`" for n, f in model.model_fields.items()) if model else "?"
        )
        version = model.schema_version if model else "?"
        pubs = [d.name for d in cat.deployments.values() if topic in d.publishes]
        subs = [d.name for d in cat.deployments.values() if topic in d.subscribes]
        lines.append(f"| `{topic}` | {version} | {fields} | {_cell(pubs)} | {_cell(subs)} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = README.read_text()
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        print("README.md has no catalogue markers", file=sys.stderr)
        return 1
    new = f"{head}{START}\n{render()}\n{END}{tail}"
    if "--check" in argv:
        if new != text:
            print("README.md catalogue is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
