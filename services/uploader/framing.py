"""How one upload's chunks become record values and headers: as they are (wire format 1), or sealed for the
recipients (wire format 2, ``shared/seal.py``). The reader calls ``value`` in its worker thread; the sender
calls ``header`` for each record. Both kinds answer the same calls, so the sending path has no branch."""

from __future__ import annotations

from typing import Protocol

from streamsend.shared.protocol import ChunkHeader, FileDigest, SealHeader, chunk_count
from streamsend.shared.seal import FileSeal, Sealer
from streamsend.uploader.planner import Span


class Framing(Protocol):
    wire_path: str

    def extra_bytes(self, final: bool) -> int:
        """How much longer than the chunk's bytes its record value is."""

    def value(self, span: Span, data: bytes, digest: FileDigest | None) -> bytes:
        """The record value of a chunk; ``digest`` (of the whole file) comes with the final chunk."""

    def header(self, span: Span, crc: int, digest: FileDigest | None) -> ChunkHeader:
        """The headers of a chunk whose value has CRC32C ``crc``."""


class _Geometry:
    def __init__(self, uploader: str, wire_path: str, upload_id: str, size: int, chunk_size: int, mtime_ns: int):
        self.wire_path = wire_path
        count = chunk_count(size, chunk_size)
        self._template = ChunkHeader(uploader, wire_path, upload_id, 0, count, chunk_size, 0, size, mtime_ns, 0)

    def _at(self, span: Span, crc: int, digest: FileDigest | None, seal: SealHeader | None) -> ChunkHeader:
        # Built field by field: dataclasses.replace costs several times more, once or twice a file.
        t = self._template
        return ChunkHeader(t.uploader, t.path, t.upload_id, span.index, t.count, t.chunk_size, span.offset,
                           t.file_size, t.mtime_ns, crc, digest, seal)  # fmt: skip


class PlainFraming(_Geometry):
    def extra_bytes(self, final: bool) -> int:
        return 0

    def value(self, span: Span, data: bytes, digest: FileDigest | None) -> bytes:
        return data

    def header(self, span: Span, crc: int, digest: FileDigest | None) -> ChunkHeader:
        return self._at(span, crc, digest, None)


class SealedFraming(_Geometry):
    def __init__(self, seal: FileSeal, uploader: str, upload_id: str, size: int, chunk_size: int, mtime_ns: int):
        super().__init__(uploader, seal.wire_path, upload_id, size, chunk_size, mtime_ns)
        self._seal = seal
        self._header = seal.for_file(self._template)

    def extra_bytes(self, final: bool) -> int:
        return self._seal.extra_bytes(final)

    def value(self, span: Span, data: bytes, digest: FileDigest | None) -> bytes:
        return self._seal.seal(self.header(span, 0, None), data, digest)

    def header(self, span: Span, crc: int, digest: FileDigest | None) -> ChunkHeader:
        return self._at(span, crc, None, self._header)  # the digests travel sealed


def framing_for(
    sealer: Sealer | None, uploader: str, path: str, upload_id: str, size: int, chunk_size: int, mtime_ns: int
) -> Framing:
    if sealer is None:
        return PlainFraming(uploader, path, upload_id, size, chunk_size, mtime_ns)
    return SealedFraming(sealer.file(uploader, path, upload_id), uploader, upload_id, size, chunk_size, mtime_ns)
