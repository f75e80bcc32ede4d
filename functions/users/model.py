"""Users' domain rules in plain Python: email and role normalisation, what an update changes,
what an admin may not do to their own account, and the context's errors. No I/O here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import BadGateway, Conflict, NotFound, Problem, Unprocessable
from shared.roles import ROLES

MAX_EMAIL = 254
MIN_PASSWORD = 12
MAX_PASSWORD = 128
DEFAULT_ROLES = ("viewer",)
FACT_FIELDS = ("email", "name", "roles", "active")  # what a user row says (and events carry)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The syntax of an email (any case; the stored form is lower-case), also the request schema's
EMAIL_PATTERN = rf"^[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"
_EMAIL = re.compile(EMAIL_PATTERN)


# --- errors ------------------------------------------------------------------------------


class UsersError(Problem):
    """Base of every error the users context raises (mapped to problem+json by shared.http)."""


class UserNotFound(UsersError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such user.")


class UserExists(UsersError, Conflict):
    def __init__(self) -> None:
        super().__init__("A user with this email already exists.")


class SelfLockout(UsersError, Conflict):
    """An admin may not delete, deactivate or demote their own account (no way back in)."""


class PasswordRejected(UsersError, Unprocessable):
    """auth refused the password (policy); its field errors are passed through."""


class AuthUnavailable(UsersError, BadGateway):
    """auth could not store the password; nothing was changed."""


# --- domain objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A live user (a deleted one is gone for every reader). Never holds a credential."""

    id: str
    email: str
    name: str
    roles: list[str]
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


# --- rules -------------------------------------------------------------------------------


def normalize_email(value: str) -> str:
    """The canonical (lower-cased) form of an email; ValueError when it is not one.

    Syntactic only: local stacks use reserved domains (`.local`, `.test`) that strict
    validators refuse. Uniqueness is case-insensitive because the stored form is lower-case.
    """
    email = value.strip().lower()
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    return email


def normalize_roles(roles: list[str] | tuple[str, ...]) -> list[str]:
    """Roles sorted and de-duplicated; ValueError on a role that does not exist."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown roles {unknown}; roles are {', '.join(ROLES)}")
    return sorted(set(roles))


def changed_fields(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Names of the fact fields whose wanted value differs from the current one, in order."""
    return [f for f in FACT_FIELDS if f in wanted and wanted[f] != current[f]]


def check_self_change(
    actor_id: str,
    user_id: str,
    *,
    delete: bool = False,
    active: bool = True,
    roles: list[str] | None = None,
) -> None:
    """Refuse changes that would lock the acting admin out of their own account."""
    if actor_id != user_id:
        return
    if delete:
        raise SelfLockout("You cannot delete your own account.")
    if not active:
        raise SelfLockout("You cannot deactivate your own account.")
    if roles is not None and "admin" not in roles:
        raise SelfLockout("You cannot remove the admin role from your own account.")
