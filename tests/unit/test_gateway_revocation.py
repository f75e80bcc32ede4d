"""Gateway revocation cache: "not revoked" remembered at most 2 s, "revoked" until expiry; a
token issued before its user's "not before" (password change, deactivation, demotion) is
revoked by the same rule."""

import pytest

from functions.gateway.revocation import RevocationCache


class Store:
    """A hand-written fake of shared.auth.is_revoked: counts reads."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.not_before: dict[str, float] = {}
        self.reads = 0

    def __call__(self, jti: str, sub: str = "", iat: float = 0.0) -> bool:
        self.reads += 1
        return jti in self.revoked or iat < self.not_before.get(sub, float("-inf"))


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_not_revoked_is_cached_for_at_most_two_seconds():
    store, clock = Store(), Clock()
    cache = RevocationCache(store, clock=clock)
    assert cache.is_revoked("j1", exp=2e9) is False
    assert cache.is_revoked("j1", exp=2e9) is False
    assert store.reads == 1
    store.revoked.add("j1")  # logout
    clock.now += 1.9
    assert cache.is_revoked("j1", exp=2e9) is False  # still within the bound
    clock.now += 0.1
    assert cache.is_revoked("j1", exp=2e9) is True  # the bound: 2 s after the first read
    assert store.reads == 2


def test_revoked_is_final_and_not_read_again():
    store, clock = Store(), Clock()
    store.revoked.add("j2")
    cache = RevocationCache(store, clock=clock)
    assert cache.is_revoked("j2", exp=2e9) is True
    clock.now += 3600
    assert cache.is_revoked("j2", exp=2e9) is True
    assert store.reads == 1


def test_memory_is_bounded():
    store, clock = Store(), Clock()
    cache = RevocationCache(store, clock=clock, max_entries=10)
    for i in range(100):
        cache.is_revoked(f"j{i}", exp=2e9)
    assert len(cache._clear) <= 10
    clock.now += 5
    cache.is_revoked("last", exp=2e9)
    assert len(cache._clear) == 1


def test_a_store_failure_propagates_so_the_gateway_fails_closed():
    def broken(_jti: str, _sub: str, _iat: float) -> bool:
        raise ConnectionError("firestore down")

    cache = RevocationCache(broken)
    with pytest.raises(ConnectionError):
        cache.is_revoked("j3", exp=2e9)


def test_a_token_older_than_its_users_not_before_is_revoked_within_the_same_bound():
    store, clock = Store(), Clock()
    cache = RevocationCache(store, clock=clock)
    assert cache.is_revoked("j5", exp=2e9, sub="ann", iat=1000.0) is False
    store.not_before["ann"] = 1000.5  # ann changed her password after j5 was issued
    clock.now += 1.9
    assert cache.is_revoked("j5", exp=2e9, sub="ann", iat=1000.0) is False
    clock.now += 0.1
    assert cache.is_revoked("j5", exp=2e9, sub="ann", iat=1000.0) is True
    # a token issued after the change is fine; the old one stays revoked without a read
    assert cache.is_revoked("j6", exp=2e9, sub="ann", iat=1001.0) is False
    reads = store.reads
    assert cache.is_revoked("j5", exp=2e9, sub="ann", iat=1000.0) is True
    assert store.reads == reads
