"""Events: typed schemas, the transactional outbox, the relay and the consumer handler.

Publishing: an event is a frozen pydantic model subclassing `Event` (`_schema`). `emit(session,
event)` puts it in the publishing context's outbox in the caller's transaction and publishes it
right after commit (`_outbox`); `emit_many(session, events)` does it for a batch (the same
checks per event, one INSERT per outbox, one hand-over after commit); `relay()` publishes what a
crash left pending (`_relay`). Consuming: `handler(fn)` wraps a function of `Received` as an
idempotent push endpoint (`_consumer`). Envelope attributes are design section 6. Limits:
at-least-once delivery, no ordering across events (consumers order by `occurred_at`).

The names below are loaded on first use (PEP 562), so a deployment pays only for the part it
uses: a consumer that keeps its data in Firestore never imports the outbox or SQLAlchemy
(cold starts, decision 0040).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.events._consumer import (
        PROCESSED,
        PROCESSED_TTL,
        PoisonMessage,
        Received,
        decode,
        envelope,
        handler,
    )
    from shared.events._outbox import create_outbox, emit, emit_many, outbox_table
    from shared.events._relay import (
        RELAY_GRACE,
        OutboxStats,
        outbox_stats,
        purge_published,
        relay,
    )
    from shared.events._schema import (
        ConsumedModel,
        Event,
        EventError,
        consumed,
        consumes,
        registry,
        rfc3339,
    )

# public name -> the private module that defines it
_WHERE = {
    **dict.fromkeys(
        [
            *("PROCESSED", "PROCESSED_TTL", "PoisonMessage", "Received"),
            *("decode", "envelope", "handler"),
        ],
        "_consumer",
    ),
    **dict.fromkeys(["create_outbox", "emit", "emit_many", "outbox_table"], "_outbox"),
    **dict.fromkeys(
        ["RELAY_GRACE", "OutboxStats", "outbox_stats", "purge_published", "relay"], "_relay"
    ),
    **dict.fromkeys(
        ["ConsumedModel", "Event", "EventError", "consumed", "consumes", "registry", "rfc3339"],
        "_schema",
    ),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "PROCESSED",
    "PROCESSED_TTL",
    "RELAY_GRACE",
    "ConsumedModel",
    "Event",
    "EventError",
    "OutboxStats",
    "PoisonMessage",
    "Received",
    "consumed",
    "consumes",
    "create_outbox",
    "decode",
    "emit",
    "emit_many",
    "envelope",
    "handler",
    "outbox_stats",
    "outbox_table",
    "purge_published",
    "registry",
    "relay",
    "rfc3339",
]
