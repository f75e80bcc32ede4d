"""Users' use cases: create, read, update, soft-delete and search users; the bootstrap admin.

One transaction each. The users context stores no credentials: when a password comes with a
create or update, it is handed to auth (`PUT /api/auth/credentials/{id}`, with the caller's
token) after the row is written but before the commit, so a duplicate email fails first and a
refusal from auth rolls the whole change back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from functions.users import model, store
from functions.users.events import UserCreated, UserDeleted, UserUpdated
from shared import clients, db
from shared import logging as slog
from shared.auth import bootstrap_admin_id
from shared.config import settings
from shared.events import emit

_log = slog.get_logger("switchyard.users")


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    roles: list[str]
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> User:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def facts(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "roles": self.roles,
            "active": self.active,
            "version": self.version,
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _store_password(user: User, password: str, authorization: str | None) -> None:
    """Have auth store the password (and the login facts) of `user`; raise to roll back."""
    payload = {
        "email": user.email,
        "roles": user.roles,
        "active": user.active,
        "version": user.version,
        "password": password,
    }
    headers = {"Authorization": authorization} if authorization else None
    try:
        resp = clients.call(
            "PUT", f"/api/auth/credentials/{user.id}", json=payload, headers=headers
        )
    except clients.ServiceCallError as exc:
        _log.error("auth unreachable while storing a password: %s", exc)
        raise model.AuthUnavailable(
            "The password could not be stored (auth is unreachable); nothing was changed."
        ) from None
    if resp.ok:
        return
    try:
        problem = resp.json()
    except ValueError:
        problem = {}
    if resp.status_code == 422:
        raise model.PasswordRejected(
            problem.get("detail") or "The password was refused.", errors=problem.get("errors")
        )
    _log.error(
        "auth answered %s while storing a password: %s", resp.status_code, problem.get("detail", "")
    )
    raise model.AuthUnavailable(
        f"The password could not be stored (auth answered {resp.status_code}); nothing was changed."
    )


def create_user(
    *,
    email: str,
    name: str,
    roles: list[str],
    password: str | None,
    authorization: str | None = None,
) -> User:
    now = _now()
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        name=name,
        roles=roles,
        active=True,
        version=1,
        created_at=now,
        updated_at=now,
    )
    handed_over = False
    try:
        with db.transaction() as tx:
            if store.email_taken(tx, email):
                raise model.UserExists()
            try:
                store.insert(tx, **user.facts(), created_at=now, updated_at=now)
            except IntegrityError:  # a concurrent create with the same email won
                raise model.UserExists() from None
            if password is not None:
                _store_password(user, password, authorization)
                handed_over = True
            emit(tx, UserCreated(**user.facts()))
    except Exception:
        if handed_over:  # auth holds a credential for a user that was never committed
            _withdraw_credential(user, authorization)
        raise
    return user


def _withdraw_credential(user: User, authorization: str | None) -> None:
    """Best effort: deactivate the credential auth stored for a create that then failed."""
    headers = {"Authorization": authorization} if authorization else None
    facts = {"email": user.email, "roles": user.roles, "active": False, "version": user.version}
    try:
        resp = clients.call("PUT", f"/api/auth/credentials/{user.id}", json=facts, headers=headers)
        ok = resp.ok
    except clients.ServiceCallError:
        ok = False
    if not ok:
        _log.error("could not deactivate the credential of uncommitted user %s", user.id)


def get_user(user_id: str) -> User:
    with db.transaction() as tx:
        row = store.get(tx, user_id)
    if row is None:
        raise model.UserNotFound()
    return User.of(row)


def update_user(
    user_id: str,
    changes: dict[str, Any],
    *,
    password: str | None,
    actor_id: str,
    authorization: str | None = None,
) -> User:
    """Apply a partial update (only the given fields); bump the version if anything changed.
    A password alone does not change the user row (auth keeps it)."""
    now = _now()
    with db.transaction() as tx:
        row = store.get(tx, user_id, lock=True)
        if row is None:
            raise model.UserNotFound()
        changed = model.changed_fields(row, changes)
        wanted = {**row, **{f: changes[f] for f in changed}}
        model.check_self_change(actor_id, user_id, active=wanted["active"], roles=wanted["roles"])
        if "email" in changed and store.email_taken(tx, wanted["email"], other_than=user_id):
            raise model.UserExists()
        if changed:
            wanted.update(version=row["version"] + 1, updated_at=now)
            try:
                store.change(
                    tx,
                    user_id,
                    **{f: wanted[f] for f in changed},
                    version=wanted["version"],
                    updated_at=now,
                )
            except IntegrityError:
                raise model.UserExists() from None
        user = User.of(wanted)
        if password is not None:
            _store_password(user, password, authorization)
        if changed:
            emit(tx, UserUpdated(**user.facts(), changed=changed))
    return user


def delete_user(user_id: str, *, actor_id: str) -> None:
    """Soft delete: the row stays (deleted_at) but the user is gone for every reader."""
    now = _now()
    with db.transaction() as tx:
        row = store.get(tx, user_id, lock=True)
        if row is None:
            raise model.UserNotFound()
        model.check_self_change(actor_id, user_id, delete=True)
        version = row["version"] + 1
        store.change(tx, user_id, active=False, version=version, updated_at=now, deleted_at=now)
        gone = User.of({**row, "active": False, "version": version, "updated_at": now})
        emit(tx, UserDeleted(**gone.facts()))


def list_users(
    *,
    q: str | None,
    role: str | None,
    active: bool | None,
    sort: str,
    after: tuple[Any, str] | None,
    limit: int,
) -> list[User]:
    """Up to `limit` users in (sort, id) order after the keyset `after`."""
    with db.transaction() as tx:
        rows = store.search(tx, q=q, role=role, active=active, sort=sort, after=after, limit=limit)
    return [User.of(r) for r in rows]


def ensure_bootstrap_admin() -> None:
    """Create the admin named by BOOTSTRAP_ADMIN_EMAIL once (same id as auth's credential)."""
    raw = settings().bootstrap_admin_email
    if not raw:
        return
    email = model.normalize_email(raw)
    user_id = bootstrap_admin_id(email)
    now = _now()
    with db.transaction() as tx:
        if store.get(tx, user_id, include_deleted=True) is not None:
            return  # exists, or was deleted on purpose: leave it
        if store.email_taken(tx, email):
            _log.warning("bootstrap admin not created: %s belongs to another user", email)
            return
        admin = User(
            id=user_id,
            email=email,
            name="Administrator",
            roles=["admin"],
            active=True,
            version=1,
            created_at=now,
            updated_at=now,
        )
        store.insert(tx, **admin.facts(), created_at=now, updated_at=now)
        emit(tx, UserCreated(**admin.facts()))
    _log.info("bootstrap admin %s created", email)
