"""source's raw deliveries in the Firestore emulator: bodies of every size stored and read
back (chunked ones too), deliveries stored by the earlier single-stream writer still read, and
the retention rule the source manifest declares applied by ops' cleanup: an old delivery goes
with its chunk subcollection (batched, children first), a recent one stays whole."""

from __future__ import annotations

import hashlib
import os
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from functions.ops import service as ops
from functions.source import rawstore
from shared import clients
from tests.integration.support import configure


def now() -> datetime:
    """Asked each time: a module constant goes stale in a suite that runs for many minutes."""
    return datetime.now(UTC)


@pytest.fixture(autouse=True)
def env(monkeypatch, firestore_emulator, tmp_path):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    clients.firestore.cache_clear()


def header(delivery_id):
    return clients.firestore().collection(rawstore.COLLECTION).document(delivery_id)


def chunk_ids(delivery_id):
    return sorted(d.id for d in header(delivery_id).collection(rawstore.CHUNKS).list_documents())


def save(body, *, received_at=None):
    received_at = received_at or now()
    delivery_id = f"raw-{uuid.uuid4()}"
    meta = {"event": "push", "content_type": "application/json", "received_at": received_at}
    return delivery_id, rawstore.save(delivery_id, body, meta=meta)


@pytest.mark.parametrize("size", [0, 2_000, 3_000_000, 9_000_000])
def test_bodies_of_every_size_are_stored_and_read_back(size):
    body = os.urandom(size // 2).hex().encode()  # half the entropy: compresses ~1.7x
    delivery_id, stored = save(body)
    assert stored.chunks == len(chunk_ids(delivery_id))
    assert (stored.chunks == 0) == (stored.stored_bytes <= rawstore.CHUNK_BYTES)
    assert rawstore.load(delivery_id) == (body, "application/json")
    doc = header(delivery_id).get().to_dict()
    assert doc["size_bytes"] == len(body) and doc["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_delivery_written_as_one_zlib_stream_still_reads():
    # what rawstore wrote before the parallel compression: zlib.compress over the whole body
    body = os.urandom(1_500_000)
    packed = zlib.compress(body, 1)
    delivery_id = f"raw-{uuid.uuid4()}"
    parts = [packed[i : i + rawstore.CHUNK_BYTES] for i in range(0, len(packed), 900 * 1024)]
    for n, part in enumerate(parts):
        header(delivery_id).collection(rawstore.CHUNKS).document(f"{n:04d}").set(
            {"data": part, "n": n}
        )
    header(delivery_id).set(
        {
            "encoding": "zlib",
            "chunks": len(parts),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_type": "application/json",
        }
    )
    assert rawstore.load(delivery_id) == (body, "application/json")


def test_retention_removes_old_deliveries_with_their_chunks():
    (rule,) = [r for r in ops.rules() if r.kind == "webhook_deliveries"]
    assert (rule.collection, rule.context) == (rawstore.COLLECTION, "source")
    big = os.urandom(2_500_000)  # incompressible: three chunk documents
    old_big, stored = save(big, received_at=now() - timedelta(days=rule.keep.days + 5))
    old_small, _ = save(b'{"zen": "old"}', received_at=now() - timedelta(days=rule.keep.days + 1))
    recent, _ = save(big, received_at=now() - timedelta(days=rule.keep.days - 1))
    assert stored.chunks == 3 and len(chunk_ids(old_big)) == 3

    dry = ops.cleanup_database(kinds=["webhook_deliveries"])
    assert dry.results[0].matched >= 2 and dry.results[0].removed == 0
    assert header(old_big).get().exists and len(chunk_ids(old_big)) == 3

    done = ops.cleanup_database(dry_run=False, kinds=["webhook_deliveries"])
    assert done.results[0].removed >= 2
    for gone in (old_big, old_small):
        assert not header(gone).get().exists
        assert chunk_ids(gone) == []  # the subcollection went with its parent
    assert chunk_ids(recent) == ["0000", "0001", "0002"]
    assert rawstore.load(recent) == (big, "application/json")
