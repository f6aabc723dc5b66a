"""One file from the input tree to acknowledged chunk records, with the progress lines users know:

video.avi: 100000000 bytes, creating 96 1044480-byte chunks
video.avi (00001 of 00096) chunk uploaded
video.avi: Successfully processed. sha256 … md5 …
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamsend.shared.protocol import ChunkHeader, chunk_count, encode, record_key
from streamsend.uploader.delivery import Courier, OutgoingRecord
from streamsend.uploader.ledger import SentFile
from streamsend.uploader.planner import partition_for, spans
from streamsend.uploader.reader import ChunkReader
from streamsend.uploader.readiness import FileState

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


class Interrupted(Exception):
    """Shutdown began while a file was being sent: what was handed to Kafka is drained, the rest not read."""


@dataclass(frozen=True, slots=True)
class ReadyFile:
    path: Path
    wire_path: str
    state: FileState
    sent_before: bool = False  # sent already as it is: only after_upload is left to do


class Progress:
    """Logs the first and last chunk of a file, and one line every few seconds in between."""

    def __init__(self, name: str, count: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._count = count
        self._clock = clock
        self._started = clock()
        self._last_report = self._started
        self.acked = 0
        self.acked_bytes = 0

    def ack(self, record: OutgoingRecord) -> None:
        self.acked += 1
        self.acked_bytes += len(record.value)
        now = self._clock()
        width = max(5, len(str(self._count)))
        line = f"{self._name} ({record.index + 1:0{width}d} of {self._count:0{width}d}) chunk uploaded"
        if self._count == 1:
            log.info("%s", line)
        elif self.acked in (1, self._count) or now - self._last_report >= PROGRESS_EVERY_S:
            self._last_report = now
            elapsed = max(now - self._started, 1e-6)
            log.info(
                "%s, %d%% done, %.1f MB/s", line, 100 * self.acked // self._count, self.acked_bytes / elapsed / 1e6
            )
        else:
            log.debug("%s", line)


class FileSender:
    def __init__(
        self,
        *,
        uploader: str,
        chunk_size: int,
        partitions: Callable[[], int],
        courier: Courier,
        stop: asyncio.Event,
        on_chunk: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._uploader = uploader
        self._chunk_size = chunk_size
        self._partitions = partitions
        self._courier = courier
        self._stop = stop
        self._on_chunk = on_chunk

    async def send(self, ready: ReadyFile, lane: int) -> SentFile:
        """Send every chunk and wait for all acknowledgements; FileChangedError if the file moved under us."""
        name, size, chunk_size = ready.wire_path, ready.state.size, self._chunk_size
        upload_id = uuid.uuid4().hex
        count = chunk_count(size, chunk_size)
        partition = partition_for(self._uploader, name, self._partitions())
        log.info("%s: %d bytes, creating %d %d-byte chunks", name, size, count, chunk_size)
        progress = Progress(name, count)

        def acked(record: OutgoingRecord) -> None:
            progress.ack(record)
            self._on_chunk(len(record.value))

        async with ChunkReader(ready.path, ready.state) as reader, self._courier.file(lane, acked) as delivery:
            for span in spans(size, chunk_size):
                if self._stop.is_set():
                    raise Interrupted(f"interrupted by shutdown after {span.index} of {count} chunks")
                data, crc = await reader.read(span)
                final = span.index == count - 1
                if final:
                    await reader.verify_unchanged()
                header = ChunkHeader(
                    uploader=self._uploader,
                    path=name,
                    upload_id=upload_id,
                    index=span.index,
                    count=count,
                    chunk_size=chunk_size,
                    offset=span.offset,
                    file_size=size,
                    mtime_ns=ready.state.mtime_ns,
                    crc32c=crc,
                    digest=reader.digest() if final else None,
                )
                await delivery.send(OutgoingRecord(record_key(upload_id), data, encode(header), partition, span.index))
            digest = reader.digest()
        log.info("%s: Successfully processed. sha256 %s md5 %s", name, digest.sha256, digest.md5)
        return SentFile(
            path=name,
            size=size,
            mtime_ns=ready.state.mtime_ns,
            sha256=digest.sha256,
            md5=digest.md5,
            upload_id=upload_id,
            sent_at=time.time(),
        )
