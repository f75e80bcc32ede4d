"""Raw GitHub deliveries in Firestore (`source_deliveries`), whatever their size.

A Firestore document holds at most 1 MiB and a commit request at most 10 MiB, while GitHub
sends up to 25 MB. So the body is stored compressed (zlib, level 1: JSON shrinks 5-20x) and,
when the compressed form is still over `CHUNK_BYTES`, split into chunk documents
`source_deliveries/{id}/chunks/{n:04d}` written in batches of at most `BATCH_BYTES` (3 MiB);
the header document `source_deliveries/{id}` (headers, sizes, SHA-256 of the raw body, the
number of chunks, and the body itself when it fits) is written last, so a reader that finds
the header finds every chunk. Writing again (a retried request) rewrites the same content.

The webhook answers while GitHub waits (10 s at most), so the work runs in parallel: the body
is compressed in `SEGMENT_BYTES` segments on a small thread pool (zlib and hashlib release
the GIL), each segment a raw deflate run ended by a sync flush, which joined under a zlib
header and the body's Adler-32 make one ordinary zlib stream; the SHA-256 is taken
meanwhile, and the chunk batches are committed concurrently. `load` reads this and the
single-stream form of earlier deliveries alike: they are the same format.
docs/decisions/0025-webhook-intake-and-raw-deliveries.md,
docs/decisions/0043-webhook-intake-under-a-second-and-delivery-retention.md.
"""

from __future__ import annotations

import hashlib
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

COLLECTION = "source_deliveries"
CHUNKS = "chunks"
CHUNK_BYTES = 900 * 1024  # under the 1 MiB document limit, with room for the field names
# Firestore takes 10 MiB per commit request, but gRPC messages are capped at 4 MiB by the
# emulator (and by default clients): batches stay under both.
BATCH_BYTES = 3 * 1024 * 1024
RETENTION = timedelta(days=30)  # Firestore TTL on `expires_at`
ENCODING = "zlib"
LEVEL = 1
SEGMENT_BYTES = 1024 * 1024  # raw bytes compressed as one task
WORKERS = 4
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, fastest level (RFC 1950)


@dataclass(frozen=True)
class Stored:
    stored_bytes: int
    chunks: int


class RawDeliveryMissing(RuntimeError):
    """The header or a chunk of a delivery is not (yet) in Firestore, or does not match."""


def _client() -> Any:
    from shared.clients import firestore

    return firestore()


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="rawstore")


def _deflate(body: memoryview, start: int, end: int) -> bytes:
    """Segment [start, end) as raw deflate, ended by a sync flush (byte-aligned, not final)
    or, for the last segment, by the final block. Segments do not refer back into the one
    before (priming with it, as pigz does, gains under 0.1% at this segment size)."""
    z = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    out = z.compress(body[start:end])
    return out + z.flush(zlib.Z_FINISH if end >= len(body) else zlib.Z_SYNC_FLUSH)


@dataclass(frozen=True)
class Packed:
    """A body being compressed and hashed on the pool (`pack`); `save` waits for it."""

    size_bytes: int
    segments: list[Future[bytes]]
    adler32: Future[int]
    sha256: Future[str]

    def compressed(self) -> bytes:
        """One zlib stream: header, the segments' deflate runs, the Adler-32 of the body."""
        runs = [f.result() for f in self.segments]
        return b"".join([_ZLIB_HEADER, *runs, self.adler32.result().to_bytes(4, "big")])


def pack(body: bytes) -> Packed:
    """Start compressing `body` (SEGMENT_BYTES a task) and taking its checksums, in the
    background: the caller goes on (verifying the signature) meanwhile."""
    view = memoryview(body)
    pool = _pool()
    ends = range(SEGMENT_BYTES, len(body) + SEGMENT_BYTES, SEGMENT_BYTES)
    segments = [
        pool.submit(_deflate, view, end - SEGMENT_BYTES, min(end, len(body))) for end in ends
    ]
    return Packed(
        size_bytes=len(body),
        segments=segments or [pool.submit(_deflate, view, 0, 0)],
        adler32=pool.submit(zlib.adler32, body),
        sha256=pool.submit(lambda: hashlib.sha256(body).hexdigest()),
    )


def compress(body: bytes) -> bytes:
    """`body` as one zlib stream (what `zlib.decompress` reads), compressed in parallel."""
    return pack(body).compressed()


def save(delivery_id: str, body: bytes | Packed, *, meta: dict[str, Any]) -> Stored:
    """Store `body` (see module doc), or the body `pack` is compressing; `meta` goes into
    the header document."""
    started = body if isinstance(body, Packed) else pack(body)
    packed = started.compressed()
    header = _client().collection(COLLECTION).document(delivery_id)
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        **meta,
        "size_bytes": started.size_bytes,
        "stored_bytes": len(packed),
        "encoding": ENCODING,
        "sha256": started.sha256.result(),
        "stored_at": now,
        "expires_at": now + RETENTION,
    }
    if len(packed) <= CHUNK_BYTES:
        header.set({**fields, "chunks": 0, "body": packed})
        return Stored(len(packed), 0)
    view = memoryview(packed)
    parts = [view[i : i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)]
    client = _client()
    pending: list[Future[Any]] = []
    batch, in_batch = client.batch(), 0
    for n, part in enumerate(parts):
        if in_batch and in_batch + len(part) > BATCH_BYTES:
            pending.append(_pool().submit(batch.commit))
            batch, in_batch = client.batch(), 0
        ref = header.collection(CHUNKS).document(f"{n:04d}")
        batch.set(ref, {"data": bytes(part), "n": n, "expires_at": fields["expires_at"]})
        in_batch += len(part)
    pending.append(_pool().submit(batch.commit))
    for done in pending:  # every chunk is written before the header names them
        done.result()
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
