"""Which Java the emulators run on (emulators._tools.prefer_java): a Java >= 21 when one is
installed, found by the `release` file of each Java home, else the `java` on PATH, said why."""

from __future__ import annotations

from pathlib import Path

from emulators._tools import java_bin_dir, prefer_java


def _jvm(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\nexit 1\n")  # never run: release is read
    (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return home / "bin"


def test_the_newest_java_21_or_later_goes_first_on_path(tmp_path: Path) -> None:
    _jvm(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    newest = _jvm(tmp_path, "temurin-25-jdk-amd64", "25.0.3")
    _jvm(tmp_path, "temurin-21-jre", "21.0.4")
    env = {"PATH": "/usr/bin:/bin"}
    said = prefer_java(env, tmp_path)
    assert env["PATH"] == f"{newest}:/usr/bin:/bin"
    assert said == f"emulators run on Java 25 ({newest.parent})"
    prefer_java(env, tmp_path)  # idempotent
    assert env["PATH"].count(str(newest)) == 1


def test_java_home_counts_and_old_release_formats_are_read(tmp_path: Path) -> None:
    home = _jvm(tmp_path / "elsewhere", "jdk", "21.0.1")
    assert java_bin_dir({"JAVA_HOME": str(home.parent), "PATH": ""}, tmp_path / "none") == (
        home,
        21,
    )
    old = _jvm(tmp_path / "old", "jdk8", "1.8.0_412")
    assert java_bin_dir({"JAVA_HOME": str(old.parent), "PATH": ""}, tmp_path / "none")[0] is None


def test_without_java_21_the_path_is_kept_and_the_reason_given(tmp_path: Path) -> None:
    _jvm(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    env = {"PATH": "/nowhere"}
    said = prefer_java(env, tmp_path)
    assert env["PATH"] == "/nowhere"
    assert "wants Java 21+" in said and "gcloud after 528" in said
