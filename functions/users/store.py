"""Users' tables (schema `users`) and the queries on them. Works on PostgreSQL and SQLite.

Emails are stored lower-cased and unique among live users (a partial unique index), so a
deleted user's address can be used again. Datetimes are UTC; SQLite keeps them naive, so rows
read back go through `shared.db.as_dict()`; queries return `model.User`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

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
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from functions.users import model
from shared import db
from shared.db import as_dict
from shared.events import outbox_table

SCHEMA = "users"
metadata = db.metadata(SCHEMA)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("name", String(200), nullable=False),
    Column("roles", Text, nullable=False),  # JSON list, sorted
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False),  # +1 on every change; carried by events
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index(
        "ux_users_email_live",
        "email",
        unique=True,
        postgresql_where=Column("deleted_at").is_(None),
        sqlite_where=Column("deleted_at").is_(None),
    ),
    Index("ix_users_created", "created_at", "id"),
)

outbox = outbox_table(metadata)

USER_FIELDS = tuple(f.name for f in fields(model.User))
SORTS = {"created_at": users.c.created_at, "email": users.c.email}


def _user(row: Row[Any]) -> model.User:
    """A row as the domain object: roles decoded, datetimes UTC-aware."""
    values = as_dict(row)
    values["roles"] = json.loads(values["roles"])
    return model.User(**{f: values[f] for f in USER_FIELDS})


def get(
    session: Session, user_id: str, *, lock: bool = False, include_deleted: bool = False
) -> model.User | None:
    stmt = select(users).where(users.c.id == user_id)
    if not include_deleted:
        stmt = stmt.where(users.c.deleted_at.is_(None))
    if lock:
        stmt = stmt.with_for_update()
    # A Core statement on the session's connection: the ORM's execution layer (which only
    # adds work for a Core select) is skipped on the hottest read.
    row = session.connection().execute(stmt).first()
    return _user(row) if row is not None else None


def email_taken(session: Session, email: str, *, other_than: str | None = None) -> bool:
    stmt = select(users.c.id).where(users.c.email == email, users.c.deleted_at.is_(None))
    if other_than is not None:
        stmt = stmt.where(users.c.id != other_than)
    return session.execute(stmt.limit(1)).first() is not None


def add(session: Session, user: model.User) -> None:
    values = asdict(user)
    values["roles"] = json.dumps(user.roles)
    session.execute(users.insert().values(**values))


def change(session: Session, user_id: str, **values: Any) -> None:
    if "roles" in values:
        values["roles"] = json.dumps(values["roles"])
    session.execute(update(users).where(users.c.id == user_id).values(**values))


def search(
    session: Session,
    *,
    q: str | None,
    role: str | None,
    active: bool | None,
    sort: str,
    after: tuple[Any, str] | None,
    limit: int,
) -> list[model.User]:
    """Live users matching the filters, ordered by (sort, id), after the keyset `after`;
    fetches `limit` rows (callers ask for one more than a page to know if another follows)."""
    key = SORTS[sort]
    stmt = select(users).where(users.c.deleted_at.is_(None))
    if q:
        needle = q.lower()
        stmt = stmt.where(
            or_(
                func.lower(users.c.name).contains(needle, autoescape=True),
                users.c.email.contains(needle, autoescape=True),
            )
        )
    if role:
        stmt = stmt.where(users.c.roles.like(f'%"{role}"%'))  # role is one of ROLES
    if active is not None:
        stmt = stmt.where(users.c.active.is_(active))
    if after is not None:
        value, last_id = after
        stmt = stmt.where(or_(key > value, and_(key == value, users.c.id > last_id)))
    rows = session.execute(stmt.order_by(key, users.c.id).limit(limit)).all()
    return [_user(r) for r in rows]
