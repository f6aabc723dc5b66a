"""Quarantine: files that failed verification (or could not take their place), kept aside for inspection,
out of the published tree, within a bound.

    .streamsend/quarantine/<uploader>/<time>-<upload id>-<name>
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import aiofiles.os

from streamsend.downloader.staging import Staging

log = logging.getLogger(__name__)


class Quarantine:
    """The files kept aside and their total size, within ``quarantine_max_bytes``; owned by the Store, called by
    Completion through ``Store.quarantine``."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._kept: deque[tuple[Path, int]] = deque()  # oldest first, read at load
        self._bytes = 0

    def load(self) -> None:
        """What earlier runs kept, oldest first (in a worker thread)."""
        self.root.mkdir(parents=True, exist_ok=True)
        found: list[tuple[str, Path, int]] = []
        for folder, _, names in os.walk(self.root):
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    found.append((name, Path(folder, name), Path(folder, name).lstat().st_size))
        for _, path, size in sorted(found):  # names begin with the time they were kept
            self._kept.append((path, size))
            self._bytes += size

    async def keep(self, staging: Staging, uploader: str, parts: Sequence[str], name: str) -> Path | None:
        """Keep a file that failed verification aside, out of the published tree; None if it is not kept.

        The quarantine holds at most ``quarantine_max_bytes``: the files kept longest go first, so that a
        producer sending corrupt files can never fill the disk that good files need.
        """
        folder = self.root / uploader
        base = parts[-1].encode()[:150].decode(errors="ignore")  # stays under NAME_MAX with what goes in front
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")  # names sort oldest first
        destination = folder / f"{stamp}-{name}-{base}"
        await aiofiles.os.makedirs(folder, exist_ok=True)
        await aiofiles.os.rename(staging.path, destination)
        kept, removed = await asyncio.to_thread(self._trim_quarantine, destination)
        if removed:
            log.warning("Quarantine over max_bytes: removed the %d files kept longest", removed)
        return destination if kept else None

    def _trim_quarantine(self, newest: Path) -> tuple[bool, int]:
        """Remove the file just kept if it alone is over the limit, else the files kept longest until it fits;
        returns whether the newest stays, and how many others went."""
        size = newest.stat().st_size
        if size > self.max_bytes:
            newest.unlink()
            return False, 0
        self._kept.append((newest, size))
        self._bytes += size
        removed = 0
        while self._bytes > self.max_bytes:  # never reaches the newest: it fits alone
            path, old = self._kept.popleft()
            with contextlib.suppress(FileNotFoundError):  # perhaps removed by hand, or by another downloader
                path.unlink()
            self._bytes -= old
            removed += 1
        return True, removed
