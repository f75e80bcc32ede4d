"""Events of the auth context: what it publishes, and its reading of the users events it
consumes (auth never imports the users context; it keeps a local copy fed by its events)."""

from __future__ import annotations

from typing import ClassVar

from shared.events import ConsumedModel, Event, consumes


class PasswordChanged(Event):
    """A user's password was set or changed (never carries the password or its hash)."""

    event_type: ClassVar[str] = "password.changed"
    schema_version: ClassVar[int] = 1

    user_id: str


# --- consumed --------------------------------------------------------------------------------

USER_EVENTS = ("user.created", "user.updated", "user.deleted")


@consumes(*USER_EVENTS)
class UserFacts(ConsumedModel):
    """The part of users' user.created/updated/deleted payload (v1) that login needs."""

    id: str
    email: str
    roles: list[str]
    active: bool
    version: int
