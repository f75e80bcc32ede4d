"""Event schemas: the `Event` base and the registry of every event type.

An event is a frozen pydantic model subclassing `Event` with a class-level `event_type`
(`<entity>.<past-tense verb>`, one Pub/Sub topic each) and `schema_version`. Defining the same
event type twice (under two class names) is an error at import time.

A consumer that keeps its own copy of another context's payload (it may not import the
publisher) declares it with `@consumes("user.created", ...)`: the copy names the fields it reads,
and `tests/unit/test_event_contracts.py` checks every declared copy against the publisher's
schema (no field the publisher does not send, same types) and against the consumer's manifest
(`subscribes`). `ConsumedModel` is the base of such copies (extra fields ignored: a newer
publisher version may add fields).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

_registry: dict[str, type[Event]] = {}
_consumed: list[tuple[tuple[str, ...], type[BaseModel]]] = []
M = TypeVar("M", bound=type[BaseModel])


class EventError(RuntimeError):
    """Publishing an invalid or undeclared event: a bug in the caller."""


class Event(BaseModel):
    """Base of every event schema. Subclasses set `event_type` and `schema_version`."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
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


class ConsumedModel(BaseModel):
    """Base of a consumer's copy of another context's payload: reads a subset, ignores the rest."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


def consumes(*event_types: str) -> Callable[[M], M]:
    """Declare `model` as this consumer's copy of the payload of `event_types`."""
    if not event_types:
        raise EventError("consumes() needs at least one event type")

    def register(model: M) -> M:
        _consumed.append((tuple(event_types), model))
        model.__consumes__ = tuple(event_types)  # type: ignore[attr-defined]
        return model

    return register


def consumed() -> list[tuple[tuple[str, ...], type[BaseModel]]]:
    """Every declared consumer copy: (event types, model)."""
    return list(_consumed)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
