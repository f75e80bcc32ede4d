"""Errors every layer may raise, free of any web framework.

A domain model, a service or a store raises one of these; the HTTP layer (`shared.http`) maps
each to an RFC 9457 problem+json answer in one place. Subclass them per context (one base
exception per context, e.g. `class BatchError(Conflict)`) rather than inventing statuses.
This module imports nothing but the standard library, so `model.py` files can use it without
loading Flask, JWT or cryptography.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "Problem",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "Unprocessable",
]


class Problem(Exception):
    """An error answered as problem+json. Subclass per context; mapped in `shared.http` only."""

    status = 500
    title = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or self.title)
        self.detail = detail
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


class BadRequest(Problem):
    status, title = 400, "Bad Request"


class Unauthorized(Problem):
    status, title = 401, "Unauthorized"


class Forbidden(Problem):
    status, title = 403, "Forbidden"


class NotFound(Problem):
    status, title = 404, "Not Found"


class Conflict(Problem):
    status, title = 409, "Conflict"


class PayloadTooLarge(Problem):
    status, title = 413, "Payload Too Large"


class UnsupportedMediaType(Problem):
    status, title = 415, "Unsupported Media Type"


class Unprocessable(Problem):
    status, title = 422, "Unprocessable Content"


class TooManyRequests(Problem):
    status, title = 429, "Too Many Requests"


class BadGateway(Problem):
    status, title = 502, "Bad Gateway"


class ServiceUnavailable(Problem):
    status, title = 503, "Service Unavailable"
