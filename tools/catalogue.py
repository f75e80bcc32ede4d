"""The generated parts of README.md: the endpoint and event catalogue, the configuration table,
and the schedule line of the architecture picture.

`python tools/catalogue.py` (`make docs`) rewrites each part between its markers
(`<!-- <part>:start -->` ... `<!-- <part>:end -->`); `--check` exits 1 naming every stale part
(tests run it, so the README stays true); `--only <part>` limits either to that part.
Deployments come from the manifests, endpoints from each context's Flask URL map (first line of
each view's docstring or its `describe()` summary), events from the registered schemas, the
configuration from the settings declarations (`shared.config.describe()`), the scheduled
deployments from the manifests.
"""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import config  # noqa: E402
from shared.manifests import catalog  # noqa: E402

README = ROOT / "README.md"


def _cell(values: object) -> str:
    if isinstance(values, list | tuple):
        return ", ".join(f"`{v}`" for v in values) if values else "-"
    return str(values) if values else "-"


def _endpoints() -> list[tuple[str, str, str, str]]:
    cat = catalog()
    rows = []
    for ctx in cat.contexts:
        apis = [d for d in ctx.deployments if d.trigger == "http"]
        if not apis:
            continue
        for app in _apps(ctx.name, ctx.path):
            rows += _rows(cat, ctx, apis, app)
    return list(dict.fromkeys(rows))


def _apps(context: str, folder: Path) -> list[Any]:
    """The Flask apps of a context: `api.py`'s, then any other module that builds one (a
    deployment with its own app, such as source-webhook)."""
    names = sorted(
        p.stem for p in folder.glob("*.py") if p.stem != "main" and "= create_app(" in p.read_text()
    )
    names.sort(key=lambda n: n != "api")
    return [importlib.import_module(f"functions.{context}.{n}").app for n in names]


def _rows(cat: Any, ctx: Any, apis: list[Any], app: Any) -> list[tuple[str, str, str, str]]:
    rows = []
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


def render_configuration() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for st in config.describe():
        names = " or ".join(f"`{n}`" for n in (st.env, *st.also))
        lines.append(f"| {names} | {st.default} | {st.doc} |")
    return "\n".join(lines)


SCHEDULER = " Cloud Scheduler ──HTTP (OIDC)──► schedule deployments: "


def render_architecture(current: str) -> str:
    """The architecture picture with its Cloud Scheduler line listing every schedule deployment
    (wrapped); the rest of the picture is hand-drawn and kept as it is."""
    lines = current.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith(SCHEDULER)]
    if len(starts) != 1:
        raise SystemExit(f"README.md architecture: no single line starting {SCHEDULER.strip()!r}")
    first = starts[0]
    end = first + 1
    while end < len(lines) and lines[end].startswith(" " * len(SCHEDULER)):
        end += 1  # continuation lines of the list
    names = sorted(n for n, d in catalog().deployments.items() if d.trigger == "schedule")
    wrapped = textwrap.wrap(
        ", ".join(names),
        width=96,
        initial_indent=SCHEDULER,
        subsequent_indent=" " * len(SCHEDULER),
        break_on_hyphens=False,
    )
    return "\n".join([*lines[:first], *wrapped, *lines[end:]])


PARTS: dict[str, Callable[[str], str]] = {
    "architecture": render_architecture,
    "catalogue": lambda _: render(),
    "configuration": lambda _: render_configuration(),
}


def main(argv: list[str]) -> int:
    """[--check] [--only PART ...]: write (or check) every generated part, or only those."""
    only = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--only"]
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        print(f"unknown part(s) {unknown}; parts: {sorted(PARTS)}", file=sys.stderr)
        return 2
    text = README.read_text()
    new, stale = text, []
    for part, generate in PARTS.items():
        if only and part not in only:
            continue
        start, end = f"<!-- {part}:start -->", f"<!-- {part}:end -->"
        head, sep, rest = new.partition(start)
        body, sep2, tail = rest.partition(end)
        if not sep or not sep2:
            print(f"README.md has no {part} markers ({start} ... {end})", file=sys.stderr)
            return 1
        fresh = f"\n{generate(body.strip(chr(10)))}\n"
        if fresh != body:
            stale.append(part)
        new = f"{head}{start}{fresh}{end}{tail}"
    if "--check" in argv:
        if stale:
            print(f"README.md {', '.join(stale)} stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
