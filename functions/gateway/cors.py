"""CORS decisions of the gateway, as pure functions of the request's headers.

Only origins listed in `CORS_ORIGINS` (exact `scheme://host[:port]` matches) get CORS headers;
any other origin gets none, and its preflight is refused (403). Preflights are answered by the
gateway itself and never forwarded or authenticated (browsers send no credentials on them).
No cookies are used (bearer tokens), so `Access-Control-Allow-Credentials` is never sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from werkzeug.datastructures import Headers

ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID, traceparent, Idempotency-Key"
EXPOSE_HEADERS = (
    "X-Request-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    "RateLimit-Policy, Idempotent-Replayed"
)
MAX_AGE_S = 600


def is_preflight(method: str, headers: Mapping[str, str] | Headers) -> bool:
    return (
        method == "OPTIONS"
        and bool(headers.get("Origin"))
        and bool(headers.get("Access-Control-Request-Method"))
    )


def allowed(origin: str | None, origins: Iterable[str]) -> bool:
    return origin is not None and bool(origin) and origin in origins


def preflight_headers(origin: str) -> dict[str, str]:
    """Headers of the 204 answer to an allowed origin's preflight."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE_S),
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }


def response_headers(origin: str) -> dict[str, str]:
    """Headers added to every other response to an allowed origin."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSE_HEADERS,
    }
