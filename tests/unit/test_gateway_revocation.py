"""Gateway revocation cache: "not revoked" remembered at most 2 s, "revoked" until expiry."""

import pytest

from functions.gateway.revocation import RevocationCache


class Store:
    """A hand-written fake of shared.auth.is_revoked: counts reads."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.reads = 0

    def __call__(self, jti: str) -> bool:
        self.reads += 1
        return jti in self.revoked


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
    def broken(_jti: str) -> bool:
        raise ConnectionError("firestore down")

    cache = RevocationCache(broken)
    with pytest.raises(ConnectionError):
        cache.is_revoked("j3", exp=2e9)
