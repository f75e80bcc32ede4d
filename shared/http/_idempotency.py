"""`Idempotency-Key` on the POSTs that create something: the same request twice, one effect.

A covered route (a POST documented `describe(status=201)` or `202`, or `idempotent=True`; not a
public route; served by a deployment with its own schema or Firestore; `describe(idempotent=False)`
opts out) takes an optional `Idempotency-Key`
header: 1-255 printable ASCII characters without spaces (else 400). The key is scoped to the
token's subject, the deployment and the route (`POST /api/assets`), and kept 24 h with the
first answer: status, body and its meaningful headers (`Location`, `Content-Type`, `ETag`,
...). The same key with the same request (method, path, query and the body's canonical JSON)
replays that answer with `Idempotent-Replayed: true`; with another request it is 422; while
the first is still being served it is 409 with `Retry-After`. A refused request (4xx) that
changed nothing leaves no record, so the key can carry the corrected request; a 5xx is never
kept. A request without the header behaves as it always did.

Crash safety. In a deployment with its context's schema, the key lives in that schema's
`idempotency_keys` table (`shared.db.idempotency_table`) and the effect's own transaction
moves it from `running` to `committed` (a `before_commit` listener on SQLAlchemy sessions,
fenced on the claim's owner: a request whose claim was taken over cannot commit). So after
a crash a retry finds either `running` past its lease (nothing was committed: it takes the
claim over and runs) or `committed` without an answer (the effect exists, its answer was
lost: 409 saying so, never a second effect). Deployments without a schema keep keys in
Firestore (`idempotency`, TTL `expires_at`, a retention rule of ops-cleanup), where no
effect can be fenced: a claim whose lease lapsed answers 409 "outcome unknown" instead of
running again. An answer its view marked `Cache-Control: no-store` (a secret shown once) is
not kept either: its retry answers 409 naming that. Limits: effects outside the fenced
transaction (another service's API, Firestore writes, Cloud SQL exports) are not undone
when a lapsed claim is taken over; a replay skips the view, its role checks included (the
caller gets back what it was answered then). Decision 0045.

Tests arm a crash between the effect's commit and the record of its answer with
`arm_fault(deployment, mode)` (local and test only): `kill` SIGKILLs the process group as the
fault suite's points do, `raise` raises `SimulatedCrash` out of the request (in-process tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import os
import re
import signal
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import flask

from shared import logging as slog
from shared.config import settings
from shared.errors import BadRequest, Conflict, Unprocessable

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEY_PATTERN = r"^[!-~]+$"  # printable ASCII, no space (what the OpenAPI document states)
KEY_TTL = timedelta(hours=24)
LEASE_MARGIN_S = 5  # past the deployment's request timeout, a running claim has lapsed
COLLECTION = "idempotency"  # Firestore, for deployments without a schema
# The headers of an answer that are part of it (kept and replayed); the platform's own
# (X-Request-ID, traceparent, Cache-Control) are set again on the replay, cookies never kept.
KEPT_HEADERS = (
    "Content-Type",
    "Location",
    "Content-Location",
    "ETag",
    "Last-Modified",
    "Link",
)
COVERED_STATUSES = (201, 202)
FAULT_POINT = "idempotency-store"
FAULT_MODES = ("kill", "raise")

_KEY = re.compile(rf"[!-~]{{1,{MAX_KEY_LENGTH}}}")
_CLAIM = "switchyard.idempotency"
_COVERED = "switchyard.idempotency.covered"
_log = slog.get_logger("switchyard.http")

__all__ = [
    "COLLECTION",
    "HEADER",
    "KEY_TTL",
    "REPLAYED",
    "SimulatedCrash",
    "arm_fault",
    "canonical_body",
    "covered_view",
    "covers",
    "fingerprint",
    "install",
    "parse_key",
]


class SimulatedCrash(BaseException):  # noqa: N818 - it is not an error, it stands for a kill
    """Raised at the fault point when a test armed it in `raise` mode: nothing after it runs."""


# --- what a request is ---------------------------------------------------------------------


def parse_key(value: str) -> str:
    """The key of an `Idempotency-Key` header value, or BadRequest (400)."""
    if not _KEY.fullmatch(value):
        raise BadRequest(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters without spaces.",
            errors=[
                {
                    "field": HEADER,
                    "message": f"1-{MAX_KEY_LENGTH} printable ASCII characters, no spaces",
                    "type": "idempotency.key_syntax",
                }
            ],
        )
    return value


def canonical_body(raw: bytes) -> bytes:
    """The body as canonical JSON (sorted keys, no spaces), or as sent when it is not JSON:
    the same document sent with other whitespace or key order is the same request."""
    if not raw:
        return b""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(method: str, path: str, query: bytes, raw_body: bytes) -> str:
    """sha256 of what makes two requests the same: method, path, sorted query, canonical body."""
    pairs = sorted(q for q in query.split(b"&") if q)
    h = hashlib.sha256()
    for part in (
        method.upper().encode(),
        path.encode(),
        b"&".join(pairs),
        canonical_body(raw_body),
    ):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


@dataclass(frozen=True)
class Scope:
    deployment: str
    subject: str
    route: str  # "POST /api/assets": the rule, not the path
    key: str

    @property
    def id(self) -> str:
        h = hashlib.sha256()
        for part in (self.deployment, self.subject, self.route, self.key):
            data = part.encode()
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
        return h.hexdigest()


@dataclass
class Record:
    state: str  # running | committed | done | withheld
    fingerprint: str
    owner: str
    lease_until: datetime
    expires_at: datetime
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    version: Any = None  # the Firestore update time the record was read at


@dataclass
class Claim:
    store: Store
    scope: Scope
    owner: str
    fingerprint: str
    version: Any = None
    fence_pending: bool = False
    fenced: bool = False  # the effect's transaction committed the claim with it


class Store(Protocol):
    fences: bool  # True: the effect's transaction commits the claim (a lapsed claim did nothing)

    def claim(self, scope: Scope, rec: Record, now: datetime) -> tuple[Record | None, Any]: ...

    def take_over(self, scope: Scope, old: Record, owner: str, lease: datetime) -> bool: ...

    def fence(self, session: Any, claim: Claim) -> bool: ...

    def finish(self, claim: Claim, rec: Record) -> None: ...

    def release(self, claim: Claim) -> None: ...


# --- which views ---------------------------------------------------------------------------


def view_facts(view: Any, attr: str = "__openapi__") -> dict[str, Any]:
    """The facts a decorator left on a view (`describe()`'s by default), looking through
    decorators that used functools.wraps (read here and by `shared.openapi`)."""
    seen = 0
    while view is not None and seen < 10:
        facts = getattr(view, attr, None)
        if isinstance(facts, dict):
            return facts
        view = getattr(view, "__wrapped__", None)
        seen += 1
    return {}


def covered_view(view: Any) -> bool:
    """Whether a POST view takes `Idempotency-Key`: documented 201 or 202, unless it says
    `describe(idempotent=False)`; any view saying `idempotent=True`."""
    facts = view_facts(view)
    explicit = facts.get("idempotent")
    if explicit is not None:
        return bool(explicit)
    return facts.get("status") in COVERED_STATUSES


def covers(app: flask.Flask, rule: Any, method: str = "POST") -> bool:
    """Whether `method` on `rule` of `app` takes `Idempotency-Key` (see `covered_view`)."""
    if method.upper() != "POST" or "POST" not in (rule.methods or ()):
        return False
    from shared.manifests import catalog

    cached: dict[str, bool] = app.extensions.setdefault(_COVERED, {})
    found = cached.get(rule.endpoint)
    if found is None:
        view = app.view_functions.get(rule.endpoint)
        dep = catalog().route(rule.rule)
        found = cached[rule.endpoint] = (
            covered_view(view)
            and not catalog().is_public(rule.rule)
            and dep is not None
            and has_store(dep)
        )
    return found


def has_store(dep: Any) -> bool:
    """Whether deployment `dep` has somewhere to keep keys: its context's schema, or Firestore
    (a deployment with neither cannot take the header; tests/unit/test_idempotency_rules.py checks
    that every creating POST of the contexts can)."""
    return bool((dep.uses_sql and dep.owns_schema) or dep.uses_firestore)


# --- stores --------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlStore:
    """Keys in `<schema>.idempotency_keys`, fenced into the effect's transaction."""

    fences = True
    CLEANUP_BATCH = 20  # expired rows removed by each claim (the table cleans itself)

    def __init__(self, schema: str) -> None:
        from sqlalchemy import MetaData

        from shared import db

        self.table = db.idempotency_table(MetaData(schema=schema))
        _listen_for_commits()

    def _row(self, scope: Scope, rec: Record, now: datetime) -> dict[str, Any]:
        return {
            "id": scope.id,
            "deployment": scope.deployment,
            "subject": scope.subject[:255],
            "route": scope.route[:255],
            "fingerprint": rec.fingerprint,
            "state": rec.state,
            "owner": rec.owner,
            "lease_until": rec.lease_until,
            "created_at": now,
            "expires_at": rec.expires_at,
            "status": None,
            "headers": None,
            "body": None,
        }

    def _record(self, row: Any) -> Record:
        m = row._mapping
        return Record(
            state=m["state"],
            fingerprint=m["fingerprint"],
            owner=m["owner"],
            lease_until=_utc(m["lease_until"]),
            expires_at=_utc(m["expires_at"]),
            status=m["status"],
            headers=json.loads(m["headers"]) if m["headers"] else {},
            body=bytes(m["body"]) if m["body"] is not None else None,
        )

    def claim(self, scope: Scope, rec: Record, now: datetime) -> tuple[Record | None, Any]:
        from sqlalchemy import delete, select
        from sqlalchemy.dialects import postgresql, sqlite

        from shared import db

        t = self.table
        with db.engine().begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            row = self._row(scope, rec, now)
            stmt = dialect.insert(t).values(**row)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c.id],
                set_={k: stmt.excluded[k] for k in row if k != "id"},
                where=t.c.expires_at <= now,  # an expired record is as good as none
            ).returning(t.c.id)
            if conn.execute(stmt).first() is not None:
                expired = select(t.c.id).where(t.c.expires_at <= now).limit(self.CLEANUP_BATCH)
                conn.execute(delete(t).where(t.c.id.in_(expired)))
                return None, None
            found = conn.execute(select(t).where(t.c.id == scope.id)).first()
        if found is None:  # removed between the two statements (expired): try once more
            return self.claim(scope, rec, now)
        return self._record(found), None

    def take_over(self, scope: Scope, old: Record, owner: str, lease: datetime) -> bool:
        from sqlalchemy import update

        from shared import db

        t = self.table
        with db.engine().begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.id == scope.id, t.c.state == "running", t.c.owner == old.owner)
                .values(owner=owner, lease_until=lease)
            )
            return bool(done.rowcount == 1)

    def fence(self, session: Any, claim: Claim) -> bool:
        from sqlalchemy import update

        t = self.table
        done = session.execute(
            update(t)
            .where(t.c.id == claim.scope.id, t.c.owner == claim.owner, t.c.state == "running")
            .values(state="committed")
        )
        return bool(done.rowcount == 1)

    def finish(self, claim: Claim, rec: Record) -> None:
        from sqlalchemy import update

        from shared import db

        t = self.table
        with db.engine().begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == claim.scope.id, t.c.owner == claim.owner)
                .values(
                    state=rec.state,
                    status=rec.status,
                    headers=json.dumps(rec.headers) if rec.headers else None,
                    body=rec.body,
                )
            )

    def release(self, claim: Claim) -> None:
        from sqlalchemy import delete

        from shared import db

        t = self.table
        with db.engine().begin() as conn:
            conn.execute(
                delete(t).where(
                    t.c.id == claim.scope.id, t.c.owner == claim.owner, t.c.state == "running"
                )
            )


