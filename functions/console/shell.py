"""The console's static files and its HTML shell, with cache-busting by content version.

Every file under `static/` is read once per instance (the whole set is a few hundred KB) and
the version is a hash of all of them, so a deploy that changes any file changes every URL the
shell hands out (`?v=<version>`). Our own ES modules import each other by relative path; those
specifiers are rewritten to carry the same `?v=` so a module graph is never mixed across
versions and every file can be cached as immutable. A request whose `v` is not the current
version still gets the current file, but only with `no-cache` (revalidated by ETag), so no cache
keeps today's bytes under yesterday's URL. Nothing here runs at import time.

The console's menus and routes come from `static/js/sections/*.js`, one module per system
(maintenance, production, logistics, ...): the shell lists them (versioned URLs, as JSON in a
`<meta name="console-sections">` the app reads), so a system's pages are added by adding its
section file, nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
SHELL = HERE / "shell.html"

_TYPES = {
    ".js": "text/javascript",  # Flask adds "; charset=utf-8" to text types
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".map": "application/json",
    ".json": "application/json",  # the map's world outline (vendor/world-atlas)
}
# Relative specifiers in our modules: `from "./x.js"`, `import "./x.js"`, `import("./x.js")`.
_IMPORT = re.compile(r"""(\bfrom\s*|\bimport\s*\(?\s*)(["'])(\.{1,2}/[^"'?]+\.js)\2""")
_NOT_SERVED = {"LICENSE", "LICENSE.md", "README.md"}  # kept in the tree, not on the wire


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    mimetype: str
    etag: str


@dataclass(frozen=True)
class Bundle:
    version: str
    files: dict[str, StaticFile]  # path relative to static/, with forward slashes
    shell: bytes


def _rewrite_imports(source: str, version: str) -> str:
    return _IMPORT.sub(lambda m: f"{m[1]}{m[2]}{m[3]}?v={version}{m[2]}", source)


@functools.cache
def bundle() -> Bundle:
    """Every static file and the shell of this instance (read on first use, then kept)."""
    raw: dict[str, bytes] = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and path.suffix in _TYPES and path.name not in _NOT_SERVED:
            raw[path.relative_to(STATIC).as_posix()] = path.read_bytes()
    digest = hashlib.sha256()
    for name, data in raw.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    template = SHELL.read_text()
    digest.update(template.encode())
    version = digest.hexdigest()[:16]
    files = {}
    for name, data in raw.items():
        if name.startswith("js/") and name.endswith(".js"):
            data = _rewrite_imports(data.decode(), version).encode()
        etag = hashlib.sha256(data).hexdigest()[:24]
        files[name] = StaticFile(body=data, mimetype=_TYPES[Path(name).suffix], etag=etag)
    sections = [
        f"/_app/{name}?v={version}"
        for name in files
        if name.startswith("js/sections/") and name.endswith(".js")
    ]
    listed = html.escape(json.dumps(sections), quote=True)  # an attribute's value
    shell = template.replace("{{version}}", version).replace("{{sections}}", listed).encode()
    return Bundle(version=version, files=files, shell=shell)


def find(name: str) -> StaticFile | None:
    """The static file at `name` (relative to static/), or None; never leaves static/."""
    if not name or name.startswith("/") or any(seg in ("", ".", "..") for seg in name.split("/")):
        return None
    return bundle().files.get(name)
