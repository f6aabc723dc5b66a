from __future__ import annotations

import dataclasses

import pytest

from streamsend.downloader.assembly import Assembly
from streamsend.shared.errors import ConflictError
from tests.support.records import chunks_of

DATA = bytes(range(256)) * 64  # 16384 bytes
CHUNKS = chunks_of(DATA, 4096)  # 4 chunks


def _assembly() -> Assembly:
    return Assembly(CHUNKS[0].header, first_offset=42)


def test_in_order_chunks_complete_the_file() -> None:
    assembly = _assembly()
    for chunk in CHUNKS:
        assert assembly.add(chunk.header)
        assert assembly.hashable() == [chunk.header.index]
        assembly.mark_hashed(chunk.header.index)
    assert assembly.complete
    assert assembly.received_bytes == len(DATA)
    assert assembly.digest == CHUNKS[-1].header.digest
    assert assembly.first_offset == 42


def test_an_exact_duplicate_is_ignored() -> None:
    assembly = _assembly()
    assert assembly.add(CHUNKS[0].header)
    assert not assembly.add(CHUNKS[0].header)
    assert assembly.received_count == 1 and assembly.received_bytes == 4096


def test_a_gap_holds_hashing_until_it_is_filled() -> None:
    assembly = _assembly()
    for index in (0, 2, 3):
        assembly.add(CHUNKS[index].header)
    assert assembly.hashable() == [0]
    assembly.mark_hashed(0)
    assert assembly.hashable() == []
    assert not assembly.complete  # final chunk came, but chunk 1 is missing
    assembly.add(CHUNKS[1].header)
    assert assembly.hashable() == [1, 2, 3]
    for index in (1, 2, 3):
        assembly.mark_hashed(index)
    assert assembly.complete


def test_out_of_order_arrival_hashes_in_file_order() -> None:
    assembly = _assembly()
    for index in (3, 1, 2):
        assembly.add(CHUNKS[index].header)
        assert assembly.hashable() == []
    assembly.add(CHUNKS[0].header)
    assert assembly.hashable() == [0, 1, 2, 3]


def test_hashing_out_of_turn_is_a_bug() -> None:
    assembly = _assembly()
    assembly.add(CHUNKS[1].header)
    with pytest.raises(ValueError, match="out of turn"):
        assembly.mark_hashed(1)


def test_all_chunks_without_the_final_digest_is_not_complete() -> None:
    single = chunks_of(b"abc", 4096)[0].header
    assembly = Assembly(dataclasses.replace(single, digest=None), 0)
    assembly.add(dataclasses.replace(single, digest=None))
    assembly.mark_hashed(0)
    assert not assembly.complete


@pytest.mark.parametrize("field", ["path", "file_size", "mtime_ns", "uploader"])
def test_a_chunk_describing_another_file_conflicts(field: str) -> None:
    assembly = _assembly()
    value: object = {"path": "other", "file_size": 99, "mtime_ns": 5, "uploader": "edge-2"}[field]
    with pytest.raises(ConflictError):
        assembly.add(dataclasses.replace(CHUNKS[1].header, **{field: value}))  # type: ignore[arg-type]


def test_spans_of_chunks() -> None:
    assembly = Assembly(chunks_of(b"x" * 10000, 4096)[0].header, 0)
    assert [assembly.span(i) for i in range(3)] == [(0, 4096), (4096, 4096), (8192, 1808)]
