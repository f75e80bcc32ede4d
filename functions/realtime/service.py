"""Use cases of realtime: fan an event out into the feeds, issue and check stream tickets,
and produce a stream's Server-Sent Events.

A stream: without `Last-Event-ID` it opens with a `snapshot` event (the current state, `id` =
the feed's current sequence); with it (or `?last_event_id=`), the entries after that sequence
are replayed, each once, in order, unless the feed no longer holds all of them (expired, or a
feed that started over): then it opens with a snapshot as if none was given. Then every
change the stream's listener reports is read from the feed in order and sent; a comment line
goes out after `REALTIME_HEARTBEAT_S` (15 s) of silence; at the credential's expiry an
`expired` event ends the stream, and the client reconnects with a fresh token or ticket and
`Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from functions.realtime import events, model, store
from shared import logging as slog
from shared.config import settings
from shared.errors import Unauthorized
from shared.events import Received

_log = slog.get_logger(__name__)
TICKET_TTL_S = 60
_COPIES: dict[str, tuple[type[Any], ...]] = {
    "package.created": (events.PackageFacts,),
    "package.status.changed": (events.PackageFacts, events.StatusChangeFacts),
    "package.delivered": (events.PackageFacts, events.DeliveredFacts),
    "package.exception.raised": (events.PackageFacts, events.ExceptionFacts),
    "tracking.event.recorded": (events.PackageFacts, events.ScanFacts),
    "investigation.completed": (events.InvestigationFacts,),
}


def fan_out(event: Received) -> bool:
    """Apply one event to the live documents and feeds (at most once per event_id)."""
    copies = _COPIES.get(event.event_type)
    if copies is None:
        _log.info("realtime ignores %s", event.event_type)
        return False
    data: dict[str, Any] = {}
    for copy in copies:
        data |= event.parse(copy).model_dump()
    plan = model.plan(event.event_type, data, event.occurred_at.isoformat())
    applied = store.apply(event.event_id, plan)
    if not applied:
        _log.info("%s %s was applied before", event.event_type, event.event_id)
    return applied


# --- tickets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """Who reads a stream, and until when (epoch seconds)."""

    sub: str
    stream: str
    until: int


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue_ticket(sub: str, token_exp: int, stream: str) -> tuple[str, int]:
    """A random ticket for one stream, valid TICKET_TTL_S to open it; stored hashed."""
    ticket = secrets.token_urlsafe(32)
    now = int(time.time())
    expires = min(now + TICKET_TTL_S, token_exp)
    store.save_ticket(
        _digest(ticket),
        {
            "sub": sub,
            "stream": stream,
            "expires": expires,
            "token_exp": token_exp,
            "expires_at": datetime.fromtimestamp(expires, UTC),  # Firestore TTL
        },
    )
    return ticket, expires


def check_ticket(ticket: str, stream: str) -> Access:
    doc = store.load_ticket(_digest(ticket)) if ticket else None
    if doc is None:
        raise Unauthorized("The stream ticket is unknown.")
    if int(doc["expires"]) <= int(time.time()):
        raise Unauthorized("The stream ticket has expired.")
    if doc["stream"] != stream:
        raise Unauthorized("The stream ticket is for another stream.")
    # The ticket opens the stream; the stream lasts as long as the token that bought it.
    return Access(sub=str(doc["sub"]), stream=stream, until=int(doc["token_exp"]))


# --- streaming --------------------------------------------------------------------------------


def _entry(doc: dict[str, Any]) -> bytes:
    """A feed entry as SSE bytes, encoded once per entry (the hub's cached entries are shared
    by every client of the stream)."""
    raw = doc.get(_ENCODED)
    if raw is None:
        raw = doc[_ENCODED] = model.sse(doc["data"], event=doc["type"], id=int(doc["seq"]))
    return bytes(raw)


_ENCODED = "_sse"  # not a feed document field (store.apply writes the others)


async def events_of(access: Access, after: int | None) -> AsyncIterator[bytes]:
    """The stream's SSE bytes until the credential expires or the client goes away.

    A coroutine on the instance's event loop (served by `shared.asgi`): an idle stream waits
    on its `Subscription`, holding no thread; Firestore reads run in worker threads.
    """
    from shared import asgi  # Starlette and anyio: realtime-stream only, not the fanout

    heartbeat_s = settings().realtime_heartbeat_s
    key = access.stream
    hub = store.hub()
    sub = store.Subscription(asyncio.get_running_loop())
    try:
        # subscribed before reading: no change falls in between
        await asgi.in_thread(hub.subscribe, key, sub)
        yield b"retry: 2000\n\n"
        if after is not None and not await asgi.in_thread(_resumable, key, after):
            after = None  # its entries expired, or it is from another feed: start over
        if after is None:
            cursor, snap = await asgi.in_thread(_opening, key)
            yield model.sse(snap, event="snapshot", id=cursor)
        else:
            cursor = after
        while True:
            batch = hub.since(key, cursor)
            if batch is None:
                batch = await asgi.in_thread(store.entries_after, key, cursor)
            for doc in batch:
                cursor = int(doc["seq"])
                yield _entry(doc)
            if len(batch) == 500:
                continue
            left = access.until - time.time()
            if left <= 0:
                yield model.sse({"reason": "credential expired"}, event="expired")
                return
            seq = await sub.wait(min(heartbeat_s, left))
            if seq is None:
                if access.until - time.time() > 0:
                    yield model.heartbeat()
                continue
            # seq <= cursor (a change already sent): the next read finds nothing new
    finally:
        hub.unsubscribe(key, sub)


def _resumable(key: str, after: int) -> bool:
    """Whether the feed still holds every entry after `after`: sequences are contiguous per
    stream, so the first one kept after it must be `after + 1` (entries expire after
    store.FEED_TTL), and `after` cannot be ahead of the feed (a feed that started over)."""
    current = store.current_seq(key)
    if after >= current:
        return after == current
    first = store.entries_after(key, after, limit=1)
    return bool(first) and int(first[0]["seq"]) == after + 1


def _opening(key: str) -> tuple[int, Any]:
    """The stream's current sequence and, at it or later, its state."""
    return store.current_seq(key), store.snapshot(key)