class FirestoreStore:
    """Keys in the Firestore collection `idempotency` (deployments without a schema): claimed
    with `create()`, finished and released under the claim's update time."""

    fences = False

    def _doc(self, scope: Scope) -> Any:
        from shared.clients import firestore

        return firestore().collection(COLLECTION).document(scope.id)

    def _record(self, snap: Any) -> Record:
        d = snap.to_dict() or {}
        return Record(
            state=d.get("state", "running"),
            fingerprint=d.get("fingerprint", ""),
            owner=d.get("owner", ""),
            lease_until=_utc(d["lease_until"]),
            expires_at=_utc(d["expires_at"]),
            status=d.get("status"),
            headers=dict(d.get("headers") or {}),
            body=d.get("body"),
            version=snap.update_time,
        )

    def claim(self, scope: Scope, rec: Record, now: datetime) -> tuple[Record | None, Any]:
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound

        from shared.clients import firestore

        doc = self._doc(scope)
        data = {
            "deployment": scope.deployment,
            "subject": scope.subject,
            "route": scope.route,
            "fingerprint": rec.fingerprint,
            "state": rec.state,
            "owner": rec.owner,
            "lease_until": rec.lease_until,
            "created_at": now,  # ops-cleanup's retention rule dates a record by it
            "expires_at": rec.expires_at,  # the TTL policy's field
        }
        for _ in range(3):
            try:
                return None, doc.create(data).update_time
            except AlreadyExists:
                pass
            snap = doc.get()
            if not snap.exists:
                continue
            found = self._record(snap)
            if found.expires_at > now:
                return found, None
            # expired but not yet removed by the TTL policy: replace it
            with contextlib.suppress(FailedPrecondition, NotFound):
                doc.delete(option=firestore().write_option(last_update_time=snap.update_time))
        raise Conflict(
            "Another request with this Idempotency-Key is being started; retry shortly.",
            headers={"Retry-After": "1"},
        )

    def take_over(self, scope: Scope, old: Record, owner: str, lease: datetime) -> bool:
        return False  # nothing fences a Firestore effect: a lapsed claim's outcome is unknown

    def fence(self, session: Any, claim: Claim) -> bool:
        return True

    def finish(self, claim: Claim, rec: Record) -> None:
        from shared.clients import firestore

        self._doc(claim.scope).update(
            {
                "state": rec.state,
                "status": rec.status,
                "headers": rec.headers,
                "body": rec.body,
            },
            option=firestore().write_option(last_update_time=claim.version),
        )

    def release(self, claim: Claim) -> None:
        from shared.clients import firestore

        self._doc(claim.scope).delete(
            option=firestore().write_option(last_update_time=claim.version)
        )


