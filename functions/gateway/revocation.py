"""The gateway's view of revoked tokens: `shared.auth.token_dead` with a short memory.

A token is revoked when its id was (logout, refresh-token reuse) or when it was issued before
its user's "not before" (password change, deactivation, demotion; decision 0032): one
Firestore round trip reads both. Checking Firestore on every request would add a document
read (~2-10 ms) to each call, so the answer "not revoked" is remembered per token id for at
most `ttl_s` (2 s): a logout, like a "not before", takes effect at the gateway within that
bound (docs/decisions/0003). "Revoked" is final and is remembered until the token expires.
Both memories are bounded. When Firestore cannot be read the check
fails closed (the caller answers 503): an unverifiable token is not let through.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

NOT_REVOKED_TTL_S = 2.0


class RevocationCache:
    def __init__(
        self,
        check: Callable[[str, str, float], bool] | None = None,
        *,
        ttl_s: float = NOT_REVOKED_TTL_S,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._check = check  # (jti, sub, iat) -> revoked
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._wall = wall_clock
        self._clear: OrderedDict[str, float] = OrderedDict()  # jti -> valid until (monotonic)
        self._revoked: dict[str, float] = {}  # jti -> token expiry (epoch seconds)
        self._lock = threading.Lock()

    def _lookup(self, jti: str, sub: str, iat: float) -> bool:
        if self._check is not None:
            return self._check(jti, sub, iat)
        from shared.auth import token_dead

        return token_dead(jti, sub, iat)

    def known(self, jti: str) -> bool | None:
        """The remembered answer for `jti` (revoked, or not revoked within the TTL), or None
        when Firestore must be asked (`is_revoked`): never blocks (the gateway's event loop)."""
        now = self._clock()
        with self._lock:
            if jti in self._revoked:
                return True
            until = self._clear.get(jti)
            if until is not None and until > now:
                return False
        return None

    def is_revoked(self, jti: str, exp: float, sub: str = "", iat: float = 0.0) -> bool:
        known = self.known(jti)
        if known is not None:
            return known
        now = self._clock()
        revoked = self._lookup(jti, sub, iat)  # outside the lock: a slow read must not block others
        with self._lock:
            if revoked:
                self._clear.pop(jti, None)
                self._revoked[jti] = exp
                if len(self._revoked) > self.max_entries:
                    wall = self._wall()
                    self._revoked = {k: v for k, v in self._revoked.items() if v > wall}
            else:
                self._clear.pop(jti, None)
                self._clear[jti] = now + self.ttl_s  # insertion order = expiry order
                while self._clear:
                    first, first_until = next(iter(self._clear.items()))
                    if first_until <= now or len(self._clear) > self.max_entries:
                        del self._clear[first]
                    else:
                        break
        return revoked

    def clear(self) -> None:
        with self._lock:
            self._clear.clear()
            self._revoked.clear()
