"""The output tree on disk: staging files, verified atomic publication, quarantine, free space.

Layout under ``output_dir``::

    <uploader>/<relative path>              published files, only ever by rename (sha256 in an attribute)
    .streamsend/staging/<instance>/<id>     files being assembled by one running downloader
    .streamsend/staging/<instance>.lock     held (flock) by that downloader while it runs
    .streamsend/quarantine/<uploader>/...   files that failed verification, kept for inspection (bounded)

Staging lives on the same filesystem as the targets, so publication is one atomic rename. Each running
downloader holds a lock on its own staging folder; folders whose lock is free belong to a process that
died, and are removed at start. Chunk writes are positional (``pwrite``), so out-of-order chunks land in
place; aiofiles has no positional I/O, and a seek-then-write pair would race with the read-back of such
chunks, so these few calls go through ``asyncio.to_thread`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import logging
import os
import shutil
import stat
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiofiles.os

from streamsend.shared.errors import PublishError

log = logging.getLogger(__name__)

WORK_DIR = ".streamsend"
ABANDONED_LOCK_S = 3600
# A large file's data is handed to the disk while it arrives, a window behind the newest write (kept cached
# for the read-back of early chunks): its final fsync then waits for one window, not the whole file, and it
# does not crowd the page cache of a small device.
WRITEBACK_WINDOW = 16 * 1024 * 1024
# Every published file carries its verified sha256 here: users can check it, and a file received again
# identical to the published one is recognised without reading it.
SHA256_ATTRIBUTE = "user.streamsend.sha256"


@dataclass(frozen=True, slots=True)
class Space:
    available: int
    capacity: int


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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    def __init__(self, output_dir: Path, *, max_open_files: int, quarantine_max_bytes: int = 1 << 30) -> None:
        self.root = output_dir.resolve()
        self.quarantine_max_bytes = quarantine_max_bytes
        self._quarantined: deque[tuple[Path, int]] = deque()  # oldest first, read at open
        self._quarantined_bytes = 0
        self.work = self.root / WORK_DIR
        self.staging_root = self.work / "staging"
        self.quarantine_root = self.work / "quarantine"
        self.staging_dir = self.staging_root / uuid.uuid4().hex[:12]
        self._descriptors = DescriptorCache(max_open_files)
        self._lock_fd: int | None = None

    async def open(self) -> None:
        """Claim a staging folder of our own and clear those left by processes that died."""
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        # No other process may ever see our lock file unlocked, nor our folder without its lock: the lock is
        # taken under a hidden name, renamed into place, and only then is the folder made.
        self.staging_root.mkdir(parents=True, exist_ok=True)
        self.quarantine_root.mkdir(parents=True, exist_ok=True)
        fresh = self.staging_root / f".{self.staging_dir.name}.lock-new"
        self._lock_fd = os.open(fresh, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fresh.rename(self._lock_path(self.staging_dir))
        self.staging_dir.mkdir()
        removed = 0
        for entry in self.staging_root.iterdir():
            if entry in (self.staging_dir, self._lock_path(self.staging_dir)):
                continue
            try:  # another downloader may be starting, or cleaning up, at this very moment
                removed += self._remove_if_abandoned(entry)
            except FileNotFoundError:
                continue
        if removed:
            log.info("Removed %d stale staging files left by an earlier run", removed)
        found: list[tuple[str, Path, int]] = []
        for folder, _, names in os.walk(self.quarantine_root):
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    found.append((name, Path(folder, name), Path(folder, name).lstat().st_size))
        for _, path, size in sorted(found):  # names begin with the time they were kept
            self._quarantined.append((path, size))
            self._quarantined_bytes += size

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
        await asyncio.to_thread(shutil.rmtree, self.staging_dir, True)
        if self._lock_fd is not None:
            self._lock_path(self.staging_dir).unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    def space(self) -> Space:
        st = os.statvfs(self.root)
        return Space(available=st.f_bavail * st.f_frsize, capacity=st.f_blocks * st.f_frsize)

    async def create(self, upload_id: str) -> Staging:
        """A new, empty staging file, left open for the chunks to come."""
        staging = Staging(self.staging_dir / upload_id)
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

    def target(self, uploader: str, parts: Sequence[str]) -> Path:
        return self.root.joinpath(uploader, *parts)

    def detach(self, staging: Staging) -> int | None:
        """Hand a staging file's descriptor (if open) to the publisher, which closes it."""
        return self._descriptors.detach(staging)

    def place(self, source: Path, target: Path, mtime_ns: int, sha256: str, *, sync_folders: bool) -> Path | None:
        """Rename a verified staging file to its target (in a worker thread); returns the target's folder.

        None when the target already is this very file (same size and mtime, and the sha256 recorded when it
        was published): the staging file is removed and the target left untouched, so that a file its
        uploader sent again (it died before it could remember sending it) is not published a second time.
        """
        if _already_there(target, source, mtime_ns, sha256):
            source.unlink()
            return None
        with contextlib.suppress(OSError):  # a filesystem without user attributes: always replaced
            os.setxattr(source, SHA256_ATTRIBUTE, sha256.encode())
        os.utime(source, ns=(mtime_ns, mtime_ns))
        parent = self._make_folders(target.parent, sync_new=sync_folders)
        try:
            if stat.S_ISDIR(target.lstat().st_mode):
                raise PublishError(f"a folder is in the way at {target.relative_to(self.root)}")
        except FileNotFoundError:
            pass
        source.rename(target)
        return parent

    def _make_folders(self, folder: Path, *, sync_new: bool) -> Path:
        """Create the folders down to ``folder`` inside the root, refusing symlinks and files in the way."""
        current = self.root
        for part in folder.relative_to(self.root).parts:
            current = current / part
            try:
                current.mkdir()
            except FileExistsError:
                pass  # there already, perhaps made a moment ago by another partition: checked below
            else:
                if sync_new:
                    fsync_dir(current.parent)
                continue
            mode = current.lstat().st_mode
            if not stat.S_ISDIR(mode):
                kind = "symlink" if stat.S_ISLNK(mode) else "file"
                raise PublishError(f"a {kind} is in the way at {current.relative_to(self.root)}")
        return current

    async def quarantine(self, staging: Staging, uploader: str, parts: Sequence[str], upload_id: str) -> Path | None:
        """Keep a file that failed verification aside, out of the published tree; None if it is not kept.

        The quarantine holds at most ``quarantine_max_bytes``: the files kept longest go first, so that a
        producer sending corrupt files can never fill the disk that good files need.
        """
        self._descriptors.close(staging)
        folder = self.quarantine_root / uploader
        name = parts[-1].encode()[:190].decode(errors="ignore")  # stays under NAME_MAX with what goes in front
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")  # names sort oldest first
        destination = folder / f"{stamp}-{upload_id}-{name}"
        await aiofiles.os.makedirs(folder, exist_ok=True)
        await aiofiles.os.rename(staging.path, destination)
        kept, removed = await asyncio.to_thread(self._trim_quarantine, destination)
        if removed:
            log.warning("Quarantine over quarantine_max_bytes: removed the %d files kept longest", removed)
        return destination if kept else None

    def _trim_quarantine(self, newest: Path) -> tuple[bool, int]:
        """Remove the file just kept if it alone is over the limit, else the files kept longest until it fits;
        returns whether the newest stays, and how many others went."""
        size = newest.stat().st_size
        if size > self.quarantine_max_bytes:
            newest.unlink()
            return False, 0
        self._quarantined.append((newest, size))
        self._quarantined_bytes += size
        removed = 0
        while self._quarantined_bytes > self.quarantine_max_bytes:  # never reaches the newest: it fits alone
            path, old = self._quarantined.popleft()
            with contextlib.suppress(FileNotFoundError):  # perhaps removed by hand, or by another downloader
                path.unlink()
            self._quarantined_bytes -= old
            removed += 1
        return True, removed


def _already_there(target: Path, source: Path, mtime_ns: int, sha256: str) -> bool:
    try:
        st = target.lstat()  # mostly there is no target: the staging file is not even looked at
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns != mtime_ns:
            return False
        same = os.getxattr(target, SHA256_ATTRIBUTE, follow_symlinks=False) == sha256.encode()
        return same and st.st_size == source.stat().st_size
    except OSError:
        return False


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
