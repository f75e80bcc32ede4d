"""Auth's tables (schema `auth`) and the queries on them. Works on PostgreSQL and SQLite.

Datetimes are always UTC. SQLite keeps them naive, so rows read back go through
`shared.db.as_dict()`; queries return `model` objects (`Account`, `RefreshToken`), never rows.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    select,
    update,
)
from sqlalchemy.engine import CursorResult, Result, Row
from sqlalchemy.orm import Session

from functions.auth import model
from shared import db
from shared.db import as_dict, insert, utc
from shared.events import outbox_table

SCHEMA = "auth"
metadata = db.metadata(SCHEMA)

credentials = Table(
    "credentials",
    metadata,
    Column("user_id", String(36), primary_key=True),
    # Lower-cased; NULL once the user is deleted (frees the address for a new account).
    Column("email", String(254), nullable=True),
    Column("roles", Text, nullable=False),  # JSON list
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False),  # the last users-context version applied
    Column("password_hash", Text, nullable=True),
    Column("password_changed_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ux_credentials_email", "email", unique=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False),  # sha256 hex of the opaque token
    Column("user_id", String(36), nullable=False),
    Column("family_id", String(36), nullable=False),  # one login and all its rotations
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # the family's absolute end: set at login, inherited by every rotation (never extended)
    Column("family_expires_at", DateTime(timezone=True), nullable=False),
    # the access token issued with this refresh token (revoked when the family is reused)
    Column("access_jti", String(64), nullable=True),
    Column("access_expires_at", DateTime(timezone=True), nullable=True),
    Index("ux_refresh_tokens_hash", "token_hash", unique=True),
    Index("ix_refresh_tokens_family", "family_id"),
    Index("ix_refresh_tokens_user", "user_id"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(100), primary_key=True),  # "account:<sha256>" or "ip:<sha256>"
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _account(row: Row[Any]) -> model.Account:
    values = as_dict(row)
    values["roles"] = list(json.loads(values["roles"]))
    return model.Account(**values)


def _refresh(row: Row[Any]) -> model.RefreshToken:
    return model.RefreshToken(**as_dict(row))


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


# --- credentials -------------------------------------------------------------------------


def credential(session: Session, user_id: str) -> model.Account | None:
    row = session.execute(select(credentials).where(credentials.c.user_id == user_id)).first()
    return _account(row) if row is not None else None


def credential_by_email(session: Session, email: str) -> model.Account | None:
    row = session.execute(select(credentials).where(credentials.c.email == email)).first()
    return _account(row) if row is not None else None


def lock_credential(session: Session, user_id: str, now: datetime) -> tuple[model.Account, bool]:
    """The credential row, locked for this transaction; created empty (version -1, inactive,
    no email) when missing. Returns (row, created). Safe when two writers race on a new id."""
    created = (
        session.execute(
            insert(session, credentials)
            .values(
                user_id=user_id,
                email=None,
                roles="[]",
                active=False,
                version=-1,
                password_hash=None,
                password_changed_at=None,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[credentials.c.user_id])
            .returning(credentials.c.user_id)
        ).first()
        is not None
    )
    row = session.execute(
        select(credentials).where(credentials.c.user_id == user_id).with_for_update()
    ).one()
    return _account(row), created


def write_facts(
    session: Session,
    user_id: str,
    *,
    email: str | None,
    roles: list[str],
    active: bool,
    version: int,
    now: datetime,
) -> None:
    session.execute(
        update(credentials)
        .where(credentials.c.user_id == user_id)
        .values(
            email=email, roles=json.dumps(roles), active=active, version=version, updated_at=now
        )
    )


def email_holder(session: Session, email: str, other_than: str) -> model.Account | None:
    """The credential other than `other_than` holding `email`, locked, if any."""
    row = session.execute(
        select(credentials)
        .where(credentials.c.email == email, credentials.c.user_id != other_than)
        .with_for_update()
    ).first()
    return _account(row) if row is not None else None


def clear_email(session: Session, user_id: str, now: datetime) -> None:
    session.execute(
        update(credentials)
        .where(credentials.c.user_id == user_id)
        .values(email=None, updated_at=now)
    )


def set_password_hash(session: Session, user_id: str, password_hash: str, now: datetime) -> None:
    session.execute(
        update(credentials)
        .where(credentials.c.user_id == user_id)
        .values(password_hash=password_hash, password_changed_at=now, updated_at=now)
    )


def replace_password_hash(
    session: Session, user_id: str, old_hash: str, new_hash: str, now: datetime
) -> bool:
    """Change the password only if it is still `old_hash` (a concurrent change wins)."""
    result = session.execute(
        update(credentials)
        .where(
            credentials.c.user_id == user_id,
            credentials.c.password_hash == old_hash,
        )
        .values(password_hash=new_hash, password_changed_at=now, updated_at=now)
    )
    return _rowcount(result) == 1


def rehash(session: Session, user_id: str, old_hash: str, new_hash: str, now: datetime) -> None:
    """Upgrade the hash parameters of an unchanged password (password_changed_at stays)."""
    session.execute(
        update(credentials)
        .where(
            credentials.c.user_id == user_id,
            credentials.c.password_hash == old_hash,
        )
        .values(password_hash=new_hash, updated_at=now)
    )


def has_active_admin(session: Session) -> bool:
    return (
        session.execute(
            select(credentials.c.user_id)
            .where(
                credentials.c.active.is_(True),
                credentials.c.roles.like('%"admin"%'),
            )
            .limit(1)
        ).first()
        is not None
    )


# --- refresh tokens ------------------------------------------------------------------------


def add_refresh_token(
    session: Session,
    user_id: str,
    family_id: str,
    now: datetime,
    ttl_s: int,
    *,
    family_expires_at: datetime,
    access_jti: str | None = None,
    access_expires_at: datetime | None = None,
) -> str:
    """Store a new refresh token (hashed) and return the opaque token itself. It expires
    after `ttl_s` or when its family does, whichever comes first."""
    token = secrets.token_urlsafe(32)
    session.execute(
        refresh_tokens.insert().values(
            id=str(uuid.uuid4()),
            token_hash=token_hash(token),
            user_id=user_id,
            family_id=family_id,
            issued_at=now,
            expires_at=min(now + timedelta(seconds=ttl_s), family_expires_at),
            family_expires_at=family_expires_at,
            access_jti=access_jti,
            access_expires_at=access_expires_at,
        )
    )
    return token


def use_refresh_token(
    session: Session, hashed: str, now: datetime
) -> tuple[str, str, datetime] | None:
    """Mark a usable token used, atomically: of two concurrent callers exactly one gets its
    (user_id, family_id, family_expires_at) back (the conditional UPDATE re-checks
    `used_at IS NULL` after the other commits)."""
    t = refresh_tokens
    row = session.execute(
        update(t)
        .where(
            t.c.token_hash == hashed,
            t.c.used_at.is_(None),
            t.c.revoked_at.is_(None),
            t.c.expires_at > now,
            t.c.family_expires_at > now,
        )
        .values(used_at=now)
        .returning(t.c.user_id, t.c.family_id, t.c.family_expires_at)
    ).first()
    if row is None:
        return None
    return row.user_id, row.family_id, utc(row.family_expires_at) or now


def family_access_tokens(
    session: Session, family_id: str, now: datetime
) -> list[tuple[str, datetime]]:
    """(jti, expiry) of the family's access tokens that have not expired yet."""
    t = refresh_tokens
    rows = session.execute(
        select(t.c.access_jti, t.c.access_expires_at).where(
            t.c.family_id == family_id,
            t.c.access_jti.is_not(None),
            t.c.access_expires_at > now,
        )
    ).all()
    return [(r.access_jti, utc(r.access_expires_at) or now) for r in rows]