@functools.cache
def store_for(deployment: str) -> Store:
    """Where `deployment` keeps its keys: its context's schema, else Firestore."""
    from shared.manifests import catalog

    dep = catalog().deployments[deployment]
    if dep.uses_sql and dep.owns_schema:
        return SqlStore(dep.owns_schema)
    if dep.uses_firestore:
        return FirestoreStore()
    raise RuntimeError(
        f"{deployment} serves a route that takes {HEADER} but uses neither its own schema "
        "nor Firestore: declare `uses` in its manifest, or `describe(idempotent=False)`"
    )


# --- the fence: a claim is committed with the effect -------------------------------------

_PENDING: contextvars.ContextVar[Claim | None] = contextvars.ContextVar(
    "switchyard_idempotency_claim", default=None
)


@functools.cache
def _listen_for_commits() -> None:
    """Listen to every SQLAlchemy session's commits (once per process, SQL stores only)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_commit", _after_commit)


def _before_commit(session: Any) -> None:
    claim = _PENDING.get()
    if claim is None or claim.fenced or not claim.store.fences:
        return
    if not claim.store.fence(session, claim):
        raise Conflict(
            "Another request took this Idempotency-Key over (this one outlived its lease); "
            "nothing was changed by this one.",
            errors=[_error("idempotency.taken_over", "this request's claim lapsed")],
        )
    claim.fence_pending = True
    session.info[_CLAIM] = claim


def _after_commit(session: Any) -> None:
    claim = session.info.pop(_CLAIM, None)
    if claim is not None and claim.fence_pending:
        claim.fenced = True


# --- the request hooks ---------------------------------------------------------------------


def _error(kind: str, message: str) -> dict[str, str]:
    return {"field": HEADER, "message": message, "type": kind}


def _now() -> datetime:
    return datetime.now(UTC)


def install(app: flask.Flask) -> None:
    """Add the hooks to `app` (after authentication: the key is scoped to the token's subject)."""
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)


