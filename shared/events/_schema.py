"""Event schemas: the `Event` base and the registry of every event type.

An event is a frozen pydantic model subclassing `Event` with a class-level `event_type`
(`<entity>.<past-tense verb>`, one Pub/Sub topic each) and `schema_version`. Defining the same
event type twice (under two class names) is an error at import time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

_registry: dict[str, type[Event]] = {}


class EventError(RuntimeError):
    """Publishing an invalid or undeclared event: a bug in the caller."""


class Event(BaseModel):
    """Base of every event schema. Subclasses set `event_type` and `schema_version`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.event_type:
            other = _registry.get(cls.event_type)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise EventError(f"{cls.event_type} is defined twice")
            _registry[cls.event_type] = cls


def registry() -> dict[str, type[Event]]:
    return dict(_registry)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
