"""Staging: the files being assembled, in a folder of this downloader's own under the output tree.

    .streamsend/staging/<instance>/<id>     files being assembled by one running downloader
    .streamsend/staging/<instance>.lock     held (flock) by that downloader while it runs

Each running downloader holds a lock on its own staging folder; folders whose lock is free belong to a process
that died, and are removed at start. Chunk writes are positional (``pwrite``), so out-of-order chunks land in
place; aiofiles has no positional I/O, and a seek-then-write pair would race with the read-back of such
chunks, so these few calls go through ``asyncio.to_thread`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiofiles.os

log = logging.getLogger(__name__)

ABANDONED_LOCK_S = 3600
# A large file's data is handed to the disk while it arrives, a window behind the newest write (kept cached
# for the read-back of early chunks): its final fsync then waits for one window, not the whole file, and it
# does not crowd the page cache of a small device.
WRITEBACK_WINDOW = 16 * 1024 * 1024


class Staging:
    """One file being assembled; its descriptor is opened on demand and may be closed when idle."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.pins = 0
        self.written_back = 0  # bytes before this offset are on their way to the disk


def _start_writeback(fd: int, staging: Staging, end: int) -> None:
    """Start writing back (and then drop from the cache) what lies more than a window behind ``end``."""
    if end - staging.written_back < 2 * WRITEBACK_WINDOW:
        return
    upto = end - WRITEBACK_WINDOW
    # Linux starts asynchronous writeback of dirty pages for DONTNEED, and drops the pages already clean.
    os.posix_fadvise(fd, staging.written_back, upto - staging.written_back, os.POSIX_FADV_DONTNEED)
    staging.written_back = upto


class DescriptorCache:
    """At most ``limit`` staging files open at once; the least recently used idle one closes first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: OrderedDict[Path, Staging] = OrderedDict()

    @contextlib.asynccontextmanager
    async def use(self, staging: Staging) -> AsyncIterator[int]:
        staging.pins += 1
        try:
            if staging.fd is None:
                self._evict()
                staging.fd = await asyncio.to_thread(os.open, staging.path, os.O_RDWR | os.O_CLOEXEC)
            self._open[staging.path] = staging
            self._open.move_to_end(staging.path)
            yield staging.fd
        finally:
            staging.pins -= 1

    def _evict(self) -> None:
        while len(self._open) >= self._limit:
            idle = next((s for s in self._open.values() if s.pins == 0), None)
            if idle is None:
                return  # all busy: go over the limit rather than wait
            self.close(idle)

    def adopt(self, staging: Staging) -> None:
        """A staging file opened by its creator joins the cache."""
        self._evict()
        self._open[staging.path] = staging

    def detach(self, staging: Staging) -> int | None:
        """Take the descriptor out of the cache (the caller closes it); None if it was not open."""
        self._open.pop(staging.path, None)
        fd, staging.fd = staging.fd, None
        return fd

    def close(self, staging: Staging) -> None:
        fd = self.detach(staging)
        if fd is not None:
            os.close(fd)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            raise OSError(f"staging file ends at byte {offset + len(data)}")
        data += more
    return data


class StagingArea:
    """This downloader's staging folder: claimed (locked) at open, cleared of dead processes' folders, and the
    staging files in it, with at most ``max_open_files`` descriptors open."""

    def __init__(self, root: Path, max_open_files: int) -> None:
        self.root = root
        self.folder = root / uuid.uuid4().hex[:12]
        self._descriptors = DescriptorCache(max_open_files)
        self._lock_fd: int | None = None

    def claim(self) -> None:
        """Claim a folder of our own and clear those left by processes that died (in a worker thread)."""
        # No other process may ever see our lock file unlocked, nor our folder without its lock: the lock is
        # taken under a hidden name, renamed into place, and only then is the folder made.
        self.root.mkdir(parents=True, exist_ok=True)
        fresh = self.root / f".{self.folder.name}.lock-new"
        self._lock_fd = os.open(fresh, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fresh.rename(self._lock_path(self.folder))
        self.folder.mkdir()
        removed = 0
        for entry in self.root.iterdir():
            if entry in (self.folder, self._lock_path(self.folder)):
                continue
            try:  # another downloader may be starting, or cleaning up, at this very moment
                removed += self._remove_if_abandoned(entry)
            except FileNotFoundError:
                continue
        if removed:
            log.info("Removed %d stale staging files left by an earlier run", removed)

    def _remove_if_abandoned(self, entry: Path) -> int:
        """Remove a staging folder (or a lock file) whose process is gone; return the files removed."""
        if entry.is_symlink():
            return 0
        if entry.name.startswith("."):
            if time.time() - entry.lstat().st_mtime > ABANDONED_LOCK_S:  # a start that crashed at once
                entry.unlink(missing_ok=True)
            return 0
        if entry.is_dir():
            if not _lock_is_free(self._lock_path(entry)):
                return 0
            count = sum(1 for _ in entry.iterdir())
            shutil.rmtree(entry, ignore_errors=True)
            self._lock_path(entry).unlink(missing_ok=True)
            return count
        if entry.suffix == ".lock" and not entry.with_suffix("").exists() and _lock_is_free(entry):
            entry.unlink(missing_ok=True)
        return 0

    @staticmethod
    def _lock_path(folder: Path) -> Path:
        return folder.with_name(folder.name + ".lock")

    async def close(self) -> None:
        """Remove our staging folder (whatever is in it is abandoned) and release its lock."""
        await asyncio.to_thread(shutil.rmtree, self.folder, True)
        if self._lock_fd is not None:
            self._lock_path(self.folder).unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    async def create(self, name: str) -> Staging:
        """A new, empty staging file, left open for the chunks to come."""
        staging = Staging(self.folder / name)
        staging.fd = await asyncio.to_thread(
            os.open, staging.path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o666
        )
        self._descriptors.adopt(staging)
        return staging

    async def write(self, staging: Staging, offset: int, data: bytes, fold: Callable[[bytes], None] | None) -> None:
        """Write a chunk in place; ``fold`` (hashing) runs in the same worker thread when given."""

        def work(fd: int) -> None:
            _pwrite_all(fd, data, offset)
            if fold is not None:
                fold(data)
                _start_writeback(fd, staging, offset + len(data))

        async with self._descriptors.use(staging) as fd:
            await asyncio.to_thread(work, fd)

    async def read(self, staging: Staging, offset: int, length: int, fold: Callable[[bytes], None]) -> None:
        """Read back a chunk that arrived ahead of its turn and hash it."""

        def work(fd: int) -> None:
            fold(_pread_exact(fd, length, offset))

        async with self._descriptors.use(staging) as fd:
            await asyncio.to_thread(work, fd)

    async def discard(self, staging: Staging) -> None:
        self._descriptors.close(staging)
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(staging.path)

    def detach(self, staging: Staging) -> int | None:
        """Hand a staging file's descriptor (if open) to the publisher, which closes it."""
        return self._descriptors.detach(staging)

    def close_descriptor(self, staging: Staging) -> None:
        self._descriptors.close(staging)


def _lock_is_free(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
