"""The output tree on disk, as one object the downloader holds: staging (``staging``), verified atomic
publication (``placement``), quarantine (``quarantine``) and free space.

Layout under ``output_dir``::

    <uploader>/<relative path>              published files, only ever by rename (sha256 in an attribute)
    .streamsend/staging/<instance>/<id>     files being assembled by one running downloader
    .streamsend/staging/<instance>.lock     held (flock) by that downloader while it runs
    .streamsend/quarantine/<uploader>/...   files that failed verification, kept for inspection (bounded)

Staging lives on the same filesystem as the targets, so publication is one atomic rename.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamsend.downloader.placement import SHA256_ATTRIBUTE, Placement, fsync_dir
from streamsend.downloader.quarantine import Quarantine
from streamsend.downloader.staging import WRITEBACK_WINDOW, DescriptorCache, Staging, StagingArea

__all__ = ["SHA256_ATTRIBUTE", "WORK_DIR", "WRITEBACK_WINDOW", "DescriptorCache", "Space", "Staging", "Store",
           "fsync_dir"]  # fmt: skip

WORK_DIR = ".streamsend"


@dataclass(frozen=True, slots=True)
class Space:
    available: int
    capacity: int


class Store:
    """The output root, owned by one downloader: what it stages, publishes and quarantines there.

    Created by the downloader's app; used by the receiver (staging), completion (quarantine) and the publisher
    (placement). Its methods are the few the others need; each part does the work.
    """

    def __init__(self, output_dir: Path, *, max_open_files: int, quarantine_max_bytes: int = 1 << 30) -> None:
        self.root = output_dir.resolve()
        self.work = self.root / WORK_DIR
        self.staging_root = self.work / "staging"
        self.quarantine_root = self.work / "quarantine"
        self.staging = StagingArea(self.staging_root, max_open_files)
        self.staging_dir = self.staging.folder
        self.placement = Placement(self.root)
        self.quarantined = Quarantine(self.quarantine_root, quarantine_max_bytes)

    async def open(self) -> None:
        """Claim a staging folder of our own, clear those left by processes that died, read the quarantine."""
        await asyncio.to_thread(self.staging.claim)
        await asyncio.to_thread(self.quarantined.load)

    async def close(self) -> None:
        await self.staging.close()

    def space(self) -> Space:
        st = os.statvfs(self.root)
        return Space(available=st.f_bavail * st.f_frsize, capacity=st.f_blocks * st.f_frsize)

    async def create(self, name: str) -> Staging:
        return await self.staging.create(name)

    async def write(self, staging: Staging, offset: int, data: bytes, fold: Callable[[bytes], None] | None) -> None:
        await self.staging.write(staging, offset, data, fold)

    async def read(self, staging: Staging, offset: int, length: int, fold: Callable[[bytes], None]) -> None:
        await self.staging.read(staging, offset, length, fold)

    async def discard(self, staging: Staging) -> None:
        await self.staging.discard(staging)

    def detach(self, staging: Staging) -> int | None:
        return self.staging.detach(staging)

    def target(self, uploader: str, parts: Sequence[str]) -> Path:
        return self.placement.target(uploader, parts)

    def place(self, source: Path, target: Path, mtime_ns: int, sha256: str, *, sync_folders: bool) -> Path | None:
        return self.placement.place(source, target, mtime_ns, sha256, sync_folders=sync_folders)

    async def quarantine(self, staging: Staging, uploader: str, parts: Sequence[str], name: str) -> Path | None:
        """Keep a file that failed verification aside (see ``Quarantine.keep``); None if it is not kept."""
        self.staging.close_descriptor(staging)
        return await self.quarantined.keep(staging, uploader, parts, name)
