"""How the emulators' Java is found in a Cloud SDK (decision 0055): the launcher scripts are
read; an unknown layout means "start through gcloud", a missing jar names the component."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators import ToolMissingError, _tools

PUBSUB_SCRIPT = """#!/usr/bin/env sh
CLASSPATH=$APP_HOME/lib/cloud-pubsub-emulator-0.9.1-all.jar
eval set -- $DEFAULT_JVM_OPTS $JAVA_OPTS -jar "\\"$CLASSPATH\\"" "$APP_ARGS"
exec "$JAVACMD" "$@"
"""
FIRESTORE_SCRIPT = """#!/bin/bash
declare -r FIRESTORE_JAR="${FIRESTORE_DIR}/cloud-firestore-emulator.jar"
${JAVA:="java"} ${JVM_FLAGS} -cp "${FIRESTORE_JAR}" \
com.google.cloud.datastore.emulator.firestore.CloudFirestore $*
"""


def _sdk(tmp_path: Path, *, pubsub_jar: bool = True, firestore_jar: bool = True) -> Path:
    root = tmp_path / "sdk"
    ps = root / "platform" / "pubsub-emulator"
    (ps / "bin").mkdir(parents=True)
    (ps / "bin" / "cloud-pubsub-emulator").write_text(PUBSUB_SCRIPT)
    (ps / "lib").mkdir()
    if pubsub_jar:
        (ps / "lib" / "cloud-pubsub-emulator-0.9.1-all.jar").write_bytes(b"PK")
    fs = root / "platform" / "cloud-firestore-emulator"
    fs.mkdir(parents=True)
    (fs / "cloud_firestore_emulator").write_text(FIRESTORE_SCRIPT)
    if firestore_jar:
        (fs / "cloud-firestore-emulator.jar").write_bytes(b"PK")
    return root


def test_the_jar_is_the_one_the_launcher_script_names(tmp_path: Path) -> None:
    root = _sdk(tmp_path)
    ps = _tools.emulator_jar("pubsub", root)
    assert ps is not None and ps.main_class is None
    assert ps.jar == root / "platform/pubsub-emulator/lib/cloud-pubsub-emulator-0.9.1-all.jar"
    fs = _tools.emulator_jar("firestore", root)
    assert fs is not None and fs.jar.name == "cloud-firestore-emulator.jar"
    assert fs.main_class == "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


def test_an_unknown_layout_is_started_through_gcloud(tmp_path: Path) -> None:
    root = _sdk(tmp_path)
    script = root / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
    script.write_text('#!/bin/sh\nexec other-launcher "$@"\n')
    assert _tools.emulator_jar("pubsub", root) is None
    (root / "platform/cloud-firestore-emulator/cloud_firestore_emulator").unlink()
    assert _tools.emulator_jar("firestore", root) is None
    assert _tools.emulator_jar("pubsub", tmp_path / "no-sdk") is None


@pytest.mark.parametrize(
    ("kind", "component"),
    [("pubsub", "pubsub-emulator"), ("firestore", "cloud-firestore-emulator")],
)
def test_a_missing_jar_names_the_component(tmp_path: Path, kind: str, component: str) -> None:
    root = _sdk(tmp_path, pubsub_jar=False, firestore_jar=False)
    with pytest.raises(ToolMissingError) as err:
        _tools.emulator_jar(kind, root)
    assert f"`{component}`" in str(err.value)
    assert f"gcloud components install {component}" in str(err.value)


def test_the_runtime_id_changes_with_the_java_release(tmp_path: Path) -> None:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text('JAVA_VERSION="25.0.3"\nJAVA_RUNTIME_VERSION="25.0.3+9-LTS"\n')
    before = _tools.java_runtime_id(str(home / "bin" / "java"))
    assert "25.0.3+9-LTS" in before and str(home / "bin" / "java") in before
    (home / "release").write_text('JAVA_VERSION="25.0.4"\nJAVA_RUNTIME_VERSION="25.0.4+1-LTS"\n')
    assert _tools.java_runtime_id(str(home / "bin" / "java")) != before
