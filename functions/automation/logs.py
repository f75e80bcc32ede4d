"""Run logs in Firestore: `automation_run_logs/{run_id}/lines/{seq}`, one document per line.

The runner is the only writer of a run's log (a run is executed once), so `LogSink` numbers
the lines itself (`seq`, 1, 2, ...) and writes them in batches from a background thread: a
line is in Firestore within about `FLUSH_S` of being printed on the target, and a run with
much output costs one batched commit per flush instead of one write per line. Readers page by
`seq` (`read(run_id, after, limit)`): a client polls with the last `seq` it saw as the cursor.
A subcollection per run needs only Firestore's automatic single-field index on `seq`. Lines
are cut at 4,000 characters; a run keeps at most `MAX_LINES` lines (then one notice line).
Each line carries `expires_at` (`RETENTION` after it was written) for a Firestore TTL policy
on the `lines` collection group.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

COLLECTION = "automation_run_logs"
FLUSH_S = 0.2
BATCH = 400  # below Firestore's 500 writes per batch
MAX_LINES = 100_000
RETENTION = timedelta(days=30)


def _lines(run_id: str) -> Any:
    from shared.clients import firestore

    return firestore().collection(COLLECTION).document(run_id).collection("lines")


def doc_id(seq: int) -> str:
    return f"{seq:09d}"


class LogSink:
    """Numbers and buffers a run's lines; a background thread writes them in batches."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._seq = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"runlog-{run_id[:8]}", daemon=True)
        self._thread.start()

    def line(
        self,
        *,
        target_id: str | None,
        target_name: str | None,
        step: int | None,
        stream: str,
        text: str,
    ) -> None:
        with self._lock:
            if self._seq >= MAX_LINES:
                return
            self._seq += 1
            if self._seq == MAX_LINES:
                stream, text = "system", f"log truncated at {MAX_LINES} lines"
            now = datetime.now(UTC)
            self._buffer.append(
                {
                    "seq": self._seq,
                    "at": now,
                    "expires_at": now + RETENTION,
                    "target_id": target_id,
                    "target_name": target_name,
                    "step": step,
                    "stream": stream,
                    "text": text[:4000],
                }
            )
            if len(self._buffer) >= BATCH:
                self._wake.set()

    def _take(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self._buffer = self._buffer, []
        return out

    def _write(self, items: list[dict[str, Any]]) -> None:
        from shared.clients import firestore

        col = _lines(self.run_id)
        for start in range(0, len(items), BATCH):
            batch = firestore().batch()
            for item in items[start : start + BATCH]:
                batch.set(col.document(doc_id(item["seq"])), item)
            batch.commit()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            items = self._take()
            if items:
                try:
                    self._write(items)
                except Exception:  # keep the lines for the next flush
                    with self._lock:
                        self._buffer = items + self._buffer

    def close(self) -> None:
        """Stop the flusher and write what is left (synchronously)."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=10)
        items = self._take()
        if items:
            self._write(items)


def read(run_id: str, *, after: int, limit: int) -> list[dict[str, Any]]:
    """Lines with seq > `after`, in order, at most `limit`."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = _lines(run_id).where(filter=FieldFilter("seq", ">", after)).order_by("seq").limit(limit)
    return [doc.to_dict() for doc in query.stream()]
