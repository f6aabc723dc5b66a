"""Every upload the downloader has seen, in one registry, and the object each upload being rebuilt is.

An upload is known by its ``UploadKey``: the partition it arrives on, its upload id and, for a sealed file, the
fingerprint of the data key its chunks are sealed with. Records that share an upload id but arrive on another
partition, or under another key, are another upload: a copy or a forgery builds (and fails) on its own and never
touches the genuine one, so concurrent handling of one upload id across partitions needs no coordination.

To the receiver, an upload key is in one of these states:

    building    its chunks are arriving: an ``Upload`` (chunks, staging file, running sha256, verdict)
    finished    handed to completion, superseded or dropped with its partition: late chunks are duplicates
    published   published by an earlier run (the publication ledger, by partition): read again, skipped
    dropped     quiet for ``stale_after`` and dropped: if its chunks come back, it is rebuilt from its first
                record (the offset ``take_dropped`` returns)
    unknown     a new upload

Memory is bounded: the finished and dropped are remembered up to a count each, oldest forgotten first; the
published are pruned as commits pass them. Pure bookkeeping; the staging file is a handle the store acts on.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import NamedTuple

from streamsend.downloader.assembly import Assembly, FileDescription
from streamsend.downloader.staging import Staging
from streamsend.shared.seal import Verdict

REMEMBER_FINISHED = 100_000  # upload ids whose late duplicates are recognised and ignored
REMEMBER_DROPPED = 10_000  # stale uploads that can still be rebuilt if their uploader comes back


class UploadKey(NamedTuple):
    """What tells one upload from another: records differing in any part never meet in one assembly."""

    partition: int
    upload_id: str
    seal: str = ""  # fingerprint of a sealed upload's data key ("" for a plain upload)

    @property
    def name(self) -> str:
        """A file name unique to the key (staging, quarantine)."""
        return f"{self.partition}-{self.upload_id}" + (f"-{self.seal}" if self.seal else "")

    @property
    def published_name(self) -> str:
        """How the publication ledger of its partition names it."""
        return f"{self.upload_id}.{self.seal}" if self.seal else self.upload_id


class Upload:
    """One upload attempt being rebuilt: which chunks are in (``assembly``), where they are written
    (``staging``), the sha256 over them so far, whether it may be published (a sealed file's ``verdict``), and,
    once it leaves the registry, what became of it (``outcome``).

    Only the SHA-256 is computed again here: it is what proves the file whole. The MD5 the uploader computed
    over the same bytes is shown as sent; computing it a second time would cost a third of the downloader's
    CPU for nothing the SHA-256 does not already guarantee.
    """

    def __init__(self, key: UploadKey, assembly: Assembly, staging: Staging, now: float) -> None:
        self.key = key
        self.assembly = assembly
        self.staging = staging
        self.sha256 = hashlib.sha256()
        self.last_seen = now
        self.reported = now
        self.verdict: Verdict | None = None  # from the final chunk of a sealed file
        self.outcome: str | None = None  # complete, superseded, stale, released

    @property
    def partition(self) -> int:
        return self.key.partition

    @property
    def file(self) -> FileDescription:
        return self.assembly.file

    def fold(self, data: bytes) -> None:
        self.sha256.update(data)


class Uploads:
    """The registry: created by Completion (which keeps the published part in step with its ledger) and used
    by the Receiver for everything else."""

    def __init__(self, remember_finished: int = REMEMBER_FINISHED, remember_dropped: int = REMEMBER_DROPPED) -> None:
        self._remember_finished = remember_finished
        self._remember_dropped = remember_dropped
        self._building: dict[UploadKey, Upload] = {}
        self._by_path: dict[tuple[str, str], set[UploadKey]] = {}  # (uploader, path) -> uploads building
        self._finished: OrderedDict[UploadKey, None] = OrderedDict()
        self._dropped: OrderedDict[UploadKey, int] = OrderedDict()  # -> offset of its first record
        self._published: dict[int, dict[str, int]] = {}  # partition -> upload id -> offset completing it

    def __len__(self) -> int:
        """Uploads building."""
        return len(self._building)

    def __iter__(self) -> Iterator[Upload]:
        return iter(list(self._building.values()))

    # what an upload id is

    def building(self, key: UploadKey) -> Upload | None:
        return self._building.get(key)

    def is_finished(self, key: UploadKey) -> bool:
        return key in self._finished

    def was_published(self, key: UploadKey) -> bool:
        return key.published_name in self._published.get(key.partition, {})

    def take_dropped(self, key: UploadKey) -> int | None:
        """Where to read its partition again to rebuild the upload, if it was dropped as stale; it is no longer
        remembered as dropped."""
        return self._dropped.pop(key, None)

    def superseded(self, file: FileDescription, by: UploadKey) -> list[Upload]:
        """Uploads of the same file still building that a just-published version makes pointless: those of a
        version no newer (by mtime) than it. A newer one keeps building, and replaces it once complete."""
        keys = self._by_path.get((file.uploader, file.path), ())
        return [upload for key in keys if key != by and (upload := self._building[key]).file.mtime_ns <= file.mtime_ns]

    # changes of state

    def add(self, upload: Upload) -> None:
        file = upload.file
        self._building[upload.key] = upload
        self._by_path.setdefault((file.uploader, file.path), set()).add(upload.key)

    def finish(self, key: UploadKey) -> None:
        """No more chunks are wanted for this upload: settled, superseded, or one-chunk and complete."""
        self._remove(key)
        self._finished[key] = None
        while len(self._finished) > self._remember_finished:
            self._finished.popitem(last=False)

    def drop(self, upload: Upload, *, stale: bool) -> None:
        """Out of the registry: stale (remembered, to be rebuilt if it comes back) or released with its partition
        (forgotten: the partition's next owner reads it again)."""
        self._remove(upload.key)
        if stale:
            self._dropped[upload.key] = upload.assembly.first_offset
            while len(self._dropped) > self._remember_dropped:
                self._dropped.popitem(last=False)

    def _remove(self, key: UploadKey) -> None:
        upload = self._building.pop(key, None)
        if upload is None:
            return
        path = (upload.file.uploader, upload.file.path)
        keys = self._by_path.get(path)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_path[path]

    # the published part, kept in step with the publication ledger by Completion

    def load_published(self, partition: int, entries: dict[str, int]) -> None:
        self._published[partition] = entries

    def published(self, key: UploadKey, offset: int) -> None:
        self._published.setdefault(key.partition, {})[key.published_name] = offset

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
