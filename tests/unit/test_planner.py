from __future__ import annotations

import pytest

from streamsend.shared.errors import ChunkSizeError
from streamsend.uploader.planner import (
    ALIGN_BYTES,
    AUTO_MAX_CHUNK,
    HEADROOM_BYTES,
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    choose_chunk_size,
    partition_for,
    spans,
)

CHUNK = 4096


@pytest.mark.parametrize(
    ("size", "lengths"),
    [
        (0, [0]),
        (1, [1]),
        (CHUNK - 1, [CHUNK - 1]),
        (CHUNK, [CHUNK]),
        (CHUNK + 1, [CHUNK, 1]),
        (2 * CHUNK, [CHUNK, CHUNK]),
        (10 * CHUNK + 7, [CHUNK] * 10 + [7]),
    ],
)
def test_spans_at_chunk_boundaries(size: int, lengths: list[int]) -> None:
    planned = list(spans(size, CHUNK))
    assert [s.length for s in planned] == lengths
    assert [s.index for s in planned] == list(range(len(lengths)))
    assert [s.offset for s in planned] == [i * CHUNK for i in range(len(lengths))]


def test_many_chunks_cover_the_file_exactly() -> None:
    size = 1_000_000_007
    planned = spans(size, 1_040_384)
    total = 0
    for span in planned:
        assert span.offset == total
        total += span.length
    assert total == size


def test_automatic_chunk_size_fills_the_limit_minus_headroom() -> None:
    choice = choose_chunk_size(0, None, 1_048_588)
    assert choice.limit == 1_048_588 and choice.limit_name == "message.max.bytes"
    assert choice.chunk_size % ALIGN_BYTES == 0
    assert choice.limit - HEADROOM_BYTES - ALIGN_BYTES < choice.chunk_size <= choice.limit - HEADROOM_BYTES
    assert choice.describe() == f"chunk size {choice.chunk_size} (99% of message.max.bytes 1048588)"


def test_the_automatic_choice_stops_at_one_mebibyte_where_the_broker_allows_more() -> None:
    choice = choose_chunk_size(0, 32 * 1024 * 1024, None)
    assert choice.chunk_size == AUTO_MAX_CHUNK == 1024 * 1024
    assert choose_chunk_size(8 * 1024 * 1024, 32 * 1024 * 1024, None).chunk_size == 8 * 1024 * 1024  # if asked


def test_the_topic_limit_overrides_the_brokers_smaller_or_larger() -> None:
    choice = choose_chunk_size(0, 524_288, 1_048_588)
    assert (choice.limit, choice.limit_name, choice.limits_known) == (524_288, "max.message.bytes", True)
    larger = choose_chunk_size(8 * 1024 * 1024, 32 * 1024 * 1024, 1_048_588)
    assert (larger.chunk_size, larger.limit, larger.limit_name) == (
        8 * 1024 * 1024,
        32 * 1024 * 1024,
        "max.message.bytes",
    )


def test_unreadable_limits_fall_back_to_kafkas_default() -> None:
    choice = choose_chunk_size(0, None, None)
    assert choice.limit == KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    assert not choice.limits_known


def test_configured_chunk_size_is_kept_when_it_fits() -> None:
    assert choose_chunk_size(65_536, None, None).chunk_size == 65_536


def test_configured_chunk_size_above_the_limit_is_refused() -> None:
    with pytest.raises(ChunkSizeError, match="chunk_size 1048576 exceeds"):
        choose_chunk_size(1_048_576, None, 1_048_588)


def test_a_limit_too_small_for_any_chunk_is_refused() -> None:
    with pytest.raises(ChunkSizeError, match="leaves no room"):
        choose_chunk_size(0, 10_000, None)


def test_every_upload_of_a_path_goes_to_one_partition() -> None:
    first = partition_for("edge-1", "a/b.txt", 6)
    assert all(partition_for("edge-1", "a/b.txt", 6) == first for _ in range(5))
    assert 0 <= first < 6
    assert len({partition_for("edge-1", f"file-{i}", 6) for i in range(200)}) == 6
