"""Auth's use cases: login, refresh, logout, verify, password change, credential upserts from
users-api and from users' events, and the bootstrap admin.

Password hashing (argon2id, ~50 ms and 19 MiB per hash) never runs inside a database
transaction: login and password change each use two short transactions (count the attempt and
read the credential; then record the outcome) so row locks are not held while hashing, and so
a counted failed attempt is committed even though the request then fails. Every other use case
is one transaction. Errors are raised after the transaction that must persist their side
effects (failure counters, a revoked token family) has committed.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from functions.auth import model, store
from functions.auth.events import USER_EVENTS, PasswordChanged, UserFacts
from shared import db
from shared import logging as slog
from shared.config import LOCAL_ONLY_PASSWORDS, ConfigError, settings
from shared.events import Received, emit
from shared.roles import ROLES

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from shared import auth as sauth

_log = slog.get_logger("switchyard.auth")


# argon2 and shared.auth (PyJWT, cryptography) are imported by the use cases that need them:
# auth-on-user-event and auth-cleanup never hash a password or sign a token (cold starts).
@functools.cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher, Type

    # OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
    return PasswordHasher(
        time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
    )


def __getattr__(name: str) -> Any:
    if name == "hasher":  # `service.hasher`, built on first use
        return _hasher()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _now() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the email is unknown, so that answer takes as long."""
    return _hasher().hash(secrets.token_urlsafe(24))


