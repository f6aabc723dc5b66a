"""Chunk geometry: the chunk size a broker allows, the spans of a file, and the partition of a path."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from streamsend.shared.errors import ChunkSizeError
from streamsend.shared.protocol import MAX_CHUNK_SIZE, chunk_count

KAFKA_DEFAULT_MAX_MESSAGE_BYTES: Final = 1048588  # Kafka's default message.max.bytes and max.message.bytes
# Record and batch framing plus the headers, whose path may take up to MAX_PATH_BYTES.
HEADROOM_BYTES: Final = 8192
ALIGN_BYTES: Final = 4096  # whole pages: reads and writes stay page-aligned
# The automatic choice stops here even where the broker allows more: in the benchmark sweep, 1 MiB chunks
# moved 134 MB/s where 31 MiB chunks moved 85 MB/s and tripled the daemons' memory (fewer, longer requests
# leave the pipeline idle between them, and each chunk in flight is held whole).
AUTO_MAX_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChunkSizeChoice:
    chunk_size: int
    limit: int
    limit_name: str  # which setting the limit comes from, for the start-up log
    limits_known: bool

    def describe(self) -> str:
        share = 100 * self.chunk_size // self.limit
        return f"chunk size {self.chunk_size} ({share}% of {self.limit_name} {self.limit})"


def choose_chunk_size(
    configured: int, topic_max: int | None, broker_max: int | None, overhead: int = 0
) -> ChunkSizeChoice:
    """The configured chunk size checked against the limits, or, when it is 0, the largest that fits them, up
    to ``AUTO_MAX_CHUNK``. ``overhead`` is what sealing may add to a record, on top of the usual headroom.

    The limit in force is the topic's ``max.message.bytes``: it overrides the broker's ``message.max.bytes``,
    larger or smaller, and the broker reports the value it inherits where the topic sets none. The broker's
    value counts only where the topic's cannot be read; where neither can, Kafka's default.
    """
    known = [(value, name) for value, name in ((topic_max, "max.message.bytes"), (broker_max, "message.max.bytes"))
             if value is not None]  # fmt: skip
    limit, name = known[0] if known else (KAFKA_DEFAULT_MAX_MESSAGE_BYTES, "Kafka's default max.message.bytes")
    headroom = HEADROOM_BYTES + overhead
    largest = min(MAX_CHUNK_SIZE, limit - headroom)
    if largest < ALIGN_BYTES:
        raise ChunkSizeError(f"{name} {limit} leaves no room for a chunk after {headroom} bytes of headers")
    if configured == 0:
        chunk_size = min(largest, AUTO_MAX_CHUNK) // ALIGN_BYTES * ALIGN_BYTES
    elif configured > largest:
        raise ChunkSizeError(
            f"chunk_size {configured} exceeds {largest}: {name} {limit} minus {headroom} bytes for headers"
        )
    else:
        chunk_size = configured
    return ChunkSizeChoice(chunk_size=chunk_size, limit=limit, limit_name=name, limits_known=bool(known))


@dataclass(frozen=True, slots=True)
class Span:
    index: int
    offset: int
    length: int


def spans(file_size: int, chunk_size: int, start: int = 0) -> Iterator[Span]:
    """The chunks of a file in order, from chunk ``start``; an empty file is one empty chunk."""
    for index in range(start, chunk_count(file_size, chunk_size)):
        offset = index * chunk_size
        yield Span(index, offset, min(chunk_size, file_size - offset))


def partition_for(uploader: str, path: str, partitions: int) -> int:
    """Every upload of one path goes to one partition, so a newer attempt always follows an older one."""
    return zlib.crc32(f"{uploader}/{path}".encode()) % partitions
