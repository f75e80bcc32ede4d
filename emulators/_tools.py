"""Are the tools the local stack needs installed? gcloud, Java and the two emulator components.

`require(kind)` raises ToolMissingError naming what is missing and how to install it;
`report()` lists every tool with its status for `python -m emulators check`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from emulators._errors import ToolMissingError


@dataclass(frozen=True)
class Component:
    title: str
    platform_dir: str  # folder under <sdk>/platform/
    gcloud_name: str  # `gcloud components install <name>`
    apt_name: str  # the Debian/Ubuntu package of the same component


COMPONENTS = {
    "pubsub": Component(
        "Pub/Sub emulator",
        "pubsub-emulator",
        "pubsub-emulator",
        "google-cloud-cli-pubsub-emulator",
    ),
    "firestore": Component(
        "Firestore emulator",
        "cloud-firestore-emulator",
        "cloud-firestore-emulator",
        "google-cloud-cli-firestore-emulator",
    ),
}

# text gcloud prints when a component or command group is not installed
MISSING_COMPONENT_MARKERS = (
    "You do not currently have this command group installed",
    "component is not installed",
    "requires the installation of components",
    "Invalid choice: 'emulators'",
    "Invalid choice: 'pubsub'",
    "Invalid choice: 'firestore'",
)


def sdk_root() -> Path | None:
    """The Cloud SDK folder of the `gcloud` on PATH, when it has the usual layout."""
    gcloud = shutil.which("gcloud")
    if not gcloud:
        return None
    root = Path(os.path.realpath(gcloud)).parent.parent
    return root if (root / "lib" / "gcloud.py").exists() else None


def install_hint(kind: str) -> str:
    c = COMPONENTS[kind]
    return (
        f"install it with `gcloud components install {c.gcloud_name} beta`, or for a "
        f"package-managed SDK `sudo apt-get install {c.apt_name}`"
    )


def require(kind: str) -> None:
    """Raise ToolMissingError unless gcloud, java and the `kind` emulator component exist."""
    c = COMPONENTS[kind]
    if not shutil.which("gcloud"):
        raise ToolMissingError(
            f"`gcloud` is not on PATH: the {c.title} is started through the Google Cloud CLI. "
            "Install it (https://cloud.google.com/sdk/docs/install) and the emulator "
            f"component: {install_hint(kind)}"
        )
    if not shutil.which("java"):
        raise ToolMissingError(
            f"`java` is not on PATH: the {c.title} is a Java program. Install a JRE "
            "(17 or newer, 21 recommended), e.g. `sudo apt-get install openjdk-17-jre-headless`"
        )
    root = sdk_root()
    if root is not None and not (root / "platform" / c.platform_dir).is_dir():
        raise ToolMissingError(
            f"the gcloud component `{c.gcloud_name}` ({c.title}) is not installed in {root}: "
            f"{install_hint(kind)}"
        )


def missing_component_message(kind: str, log_lines: list[str]) -> str | None:
    """A clear message when the emulator's output says its component is missing."""
    text = "\n".join(log_lines)
    if any(m in text for m in MISSING_COMPONENT_MARKERS):
        return f"the {COMPONENTS[kind].title} component is not installed: {install_hint(kind)}"
    return None


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def report() -> tuple[list[tuple[str, bool, str]], bool]:
    """(tool, present, detail) rows and whether everything required is present."""
    rows: list[tuple[str, bool, str]] = []
    gcloud = shutil.which("gcloud")
    rows.append(
        (
            "gcloud",
            bool(gcloud),
            _version(["gcloud", "--version"])
            if gcloud
            else "missing: https://cloud.google.com/sdk/docs/install",
        )
    )
    java = shutil.which("java")
    detail = (
        _version(["java", "-version"]) if java else "missing: install a JRE 17+ (21 recommended)"
    )
    match = re.search(r'version "(\d+)', detail)
    if match and int(match.group(1)) < 21:
        detail += " (newer Firestore emulators need Java 21+)"
    rows.append(("java", bool(java), detail))
    root = sdk_root()
    for kind, c in COMPONENTS.items():
        if root is None:
            rows.append((c.gcloud_name, False, "unknown: gcloud not found or unusual layout"))
            continue
        present = (root / "platform" / c.platform_dir).is_dir()
        rows.append(
            (
                c.gcloud_name,
                present,
                str(root / "platform" / c.platform_dir)
                if present
                else f"missing: {install_hint(kind)}",
            )
        )
    for module, package in (
        ("functions_framework", "functions-framework"),
        ("croniter", "croniter"),
        ("google.cloud.pubsub_v1", "google-cloud-pubsub"),
        ("google.cloud.firestore", "google-cloud-firestore"),
    ):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        rows.append(
            (
                package,
                found,
                "installed" if found else "missing: pip install -r requirements-dev.txt",
            )
        )
    return rows, all(ok for _, ok, detail in rows if not detail.startswith("unknown"))
