"""Token buckets in memory, one per key (user or client IP), per gateway instance.

A bucket holds up to `per_minute` tokens and refills at `per_minute / 60` tokens a second, so a
client may burst up to its minute's allowance and then continues at the steady rate. Memory is
bounded: buckets are kept in least-recently-used order; a bucket idle long enough to have
refilled completely is indistinguishable from a new one and is dropped, and past `max_keys` the
least recently used bucket is dropped anyway. Limits are per instance (docs/decisions/0004):
with N instances a client may get up to N times the limit. The clock is injectable for tests.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """The outcome of taking one token, with what the RateLimit headers need."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until one token is available (0 when allowed)

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.limit};w=60",
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


class TokenBuckets:
    """Thread-safe token buckets keyed by string; `per_minute <= 0` disables the limit."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = int(per_minute)
        self.capacity = float(max(per_minute, 0))
        self.rate = self.capacity / 60.0  # tokens per second
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, cost: float = 1.0) -> Decision:
        if self.limit <= 0:
            return Decision(True, 0, 0, 0, 0)
        now = self._clock()
        with self._lock:
            current = self._buckets.pop(key, None)
            if current is None:
                tokens = self.capacity
            else:
                tokens = min(self.capacity, current[0] + (now - current[1]) * self.rate)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            self._buckets[key] = (tokens, now)  # re-inserted: most recently used is last
            self._evict(now)
        retry = 0 if allowed else max(1, math.ceil((cost - tokens) / self.rate))
        return Decision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, math.floor(tokens)),
            reset_s=max(0, math.ceil((self.capacity - tokens) / self.rate)),
            retry_after_s=retry,
        )

    def _evict(self, now: float) -> None:
        full_after = self.capacity / self.rate  # seconds for an empty bucket to refill
        while self._buckets:
            key, (_tokens, at) = next(iter(self._buckets.items()))
            if len(self._buckets) > self.max_keys or now - at >= full_after:
                del self._buckets[key]
            else:
                break


@functools.lru_cache(maxsize=8)
def buckets(kind: str, per_minute: int) -> TokenBuckets:
    """The instance's buckets for `kind` ("user", "ip") at the configured limit."""
    return TokenBuckets(per_minute)


def reset() -> None:
    """Forget every bucket (tests)."""
    buckets.cache_clear()
