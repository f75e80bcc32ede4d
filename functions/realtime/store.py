"""The live documents and feeds in Firestore (collections `realtime_*`).

- `realtime_streams/{key}`: `seq`, the last sequence of the stream's feed (watched by streams).
- `realtime_feed/{key}:{seq:012d}`: append-only entries (`stream`, `seq`, `type`, `data`,
  `event_id`, `expires_at` for a 7-day TTL); `Last-Event-ID` resumes from `seq`.
- `realtime_packages/{id}`, `realtime_positions/{id}`, `realtime_agents/{id}`,
  `realtime_dashboard/counters`: the current state a new stream starts from.
- `realtime_applied/{event_id}`: written in the same transaction as everything above, so an
  event is applied at most once even when the handler's own de-duplication is bypassed (a
  crash between this commit and the handler's `finish`, a redrive).
- `realtime_tickets/{sha256}`: stream tickets (the hash only, never the ticket itself).
Limit: one transaction per event covers every stream it touches; the dashboard counter
document is the hot spot (one writer at a time: the fan-out runs with concurrency 1).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.realtime.model import AGENTS, DASHBOARD, MAP, Plan

STREAMS = "realtime_streams"
FEED = "realtime_feed"
PACKAGES = "realtime_packages"
POSITIONS = "realtime_positions"
AGENT_ACTIVITY = "realtime_agents"
COUNTERS = ("realtime_dashboard", "counters")
APPLIED = "realtime_applied"
TICKETS = "realtime_tickets"
FEED_TTL = timedelta(days=7)


def _db() -> Any:
    from shared.clients import firestore

    return firestore()


def entry_id(key: str, seq: int) -> str:
    return f"{key}:{seq:012d}"


def shape_counters(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "by_status": dict(doc.get("by_status") or {}),
        **{k: v for k, v in doc.items() if k not in ("by_status", "updated_at", "event_id")},
    }


def add_counts(current: dict[str, Any], deltas: dict[str, int]) -> dict[str, Any]:
    out = {k: v for k, v in current.items() if k not in ("updated_at", "event_id")}
    by_status = dict(out.get("by_status") or {})
    for name, d in deltas.items():
        if name.startswith("status."):
            status = name.removeprefix("status.")
            by_status[status] = int(by_status.get(status, 0)) + d
        else:
            out[name] = int(out.get(name, 0)) + d
    out["by_status"] = by_status
    return out


def apply(event_id: str, plan: Plan) -> bool:
    """Apply `plan` once: False when this event was applied before (nothing written)."""
    from google.cloud import firestore as gfs

    db = _db()
    now = datetime.now(UTC)

    @gfs.transactional
    def run(tx: Any) -> bool:
        marker = db.collection(APPLIED).document(event_id)
        if marker.get(transaction=tx).exists:
            return False
        seqs = {}
        for key in plan.streams:
            snap = db.collection(STREAMS).document(key).get(transaction=tx)
            seqs[key] = int((snap.to_dict() or {}).get("seq", 0)) if snap.exists else 0
        pkg_ref = pos_ref = None
        write_pkg = write_pos = False
        if plan.package is not None:
            pkg_ref = db.collection(PACKAGES).document(plan.package["package_id"])
            snap = pkg_ref.get(transaction=tx)
            old = snap.to_dict() or {} if snap.exists else {}
            write_pkg = int(old.get("version", -1)) <= int(plan.package["version"])
        if plan.position is not None:
            pos_ref = db.collection(POSITIONS).document(plan.position["package_id"])
            snap = pos_ref.get(transaction=tx)
            old = snap.to_dict() or {} if snap.exists else {}
            write_pos = str(old.get("at", "")) <= str(plan.position["at"])
        counters = None
        if plan.counts:
            cref = db.collection(COUNTERS[0]).document(COUNTERS[1])
            snap = cref.get(transaction=tx)
            counters = add_counts(snap.to_dict() or {} if snap.exists else {}, plan.counts)
            tx.set(cref, {**counters, "updated_at": now, "event_id": event_id})
        if pkg_ref is not None and write_pkg:
            tx.set(pkg_ref, {**(plan.package or {}), "updated_at": now})
        if pos_ref is not None and write_pos:
            tx.set(pos_ref, {**(plan.position or {}), "updated_at": now})
        if plan.agent is not None:
            ref = db.collection(AGENT_ACTIVITY).document(str(plan.agent["investigation_id"]))
            tx.set(ref, {**plan.agent, "updated_at": now})
        for item in plan.items:
            seq = seqs[item.stream] = seqs[item.stream] + 1
            data = shape_counters(counters or {}) if item.stream == DASHBOARD else item.data
            tx.set(
                db.collection(FEED).document(entry_id(item.stream, seq)),
                {
                    "stream": item.stream,
                    "seq": seq,
                    "type": item.type,
                    "data": data,
                    "event_id": event_id,
                    "written_at": now,
                    "expires_at": now + FEED_TTL,
                },
            )
        for key, seq in seqs.items():
            tx.set(db.collection(STREAMS).document(key), {"seq": seq, "updated_at": now})
        tx.set(marker, {"at": now, "expires_at": now + FEED_TTL})
        return True

    # One event at a time per instance (the manifest's concurrency: 1, which functions-framework
    # does not enforce locally): every event touches the dashboard and map sequence documents,
    # and concurrent transactions on them only abort each other (the emulator times them out).
    with _apply_lock:
        return bool(run(db.transaction()))


_apply_lock = threading.Lock()


def current_seq(key: str) -> int:
    snap = _db().collection(STREAMS).document(key).get()
    return int((snap.to_dict() or {}).get("seq", 0)) if snap.exists else 0


def entries_after(key: str, after: int, limit: int = 500) -> list[dict[str, Any]]:
    """Feed entries of `key` with seq > `after`, in order (composite index: stream, seq)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    q = (
        _db()
        .collection(FEED)
        .where(filter=FieldFilter("stream", "==", key))
        .where(filter=FieldFilter("seq", ">", after))
        .order_by("seq")
        .limit(limit)
    )
    return [d.to_dict() for d in q.stream()]


