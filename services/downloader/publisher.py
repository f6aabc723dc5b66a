"""Publication: verified staging files renamed into the tree, made durable as the ``fsync`` setting says.

Offsets are committed only after the files they complete are published, and published durably under the
two safe policies:

``batch`` (default)
    The files verified while handling one fetched batch are published together: one ``syncfs`` makes all
    their data durable, they are renamed into place, the publication ledger is appended, and a second
    ``syncfs`` makes the renames and the ledger durable. Two filesystem syncs a batch instead of three
    fsyncs a file; a file appears at the end of the batch it completes in. Where ``syncfs`` is missing,
    each file and folder is fsynced instead. On a filesystem shared with heavy unrelated writers, prefer
    ``file``: ``syncfs`` also waits for their data.
``file``
    Each file is fsynced before its rename, and its folder after it, as soon as it is verified.
``off``
    Nothing is fsynced: fastest. A crash of the process loses nothing, but after a power cut or a kernel
    crash, files published in the last seconds (before the kernel wrote them back) may be missing, empty or
    truncated at their final path, although their offsets are committed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamsend.downloader.placement import NewerThere
from streamsend.downloader.settings import FsyncPolicy
from streamsend.downloader.store import Staging, Store, fsync_dir
from streamsend.shared.errors import PublishError

WRITERS = 4  # threads writing a group's new files


@dataclass
class Publication:
    staging: Staging
    target: Path
    mtime_ns: int
    sha256: str
    data: bytes | None = None  # a one-chunk file still in memory: written to its staging path here
    error: PublishError | None = None
    unchanged: bool = False  # the target already was this very file, and was left as it is
    newer_there: bool = False  # the target is a newer version of the file, and was left as it is
    # A sealed file's signature check, run in a worker thread before the file takes its place; what it
    # finds wrong (reason, message) keeps the file out of the tree, its staging file left for quarantine.
    check: Callable[[], tuple[str, str] | None] | None = None
    refusal: tuple[str, str] | None = None

    def run_check(self) -> None:
        if self.check is not None:
            self.refusal, self.check = self.check(), None


def _load_syncfs() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        syncfs = ctypes.CDLL(name, use_errno=True).syncfs if name else None
    except (OSError, AttributeError):
        return None
    if syncfs is not None:
        syncfs.argtypes = (ctypes.c_int,)
        syncfs.restype = ctypes.c_int
    return syncfs


_SYNCFS = _load_syncfs()


class Publisher:
    """Puts verified files in place and makes them durable as the ``fsync`` policy says; runs the signature
    checks of sealed files beside the writes. Created by the app, injected into Completion, which calls
    ``publish``; does its file work through the Store."""

    def __init__(self, store: Store, policy: FsyncPolicy) -> None:
        self._store = store
        self._policy = policy

    @property
    def groups(self) -> bool:
        """Whether verified files wait for the end of their batch (``flush``) to be published."""
        return self._policy == "batch"

    async def publish(self, items: list[Publication], published: Callable[[Publication], None]) -> None:
        """Publish a group; ``published`` runs (in a worker thread) after each rename, before the group is made
        durable. Items that cannot take their place get ``error`` set.

        Files still in memory are written first, from a few threads at once: on some filesystems creating files
        one after another costs several times more than side by side. The rest is one worker-thread hop.
        """
        descriptors = [self._store.detach(item.staging) for item in items]
        fresh = [index for index, item in enumerate(items) if item.data is not None]
        if fresh:
            slices = [fresh[start::WRITERS] for start in range(min(WRITERS, len(fresh)))]
            for written in await asyncio.gather(*(asyncio.to_thread(self._write, items, part) for part in slices)):
                for index, fd in written:
                    descriptors[index] = fd
        await asyncio.to_thread(self._publish, items, descriptors, published)

    @staticmethod
    def _write(items: list[Publication], indexes: list[int]) -> list[tuple[int, int]]:
        written = []
        for index in indexes:
            data = items[index].data
            assert data is not None
            items[index].run_check()  # here, side by side with the other writers: the GIL is released
            written.append((index, _write_new(items[index].staging.path, data)))
        return written

    def _publish(
        self, items: list[Publication], descriptors: list[int | None], published: Callable[[Publication], None]
    ) -> None:
        grouped = self._policy == "batch" and self._sync_filesystem()  # first sync: every staged byte
        per_file = self._policy == "file" or (self._policy == "batch" and not grouped)
        for item, fd in zip(items, descriptors, strict=True):
            if fd is not None:
                if per_file:
                    os.fsync(fd)
                os.close(fd)
            elif per_file:
                _fsync_path(item.staging.path)
        synced_folders: set[Path] = set()
        for item in items:
            item.run_check()
            if item.refusal is not None:
                continue
            try:
                folder = self._store.place(
                    item.staging.path, item.target, item.mtime_ns, item.sha256, sync_folders=per_file
                )
            except PublishError as exc:
                item.error = exc
                continue
            except NewerThere:
                item.newer_there = True
                published(item)  # settled: a restart must not try again
                continue
            if folder is None:
                item.unchanged = True
                published(item)
                continue
            if per_file and folder not in synced_folders:
                fsync_dir(folder)
                synced_folders.add(folder)
            published(item)
        if grouped:
            self._sync_filesystem()  # second sync: the renames, new folders and ledger lines

    def _sync_filesystem(self) -> bool:
        if _SYNCFS is None:
            return False
        fd = os.open(self._store.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if _SYNCFS(fd) != 0:
                raise OSError(ctypes.get_errno(), "syncfs failed")
        finally:
            os.close(fd)
        return True

    @property
    def syncs_ledger_lines(self) -> bool:
        """Whether each ledger line needs an fsync of its own (the batch policy syncs them with the group)."""
        return self._policy == "file" or (self._policy == "batch" and _SYNCFS is None)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> int:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o666)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return fd
