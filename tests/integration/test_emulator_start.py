"""The emulators started directly on Java, with a class archive (decision 0055).

Real emulators on free ports. A module-wide cache folder holds the class archives, so each
(emulator, Java) pair writes its archive once (at the stop of its first run) and the next
start uses it. How fast they start is measured (docs/decisions/0055), not asserted here.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emulators import Emulator, _tools, free_port, is_listening
from emulators._emulator import VIA_GCLOUD
from emulators._logs import LogHub
from emulators._procs import group_alive
from emulators._wiring import clients

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "emulator-start"
JVM = Path("/usr/lib/jvm")


def _javas() -> list[Path]:
    """One `bin` folder per installed Java major (17+)."""
    found: dict[int, Path] = {}
    if JVM.is_dir():
        for home in sorted(JVM.iterdir()):
            java = home / "bin" / "java"
            major = _tools.java_major(str(java)) if java.is_file() else None
            if major and major >= 17:
                found.setdefault(major, home / "bin")
    return [found[m] for m in sorted(found)]


JAVAS = _javas()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jvm-cache")


def _use_java(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> str:
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return str(bin_dir / "java")


def _emulator(kind: str, cache: Path, port: int | None = None, **kw: object) -> Emulator:
    hub = LogHub(stream=None, log_dir=OUTPUT / f"{kind}-{secrets.token_hex(3)}")
    return Emulator(kind, port or free_port(), hub=hub, jvm_cache=cache, **kw)  # type: ignore[arg-type]


def _java_of(pid: int) -> str:
    return os.path.realpath(f"/proc/{pid}/exe")


@pytest.fixture
def stopped() -> Iterator[list[Emulator]]:
    """Emulators a test started: stopped (and their hubs closed) even when it fails."""
    started: list[Emulator] = []
    yield started
    for em in started:
        em.stop()
        em.hub.close()


def _start(em: Emulator, stopped: list[Emulator]) -> Emulator:
    stopped.append(em)
    return em.start(timeout=90)


def _stop(em: Emulator) -> int:
    assert em.child is not None and em.child.pid is not None
    pgid = em.child.pid
    em.stop()
    assert not is_listening(em.port)
    assert not group_alive(pgid)
    return pgid


@pytest.mark.parametrize("bin_dir", JAVAS, ids=lambda p: p.parent.name)
def test_pubsub_runs_the_chosen_java_writes_its_archive_then_uses_it(
    bin_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, stopped: list[Emulator]
) -> None:
    java = _use_java(monkeypatch, bin_dir)
    major = _tools.java_major(java)
    for old in cache.glob("pubsub-*"):
        os.utime(old, (1e9, 1e9))  # unused for years: pruned once this Java's is written
    unused = list(cache.glob("pubsub-*"))
    first = _start(_emulator("pubsub", cache), stopped)
    assert first.child is not None and first.child.pid is not None
    assert first.child.argv[0] == java and "gcloud" not in first.child.argv
    assert _java_of(first.child.pid) == os.path.realpath(java)
    assert "-XX:TieredStopAtLevel=1" in first.child.argv
    assert major is not None and major >= 17
    assert any(a.startswith("-XX:ArchiveClassesAtExit=") for a in first.child.argv)
    assert requests.get(first.url + "/", timeout=2).text.strip() == "Ok"
    _stop(first)
    assert first.archive is not None and first.archive.is_file()
    assert first.archive.stat().st_size > 1_000_000
    assert not list(cache.glob(".*.tmp")), "the half-written file is renamed, not left"
    assert not [p for p in unused if p.exists()], "archives unused for 30 days are pruned"

    second = _start(_emulator("pubsub", cache), stopped)
    assert second.child is not None
    assert f"-XX:SharedArchiveFile={first.archive}" in second.child.argv
    assert first.archive.stat().st_size > 1_000_000  # used, not rewritten
    # the emulator works: a topic, a subscription, a message published and pulled
    pub, sub = clients(second.host)
    topic = f"projects/{second.project}/topics/t-{secrets.token_hex(3)}"
    subscription = f"projects/{second.project}/subscriptions/s-{secrets.token_hex(3)}"
    pub.create_topic(name=topic)
    sub.create_subscription(name=subscription, topic=topic)
    pub.publish(topic=topic, messages=[{"data": b"hello"}])
    got = sub.pull(subscription=subscription, max_messages=1, timeout=10)
    assert [m.message.data for m in got.received_messages] == [b"hello"]
    assert (second._pubsub_data() / "env.yaml").read_text() == (
        f"PUBSUB_EMULATOR_HOST: {second.host}\n"
    )
    _stop(second)


def test_firestore_keeps_its_data_across_a_restart_started_directly(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stopped: list[Emulator]
) -> None:
    from google.cloud import firestore

    _tools.prefer_java(os.environ)  # as the stack does: the newest Java first on PATH
    java = shutil.which("java")
    project, data = f"persist-{secrets.token_hex(3)}", tmp_path / "firestore"
    kept = {"project": project, "data_dir": data, "persist": True}
    first = _start(_emulator("firestore", cache, **kept), stopped)
    assert first.child is not None and first.child.argv[0] == java
    assert "--database-mode=firestore-native" in first.child.argv
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", first.host)
    firestore.Client(project=project).collection("kept").document("one").set({"v": 1})
    _stop(first)  # exports, then the JVM writes its archive
    assert list((data / "current").glob("*.overall_export_metadata"))
    assert first.archive is not None and first.archive.is_file()

    again = _start(_emulator("firestore", cache, first.port, **kept), stopped)
    assert again.child is not None and again.archive == first.archive
    assert any(a.startswith("--import-data=") for a in again.child.argv)
    assert any(str(first.archive) in a for a in again.child.argv)
    doc = firestore.Client(project=project).collection("kept").document("one").get()
    assert doc.exists and doc.to_dict() == {"v": 1}
    _stop(again)


@pytest.mark.parametrize("bin_dir", JAVAS, ids=lambda p: p.parent.name)
def test_a_corrupt_archive_does_not_stop_the_start(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stopped: list[Emulator]
) -> None:
    _use_java(monkeypatch, bin_dir)
    em = _emulator("firestore", tmp_path)
    em.argv()  # where its archive goes
    assert em.archive is not None
    em.archive.write_bytes(b"not an archive" * 1000)
    _start(em, stopped)
    assert em.child is not None and any(str(em.archive) in a for a in em.child.argv)
    assert requests.get(em.url + "/", timeout=2).text.strip() == "Ok"
    assert not em.archive.exists(), "the JVM refused it: deleted, the next start writes one"
    _stop(em)

    truncated = _emulator("pubsub", tmp_path)
    truncated.argv()
    assert truncated.archive is not None
    truncated.archive.write_bytes(b"")
    _start(truncated, stopped)
    assert requests.get(truncated.url + "/", timeout=2).text.strip() == "Ok"
    _stop(truncated)


def test_a_jvm_that_refuses_its_archive_is_started_again_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stopped: list[Emulator]
) -> None:
    # -Xshare:on (through the launcher script's JAVA_OPTS) makes a bad archive fatal: the
    # emulator starts once more without one, and the bad archive is gone
    _use_java(monkeypatch, JAVAS[-1])
    monkeypatch.setenv("JAVA_OPTS", "-Xshare:on")
    em = _emulator("pubsub", tmp_path)
    em.argv()
    assert em.archive is not None
    refused = em.archive
    refused.write_bytes(b"not an archive" * 1000)
    _start(em, stopped)
    assert requests.get(em.url + "/", timeout=2).text.strip() == "Ok"
    assert any("started again without one" in ln for ln in em.hub.tail("pubsub", 200))
    assert not refused.exists()
    _stop(em)


def test_gcloud_starts_them_when_asked(
    cache: Path, monkeypatch: pytest.MonkeyPatch, stopped: list[Emulator]
) -> None:
    monkeypatch.setenv(VIA_GCLOUD, "1")
    em = _start(_emulator("pubsub", cache), stopped)
    assert em.child is not None and em.child.argv[0] == "gcloud" and em.archive is None
    assert requests.get(em.url + "/", timeout=2).text.strip() == "Ok"
    _stop(em)
