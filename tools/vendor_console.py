"""Vendor the front-end libraries the console, the API docs and the browser tests serve or use,
reproducibly: each package at a pinned version, fetched with npm's own client (`npm pack`),
checked against the registry's pinned sha512 integrity before anything is unpacked, and only
the files listed below copied (byte for byte) next to a README that names their sha256.

    .venv/bin/python tools/vendor_console.py           # fetch, verify, copy, write the READMEs
    .venv/bin/python tools/vendor_console.py --check   # verify the files in the tree, no network

Nothing here runs at build or deploy time: the vendored files are committed, served by
console-web (`functions/console/static/vendor/`) and the gateway (`functions/gateway/static/`);
axe-core is for the browser tests only (`tests/browser/vendor/`) and is never served.
To upgrade: change a version and its integrity (`npm view <pkg>@<version> dist.integrity`),
run this, then run tests/browser.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity of the tarball (sha512)
    license: str
    files: dict[str, str]  # path inside the package -> path in the tree (relative to ROOT)


CONSOLE = "functions/console/static/vendor"
GATEWAY = "functions/gateway/static/swagger-ui"
TESTS = "tests/browser/vendor"

PACKAGES = (
    Package(
        "bootstrap",
        "5.3.9",
        "sha512-20cU0rcfw8WdxtVbmfU+xT2EjvVTw9Ror/h1Qvd7DXCujRg8OO9mdBCsmTHdJFf3BuadmBNJtgIuUXsBqSkk/w==",
        "MIT",
        {
            "dist/css/bootstrap.min.css": f"{CONSOLE}/bootstrap/bootstrap.min.css",
            "dist/js/bootstrap.bundle.min.js": f"{CONSOLE}/bootstrap/bootstrap.bundle.min.js",
            "LICENSE": f"{CONSOLE}/bootstrap/LICENSE",
        },
    ),
    Package(
        "chart.js",
        "4.6.1",
        "sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g==",
        "MIT",
        {
            "dist/chart.umd.min.js": f"{CONSOLE}/chartjs/chart.umd.min.js",
            "LICENSE.md": f"{CONSOLE}/chartjs/LICENSE.md",
        },
    ),
    # the live map (pages/map.js): Leaflet over Natural Earth's 1:110m countries (world-atlas,
    # TopoJSON, turned into GeoJSON in the browser by topojson-client); no tile server
    Package(
        "leaflet",
        "1.9.4",
        "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==",
        "BSD-2-Clause",
        {
            "dist/leaflet.js": f"{CONSOLE}/leaflet/leaflet.js",
            "dist/leaflet.css": f"{CONSOLE}/leaflet/leaflet.css",
            "LICENSE": f"{CONSOLE}/leaflet/LICENSE",
        },
    ),
    Package(
        "world-atlas",
        "2.0.2",
        "sha512-IXfV0qwlKXpckz1FhwXVwKRjiIhOnWttOskm5CtxMsjgE/MXAYRHWJqgXOpM8IkcPBoXnyTU5lFHcYa5ChG0LQ==",
        "ISC; data: Natural Earth, public domain",
        {
            "countries-110m.json": f"{CONSOLE}/world-atlas/countries-110m.json",
            "LICENSE": f"{CONSOLE}/world-atlas/LICENSE",
        },
    ),
    Package(
        "topojson-client",
        "3.1.0",
        "sha512-605uxS6bcYxGXw9qi62XyrV6Q3xwbndjachmNxu8HWTtVPxZfEJN9fd/SZS1Q54Sn2y0TMyMxFj/cJINqGHrKw==",
        "ISC",
        {
            "dist/topojson-client.min.js": f"{CONSOLE}/topojson-client/topojson-client.min.js",
            "LICENSE": f"{CONSOLE}/topojson-client/LICENSE",
        },
    ),
    Package(
        "swagger-ui-dist",
        "5.35.0",
        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
        "Apache-2.0",
        {
            "swagger-ui-bundle.js": f"{GATEWAY}/swagger-ui-bundle.js",
            "swagger-ui.css": f"{GATEWAY}/swagger-ui.css",
            "LICENSE": f"{GATEWAY}/LICENSE",
            "NOTICE": f"{GATEWAY}/NOTICE",
        },
    ),
    Package(
        "axe-core",
        "4.14.1",
        "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==",
        "MPL-2.0",
        {
            "axe.min.js": f"{TESTS}/axe.min.js",
            "LICENSE": f"{TESTS}/LICENSE-axe-core",
        },
    ),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_integrity(tarball: Path, integrity: str) -> None:
    algo, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algo, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise SystemExit(f"{tarball.name}: integrity {algo}-{digest} is not the pinned {integrity}")


def fetch(pkg: Package, work: Path) -> Path:
    """The package's tarball from the registry (npm pack), checked against its integrity."""
    out = subprocess.run(
        ["npm", "pack", f"{pkg.name}@{pkg.version}", "--json", "--silent"],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    )
    (meta,) = json.loads(out.stdout)
    if meta["integrity"] != pkg.integrity:
        raise SystemExit(f"{pkg.name}@{pkg.version}: the registry says {meta['integrity']}")
    tarball = work / meta["filename"]
    _check_integrity(tarball, pkg.integrity)
    return tarball


