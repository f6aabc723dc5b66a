"""Reading a file chunk by chunk while hashing it, and noticing when it changes underneath.

A file is opened without following symlinks and without blocking (a FIFO swapped in after the scan is
never waited on), checked against the state that made it ready, and checked again before its last chunk
leaves: a file that changed is abandoned for this attempt.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat
from pathlib import Path
from types import TracebackType

import aiofiles
from aiofiles.threadpool.binary import AsyncFileIO

from streamsend.shared.protocol import FileDigest, crc32c
from streamsend.uploader.planner import Span
from streamsend.uploader.readiness import FileState

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileChangedError(Exception):
    """The file is no longer what was found static: changed, truncated, replaced or gone."""


def _open_safely(path: str, flags: int) -> int:
    del flags  # the mode is ours to choose, not the caller's
    return os.open(path, _OPEN_FLAGS)


def state_of(st: os.stat_result) -> FileState:
    return FileState(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


class ChunkReader:
    def __init__(self, path: Path, expected: FileState) -> None:
        self._path = path
        self._expected = expected
        self._file: AsyncFileIO | None = None
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)

    async def __aenter__(self) -> ChunkReader:
        try:
            self._file = await aiofiles.open(self._path, "rb", buffering=0, opener=_open_safely)
        except FileNotFoundError:
            raise FileChangedError("gone before it could be read") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise FileChangedError("replaced by a symlink") from None
            raise
        try:
            self._check(await asyncio.to_thread(os.fstat, self._file.fileno()))
        except BaseException:
            await self._file.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            await self._file.close()

    async def read(self, span: Span) -> tuple[bytes, int]:
        """The bytes of one chunk and their CRC32C; the whole-file hashes advance over them."""
        assert self._file is not None
        data = await self._file.read(span.length)
        while len(data) < span.length:  # a short read from a slow filesystem: read on, or EOF
            more = await self._file.read(span.length - len(data))
            if not more:
                raise FileChangedError(f"truncated: chunk {span.index} ends at byte {span.offset + len(data)}")
            data += more
        return data, await asyncio.to_thread(self._hash, data)

    def _hash(self, data: bytes) -> int:
        self._sha256.update(data)
        self._md5.update(data)
        return crc32c(data)

    async def verify_unchanged(self) -> None:
        """Before the last chunk: the open file and the path still show the state found static."""
        assert self._file is not None
        self._check(await asyncio.to_thread(os.fstat, self._file.fileno()))
        try:
            self._check(await asyncio.to_thread(os.stat, self._path, follow_symlinks=False))
        except FileNotFoundError:
            raise FileChangedError("removed while being read") from None

    def digest(self) -> FileDigest:
        return FileDigest(sha256=self._sha256.hexdigest(), md5=self._md5.hexdigest())

    def _check(self, st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise FileChangedError("no longer a regular file")
        now = state_of(st)
        if now != self._expected:
            raise FileChangedError(
                f"changed while being read (size {self._expected.size} -> {now.size}, "
                f"mtime {'changed' if now.mtime_ns != self._expected.mtime_ns else 'same'})"
            )
