"""source's raw-delivery packing, no I/O: the body compressed in parallel segments is one
ordinary zlib stream (what `zlib.decompress` and the ingest read), whatever its size and
wherever the segment boundaries fall, at the ratio of a single stream; the retention rule in
the manifest is rawstore's."""

from __future__ import annotations

import json
import os
import random
import zlib
from datetime import timedelta

import pytest

from functions.source import rawstore
from shared.manifests import load

SEG = rawstore.SEGMENT_BYTES


@pytest.mark.parametrize("size", [0, 1, 100, 32 * 1024, SEG - 1, SEG, SEG + 1, 3 * SEG + 12345])
@pytest.mark.parametrize("kind", ["random", "text"])
def test_the_parallel_stream_decompresses_to_the_body(size, kind):
    if kind == "random":
        body = os.urandom(size)
    else:
        body = (b"refs/heads/main modified src/app.py " * (size // 36 + 1))[:size]
    packed = rawstore.compress(body)
    assert packed[:2] == b"\x78\x01"  # a zlib header (deflate, 32 KiB window, fastest)
    assert zlib.decompress(packed) == body
    # the trailer is the Adler-32 of the whole body, so a corrupt part is caught
    assert int.from_bytes(packed[-4:], "big") == zlib.adler32(body)


def test_a_segment_boundary_inside_a_repeated_run_still_decompresses():
    rng = random.Random(3)
    unit = bytes(rng.getrandbits(8) for _ in range(5000))
    body = os.urandom(SEG - 2500) + unit * 400  # the repeats straddle the first boundary
    assert zlib.decompress(rawstore.compress(body)) == body


def test_segments_keep_the_ratio_of_one_stream():
    rng = random.Random(7)
    commits = [
        {
            "id": f"{rng.getrandbits(160):040x}",
            "message": f"fix(api): handle case {i}",
            "modified": [f"src/module_{i % 40}/file_{j}.py" for j in range(30)],
        }
        for i in range(6000)
    ]
    body = json.dumps({"commits": commits}).encode()
    assert len(body) > 4 * SEG
    parallel, single = rawstore.compress(body), zlib.compress(body, rawstore.LEVEL)
    assert len(parallel) <= len(single) * 1.02


def test_the_manifest_retention_rule_is_the_raw_store():
    (source,) = [c for c in load().contexts if c.name == "source"]
    (rule,) = source.retention
    assert rule.collection == rawstore.COLLECTION
    assert rule.timestamp_field == "received_at"  # written by intake into every header
    assert timedelta(days=rule.keep_days) == rawstore.RETENTION