def snapshot(key: str) -> Any:
    """The current state a stream starts from."""
    db = _db()
    if key == DASHBOARD:
        snap = db.collection(COUNTERS[0]).document(COUNTERS[1]).get()
        return shape_counters(snap.to_dict() or {} if snap.exists else {})
    if key == MAP:
        return [_clean(d.to_dict()) for d in db.collection(POSITIONS).limit(5000).stream()]
    if key == AGENTS:
        q = db.collection(AGENT_ACTIVITY).order_by("updated_at", direction="DESCENDING").limit(50)
        return [_clean(d.to_dict()) for d in q.stream()]
    snap = db.collection(PACKAGES).document(key.removeprefix("package:")).get()
    return _clean(snap.to_dict()) if snap.exists else None


def _clean(doc: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (doc or {}).items() if k != "updated_at"}


# --- tickets ----------------------------------------------------------------------------------


def save_ticket(digest: str, fields: dict[str, Any]) -> None:
    _db().collection(TICKETS).document(digest).create(fields)


def load_ticket(digest: str) -> dict[str, Any] | None:
    snap = _db().collection(TICKETS).document(digest).get()
    return snap.to_dict() if snap.exists else None


# --- watching ---------------------------------------------------------------------------------


RECENT = 512  # feed entries each instance keeps per watched stream


class _Recent:
    """The newest entries of one stream, complete for every seq > `base`."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.items: list[dict[str, Any]] = []
        self.seqs: list[int] = []  # the items' seq, ascending (bisected by every client)

    @property
    def top(self) -> int:
        return self.seqs[-1] if self.seqs else self.base

    def extend(self, docs: list[dict[str, Any]]) -> None:
        for d in docs:
            if int(d["seq"]) > self.top:
                self.items.append(d)
                self.seqs.append(int(d["seq"]))
        if len(self.items) > RECENT:
            self.items, self.seqs = self.items[-RECENT:], self.seqs[-RECENT:]
            self.base = self.seqs[0] - 1

    def after(self, cursor: int) -> list[dict[str, Any]]:
        return self.items[bisect.bisect_right(self.seqs, cursor) :]


class Subscription:
    """One open stream's wake-up: the hub's listener threads `notify()` it with the stream's
    newest sequence, and the stream's coroutine `await`s `wait()` on its own event loop (a
    burst of changes wakes it once, with the highest sequence)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._seq = 0
        self._lock = threading.Lock()

    def notify(self, seq: int) -> None:
        """From any thread."""
        with self._lock:
            self._seq = max(self._seq, seq)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the stream is gone
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> int | None:
        """The newest sequence notified since the last wait, or None after `timeout` s."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return None
        self._event.clear()
        with self._lock:
            seq, self._seq = self._seq, 0
        return seq


class Hub:
    """One Firestore listener per stream key per instance, fanned out to every open stream.

    A listener is a gRPC watch with its own thread; a thousand browsers on the dashboard share
    one. On each change the hub reads the new feed entries once (not once per client) and
    keeps the newest `RECENT`; each subscriber is then notified of the stream's new `seq`,
    and `since()` answers from memory while the client's cursor is within what is kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}
        self._watches: dict[str, Any] = {}
        self._recent: dict[str, _Recent] = {}

    def subscribe(self, key: str, sub: Subscription) -> Subscription:
        """Add `sub` to `key`'s subscribers (starting the key's listener when it is the first:
        blocking, call it from a worker thread)."""
        with self._lock:
            self._subs.setdefault(key, set()).add(sub)
            if key not in self._watches:
                ref = _db().collection(STREAMS).document(key)
                self._watches[key] = ref.on_snapshot(self._callback(key))
        return sub

    def unsubscribe(self, key: str, sub: Subscription) -> None:
        """Never blocks: the last subscriber's listener is closed on a thread of its own."""
        watch = None
        with self._lock:
            subs = self._subs.get(key, set())
            subs.discard(sub)
            if not subs:
                self._subs.pop(key, None)
                self._recent.pop(key, None)
                watch = self._watches.pop(key, None)
        if watch is not None:
            threading.Thread(target=watch.unsubscribe, name=f"unwatch {key}", daemon=True).start()

    def since(self, key: str, cursor: int) -> list[dict[str, Any]] | None:
        """Entries after `cursor` from memory, or None when memory does not reach back."""
        with self._lock:
            recent = self._recent.get(key)
            if recent is None or cursor < recent.base or cursor > recent.top:
                return None
            return recent.after(cursor)

    def _callback(self, key: str) -> Callable[..., None]:
        def on_change(docs: list[Any], _changes: Any, _read_time: Any) -> None:
            seq = max((int((d.to_dict() or {}).get("seq", 0)) for d in docs if d.exists), default=0)
            with self._lock:
                recent = self._recent.get(key)
                if recent is None:  # the listener's first answer: entries from here on
                    self._recent[key] = _Recent(seq)
                top = recent.top if recent is not None else seq
            while recent is not None and top < seq:
                batch = entries_after(key, top)
                if not batch:
                    break
                with self._lock:
                    recent.extend(batch)
                    top = recent.top
            with self._lock:
                subs = list(self._subs.get(key, ()))
            for sub in subs:
                sub.notify(seq)

        return on_change


_hub: Hub | None = None
_hub_lock = threading.Lock()


def hub() -> Hub:
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = Hub()
        return _hub