def refresh_token(session: Session, hashed: str) -> model.RefreshToken | None:
    row = session.execute(
        select(refresh_tokens).where(refresh_tokens.c.token_hash == hashed)
    ).first()
    return _refresh(row) if row is not None else None


def revoke_family(session: Session, family_id: str, now: datetime) -> int:
    t = refresh_tokens
    return _rowcount(
        session.execute(
            update(t)
            .where(t.c.family_id == family_id, t.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    )


def revoke_user_tokens(session: Session, user_id: str, now: datetime) -> int:
    t = refresh_tokens
    return _rowcount(
        session.execute(
            update(t).where(t.c.user_id == user_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
        )
    )


# --- login throttling ------------------------------------------------------------------------


def count_attempt(session: Session, key: str, now: datetime, window_s: int) -> tuple[int, datetime]:
    """Count one attempt under `key` (a fixed window restarting once `window_s` has passed);
    returns (attempts in the window including this one, window start). One atomic upsert, so
    concurrent attempts each get their own number."""
    t = login_failures
    expired = t.c.window_start <= now - timedelta(seconds=window_s)
    stmt = insert(session, t).values(key=key, failures=1, window_start=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.key],
        set_={
            "failures": case((expired, 1), else_=t.c.failures + 1),
            "window_start": case((expired, now), else_=t.c.window_start),
        },
    ).returning(t.c.failures, t.c.window_start)
    failures, start = session.execute(stmt).one()
    return int(failures), utc(start) or now


def forget_attempts(session: Session, key: str) -> None:
    session.execute(delete(login_failures).where(login_failures.c.key == key))


def uncount_attempt(session: Session, key: str) -> None:
    """Take back one counted attempt (it succeeded after all)."""
    t = login_failures
    session.execute(
        update(t).where(and_(t.c.key == key, t.c.failures > 0)).values(failures=t.c.failures - 1)
    )


# --- cleanup (auth-cleanup) --------------------------------------------------------------------


def purge_login_failures(session: Session, now: datetime, window_s: int, batch: int) -> int:
    """Delete up to `batch` throttling counters whose window has ended (a new attempt would
    restart them at 1 anyway); returns how many."""
    t = login_failures
    ended = t.c.window_start <= now - timedelta(seconds=window_s)
    keys = session.execute(select(t.c.key).where(ended).limit(batch)).scalars().all()
    if keys:  # re-checked: a concurrent attempt may have restarted the window meanwhile
        session.execute(delete(t).where(t.c.key.in_(keys), ended))
    return len(keys)


def purge_refresh_tokens(session: Session, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` refresh tokens of families that ended before `cutoff` (their
    absolute end, or revoked), and unused tokens that expired before it; returns how many.
    A used (rotated) token is kept as long as its family lives, so its reuse is recognised
    (and revokes the family) until the family could not be used anyway."""
    t = refresh_tokens
    ended = (
        (t.c.family_expires_at < cutoff)
        | (t.c.revoked_at < cutoff)
        | (t.c.used_at.is_(None) & (t.c.expires_at < cutoff))
    )
    ids = session.execute(select(t.c.id).where(ended).limit(batch)).scalars().all()
    if ids:
        session.execute(delete(t).where(t.c.id.in_(ids)))
    return len(ids)
