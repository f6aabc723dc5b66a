"""Reading a file chunk by chunk while hashing it, and noticing when it changes underneath.

A file is opened without following symlinks and without blocking (a FIFO swapped in after the scan is
never waited on), checked against the state that made it ready, and checked again as its last chunk is
read: a file that changed is abandoned for this attempt.

``chunks()`` reads one chunk ahead: while a chunk is handed to Kafka, the next is read and hashed in a
worker thread. Each chunk's bytes are reserved in the byte budget before it is read, so read-ahead counts
towards ``max_in_flight_bytes`` like everything else. A chunk becomes its record value (sealed, for
encrypted uploads) in the same worker thread, through the upload's ``Framing``. Opening (with its check),
and each chunk's read with its hashing (and, for the last, the final check), are one thread hop each: for
the many-small-files case, hops are most of the cost. aiofiles is not used here for that reason: its read
and close would add hops.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from streamsend.shared.errors import FileChangedError
from streamsend.shared.protocol import FileDigest, crc32c
from streamsend.uploader.budget import ByteBudget, Reservation
from streamsend.uploader.files import FileState, state_of
from streamsend.uploader.framing import Framing
from streamsend.uploader.planner import Span

REHASH_BLOCK = 8 * 1024 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class _AsItIs:
    """The bytes as they are read (for callers that frame nothing)."""

    def extra_bytes(self, final: bool) -> int:
        return 0

    def value(self, span: Span, data: bytes, digest: FileDigest | None) -> bytes:
        return data


class ChunkReader:
    """One file being read: owns its descriptor, its running hashes and the chunk read ahead. Made by FileSender
    for each file."""

    def __init__(self, path: Path, expected: FileState, budget: ByteBudget, framing: Framing | None = None) -> None:
        self._path = path
        self._expected = expected
        self._budget = budget
        self._framing: Framing | _AsItIs = framing if framing is not None else _AsItIs()
        self._fd: int | None = None
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)

    async def __aenter__(self) -> ChunkReader:
        self._fd = await asyncio.to_thread(self._open)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # a regular file's close does not block
            self._fd = None

    def _open(self) -> int:
        return _open_checked(self._path, self._expected)

    async def rehash(self, length: int) -> None:
        """Fold the file's first ``length`` bytes into its digests without sending them: a resumed upload's
        chunks already on the topic. Read at disk speed in large blocks, outside the byte budget."""
        fd = self._fd
        assert fd is not None

        def read() -> None:
            done = 0
            while done < length:
                data = os.pread(fd, min(REHASH_BLOCK, length - done), done)
                if not data:
                    raise FileChangedError(f"truncated: ends at byte {done}")
                self._sha256.update(data)
                self._md5.update(data)
                done += len(data)

        await asyncio.to_thread(read)

    async def chunks(self, spans: Iterable[Span]) -> AsyncGenerator[tuple[Span, bytes, int, Reservation]]:
        """Every chunk's record value in order with its CRC32C and its reservation in the budget (the caller
        hands the reservation on with the record, or releases it); the next chunk is read while this one is
        sent."""
        planned = list(spans)
        ahead: asyncio.Task[tuple[bytes, int, Reservation]] | None = None
        try:
            for position, span in enumerate(planned):
                if ahead is None:
                    ahead = asyncio.create_task(self._reserve_and_read(span, position == len(planned) - 1))
                data, crc, reservation = await ahead
                ahead = None
                if position + 1 < len(planned):
                    following = planned[position + 1]
                    ahead = asyncio.create_task(self._reserve_and_read(following, position + 2 == len(planned)))
                yield span, data, crc, reservation
        finally:
            if ahead is not None:  # a chunk being read ahead, never to be handed out: stop it, free its bytes
                ahead.cancel()
                await asyncio.wait({ahead})  # our own cancellation, if any, still comes through here
                if not ahead.cancelled() and ahead.exception() is None:
                    ahead.result()[2].release()  # it had finished: a failed or cancelled one freed its own

    async def _reserve_and_read(self, span: Span, last: bool) -> tuple[bytes, int, Reservation]:
        reservation = await self._budget.reserve(span.length + self._framing.extra_bytes(last))  # the value's size
        try:
            data, crc = await asyncio.to_thread(self._read, span, last)
        except BaseException:
            reservation.release()
            raise
        return data, crc, reservation

    def _read(self, span: Span, last: bool) -> tuple[bytes, int]:
        fd = self._fd
        assert fd is not None
        data = os.pread(fd, span.length, span.offset)
        while len(data) < span.length:  # a short read from a slow filesystem: read on, or EOF
            more = os.pread(fd, span.length - len(data), span.offset + len(data))
            if not more:
                raise FileChangedError(f"truncated: chunk {span.index} ends at byte {span.offset + len(data)}")
            data += more
        if last:  # the open file must still show the state that was found static
            _check(os.fstat(fd), self._expected)
        self._sha256.update(data)
        self._md5.update(data)
        value = self._framing.value(span, data, self.digest() if last else None)
        return value, crc32c(value)

    def digest(self) -> FileDigest:
        return FileDigest(sha256=self._sha256.hexdigest(), md5=self._md5.hexdigest())


def _open_checked(path: Path, expected: FileState) -> int:
    """Open without following symlinks or blocking, and check it is still the file found static."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise FileChangedError("gone before it could be read") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileChangedError("replaced by a symlink") from None
        raise
    try:
        _check(os.fstat(fd), expected)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check(st: os.stat_result, expected: FileState) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise FileChangedError("no longer a regular file")
    now = state_of(st)
    if now != expected:
        raise FileChangedError(
            f"changed while being read (size {expected.size} -> {now.size}, "
            f"mtime {'changed' if now.mtime_ns != expected.mtime_ns else 'same'})"
        )


@dataclass(frozen=True, slots=True)
class WholeFile:
    """A file of one chunk, read and hashed at once: its record value, the value's CRC32C, the file's digests."""

    data: bytes
    crc32c: int
    digest: FileDigest


def read_whole(path: Path, expected: FileState, framing: Framing | None = None) -> WholeFile:
    """Read a one-chunk file (in a worker thread), with the same checks as ``ChunkReader``."""
    fd = _open_checked(path, expected)
    try:
        data = os.pread(fd, expected.size, 0)
        if len(data) < expected.size:
            raise FileChangedError(f"truncated: ends at byte {len(data)}")
        _check(os.fstat(fd), expected)
    finally:
        os.close(fd)
    digest = FileDigest(hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest())
    if framing is not None:
        data = framing.value(Span(0, 0, len(data)), data, digest)
    return WholeFile(data=data, crc32c=crc32c(data), digest=digest)


def read_many(files: list[tuple[Path, FileState, Framing | None]]) -> list[WholeFile | Exception]:
    """Several one-chunk files in one worker-thread hop: for many small files, hops are most of the cost."""
    results: list[WholeFile | Exception] = []
    for path, expected, framing in files:
        try:
            results.append(read_whole(path, expected, framing))
        except (FileChangedError, OSError) as exc:
            results.append(exc)
    return results
