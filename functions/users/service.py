"""Users' use cases: create, read, update, soft-delete and search users; the bootstrap admin.

One transaction each. The users context stores no credentials: when a password comes with a
create or update, it is handed to auth (`PUT /api/auth/credentials/{id}`, with the caller's
token) after the row is written but before the commit, so a duplicate email fails first and a
refusal from auth rolls the whole change back.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, replace
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


def _facts(user: model.User) -> dict[str, Any]:
    """What the user events carry: the user's facts and version, never a credential."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "roles": user.roles,
        "active": user.active,
        "version": user.version,
    }


def _now() -> datetime:
    return datetime.now(UTC)


def _store_password(user: model.User, password: str, authorization: str | None) -> None:
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
) -> model.User:
    now = _now()
    user = model.User(
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
            try:  # the live-email unique index decides: no read before the write
                store.add(tx, user)
            except IntegrityError:
                raise model.UserExists() from None
            if password is not None:
                _store_password(user, password, authorization)
                handed_over = True
            emit(tx, UserCreated(**_facts(user)))
    except Exception:
        if handed_over:  # auth holds a credential for a user that was never committed
            _withdraw_credential(user, authorization)
        raise
    return user


def _withdraw_credential(user: model.User, authorization: str | None) -> None:
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


def get_user(user_id: str) -> model.User:
    with db.transaction() as tx:
        user = store.get(tx, user_id)
    if user is None:
        raise model.UserNotFound()
    return user


def update_user(
    user_id: str,
    changes: dict[str, Any],
    *,
    password: str | None,
    actor_id: str,
    authorization: str | None = None,
) -> model.User:
    """Apply a partial update (only the given fields); bump the version if anything changed.
    A password alone does not change the user row (auth keeps it)."""
    now = _now()
    with db.transaction() as tx:
        current = store.get(tx, user_id, lock=True)
        if current is None:
            raise model.UserNotFound()
        changed = model.changed_fields(asdict(current), changes)
        edits = {f: changes[f] for f in changed}
        user = replace(current, **edits)
        model.check_self_change(actor_id, user_id, active=user.active, roles=user.roles)
        if "email" in changed and store.email_taken(tx, user.email, other_than=user_id):
            raise model.UserExists()
        if changed:
            user = replace(user, version=current.version + 1, updated_at=now)
            try:
                store.change(tx, user_id, **edits, version=user.version, updated_at=now)
            except IntegrityError:
                raise model.UserExists() from None
        if password is not None:
            _store_password(user, password, authorization)
        if changed:
            emit(tx, UserUpdated(**_facts(user), changed=changed))
    return user


def delete_user(user_id: str, *, actor_id: str) -> None:
    """Soft delete: the row stays (deleted_at) but the user is gone for every reader."""
    now = _now()
    with db.transaction() as tx:
        current = store.get(tx, user_id, lock=True)
        if current is None:
            raise model.UserNotFound()
        model.check_self_change(actor_id, user_id, delete=True)
        gone = replace(current, active=False, version=current.version + 1, updated_at=now)
        store.change(
            tx, user_id, active=False, version=gone.version, updated_at=now, deleted_at=now
        )
        emit(tx, UserDeleted(**_facts(gone)))


def list_users(
    *,
    q: str | None,
    role: str | None,
    active: bool | None,
    sort: str,
    after: tuple[Any, str] | None,
    limit: int,
) -> list[model.User]:
    """Up to `limit` users in (sort, id) order after the keyset `after`."""
    with db.transaction() as tx:
        return store.search(tx, q=q, role=role, active=active, sort=sort, after=after, limit=limit)


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
        admin = model.User(
            id=user_id,
            email=email,
            name="Administrator",
            roles=["admin"],
            active=True,
            version=1,
            created_at=now,
            updated_at=now,
        )
        store.add(tx, admin)
        emit(tx, UserCreated(**_facts(admin)))
    _log.info("bootstrap admin %s created", email)
