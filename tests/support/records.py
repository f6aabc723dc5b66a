"""Chunk records made by hand, for tests that feed the downloader directly."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass

from streamsend.shared.protocol import ChunkHeader, FileDigest, Headers, chunk_count, crc32c, encode
from streamsend.shared.seal import Sealer


@dataclass(frozen=True)
class Chunk:
    header: ChunkHeader
    value: bytes

    @property
    def headers(self) -> Headers:
        return encode(self.header)


def chunks_of(
    data: bytes,
    chunk_size: int,
    *,
    path: str = "file.bin",
    uploader: str = "edge-1",
    upload_id: str | None = None,
    mtime_ns: int = 1_700_000_000_000_000_000,
    digest: FileDigest | None = None,
) -> list[Chunk]:
    """The chunk records the uploader would send for ``data``; ``digest`` overrides the true one."""
    upload_id = upload_id or uuid.uuid4().hex
    count = chunk_count(len(data), chunk_size)
    true_digest = FileDigest(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())
    chunks = []
    for index in range(count):
        value = data[index * chunk_size : (index + 1) * chunk_size]
        header = ChunkHeader(
            uploader=uploader,
            path=path,
            upload_id=upload_id,
            index=index,
            count=count,
            chunk_size=chunk_size,
            offset=index * chunk_size,
            file_size=len(data),
            mtime_ns=mtime_ns,
            crc32c=crc32c(value),
            digest=(digest or true_digest) if index == count - 1 else None,
        )
        chunks.append(Chunk(header, value))
    return chunks


def sealed_chunks_of(
    data: bytes,
    chunk_size: int,
    sealer: Sealer,
    *,
    path: str = "file.bin",
    uploader: str = "edge-1",
    upload_id: str | None = None,
    mtime_ns: int = 1_700_000_000_000_000_000,
) -> list[Chunk]:
    """The sealed chunk records an uploader with ``sealer`` would send for ``data``."""
    upload_id = upload_id or uuid.uuid4().hex
    seal = sealer.file(uploader, path, upload_id)
    digest = FileDigest(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())
    chunks = []
    for plain in chunks_of(data, chunk_size, path=seal.wire_path, uploader=uploader, upload_id=upload_id,
                           mtime_ns=mtime_ns):  # fmt: skip
        template = dataclasses.replace(plain.header, digest=None)
        header = dataclasses.replace(template, seal=seal.for_file(template))
        value = seal.seal(header, plain.value, digest if header.is_final else None)
        chunks.append(Chunk(dataclasses.replace(header, crc32c=crc32c(value)), value))
    return chunks
