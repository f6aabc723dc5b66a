"""Bookkeeping of one upload attempt being rebuilt: which chunks arrived, which are hashed, what to expect.

Chunks may arrive twice (producer retries without idempotence) or out of order (a chunk re-sent after a
timeout). Every chunk is written to its place in the staging file as it comes; the whole-file hashes
advance over the longest run of chunks received from the start, reading back from disk any chunk that
arrived ahead of its turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamsend.shared.errors import ConflictError
from streamsend.shared.protocol import ChunkHeader, FileDigest


@dataclass(frozen=True, slots=True)
class FileDescription:
    uploader: str
    path: str
    upload_id: str
    file_size: int
    count: int
    chunk_size: int
    mtime_ns: int

    @classmethod
    def of(cls, header: ChunkHeader) -> FileDescription:
        return cls(
            uploader=header.uploader,
            path=header.path,
            upload_id=header.upload_id,
            file_size=header.file_size,
            count=header.count,
            chunk_size=header.chunk_size,
            mtime_ns=header.mtime_ns,
        )


class Assembly:
    """Which chunks of one upload arrived and are hashed, and the digests its final chunk announced; owned by the
    Receiver's build of the upload. Pure bookkeeping."""

    def __init__(self, first: ChunkHeader, first_offset: int) -> None:
        self.file = FileDescription.of(first)
        self.first_offset = first_offset  # Kafka offset of the first record seen: commits stay at or before it
        self._first = first
        self._received = bytearray(first.count)  # one byte a chunk: 10 KB for a 10 GB file of 1 MB chunks
        self.received_count = 0
        self.received_bytes = 0
        self.hashed = 0  # chunks [0, hashed) are folded into the whole-file hashes
        self.digest: FileDigest | None = None

    def check(self, header: ChunkHeader) -> None:
        """ConflictError unless the chunk describes the same file as the first one seen."""
        if not header.same_file(self._first):
            raise ConflictError(f"chunk {header.index} of upload {header.upload_id} describes a different file")

    def has(self, index: int) -> bool:
        return bool(self._received[index])

    def add(self, header: ChunkHeader) -> bool:
        """Record a chunk's arrival (once it is on disk); False for an exact duplicate."""
        self.check(header)
        if self._received[header.index]:
            return False
        self._received[header.index] = 1
        self.received_count += 1
        self.received_bytes += header.length
        if header.digest is not None:
            self.digest = header.digest
        return True

    def hashable(self) -> list[int]:
        """Received chunks that can be hashed next, in order; ``mark_hashed`` each once it is."""
        end = self.hashed
        while end < self.file.count and self._received[end]:
            end += 1
        return list(range(self.hashed, end))

    def mark_hashed(self, index: int) -> None:
        if index != self.hashed:
            raise ValueError(f"chunk {index} hashed out of turn (next is {self.hashed})")
        self.hashed += 1

    @property
    def complete(self) -> bool:
        """Every chunk is on disk and hashed, and the final chunk has told the expected digests."""
        return self.hashed == self.file.count and self.digest is not None

    def span(self, index: int) -> tuple[int, int]:
        """Byte offset and length of a chunk."""
        offset = index * self.file.chunk_size
        return offset, min(self.file.chunk_size, self.file.file_size - offset)