def _before() -> flask.Response | None:
    req = flask.request
    if req.method != "POST" or req.url_rule is None or HEADER not in req.headers:
        return None
    app = flask.current_app
    if not covers(app, req.url_rule):
        return None
    claims = getattr(flask.g, "claims", None)
    if claims is None:
        return None
    key = parse_key(req.headers[HEADER])
    from shared.manifests import catalog

    dep = catalog().route(req.path)
    if dep is None:
        return None
    store = store_for(dep.name)
    scope = Scope(dep.name, str(claims.sub), f"POST {req.url_rule.rule}", key)
    fp = fingerprint(req.method, req.path, req.query_string, req.get_data(cache=True))
    now = _now()
    lease = now + timedelta(seconds=dep.runtime.timeout_s + LEASE_MARGIN_S)
    owner = uuid.uuid4().hex
    mine = Record("running", fp, owner, lease, now + KEY_TTL)
    found, version = store.claim(scope, mine, now)
    if found is not None:
        replay = _answer(store, scope, found, owner, lease, fp, now)
        if replay is not None:
            return replay
    claim = Claim(store, scope, owner, fp, version)
    flask.g.idempotency_claim = claim
    flask.g.idempotency_token = _PENDING.set(claim)
    return None


def _answer(
    store: Store,
    scope: Scope,
    found: Record,
    owner: str,
    lease: datetime,
    fp: str,
    now: datetime,
) -> flask.Response | None:
    """The answer to a request whose key is already recorded, or None when it took the claim
    over (a lapsed claim of a store that fences its effects)."""
    if found.fingerprint != fp:
        raise Unprocessable(
            f"This {HEADER} was used with another request (method, path or body) in the last "
            "24 hours; use a new key for a new request.",
            errors=[_error("idempotency.key_reused", "used with another request")],
        )
    if found.state == "done":
        return _replay(found)
    if found.state == "committed":
        raise Conflict(
            f"The first request with this {HEADER} took effect, but its answer was lost (the "
            "server stopped before recording it). Look the result up instead of retrying.",
            errors=[_error("idempotency.answer_lost", "took effect; answer not recorded")],
        )
    if found.state == "withheld":
        raise Conflict(
            f"The first request with this {HEADER} took effect; its answer held a secret "
            "shown once, so it was not kept. Look the result up instead of retrying.",
            errors=[_error("idempotency.answer_withheld", "took effect; answer not kept")],
        )
    if found.lease_until > now:
        raise Conflict(
            f"A request with this {HEADER} is still being served; retry shortly.",
            headers={"Retry-After": "1"},
            errors=[_error("idempotency.in_flight", "the first request is still running")],
        )
    if store.fences:
        if store.take_over(scope, found, owner, lease):
            return None  # the first one stopped before committing anything: run it now
        raise Conflict(
            f"A request with this {HEADER} is still being served; retry shortly.",
            headers={"Retry-After": "1"},
            errors=[_error("idempotency.in_flight", "another retry took the request over")],
        )
    raise Conflict(
        f"The first request with this {HEADER} stopped without an answer, and whether it took "
        "effect is unknown. Look the result up; to try again, send a new key.",
        errors=[_error("idempotency.outcome_unknown", "the first request stopped")],
    )


