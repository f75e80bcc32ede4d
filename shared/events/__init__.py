"""Events: typed schemas, the transactional outbox, the relay and the consumer handler.

Publishing: an event is a frozen pydantic model subclassing `Event` (`_schema`).
`emit(session, event)` puts it in the publishing context's outbox in the caller's transaction
and publishes it right after commit (`_outbox`); `relay()` publishes what a crash left pending
(`_relay`). Consuming: `handler(fn)` wraps a function of `Received` as an idempotent push
endpoint (`_consumer`). Envelope attributes are design section 6. Limits: at-least-once
delivery, no ordering across events (consumers order by `occurred_at`).
"""

from shared.events._consumer import (
    PROCESSED,
    PROCESSED_TTL,
    PoisonMessage,
    Received,
    decode,
    envelope,
    handler,
)
from shared.events._outbox import create_outbox, emit, outbox_table
from shared.events._relay import RELAY_GRACE, OutboxStats, outbox_stats, purge_published, relay
from shared.events._schema import (
    ConsumedModel,
    Event,
    EventError,
    consumed,
    consumes,
    registry,
    rfc3339,
)

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
    "envelope",
    "handler",
    "outbox_stats",
    "outbox_table",
    "purge_published",
    "registry",
    "relay",
    "rfc3339",
]