def unpack(pkg: Package, tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        for inner, target in pkg.files.items():
            member = tar.getmember(f"package/{inner}")
            source = tar.extractfile(member)
            if source is None:
                raise SystemExit(f"{pkg.name}: {inner} is not a file")
            dest = ROOT / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as fh:
                shutil.copyfileobj(source, fh)


def readme(folder: str, title: str, intro: str) -> None:
    rows = [
        f"| {Path(target).relative_to(folder)} | {pkg.name} {pkg.version} ({pkg.license}) | "
        f"`{sha256(ROOT / target)[:16]}` |"
        for pkg in PACKAGES
        for target in pkg.files.values()
        if target.startswith(folder + "/")
        and not Path(target).name.startswith(("LICENSE", "NOTICE"))
    ]
    text = "\n".join(
        [
            f"# {title}",
            "",
            intro,
            "",
            "| file | package | sha256 |",
            "|---|---|---|",
            *rows,
            "",
            "Written by `tools/vendor_console.py` (pinned versions and registry integrity; it",
            "copies the files byte for byte). To upgrade, change the pin there and run it, then",
            "run tests/browser (it fails on any Content-Security-Policy violation).",
            "",
        ]
    )
    (ROOT / folder / "README.md").write_text(text)


READMES = (
    (
        CONSOLE,
        "Vendored front-end libraries",
        "Served by console-web itself (no CDN at runtime), unmodified from the npm packages; "
        "their licenses sit next to them.",
    ),
    (
        GATEWAY,
        "Swagger UI (vendored)",
        "Served by the gateway at `/api/docs/` (no CDN); the page's own code is "
        "`../docs.js` (no inline script: the page's CSP allows scripts from 'self' only).",
    ),
    (
        TESTS,
        "axe-core (vendored, tests only)",
        "Injected into pages by the browser tests (tests/browser/test_console_a11y.py); never "
        "served by any deployment.",
    ),
)


def check() -> int:
    """Every vendored file is present and the READMEs name their current sha256."""
    bad = []
    for folder, *_ in READMES:
        text = (ROOT / folder / "README.md").read_text()
        for pkg in PACKAGES:
            for target in pkg.files.values():
                path = ROOT / target
                if not target.startswith(folder + "/"):
                    continue
                if not path.exists():
                    bad.append(f"missing {target}")
                elif (
                    not path.name.startswith(("LICENSE", "NOTICE"))
                    and sha256(path)[:16] not in text
                ):
                    bad.append(f"{target} differs from its README")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify only, no network")
    args = parser.parse_args()
    if args.check:
        return check()
    with tempfile.TemporaryDirectory(prefix="vendor-") as tmp:
        for pkg in PACKAGES:
            unpack(pkg, fetch(pkg, Path(tmp)))
            print(f"vendored {pkg.name}@{pkg.version}")
    for folder, title, intro in READMES:
        readme(folder, title, intro)
    return check()


if __name__ == "__main__":
    sys.exit(main())
