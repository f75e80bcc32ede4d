"""Keyset pagination, one way: `?limit=&cursor=` in, `{items, next_cursor}` out.

A list query model extends `PageQuery` with the resource's filters. The cursor is the sort key
of the last item of the previous page, JSON-encoded and base64url'd by `page()`; the query model
decodes it with `keyset(*types)`, which checks every element's type (a `datetime` element is
read from its RFC 3339 form) and answers 400 for a cursor this API did not make. `Page[XOut]` is
the response model of every list (`XOutPage` in the OpenAPI document).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import Field, field_validator

from shared.errors import BadRequest
from shared.http._bodies import ApiModel, OutModel, json_default

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
T = TypeVar("T")

_BAD_CURSOR = [{"field": "cursor", "message": "not a cursor from this API", "type": "cursor"}]


class PageQuery(ApiModel):
    """Base for list queries: `?limit=&cursor=`; extend with the resource's filters.

    `limit` is capped at MAX_LIMIT (not an error: clients may ask for more than we give).
    """

    limit: int = Field(DEFAULT_LIMIT, ge=1)
    cursor: str | None = Field(None, max_length=2048)

    @field_validator("limit")
    @classmethod
    def _cap(cls, value: int) -> int:
        return min(value, MAX_LIMIT)

    def after(self) -> list[Any] | None:
        """The decoded cursor: the sort key of the last item of the previous page."""
        return decode_cursor(self.cursor) if self.cursor else None

    def keyset(self, *types: type) -> tuple[Any, ...] | None:
        """The cursor as a typed sort key (`keyset(datetime, str)`), or None on page one."""
        key = self.after()
        if key is None:
            return None
        if len(key) != len(types):
            raise BadRequest("The cursor is not valid.", errors=_BAD_CURSOR)
        out: list[Any] = []
        for value, kind in zip(key, types, strict=True):
            if kind is datetime and isinstance(value, str):
                try:
                    out.append(datetime.fromisoformat(value.replace("Z", "+00:00")))
                    continue
                except ValueError:
                    pass
            elif kind is float and isinstance(value, int | float) and not isinstance(value, bool):
                out.append(float(value))
                continue
            elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
                out.append(value)
                continue
            raise BadRequest("The cursor is not valid.", errors=_BAD_CURSOR)
        return tuple(out)


class Page(OutModel, Generic[T]):
    """One page of a list: the items and the cursor of the next page (null on the last)."""

    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        return "".join(getattr(p, "__name__", str(p)) for p in params) + "Page"


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), default=json_default, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        raise BadRequest("The cursor is not valid.", errors=_BAD_CURSOR) from None
    if not isinstance(key, list):
        raise BadRequest("The cursor is not valid.", errors=_BAD_CURSOR)
    return key


def page(
    rows: Sequence[Any],
    limit: int,
    key: Callable[[Any], Sequence[Any]],
    shape: Callable[[Any], Any] = lambda r: r,
) -> dict[str, Any]:
    """`{items, next_cursor}` from `limit + 1` fetched rows sorted by `key`."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return {
        "items": [shape(r) for r in items],
        "next_cursor": encode_cursor(key(items[-1])) if more and items else None,
    }
