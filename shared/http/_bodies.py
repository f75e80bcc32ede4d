"""Request and response bodies: pydantic v2 models in, JSON out.

`ApiModel` is the base of every request model (unknown fields are an error, strings are
stripped, dates and date-times are ISO 8601 strings only: pydantic's lax mode would read a
number, or a string of digits, as Unix time, which the documented `format: date-time`
refuses); `OutModel` the base of every response model (built from domain objects or rows
that may carry more fields than the answer shows: extra fields are ignored, so a secret column
never leaks by being added to a row). `body(Model)` and `query(Model)` validate the JSON body
and the query string (422 with field errors), `json_response` encodes datetimes as RFC 3339
UTC, UUIDs and models.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any, TypeVar, get_args

import flask
import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict

from shared.errors import BadRequest, Unprocessable, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)


_NUMBER = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")


# pydantic's constrained dates are classes of their own, not subclasses of date
_DATE_TYPES = tuple(
    getattr(pydantic, name)
    for name in (
        "AwareDatetime",
        "NaiveDatetime",
        "PastDatetime",
        "FutureDatetime",
        "PastDate",
        "FutureDate",
    )
)


def _temporal(annotation: Any) -> bool:
    """`annotation` is a date or datetime, or holds one (`X | None`, `list[X]`, `Annotated`)."""
    if isinstance(annotation, type) and issubclass(annotation, (date, *_DATE_TYPES)):
        return True
    return any(_temporal(arg) for arg in get_args(annotation))


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        return _NUMBER.fullmatch(value) is not None
    if isinstance(value, list | tuple):
        return any(_numeric(v) for v in value)
    return False


def _iso_only(value: Any) -> Any:
    if _numeric(value):
        raise ValueError("must be an ISO 8601 date or date-time string, not a number")
    return value


_ISO_ONLY = BeforeValidator(_iso_only)


# What pydantic-core strips: Unicode White_Space (not JSON Schema's `\s`, which has U+FEFF and
# lacks U+0085).
_WHITE = "\\t\\n\\x0b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


def stripped_min_length(n: int) -> str:
    """A pattern a string matches when it is at least `n` long once stripped."""
    if n <= 1:
        return f"[^{_WHITE}]"
    return f"[^{_WHITE}][\\s\\S]{{{n - 2},}}[^{_WHITE}]"


def _non_blank(schema: Any) -> None:
    """Say in `schema` what stripping implies: a string with a minLength (and no pattern or
    format of its own) is that long once stripped; in nested items and members too."""
    if not isinstance(schema, dict):
        return
    if (
        schema.get("type") == "string"
        and schema.get("minLength", 0) >= 1
        and not {"pattern", "format", "enum", "const"} & schema.keys()
    ):
        schema["pattern"] = stripped_min_length(schema["minLength"])
    for key in ("items", "additionalProperties"):
        _non_blank(schema.get(key))
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, ()):
            _non_blank(sub)


class ApiModel(BaseModel):
    """Base of every request model: unknown fields are an error, strings are stripped, dates
    and date-times are ISO 8601 strings (a number is not taken as Unix time)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        schema = handler(core_schema)
        for prop in handler.resolve_ref_schema(schema).get("properties", {}).values():
            _non_blank(prop)
        return schema

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Only the date fields get the check (a validator on every field would also sit on
        # discriminator fields, which pydantic refuses).
        super().__pydantic_init_subclass__(**kwargs)
        dated = [f for f in cls.model_fields.values() if _temporal(f.annotation)]
        for field in dated:
            if _ISO_ONLY not in field.metadata:
                field.metadata.append(_ISO_ONLY)
        if dated:
            cls.model_rebuild(force=True)


class OutModel(BaseModel):
    """Base of every response model: built from objects that may carry more fields
    (`from_attributes` reads dataclasses and rows; extra keys of dicts are ignored)."""

    model_config = ConfigDict(extra="ignore", from_attributes=True, defer_build=True)


def json_body() -> Any:
    """The request's JSON body: 415 when it is not JSON, 400 when it does not parse."""
    req = flask.request
    if not req.is_json:
        raise UnsupportedMediaType("Send the body as application/json.")
    raw = req.get_data(cache=True)
    if not raw:
        raise BadRequest("The request body is empty.")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed JSON: {exc}") from None


def body(model: type[M]) -> M:
    """Parse and validate the JSON body into `model` (422 with field errors)."""
    data = json_body()
    if not isinstance(data, dict):
        raise Unprocessable("The body must be a JSON object.")
    return model.model_validate(data)


def query(model: type[M]) -> M:
    """Validate the query string into `model` (422 with field errors; unknown params too)."""
    args = flask.request.args
    data: dict[str, Any] = {}
    for key in args:
        values = args.getlist(key)
        data[key] = values if len(values) > 1 else values[0]
    return model.model_validate(data)


def json_default(value: Any) -> Any:
    """JSON for what `json` cannot encode: datetimes (RFC 3339 UTC), models, UUIDs."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> flask.Response:
    resp = flask.Response(
        json.dumps(data, default=json_default), status=status, mimetype="application/json"
    )
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp
