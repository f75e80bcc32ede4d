"""Auth's domain rules in plain Python: password policy, email and role normalisation, login
throttling and refresh-token verdicts, and the context's errors. No I/O here."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.config import LOCAL_ONLY_PASSWORDS
from shared.errors import (
    Conflict,
    Forbidden,
    Problem,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from shared.roles import ROLES

MIN_PASSWORD = 12
MAX_PASSWORD = 128
MAX_EMAIL = 254
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"^[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="switchyard", error="invalid_token"'}


# --- errors ------------------------------------------------------------------------------


class AuthError(Problem):
    """Base of every error the auth context raises (mapped to problem+json by shared.http)."""


class InvalidCredentials(AuthError, Unauthorized):
    def __init__(self) -> None:
        # One message for unknown email, wrong password and inactive account.
        super().__init__("The email or password is incorrect.")


class InvalidRefreshToken(AuthError, Unauthorized):
    def __init__(self) -> None:
        super().__init__("The refresh token is not valid; log in again.")


class TokenRevoked(AuthError, Unauthorized):
    def __init__(self) -> None:
        super().__init__("The token has been revoked.", headers=dict(_CHALLENGE))


class AccountInactive(AuthError, Unauthorized):
    def __init__(self) -> None:
        super().__init__("The account is not active.", headers=dict(_CHALLENGE))


class LoginThrottled(AuthError, TooManyRequests):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "Too many failed attempts; try again later.",
            headers={"Retry-After": str(retry_after_s)},
        )


class WrongPassword(AuthError, Forbidden):
    """The current password given to change it is wrong. 403, not 401: the bearer token is
    fine, so a client must not react as if its session had ended."""

    def __init__(self) -> None:
        super().__init__("The current password is incorrect.")


class PasswordChangedMeanwhile(AuthError, Conflict):
    def __init__(self) -> None:
        super().__init__("The password was changed concurrently; try again.")


class WeakPassword(AuthError, Unprocessable):
    def __init__(self, field: str, problems: list[str]) -> None:
        super().__init__(
            "The password does not meet the policy.",
            errors=[{"field": field, "message": p, "type": "password_policy"} for p in problems],
        )


# --- rules -------------------------------------------------------------------------------


def normalize_email(value: str) -> str:
    """The canonical (lower-cased) form of an email; ValueError when it is not one.

    Deliberately syntactic only: local stacks use reserved domains (`.local`, `.test`) that
    strict validators refuse.
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


def password_problems(password: str, email: str | None, *, local: bool = False) -> list[str]:
    """Why `password` breaks the policy (empty when it does not). Outside local (`local`
    False) the local stacks' documented passwords are refused too."""
    problems = []
    if not local and password in LOCAL_ONLY_PASSWORDS:
        problems.append("is a local-only password (make dev / make seed)")
    if len(password) < MIN_PASSWORD:
        problems.append(f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        problems.append(f"must be at most {MAX_PASSWORD} characters")
    if email and password.strip().lower() == email.strip().lower():
        problems.append("must not be the email address")
    return problems


def check_password(
    password: str, email: str | None, field: str = "password", *, local: bool = False
) -> None:
    problems = password_problems(password, email, local=local)
    if problems:
        raise WeakPassword(field, problems)


def throttle_wait(
    failures: int, window_start: datetime, now: datetime, *, max_failures: int, window_s: int
) -> int:
    """Seconds to wait before another attempt (0: go ahead).

    `failures` counts this attempt too (it is reserved before the password is checked, so
    concurrent attempts cannot all slip under the limit).
    """
    if failures <= max_failures:
        return 0
    remaining = (window_start + timedelta(seconds=window_s) - now).total_seconds()
    return max(1, math.ceil(remaining))


def pair_wait(
    attempts: int,
    window_start: datetime,
    now: datetime,
    *,
    max_failures: int,
    window_s: int,
    delay_s: int,
) -> int:
    """Seconds to wait before another attempt on one (account, client IP) pair (0: go ahead).

    Progressive: up to `max_failures` attempts go at once; attempt `max_failures + k` may go
    `delay_s * (2**k - 1)` seconds after the window started (each further delay twice the
    previous one), and never later than the window's end, when the count restarts. Attempts
    that had to wait are not counted, so the answer depends only on tries actually made.
    """
    if attempts <= max_failures:
        return 0
    extra = min(attempts - max_failures, 40)
    end = window_start + timedelta(seconds=window_s)
    ready = min(window_start + timedelta(seconds=delay_s * (2**extra - 1)), end)
    remaining = (ready - now).total_seconds()
    return 0 if remaining <= 0 else max(1, math.ceil(remaining))


# --- domain objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A stored credential: the login facts copied from users, and the password hash. Stays
    between store and service: what the API shows of it is a `Credential`."""

    user_id: str
    email: str | None  # None once the user is deleted (frees the address)
    roles: list[str]
    active: bool
    version: int  # the last users-context version applied (-1: created empty)
    password_hash: str | None
    password_changed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class Credential:
    """What the API shows of an account (never the hash)."""

    user_id: str
    email: str | None
    roles: list[str]
    active: bool
    version: int
    has_password: bool
    password_changed_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, account: Account) -> Credential:
        return cls(
            user_id=account.user_id,
            email=account.email,
            roles=account.roles,
            active=account.active,
            version=account.version,
            has_password=account.password_hash is not None,
            password_changed_at=account.password_changed_at,
            updated_at=account.updated_at,
        )


@dataclass(frozen=True)
class RefreshToken:
    """A stored refresh token (its hash only; the opaque token is never kept)."""

    id: str
    token_hash: str
    user_id: str
    family_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    family_expires_at: datetime  # the family's absolute end (never extended by rotation)
    access_jti: str | None = None  # the access token issued with it
    access_expires_at: datetime | None = None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


@dataclass(frozen=True)
class Introspection:
    """A valid, unrevoked access token's claims."""

    active: bool
    sub: str
    roles: list[str]
    exp: int
    jti: str


class RefreshVerdict(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    REUSED = "reused"  # presented after it was rotated: assume theft, revoke the family
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class RefreshState:
    used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime


def judge_refresh(token: RefreshState | RefreshToken | None, now: datetime) -> RefreshVerdict:
    """What presenting a refresh token in this state means."""
    if token is None:
        return RefreshVerdict.UNKNOWN
    if token.used_at is not None:
        return RefreshVerdict.REUSED
    if token.revoked_at is not None:
        return RefreshVerdict.REVOKED
    family_end = getattr(token, "family_expires_at", None)
    if token.expires_at <= now or (family_end is not None and family_end <= now):
        return RefreshVerdict.EXPIRED
    return RefreshVerdict.OK


def demoted(old_roles: list[str], new_roles: list[str]) -> bool:
    """The change takes a role away (earlier access tokens still carry it)."""
    return bool(set(old_roles) - set(new_roles))


def should_apply(incoming_version: int, stored_version: int | None) -> bool:
    """Apply user facts unless we already hold a newer version (equal: idempotent re-apply)."""
    return stored_version is None or incoming_version >= stored_version
