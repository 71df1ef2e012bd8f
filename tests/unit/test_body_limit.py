"""Bodies from servers we do not control are read within a limit, received and decompressed."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from cds.body_limit import BodyLimit, BodyTooLarge, BodyUndecodable
from tests.hardening.fhir_faults import gzip_bomb

MB = 1024 * 1024


def _feed(limit: BodyLimit, data: bytes, chunk: int = 64 * 1024) -> bytes:
    for start in range(0, len(data), chunk):
        limit.feed(data[start : start + chunk])
    return limit.body()


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        (None, b'{"keys": []}'),
        ("identity", b'{"keys": []}'),
        ("gzip", gzip.compress(b'{"keys": []}', mtime=0)),
        ("deflate", zlib.compress(b'{"keys": []}')),
    ],
)
def test_a_body_within_the_limit_comes_back_decoded(encoding: str | None, packed: bytes) -> None:
    assert _feed(BodyLimit(encoding, 1024), packed) == b'{"keys": []}'


def test_a_gzip_bomb_stops_at_the_limit_without_growing_in_memory() -> None:
    bomb = gzip_bomb(100)  # 100 MB of spaces in about 100 KB
    assert len(bomb) < MB
    limit = BodyLimit("gzip", MB)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="after decompression"):
            _feed(limit, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert limit.decoded <= MB + 1
    assert peak < 4 * MB  # the limit and a chunk, never the 100 MB


def test_too_many_bytes_received_stop_at_the_limit() -> None:
    with pytest.raises(BodyTooLarge, match="received"):
        _feed(BodyLimit(None, MB), b" " * (2 * MB))


@pytest.mark.parametrize(
    ("encoding", "data"),
    [("br", b"\x00"), ("gzip", b"not gzip at all"), ("deflate", b"\x78\x9c broken")],
)
def test_unknown_or_damaged_encodings_are_refused(encoding: str, data: bytes) -> None:
    with pytest.raises(BodyUndecodable):
        _feed(BodyLimit(encoding, MB), data)
