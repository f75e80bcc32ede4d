"""Are the tools the local stack needs installed? gcloud, Java and the two emulator components.

`require(kind)` raises ToolMissingError naming what is missing and how to install it;
`report()` lists every tool with its status for `python -m emulators check`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, MutableMapping
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


# The Firestore emulator warns that it drops Java < 21 after gcloud 528; Debian 12 ships 17.
JAVA_WANTED = 21


def java_major(java: str) -> int | None:
    """The major version of a `java` executable, None if unknown: from the `release` file of
    its Java home (instant), else from `java -version` (a JVM start)."""
    release = Path(os.path.realpath(java)).parent.parent / "release"
    with contextlib.suppress(OSError):
        found = re.search(r'^JAVA_VERSION="(?:1\.)?(\d+)', release.read_text(), re.M)
        if found:
            return int(found.group(1))
    match = re.search(r'version "(?:1\.)?(\d+)', _version([java, "-version"]))
    return int(match.group(1)) if match else None


def java_bin_dir(
    environ: Mapping[str, str] | None = None, jvm: Path = Path("/usr/lib/jvm")
) -> tuple[Path | None, int | None]:
    """(bin dir, major) of a Java >= JAVA_WANTED to put first on the emulators' PATH, or
    (None, major of the `java` on PATH) when none is found: $JAVA_HOME first, then the JVMs
    under /usr/lib/jvm (Debian's and vendors' packages install there), newest first."""
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    if env.get("JAVA_HOME"):
        candidates.append(Path(env["JAVA_HOME"]) / "bin")
    if jvm.is_dir():
        candidates += sorted((p / "bin" for p in jvm.iterdir() if p.is_dir()), reverse=True)
    best: tuple[Path | None, int] = (None, 0)
    for bin_dir in candidates:
        if not (bin_dir / "java").is_file():
            continue
        major = java_major(str(bin_dir / "java")) or 0
        if major > best[1]:
            best = (bin_dir, major)
    if best[0] is not None and best[1] >= JAVA_WANTED:
        return best
    on_path = shutil.which("java", path=env.get("PATH"))
    return None, java_major(on_path) if on_path else None


def prefer_java(environ: MutableMapping[str, str], jvm: Path = Path("/usr/lib/jvm")) -> str:
    """Put a Java >= 21 first on `environ`'s PATH when one is installed (gcloud runs the
    emulators with the `java` on PATH); what was chosen, in one line for the log."""
    bin_dir, major = java_bin_dir(environ, jvm)
    path = environ.get("PATH", "")
    if bin_dir is None:
        return (
            f"emulators run on Java {major or '?'} (the `java` on PATH); the Firestore emulator "
            f"wants Java {JAVA_WANTED}+ (gcloud after 528 drops older ones): install a JRE "
            f"{JAVA_WANTED}+ under /usr/lib/jvm or set JAVA_HOME to one"
        )
    if not path.startswith(f"{bin_dir}{os.pathsep}"):
        environ["PATH"] = f"{bin_dir}{os.pathsep}{path}" if path else str(bin_dir)
    return f"emulators run on Java {major} ({bin_dir.parent})"


# How the SDK's launcher scripts start each emulator's Java (decision 0055): the scripts are
# read, not run, so a layout that does not match is started through gcloud as before.
_MAIN_CLASS = {
    "pubsub": None,  # `java -jar <jar>`: the jar's manifest names it
    "firestore": "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
}
_LAUNCHER = {
    "pubsub": "bin/cloud-pubsub-emulator",
    "firestore": "cloud_firestore_emulator",
}


@dataclass(frozen=True)
class EmulatorJar:
    kind: str
    jar: Path
    main_class: str | None  # None: `-jar`


def emulator_jar(kind: str, root: Path | None = None) -> EmulatorJar | None:
    """The jar (and main class) the SDK's launcher script of `kind` runs, read from the script;
    None when gcloud or its layout is unknown (start through gcloud then). ToolMissingError
    when the script names a jar that is not there (a broken component)."""
    root = sdk_root() if root is None else root
    if root is None:
        return None
    c = COMPONENTS[kind]
    base = root / "platform" / c.platform_dir
    try:
        script = (base / _LAUNCHER[kind]).read_text(errors="replace")
    except OSError:
        return None
    if kind == "pubsub":
        found = re.search(r"^CLASSPATH=\$APP_HOME/(\S+\.jar)\s*$", script, re.M)
        if not found or "-jar" not in script:
            return None
        jar = base / found.group(1)
    else:
        main = _MAIN_CLASS[kind]
        if main is None or main not in script or "cloud-firestore-emulator.jar" not in script:
            return None
        jar = base / "cloud-firestore-emulator.jar"
    if not jar.is_file():
        raise ToolMissingError(
            f"the gcloud component `{c.gcloud_name}` ({c.title}) in {base} has no {jar.name} "
            f"(its launcher script names it): reinstall it, {install_hint(kind)}"
        )
    return EmulatorJar(kind, jar, _MAIN_CLASS[kind])


def java_runtime_id(java: str) -> str:
    """What identifies a Java runtime for its class archives: its real path and its version
    (from the `release` file, else the executable's mtime: a new package replaces it)."""
    real = Path(os.path.realpath(java))
    release = real.parent.parent / "release"
    with contextlib.suppress(OSError):
        text = release.read_text()
        found = re.search(r'^JAVA_RUNTIME_VERSION="([^"]+)"', text, re.M) or re.search(
            r'^JAVA_VERSION="([^"]+)"', text, re.M
        )
        if found:
            return f"{real} {found.group(1)} {release.stat().st_mtime_ns}"
    try:
        return f"{real} {real.stat().st_mtime_ns}"
    except OSError:
        return str(real)


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
    if java:
        bin_dir, major = java_bin_dir()
        detail = (
            f"Java {major} in {bin_dir.parent} (used by the emulators)"
            if bin_dir is not None
            else detail + f" (the Firestore emulator wants Java {JAVA_WANTED}+)"
        )
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
