"""Gateway token buckets: burst, refill, Retry-After, bounded memory (injected clock)."""

from functions.gateway.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_full_minute_may_be_used_at_once_then_429_with_retry_after():
    clock = Clock()
    buckets = TokenBuckets(60, clock=clock)  # one token a second
    decisions = [buckets.take("u1") for _ in range(60)]
    assert all(d.allowed for d in decisions)
    assert decisions[0].remaining == 59 and decisions[-1].remaining == 0
    refused = buckets.take("u1")
    assert not refused.allowed
    assert refused.retry_after_s == 1
    headers = refused.headers()
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit-Limit"] == "60"
    assert headers["RateLimit-Remaining"] == "0"
    assert int(headers["RateLimit-Reset"]) == 60


def test_tokens_refill_at_the_steady_rate():
    clock = Clock()
    buckets = TokenBuckets(6, clock=clock)  # one token every 10 s
    for _ in range(6):
        assert buckets.take("ip").allowed
    refused = buckets.take("ip")
    assert not refused.allowed and refused.retry_after_s == 10
    clock.advance(9.5)
    again = buckets.take("ip")
    assert not again.allowed and again.retry_after_s == 1  # never 0
    clock.advance(0.5)
    assert buckets.take("ip").allowed
    assert not buckets.take("ip").allowed


def test_keys_are_independent():
    clock = Clock()
    buckets = TokenBuckets(1, clock=clock)
    assert buckets.take("a").allowed
    assert not buckets.take("a").allowed
    assert buckets.take("b").allowed


def test_refill_never_exceeds_the_capacity():
    clock = Clock()
    buckets = TokenBuckets(3, clock=clock)
    buckets.take("k")
    clock.advance(3600)
    assert [buckets.take("k").allowed for _ in range(4)] == [True, True, True, False]


def test_idle_buckets_are_evicted_and_memory_is_bounded():
    clock = Clock()
    buckets = TokenBuckets(60, max_keys=100, clock=clock)
    for i in range(50):
        buckets.take(f"k{i}")
    assert len(buckets) == 50
    clock.advance(61)  # every bucket has refilled: same as new, so dropped
    buckets.take("fresh")
    assert len(buckets) == 1
    for i in range(500):
        buckets.take(f"x{i}")
    assert len(buckets) <= 100


def test_eviction_keeps_recently_used_buckets():
    clock = Clock()
    buckets = TokenBuckets(2, max_keys=3, clock=clock)
    buckets.take("hot")
    buckets.take("hot")
    for key in ("a", "b"):
        buckets.take(key)
    buckets.take("hot")  # refused, and now the most recently used
    buckets.take("c")  # over max_keys: the least recently used ("a") goes
    assert not buckets.take("hot").allowed


def test_zero_disables_the_limit():
    buckets = TokenBuckets(0)
    assert all(buckets.take("k").allowed for _ in range(1000))


def test_console_page_reads_are_not_ip_limited_but_api_and_writes_are():
    import flask

    from functions.gateway.api import _ip_limited

    app = flask.Flask("t")
    for method, path, limited in [
        ("GET", "/_app/app.js", False),
        ("GET", "/", False),
        ("GET", "/health", False),
        ("GET", "/api/users", True),
        ("POST", "/session/login", True),
        ("HEAD", "/x", False),
    ]:
        with app.test_request_context(path, method=method):
            assert _ip_limited(flask.request) is limited, (method, path)
