"""Events of the users context. Payloads carry the user's facts after the change and its
version (consumers ignore versions older than what they hold); never a password."""

from __future__ import annotations

from typing import ClassVar

from shared.events import Event


class _UserFacts(Event):
    id: str
    email: str
    name: str
    roles: list[str]
    active: bool
    version: int


class UserCreated(_UserFacts):
    event_type: ClassVar[str] = "user.created"
    schema_version: ClassVar[int] = 1


class UserUpdated(_UserFacts):
    event_type: ClassVar[str] = "user.updated"
    schema_version: ClassVar[int] = 1

    changed: list[str]


class UserDeleted(_UserFacts):
    event_type: ClassVar[str] = "user.deleted"
    schema_version: ClassVar[int] = 1
