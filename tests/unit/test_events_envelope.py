"""shared.events without I/O: schema registry, emit's checks, envelope decoding."""

import base64
import json

import pytest

from functions.users.events import UserDeleted
from shared import events

USER = {
    "id": "1",
    "email": "a@example.com",
    "name": "A",
    "roles": ["viewer"],
    "active": False,
    "version": 2,
}


def message(attrs: dict, data: object = None) -> dict:
    raw = json.dumps(USER if data is None else data).encode()
    return {"data": base64.b64encode(raw).decode(), "attributes": attrs, "messageId": "m1"}


ATTRS = {
    "event_type": "user.created",
    "event_id": "e1",
    "schema_version": "3",
    "source": "users-api",
    "occurred_at": "2026-11-22T01:02:03.000004Z",
    "actor": "u1",
    "request_id": "r1",
    "traceparent": "",
}


def test_envelope_decodes_attributes_and_payload():
    got = events.envelope(message(ATTRS), "projects/p/subscriptions/s", 2)
    assert (got.event_type, got.event_id, got.schema_version, got.actor) == (
        "user.created",
        "e1",
        3,
        "u1",
    )
    assert got.occurred_at.year == 2026 and got.delivery_attempt == 2
    assert got.parse(UserDeleted).version == 2


@pytest.mark.parametrize(
    "attrs,data",
    [
        ({}, None),
        ({**ATTRS, "event_id": ""}, None),
        (ATTRS, [1, 2]),
    ],
)
def test_envelope_refuses_what_can_never_be_processed(attrs, data):
    with pytest.raises(events.PoisonMessage):
        events.envelope(message(attrs, data), "s")


def test_emit_refuses_unregistered_or_invalid_events():
    with pytest.raises(events.EventError):
        events.emit(None, {"not": "an event"})  # type: ignore[arg-type]


def test_emit_refuses_an_event_the_deployment_does_not_declare(monkeypatch):
    from shared.config import settings

    monkeypatch.setenv("SWITCHYARD_DEPLOYMENT", "audit-api")
    settings.cache_clear()
    with pytest.raises(events.EventError, match="does not declare user.deleted"):
        events.emit(None, UserDeleted(**USER))  # type: ignore[arg-type]


def test_schema_rejects_unknown_fields():
    with pytest.raises(ValueError):
        UserDeleted(**USER, extra="x")  # type: ignore[call-arg]
