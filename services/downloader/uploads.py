"""Every upload the downloader has seen, in one registry, and the object each upload being rebuilt is.

To the receiver, an upload id is in one of these states:

    building    its chunks are arriving: an ``Upload`` (chunks, staging file, running sha256, verdict)
    finished    handed to completion, superseded or dropped with its partition: late chunks are duplicates
    published   published by an earlier run (the publication ledger, by partition): read again, skipped
    dropped     quiet for ``stale_after`` and dropped: if its chunks come back, it is rebuilt from its first
                record (``Dropped.offset``)
    unknown     a new upload

Memory is bounded: the finished and dropped are remembered up to a count each, oldest forgotten first; the
published are pruned as commits pass them. Pure bookkeeping; the staging file is a handle the store acts on.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from streamsend.downloader.assembly import Assembly, FileDescription
from streamsend.downloader.staging import Staging
from streamsend.shared.seal import Verdict

REMEMBER_FINISHED = 100_000  # upload ids whose late duplicates are recognised and ignored
REMEMBER_DROPPED = 10_000  # stale uploads that can still be rebuilt if their uploader comes back


class Upload:
    """One upload attempt being rebuilt: which chunks are in (``assembly``), where they are written
    (``staging``), the sha256 over them so far, whether it may be published (a sealed file's ``verdict``), and,
    once it leaves the registry, what became of it (``outcome``).

    Only the SHA-256 is computed again here: it is what proves the file whole. The MD5 the uploader computed
    over the same bytes is shown as sent; computing it a second time would cost a third of the downloader's
    CPU for nothing the SHA-256 does not already guarantee.
    """

    def __init__(self, assembly: Assembly, staging: Staging, partition: int, now: float) -> None:
        self.assembly = assembly
        self.staging = staging
        self.partition = partition
        self.sha256 = hashlib.sha256()
        self.last_seen = now
        self.reported = now
        self.verdict: Verdict | None = None  # from the final chunk of a sealed file
        self.outcome: str | None = None  # complete, superseded, stale, released

    @property
    def file(self) -> FileDescription:
        return self.assembly.file

    def fold(self, data: bytes) -> None:
        self.sha256.update(data)


@dataclass(frozen=True, slots=True)
class Dropped:
    partition: int
    offset: int  # of its first record: where to read again to rebuild it


class Uploads:
    """The registry: created by Completion (which keeps the published part in step with its ledger) and used
    by the Receiver for everything else."""

    def __init__(self, remember_finished: int = REMEMBER_FINISHED, remember_dropped: int = REMEMBER_DROPPED) -> None:
        self._remember_finished = remember_finished
        self._remember_dropped = remember_dropped
        self._building: dict[str, Upload] = {}
        self._by_path: dict[tuple[int, str, str], str] = {}  # (partition, uploader, path) -> upload building
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._dropped: OrderedDict[str, Dropped] = OrderedDict()
        self._published: dict[int, dict[str, int]] = {}  # partition -> upload id -> offset completing it

    def __len__(self) -> int:
        """Uploads building."""
        return len(self._building)

    def __iter__(self) -> Iterator[Upload]:
        return iter(list(self._building.values()))

    # what an upload id is

    def building(self, upload_id: str) -> Upload | None:
        return self._building.get(upload_id)

    def is_finished(self, upload_id: str) -> bool:
        return upload_id in self._finished

    def was_published(self, partition: int, upload_id: str) -> bool:
        return upload_id in self._published.get(partition, {})

    def take_dropped(self, upload_id: str) -> Dropped | None:
        """The upload dropped as stale, if it was; it is no longer remembered as dropped."""
        return self._dropped.pop(upload_id, None)

    def building_at(self, partition: int, uploader: str, path: str) -> Upload | None:
        """The upload of that path building in that partition: a newer one supersedes it."""
        upload_id = self._by_path.get((partition, uploader, path))
        return None if upload_id is None else self._building.get(upload_id)

    # changes of state

    def add(self, upload: Upload) -> None:
        file = upload.file
        self._building[file.upload_id] = upload
        self._by_path[(upload.partition, file.uploader, file.path)] = file.upload_id

    def finish(self, upload_id: str) -> None:
        """No more chunks are wanted for this upload: settled, superseded, or one-chunk and complete."""
        self._remove(upload_id)
        self._finished[upload_id] = None
        while len(self._finished) > self._remember_finished:
            self._finished.popitem(last=False)

    def drop(self, upload: Upload, *, stale: bool) -> None:
        """Out of the registry: stale (remembered, to be rebuilt if it comes back) or released with its partition
        (forgotten: the partition's next owner reads it again)."""
        file = upload.file
        self._remove(file.upload_id)
        if stale:
            self._dropped[file.upload_id] = Dropped(upload.partition, upload.assembly.first_offset)
            while len(self._dropped) > self._remember_dropped:
                self._dropped.popitem(last=False)

    def _remove(self, upload_id: str) -> None:
        upload = self._building.pop(upload_id, None)
        if upload is None:
            return
        key = (upload.partition, upload.file.uploader, upload.file.path)
        if self._by_path.get(key) == upload_id:
            del self._by_path[key]

    # the published part, kept in step with the publication ledger by Completion

    def load_published(self, partition: int, entries: dict[str, int]) -> None:
        self._published[partition] = entries

    def published(self, partition: int, upload_id: str, offset: int) -> None:
        self._published.setdefault(partition, {})[upload_id] = offset

    def prune_published(self, partition: int, committed: int) -> dict[str, int] | None:
        """Forget the uploads whose completing record the committed offset has passed; returns what is left,
        or None when nothing was pruned."""
        published = self._published.get(partition)
        if not published:
            return None
        kept = {upload_id: at for upload_id, at in published.items() if at >= committed}
        if len(kept) == len(published):
            return None
        self._published[partition] = kept
        return kept

    def release(self, partition: int) -> None:
        self._published.pop(partition, None)