def _verify(password_hash: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_accepted(password_hash: str | None, password: str) -> bool:
    """`password` matches the hash, and is not a local stack's documented password outside
    local (a demo account seeded into a shared environment cannot be logged into)."""
    matches = _verify(password_hash, password)
    return matches and (settings().is_local or password not in LOCAL_ONLY_PASSWORDS)


def _pair_key(account: str, client_ip: str) -> str:
    """Throttling key of one (account, client IP) pair: hashed, so any length fits and no
    address is stored. Failures from one IP never lock the account for the others."""
    raw = f"{account.strip().lower()}\n{client_ip}"
    return "pair:" + hashlib.sha256(raw.encode()).hexdigest()


def _ip_key(client_ip: str) -> str:
    return "ip:" + hashlib.sha256(client_ip.encode()).hexdigest()


def _reserve_attempt(
    tx: Session, account: str, client_ip: str, now: datetime
) -> tuple[list[str], int]:
    """Count an attempt under its (account, IP) pair and its IP, before the password is
    checked (so concurrent attempts cannot all slip under a limit); returns (keys, seconds to
    wait). A throttled attempt is taken back at once: it was not a try."""
    s = settings()
    keys = [_pair_key(account, client_ip)] + ([_ip_key(client_ip)] if client_ip else [])
    n, start = store.count_attempt(tx, keys[0], now, s.login_window_s)
    wait = model.pair_wait(
        n,
        start,
        now,
        max_failures=s.login_max_failures,
        window_s=s.login_window_s,
        delay_s=s.login_delay_s,
    )
    if len(keys) > 1:
        n, start = store.count_attempt(tx, keys[1], now, s.login_window_s)
        wait = max(
            wait,
            model.throttle_wait(
                n,
                start,
                now,
                max_failures=s.login_ip_max_failures,
                window_s=s.login_window_s,
            ),
        )
    if wait:
        for key in keys:
            store.uncount_attempt(tx, key)
    return keys, wait


def _issue(
    tx: Session, user_id: str, roles: list[str], family_id: str, family_end: datetime, now: datetime
) -> model.TokenPair:
    """A new access token and the refresh token of `family_id` stored with its id (so that
    reuse of the family can revoke it)."""
    from shared import auth as sauth

    s = settings()
    access, claims = sauth.issue_access_token(user_id, roles)
    token = store.add_refresh_token(
        tx,
        user_id,
        family_id,
        now,
        s.refresh_ttl_s,
        family_expires_at=family_end,
        access_jti=claims.jti,
        access_expires_at=datetime.fromtimestamp(claims.exp, UTC),
    )
    return model.TokenPair(access_token=access, refresh_token=token, expires_in=s.access_ttl_s)


def _revoke_family(tx: Session, family_id: str, now: datetime) -> int:
    """Revoke a family's refresh tokens and its access tokens that are still alive. Firestore
    is written before the commit: if it fails, nothing is revoked and the caller may retry."""
    from shared import auth as sauth

    revoked = store.revoke_family(tx, family_id, now)
    for jti, expires in store.family_access_tokens(tx, family_id, now):
        sauth.revoke(jti, int(expires.timestamp()))
    return revoked


# --- login ---------------------------------------------------------------------------------


def login(email: str, password: str, client_ip: str) -> model.TokenPair:
    s, now = settings(), _now()
    with db.transaction() as tx:
        keys, wait = _reserve_attempt(tx, email, client_ip, now)
        row = store.credential_by_email(tx, email.strip().lower()) if not wait else None
    if wait:
        _log.warning("login throttled", extra={"client_ip": client_ip})
        raise model.LoginThrottled(wait)
    stored_hash = row.password_hash if row is not None else None
    if not password_accepted(stored_hash, password) or row is None or not row.active:
        raise model.InvalidCredentials()
    new_hash = _hasher().hash(password) if _hasher().check_needs_rehash(stored_hash or "") else None
    with db.transaction() as tx:
        store.forget_attempts(tx, keys[0])
        for key in keys[1:]:
            store.uncount_attempt(tx, key)
        if new_hash and stored_hash:
            store.rehash(tx, row.user_id, stored_hash, new_hash, now)
        family_end = now + timedelta(seconds=s.refresh_family_ttl_s)
        return _issue(tx, row.user_id, row.roles, str(uuid.uuid4()), family_end, now)


# --- refresh, logout, verify ----------------------------------------------------------------


def refresh(refresh_token: str) -> model.TokenPair:
    now = _now()
    hashed = store.token_hash(refresh_token)
    pair: model.TokenPair | None = None
    with db.transaction() as tx:
        used = store.use_refresh_token(tx, hashed, now)
        if used is None:
            found = store.refresh_token(tx, hashed)
            verdict = model.judge_refresh(found, now)
            if found is not None and verdict is model.RefreshVerdict.REUSED:
                revoked = _revoke_family(tx, found.family_id, now)
                _log.warning(
                    "refresh token reuse: family %s revoked (%d tokens)",
                    found.family_id,
                    revoked,
                    extra={"user_id": found.user_id},
                )
        else:
            user_id, family_id, family_end = used
            account = store.credential(tx, user_id)
            if account is None or not account.active:
                store.revoke_family(tx, family_id, now)
            else:
                pair = _issue(tx, user_id, account.roles, family_id, family_end, now)
    if pair is None:  # raised after the commit: a revoked family stays revoked
        raise model.InvalidRefreshToken()
    return pair


def logout(claims: sauth.Claims, refresh_token: str) -> None:
    """Revoke the refresh token's family (if it is the caller's) and the access token."""
    from shared import auth as sauth

    now = _now()
    with db.transaction() as tx:
        found = store.refresh_token(tx, store.token_hash(refresh_token))
        if found is not None and found.user_id == claims.sub:
            store.revoke_family(tx, found.family_id, now)
    sauth.revoke(claims.jti, claims.exp)


def verify(claims: sauth.Claims) -> model.Introspection:
    from shared import auth as sauth

    if sauth.revoked_or_stale(claims):
        raise model.TokenRevoked()
    return model.Introspection(
        active=True, sub=claims.sub, roles=list(claims.roles), exp=claims.exp, jti=claims.jti
    )


# --- passwords -------------------------------------------------------------------------------


def change_password(
    claims: sauth.Claims, old_password: str, new_password: str, client_ip: str = ""
) -> None:
    from shared import auth as sauth

    s, now = settings(), _now()
    with db.transaction() as tx:
        row = store.credential(tx, claims.sub)
        if row is None or not row.active:
            raise model.AccountInactive()
        model.check_password(new_password, row.email, field="new_password", local=s.is_local)
        # Guessing the current password is throttled like logins (same pair and IP counters).
        keys, wait = _reserve_attempt(tx, row.email or row.user_id, client_ip, now)
    if wait:  # raised after the commit: the counted attempt must stay counted
        raise model.LoginThrottled(wait)
    old_hash = row.password_hash
    if old_hash is None or not _verify(old_hash, old_password):
        raise model.WrongPassword()
    new_hash = _hasher().hash(new_password)
    with db.transaction() as tx:
        if not store.replace_password_hash(tx, row.user_id, old_hash, new_hash, now):
            raise model.PasswordChangedMeanwhile()
        store.forget_attempts(tx, keys[0])
        for key in keys[1:]:
            store.uncount_attempt(tx, key)
        store.revoke_user_tokens(tx, row.user_id, now)
        # before the commit: if Firestore fails, the change is not made (and can be retried)
        sauth.set_not_before(row.user_id)
        emit(tx, PasswordChanged(user_id=row.user_id))


# --- credentials (users-api and users' events) -------------------------------------------------


def put_credential(
    user_id: str, *, email: str, roles: list[str], active: bool, version: int, password: str | None
) -> tuple[model.Credential, bool]:
    """Upsert a credential as users-api says it is now (synchronous, before its commit).

    users-api holds the email under its unique index at this moment, so another credential
    still holding it is stale (its own event is on the way) and gives it up. The facts are
    kept if we already applied a newer version; a password is always set. Returns
    (credential, created).
    """
    from shared import auth as sauth

    if password is not None:
        model.check_password(password, email, local=settings().is_local)
    new_hash = _hasher().hash(password) if password is not None else None
    now = _now()
    with db.transaction() as tx:
        row, created = store.lock_credential(tx, user_id, now)
        if model.should_apply(version, None if created else row.version):
            holder = store.email_holder(tx, email, user_id)
            if holder is not None:
                _log.info("email moved from credential %s to %s", holder.user_id, user_id)
                store.clear_email(tx, holder.user_id, now)
            store.write_facts(
                tx, user_id, email=email, roles=roles, active=active, version=version, now=now
            )
            if not active and row.active:
                store.revoke_user_tokens(tx, user_id, now)
            ends_access = (row.active and not active) or model.demoted(row.roles, roles)
        else:
            ends_access = False
        if new_hash is not None:
            store.set_password_hash(tx, user_id, new_hash, now)
            if row.password_hash is not None:  # a reset: end the sessions of the old password
                store.revoke_user_tokens(tx, user_id, now)
                ends_access = True
            emit(tx, PasswordChanged(user_id=user_id))
        if ends_access:  # before the commit: a Firestore failure leaves nothing half done
            sauth.set_not_before(user_id)
        stored = store.credential(tx, user_id)
    assert stored is not None  # locked and written in this transaction
    return model.Credential.of(stored), created


class EmailStillHeld(RuntimeError):
    """An event moves an email that an active credential still holds: retry later (the other
    user's event that frees it has not arrived yet)."""


def apply_user_event(event: Received) -> None:
    """Keep the local copy of a user (email, roles, active) up to date. Idempotent; an event
    older than the version already applied is ignored."""
    if event.event_type not in USER_EVENTS:
        _log.warning("ignored unexpected event %s", event.event_type)
        return
    facts = event.parse(UserFacts)
    deleted = event.event_type == "user.deleted"
    email = None if deleted else model.normalize_email(facts.email)
    active = facts.active and not deleted
    roles = [r for r in facts.roles if r in ROLES]
    now = _now()
    with db.transaction() as tx:
        row, created = store.lock_credential(tx, facts.id, now)
        if not model.should_apply(facts.version, None if created else row.version):
            _log.info(
                "ignored %s v%d of user %s: v%d already applied",
                event.event_type,
                facts.version,
                facts.id,
                row.version,
            )
            return
        if email is not None:
            holder = store.email_holder(tx, email, facts.id)
            if holder is not None:
                if holder.active:
                    raise EmailStillHeld(f"{email} is still held by user {holder.user_id}")
                store.clear_email(tx, holder.user_id, now)
        store.write_facts(
            tx, facts.id, email=email, roles=roles, active=active, version=facts.version, now=now
        )
        if not active:
            store.revoke_user_tokens(tx, facts.id, now)
        if (row.active and not active) or model.demoted(row.roles, roles):
            # before the commit: on a Firestore failure the event is retried, whole. Imported
            # here: most events change no access, and shared.auth brings PyJWT and cryptography
            from shared import auth as sauth

            sauth.set_not_before(facts.id)


# --- cleanup -----------------------------------------------------------------------------------

TOKEN_GRACE = timedelta(days=1)
CLEANUP_BATCH = 1000


def cleanup(now: datetime | None = None) -> dict[str, int]:
    """Delete login-throttling counters whose window has ended, and refresh tokens of
    families that ended (absolute end or revoked) or unused ones that expired, more than
    TOKEN_GRACE ago; used tokens stay while their family lives (reuse detection). Batched:
    short transactions, short locks."""
    now = now or _now()
    counts = {"login_failures": 0, "refresh_tokens": 0}
    window_s = settings().login_window_s
    while True:
        with db.transaction() as tx:
            n = store.purge_login_failures(tx, now, window_s, CLEANUP_BATCH)
        counts["login_failures"] += n
        if n < CLEANUP_BATCH:
            break
    while True:
        with db.transaction() as tx:
            n = store.purge_refresh_tokens(tx, now - TOKEN_GRACE, CLEANUP_BATCH)
        counts["refresh_tokens"] += n
        if n < CLEANUP_BATCH:
            break
    _log.info("auth cleanup: %s", counts)
    return counts


# --- bootstrap ---------------------------------------------------------------------------------


def ensure_bootstrap_admin() -> None:
    """Create the first admin's credential from BOOTSTRAP_ADMIN_EMAIL/PASSWORD (idempotent:
    an existing credential keeps its password); refuse to run outside local with no way in."""
    from shared import auth as sauth

    s = settings()
    if not (s.bootstrap_admin_email and s.bootstrap_admin_password):
        if s.is_local:
            return
        with db.transaction() as tx:
            if store.has_active_admin(tx):
                return
        raise ConfigError(
            "No active admin credential exists and BOOTSTRAP_ADMIN_EMAIL / "
            "BOOTSTRAP_ADMIN_PASSWORD are not set: nobody could log in. Set both (the "
            "password from Secret Manager) and run the migrations again."
        )
    try:
        email = model.normalize_email(s.bootstrap_admin_email)
    except ValueError:
        raise ConfigError(
            f"BOOTSTRAP_ADMIN_EMAIL {s.bootstrap_admin_email!r} is not an email address"
        ) from None
    user_id = sauth.bootstrap_admin_id(email)
    with db.transaction() as tx:
        row = store.credential(tx, user_id)
    if row is not None and row.password_hash is not None:
        return
    new_hash = _hasher().hash(s.bootstrap_admin_password)
    now = _now()
    with db.transaction() as tx:
        row, created = store.lock_credential(tx, user_id, now)
        if created:
            holder = store.email_holder(tx, email, user_id)
            if holder is not None:
                raise ConfigError(
                    f"BOOTSTRAP_ADMIN_EMAIL {email} already belongs to user {holder.user_id}"
                )
            store.write_facts(
                tx, user_id, email=email, roles=["admin"], active=True, version=0, now=now
            )
        if row.password_hash is None:
            store.set_password_hash(tx, user_id, new_hash, now)
    _log.info("bootstrap admin credential %s for %s", "created" if created else "completed", email)
