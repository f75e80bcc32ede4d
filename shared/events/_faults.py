"""Fault injection for the fault suite: a process kills itself at a named point, once per arming.

Only when `settings().is_local` (local and test) and only when a test armed it:
`arm(point, deployment)` creates `<SWITCHYARD_LOCAL_DIR>/faults/<deployment>.<point>`, and the
first request of that deployment to reach `point` removes the file and SIGKILLs its own process
group (the whole deployment, as `kill -9` would). Points: `consume` (a consumer's claim is taken,
its work not started) and `after-commit` (the outbox rows are committed, not yet published).
`poison(deployment, event_id)` makes that deployment's consumer fail on that event (a poison
message) until `cure(...)` (the fix). Nothing sleeps; in the cloud the check is one boolean and
never touches the disk.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from shared.config import settings

POINTS = ("consume", "after-commit")

__all__ = ["POINTS", "arm", "armed", "cure", "fault_point", "poison", "poisoned"]


def _file(point: str, deployment: str, local_dir: Path | None = None) -> Path:
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}; known: {', '.join(POINTS)}")
    return (local_dir or settings().local_dir) / "faults" / f"{deployment}.{point}"


def arm(point: str, deployment: str, local_dir: Path | None = None) -> Path:
    """Make `deployment`'s next request reaching `point` kill its process (tests only)."""
    path = _file(point, deployment, local_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def armed(point: str, deployment: str, local_dir: Path | None = None) -> bool:
    """True while the arming has not fired yet."""
    return _file(point, deployment, local_dir).exists()


def fault_point(point: str) -> None:
    """Die here if a test armed `point` for this deployment (local and test only)."""
    s = settings()
    if not s.is_local or not s.deployment:
        return
    try:
        _file(point, s.deployment).unlink()  # exactly one request wins the arming
    except FileNotFoundError:
        return
    os.killpg(os.getpgid(0), signal.SIGKILL)


def _poison_file(deployment: str, event_id: str, local_dir: Path | None = None) -> Path:
    safe = "".join(c for c in event_id if c.isalnum() or c == "-")
    return (local_dir or settings().local_dir) / "faults" / f"{deployment}.poison.{safe}"


def poison(deployment: str, event_id: str, local_dir: Path | None = None) -> None:
    """Make `deployment`'s consumer fail on `event_id` until `cure` (tests only)."""
    path = _poison_file(deployment, event_id, local_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def cure(deployment: str, event_id: str, local_dir: Path | None = None) -> None:
    _poison_file(deployment, event_id, local_dir).unlink(missing_ok=True)


def poisoned(event_id: str) -> bool:
    """True when a test made this deployment's consumer fail on `event_id` (local only)."""
    s = settings()
    if not s.is_local or not s.deployment:
        return False
    return _poison_file(s.deployment, event_id).exists()