def _replay(rec: Record) -> flask.Response:
    resp = flask.Response(rec.body or b"", status=rec.status or 200)
    for name, value in rec.headers.items():
        resp.headers[name] = value
    resp.headers[REPLAYED] = "true"
    return resp


def _after(resp: flask.Response) -> flask.Response:
    claim: Claim | None = flask.g.pop("idempotency_claim", None)
    if claim is None:
        return resp
    status = resp.status_code
    try:
        if status >= 500 or (status >= 400 and not claim.fenced):
            # A 5xx is never kept. A refusal that committed nothing leaves no record (the key
            # may carry the corrected request). A 5xx after the commit stays `committed`.
            if not claim.fenced:
                claim.store.release(claim)
            return resp
        _fault_point(claim.scope.deployment)
        kept = "no-store" not in resp.headers.get("Cache-Control", "").lower()
        if resp.is_streamed or resp.direct_passthrough:
            kept = False
        rec = Record(
            state="done" if kept else "withheld",
            fingerprint=claim.fingerprint,
            owner=claim.owner,
            lease_until=_now(),
            expires_at=_now(),
            status=status,
            headers={n: resp.headers[n] for n in KEPT_HEADERS if n in resp.headers} if kept else {},
            body=resp.get_data() if kept else None,
        )
        claim.store.finish(claim, rec)
    except SimulatedCrash:
        raise
    except Exception:  # the client still gets its answer; a retry will say it was lost
        _log.warning("idempotency: the answer could not be recorded", exc_info=True)
    return resp


def _teardown(exc: BaseException | None = None) -> None:
    token = flask.g.pop("idempotency_token", None)
    if token is not None:
        _PENDING.reset(token)
    claim: Claim | None = flask.g.pop("idempotency_claim", None)
    if claim is None or claim.fenced or isinstance(exc, SimulatedCrash):
        return
    try:
        claim.store.release(claim)
    except Exception:
        _log.warning("idempotency: a claim could not be released", exc_info=True)


# --- the fault point (tests only) ----------------------------------------------------------


def _fault_file(deployment: str, local_dir: Path | None = None) -> Path:
    return (local_dir or settings().local_dir) / "faults" / f"{deployment}.{FAULT_POINT}"


def arm_fault(deployment: str, mode: str = "kill", local_dir: Path | None = None) -> Path:
    """Make `deployment`'s next covered request stop between its effect's commit and the
    record of its answer: `kill` (SIGKILL its process group) or `raise` (SimulatedCrash)."""
    if mode not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {mode!r}; known: {', '.join(FAULT_MODES)}")
    path = _fault_file(deployment, local_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mode)
    return path


def _fault_point(deployment: str) -> None:
    s = settings()
    if not s.is_local:
        return
    path = _fault_file(deployment)
    try:
        mode = path.read_text().strip()
        path.unlink()  # exactly one request wins the arming
    except FileNotFoundError:
        return
    if mode == "raise":
        raise SimulatedCrash(f"{deployment}: {FAULT_POINT}")
    os.killpg(os.getpgid(0), signal.SIGKILL)
