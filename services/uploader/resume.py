"""Resuming a large file where its upload stopped, rather than from its first byte.

While a large file is sent, the uploader writes how far it has come to the state topic, under the file's own key
(``state.encode_progress``): the upload id, the file's size, mtime and inode, the chunk size and partition, how
many chunks from the first are acknowledged (``acked``), and the offsets of the upload's earliest record and of
the last chunk acknowledged in that run. One record every ``PROGRESS_EVERY_BYTES`` of the file; the file's sent
record replaces them (same key), so compaction keeps one record per file.

After a restart, a file whose last word is a progress record continues under the same upload id when all of
this holds (``judge``, pure):

- it is the same file: size, mtime and inode unchanged; the chunk size and the file's partition unchanged;
- the upload began less than ``resume_within`` ago (older chunks may have left the topic with its retention);
- the topic still holds the upload (``ChunkProbe``, in kafka.py): its earliest record is still there (retention
  removes the oldest records first), and the record at ``last_offset`` is chunk ``acked - 1`` of this upload.

Otherwise it is sent whole under a new upload id, as a changed file always is. The chunks resume at
``acked - window``: with several chunks in flight at once, the chunks acknowledged beyond the first gap are never
more than a window, so even a forged progress record that points at a real chunk cannot make the uploader skip a
chunk that is not on the topic; the cost is one window sent again. The file's digests are rebuilt by reading
its first part again from the local disk.

In a transaction, a part's progress record commits with the part (every 64 MiB), so an upload resumes from its
last committed part, after a restart and after a Kafka fault that aborted its transaction alike.

Sealed files are sent whole again: a chunk sent again must be sealed with the upload's data key and nonce, and
that is safe only for the very bytes sealed before, which nothing proves for the chunks beyond the last progress
record.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streamsend.shared.protocol import chunk_count
from streamsend.uploader.files import FileState, Progress

log = logging.getLogger(__name__)

PROGRESS_EVERY_BYTES = 16 * 1024 * 1024
REMEMBER = 10_000  # unfinished uploads remembered from the state topic, at most


class ProgressStore(Protocol):
    async def save_progress(self, progress: Progress) -> None:
        """Write a progress record; returns once the broker has it (or raises)."""

    def progress_record(self, progress: Progress) -> tuple[str, bytes, bytes, int]:
        """The progress record as (topic, key, value, partition), for a transaction to carry."""

    async def holds(self, progress: Progress) -> str | None:
        """Why the topic no longer holds the upload as the record says; None if it does."""


def judge(
    progress: Progress, state: FileState, chunk_size: int, partition: int, now: float, within_s: float
) -> str | None:
    """Why an upload may not continue; None if it may."""
    if not progress.is_of(state):
        return "the file changed since"
    if progress.chunk_size != chunk_size:
        return f"the chunk size is now {chunk_size}, was {progress.chunk_size}"
    if progress.partition != partition:
        return "the topic's partitions changed"
    if progress.acked >= chunk_count(progress.size, progress.chunk_size):
        return "the record claims every chunk"
    if now - progress.started_at > within_s:
        return "it began longer ago than resume_within"
    if progress.last_offset < progress.first_offset:
        return "the record's offsets are inconsistent"
    return None


@dataclass(frozen=True, slots=True)
class Resumption:
    progress: Progress
    start: int  # the first chunk sent again


class Resumer:
    """Unfinished uploads found at start, and whether each may continue. Created by the app (filled while the
    state topic is read), used by FileSender."""

    def __init__(
        self,
        store: ProgressStore,
        within_s: float,
        window: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._within_s = within_s
        self._window = window
        self._clock = clock
        self._unfinished: OrderedDict[str, Progress] = OrderedDict()

    def __len__(self) -> int:
        return len(self._unfinished)

    def note(self, progress: Progress) -> None:
        self._unfinished.pop(progress.path, None)
        self._unfinished[progress.path] = progress
        while len(self._unfinished) > REMEMBER:
            self._unfinished.popitem(last=False)

    def forget(self, path: str) -> None:
        self._unfinished.pop(path, None)

    async def save(self, progress: Progress) -> None:
        await self._store.save_progress(progress)

    def record(self, progress: Progress) -> tuple[str, bytes, bytes, int]:
        return self._store.progress_record(progress)

    async def plan(self, path: str, state: FileState, chunk_size: int, partition: int) -> Resumption | None:
        """How the upload of this file continues, if it does."""
        progress = self._unfinished.pop(path, None)
        if progress is None:
            return None
        why = judge(progress, state, chunk_size, partition, self._clock(), self._within_s)
        if why is None:
            why = await self._store.holds(progress)
        if why is not None:
            log.info("%s: upload %s not resumed (%s): sent whole", path, progress.upload_id, why)
            return None
        return Resumption(progress, max(0, progress.acked - self._window))


class Tracker:
    """The chunks of one upload acknowledged so far: the run from the first (``acked``), the offset of its last,
    and the upload's earliest offset; and whether a progress record is due."""

    def __init__(self, start: int, chunk_size: int, first_offset: int | None = None) -> None:
        self.acked = start
        self._chunk_size = chunk_size
        self.first_offset = first_offset
        self.last_offset = -1
        self._ahead: dict[int, int] = {}  # index -> offset, of chunks acknowledged beyond the run
        self._saved = start

    def ack(self, index: int, offset: int) -> None:
        if offset >= 0:
            self.first_offset = offset if self.first_offset is None else min(self.first_offset, offset)
        self._ahead[index] = offset
        while self.acked in self._ahead:
            self.last_offset = self._ahead.pop(self.acked)
            self.acked += 1

    def due(self) -> bool:
        """A progress record is due: the run grew by ``PROGRESS_EVERY_BYTES`` since the last one."""
        return (
            (self.acked - self._saved) * self._chunk_size >= PROGRESS_EVERY_BYTES
            and self.last_offset >= 0
            and self.first_offset is not None
        )

    def saved(self) -> None:
        self._saved = self.acked
