"""Raw GitHub deliveries in Firestore (`source_deliveries`), whatever their size.

A Firestore document holds at most 1 MiB and a commit request at most 10 MiB, while GitHub
sends up to 25 MB. So the body is stored compressed (zlib, level 1: JSON shrinks 5-20x at
~100+ MB/s) and, when the compressed form is still over `CHUNK_BYTES`, split into chunk
documents `source_deliveries/{id}/chunks/{n:04d}` written in batches of at most
`BATCH_BYTES` (3 MiB); the header document `source_deliveries/{id}` (headers, sizes, SHA-256 of the
raw body, the number of chunks, and the body itself when it fits) is written last, so a
reader that finds the header finds every chunk. Writing again (a retried request) rewrites
the same content. docs/decisions/0025-webhook-intake-and-raw-deliveries.md.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

COLLECTION = "source_deliveries"
CHUNKS = "chunks"
CHUNK_BYTES = 900 * 1024  # under the 1 MiB document limit, with room for the field names
# Firestore takes 10 MiB per commit request, but gRPC messages are capped at 4 MiB by the
# emulator (and by default clients): batches stay under both.
BATCH_BYTES = 3 * 1024 * 1024
RETENTION = timedelta(days=30)  # Firestore TTL on `expires_at`
ENCODING = "zlib"


@dataclass(frozen=True)
class Stored:
    stored_bytes: int
    chunks: int


class RawDeliveryMissing(RuntimeError):
    """The header or a chunk of a delivery is not (yet) in Firestore, or does not match."""


def _client() -> Any:
    from shared.clients import firestore

    return firestore()


def save(delivery_id: str, body: bytes, *, meta: dict[str, Any]) -> Stored:
    """Store `body` (see module doc); `meta` goes into the header document."""
    packed = zlib.compress(body, 1)
    header = _client().collection(COLLECTION).document(delivery_id)
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        **meta,
        "size_bytes": len(body),
        "stored_bytes": len(packed),
        "encoding": ENCODING,
        "sha256": hashlib.sha256(body).hexdigest(),
        "stored_at": now,
        "expires_at": now + RETENTION,
    }
    if len(packed) <= CHUNK_BYTES:
        header.set({**fields, "chunks": 0, "body": packed})
        return Stored(len(packed), 0)
    parts = [packed[i : i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)]
    client = _client()
    batch, in_batch = client.batch(), 0
    for n, part in enumerate(parts):
        if in_batch and in_batch + len(part) > BATCH_BYTES:
            batch.commit()
            batch, in_batch = client.batch(), 0
        ref = header.collection(CHUNKS).document(f"{n:04d}")
        batch.set(ref, {"data": part, "n": n, "expires_at": fields["expires_at"]})
        in_batch += len(part)
    batch.commit()
    header.set({**fields, "chunks": len(parts)})
    return Stored(len(packed), len(parts))


def load(delivery_id: str) -> tuple[bytes, str]:
    """The raw body of a stored delivery (checked against its SHA-256) and its content type."""
    header = _client().collection(COLLECTION).document(delivery_id)
    snap = header.get()
    if not snap.exists:
        raise RawDeliveryMissing(f"delivery {delivery_id} is not stored")
    doc = snap.to_dict() or {}
    chunks = int(doc.get("chunks") or 0)
    if chunks == 0:
        packed = bytes(doc.get("body") or b"")
    else:
        parts = sorted(
            (s.to_dict() or {} for s in header.collection(CHUNKS).stream()),
            key=lambda d: int(d.get("n", 0)),
        )
        if len(parts) != chunks:
            raise RawDeliveryMissing(f"delivery {delivery_id}: {len(parts)} of {chunks} chunks")
        packed = b"".join(bytes(p["data"]) for p in parts)
    body = zlib.decompress(packed) if doc.get("encoding") == ENCODING else packed
    if hashlib.sha256(body).hexdigest() != doc.get("sha256"):
        raise RawDeliveryMissing(f"delivery {delivery_id} does not match its checksum")
    return body, str(doc.get("content_type") or "application/json")


def headers(delivery_id: str) -> dict[str, Any] | None:
    """The header document without the body (what the API may show)."""
    snap = _client().collection(COLLECTION).document(delivery_id).get()
    if not snap.exists:
        return None
    doc = snap.to_dict() or {}
    doc.pop("body", None)
    return doc
