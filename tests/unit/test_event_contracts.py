"""Facts written twice about events, tied together.

A consumer may not import its publisher, so it keeps a copy of the payload it reads, declared
with `shared.events.consumes`. Each copy must read only fields the publisher sends, with the
same types, and the consumer's manifest must subscribe to every event type it declares; every
published event type has a schema, and every schema is declared by its context's manifest.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from pydantic import BaseModel

from shared.events import consumed, registry
from shared.manifests import catalog

_IGNORED_KEYS = {"title", "description", "default", "examples"}


def _load_event_modules() -> None:
    for ctx in catalog().contexts:
        if (ctx.path / "events.py").exists():
            importlib.import_module(f"functions.{ctx.name}.events")


_load_event_modules()


def _normal(schema: Any, defs: dict[str, Any]) -> Any:
    """A field's JSON schema without the keys that do not change what it accepts."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _normal(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _normal(v, defs) for k, v in schema.items() if k not in _IGNORED_KEYS}
    if isinstance(schema, list):
        return [_normal(v, defs) for v in schema]
    return schema


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    return {name: _normal(prop, defs) for name, prop in schema.get("properties", {}).items()}


def _context_of(model: type[BaseModel]) -> str:
    parts = model.__module__.split(".")
    assert parts[0] == "functions", f"{model.__qualname__} is declared outside functions/"
    return parts[1]


COPIES = [(etype, model) for types, model in consumed() for etype in types]


def test_there_are_consumer_copies_to_check() -> None:
    assert COPIES, "no consumer declares a copy with shared.events.consumes"


@pytest.mark.parametrize(
    ("event_type", "copy"), COPIES, ids=[f"{m.__module__}.{m.__name__}:{t}" for t, m in COPIES]
)
def test_copy_reads_only_what_the_publisher_sends(event_type: str, copy: type[BaseModel]) -> None:
    publisher = registry().get(event_type)
    assert publisher is not None, f"{copy.__qualname__} reads {event_type}, which nobody publishes"
    sent = _fields(publisher)
    for name, schema in _fields(copy).items():
        assert name in sent, (
            f"{copy.__module__}.{copy.__qualname__} reads `{name}` of {event_type}, "
            f"which {publisher.__module__}.{publisher.__qualname__} does not send"
        )
        assert schema == sent[name], (
            f"`{name}` of {event_type}: the copy in {copy.__module__} expects {schema}, "
            f"the publisher sends {sent[name]}"
        )


@pytest.mark.parametrize(
    ("event_type", "copy"), COPIES, ids=[f"{m.__module__}.{m.__name__}:{t}" for t, m in COPIES]
)
def test_consumer_subscribes_to_what_it_reads(event_type: str, copy: type[BaseModel]) -> None:
    context = catalog().context(_context_of(copy))
    subscribed = {t for d in context.deployments if d.trigger == "event" for t in d.subscribes}
    assert event_type in subscribed or "*" in subscribed, (
        f"{copy.__module__}.{copy.__qualname__} reads {event_type}, but no event deployment of "
        f"{context.name} subscribes to it (function.yaml `subscribes`)"
    )


def test_every_published_type_has_a_schema_of_its_publisher() -> None:
    schemas = registry()
    for dep in catalog().deployments.values():
        for etype in dep.publishes:
            assert etype in schemas, f"{dep.name} publishes {etype}, which has no Event schema"
            owner = schemas[etype].__module__.split(".")[1]
            assert owner == dep.context, (
                f"{etype} is published by {dep.name} ({dep.context}) but its schema lives in "
                f"{schemas[etype].__module__}"
            )


def test_every_schema_is_published_by_its_context() -> None:
    published = {t for d in catalog().deployments.values() for t in d.publishes}
    for etype, model in registry().items():
        if not model.__module__.startswith("functions."):
            continue  # test-only events
        assert etype in published, (
            f"{model.__module__}.{model.__qualname__} defines {etype}, but no manifest publishes it"
        )
