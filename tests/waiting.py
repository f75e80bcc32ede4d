"""Waiting for a positive signal, the one way every test waits (never a fixed sleep)."""

from __future__ import annotations

import time
from typing import Any


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy (returned) or fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
