"""Records in, verified files out: validation, assembly, hashing, publication, and the commit watermark.

Each record is validated before anything touches the disk. Chunks go straight to a staging file; the
whole-file sha256 advances as the chunks come in order. The final chunk carries the expected
digests: a match is published atomically at ``<output_dir>/<uploader>/<path>``, a mismatch is quarantined.
Records of one partition are handled one after another; partitions run side by side.

Logs follow the shape users know::

    video.avi (00001/00096):    first chunk, downloaded: 1044480 bytes
    video.avi (00096/00096):    final chunk, downloaded: 100000000 bytes, sha256 … verified
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streamsend.downloader.admission import Admission, Record
from streamsend.downloader.assembly import Assembly, FileDescription
from streamsend.downloader.completion import Assembled, Completion
from streamsend.downloader.offsets import PartitionWatermark
from streamsend.downloader.store import Staging, Store
from streamsend.downloader.uploads import Upload, UploadKey
from streamsend.shared import logs
from streamsend.shared.errors import ConflictError
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.protocol import ChunkHeader, FileDigest
from streamsend.shared.seal import Opener, Verdict

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0
INLINE_HASH_BYTES = 256 * 1024  # smaller one-chunk files are hashed on the event loop: cheaper than a hop


@dataclass(frozen=True, slots=True)
class NeedSpace:
    """The output filesystem cannot take the next chunk; the record was not consumed."""

    available: int
    required: int
    path: str

    def __str__(self) -> str:
        return f"{self.available} bytes available, {self.required} required for {self.path}"


@dataclass(frozen=True, slots=True)
class Rewind:
    """Chunks of an upload dropped as stale came back: its partition must be read again from ``offset``."""

    partition: int
    offset: int
    path: str

    def __str__(self) -> str:
        return f"{self.path}: more chunks arrived after it was dropped; reading partition {self.partition} again"


Halt = NeedSpace | Rewind  # what stops a partition's batch at a record, which stays unconsumed


class Receiver:
    """Turns each partition's records into files: opens sealed records, builds each upload in its staging
    file (``uploads.Upload``), keeps each partition's watermark of committable offsets, and asks the registry
    of uploads seen (``uploads.Uploads``, shared with Completion) what a record's upload is.

    Called by the consumer loop (``kafka.ConsumeLoop``), one record at a time per partition and a flush per
    batch; hands complete uploads to the injected ``Completion`` for verification and publication, and closes
    its watermarks from what Completion returns as settled.
    """

    def __init__(
        self,
        store: Store,
        metrics: DownloaderMetrics,
        completion: Completion,
        *,
        stale_after_s: float,
        min_free_bytes: int,
        opener: Opener | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_settled: Callable[[list[Assembled]], Awaitable[None]] | None = None,
    ) -> None:
        self._on_settled = on_settled  # told of every settled file at the flush after (arrival events)
        self._settled: list[Assembled] = []
        self._admission = Admission(opener if opener is not None else Opener([], {}), metrics, clock)
        self._store = store
        self._metrics = metrics
        self._completion = completion
        self._stale_after_s = stale_after_s
        self._min_free_bytes = min_free_bytes
        self._clock = clock
        self._uploads = completion.uploads
        self._marks: dict[int, PartitionWatermark] = {}
        self._superseding: list[Assembled] = []  # published since the last flush: older versions to drop

    def committable(self, partition: int) -> int | None:
        mark = self._marks.get(partition)
        return None if mark is None else mark.committable()

    async def handle(self, record: Record) -> Halt | None:
        """Deal with one record; a Halt (NeedSpace, Rewind) leaves it unconsumed, to be offered again."""
        mark = self._marks.get(record.partition)
        if mark is None:
            mark = self._marks[record.partition] = PartitionWatermark()
            await self._completion.load(record.topic, record.partition)
        opened = self._admission.admit(record)
        if opened is not None:
            key = UploadKey(record.partition, opened.header.upload_id, opened.seal)
            halt = await self._chunk(key, record, opened.header, opened.data, mark, opened.verdict)
            if halt is not None:
                return halt
        mark.handled(record.offset)
        return None

    async def _chunk(
        self,
        key: UploadKey,
        record: Record,
        header: ChunkHeader,
        value: bytes,
        mark: PartitionWatermark,
        verdict: Verdict | None = None,
    ) -> Halt | None:
        uploads = self._uploads
        if uploads.is_finished(key):
            self._metrics.chunks_duplicate.inc()
            return None
        if uploads.was_published(key):
            self._metrics.chunks_duplicate.inc()
            if header.is_final:  # known as published until commits pass this, its last record
                log.info("%s: upload %s was published before a restart: not again", _shown(header), header.upload_id)
                uploads.finish(key)
                if header.digest is not None and self._on_settled is not None:
                    # Its arrival event may never have been acknowledged: told again (at least once).
                    self._settled.append(self._published_before(key, header, header.digest, record))
            return None
        first_offset = uploads.take_dropped(key)
        if first_offset is not None and record.offset > first_offset:
            # Its uploader was only cut off for longer than stale_after: rebuild it from its first chunk.
            return Rewind(record.partition, first_offset, _shown(header))
        build = uploads.building(key)
        if build is None:
            capacity = self._store.space().capacity
            if header.file_size > capacity:
                self._reject(record, "too_large", f"file of {header.file_size} bytes exceeds the output filesystem")
                return None
            if (need := self._need_space(len(value), header)) is not None:
                return need
            if header.count == 1:
                await self._whole(key, header, record, value, mark, verdict)
                return None
            build = await self._start(key, header, record, mark)
        else:
            try:
                build.assembly.check(header)
            except ConflictError as exc:
                self._reject(record, "conflict", str(exc))
                return None
            if build.assembly.has(header.index):
                self._metrics.chunks_duplicate.inc()
                build.last_seen = self._clock()
                return None
            if (need := self._need_space(len(value), header)) is not None:
                return need
        await self._write(build, header, value)
        if header.is_final:
            build.verdict = verdict
        if build.assembly.complete:
            await self._finish(build, record)
        return None

    def _published_before(self, key: UploadKey, header: ChunkHeader, digest: FileDigest, record: Record) -> Assembled:
        return Assembled(
            key=key,
            file=FileDescription.of(header),
            staging=Staging(self._store.staging_dir / key.name),
            sha256=digest.sha256,
            expected=digest,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            published=True,
            outcome="published",
        )

    async def _whole(
        self,
        key: UploadKey,
        header: ChunkHeader,
        record: Record,
        value: bytes,
        mark: PartitionWatermark,
        verdict: Verdict | None,
    ) -> None:
        """A file of one chunk: verified in memory, and written only with its publication."""
        digest = header.digest
        assert digest is not None  # the one chunk is the final chunk
        sha256 = (
            hashlib.sha256(value).hexdigest()
            if len(value) <= INLINE_HASH_BYTES
            else await asyncio.to_thread(lambda: hashlib.sha256(value).hexdigest())
        )
        mark.open(key, record.offset)
        self._uploads.finish(key)
        self._metrics.chunks_received.inc()
        self._metrics.bytes_received.inc(len(value))
        log.info("%s (00001/00001):    first chunk, downloaded: %d bytes", _shown(header), len(value))
        settled = await self._completion.complete(
            Assembled(
                key=key,
                file=FileDescription.of(header),
                staging=Staging(self._store.staging_dir / key.name),
                sha256=sha256,
                expected=digest,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                first_offset=record.offset,
                data=value,
                verdict=verdict,
            )
        )
        self._settle(settled)

    async def _write(self, build: Upload, header: ChunkHeader, value: bytes) -> None:
        assembly = build.assembly
        in_turn = header.index == assembly.hashed
        await self._store.write(build.staging, header.offset, value, build.fold if in_turn else None)
        assembly.add(header)
        if in_turn:
            assembly.mark_hashed(header.index)
        for index in assembly.hashable():
            offset, length = assembly.span(index)
            await self._store.read(build.staging, offset, length, build.fold)
            assembly.mark_hashed(index)
        build.last_seen = self._clock()
        self._metrics.chunks_received.inc()
        self._metrics.bytes_received.inc(len(value))
        self._metrics.view.progress(header.upload_id, build.assembly.received_bytes)
        self._progress(build, header)

    def _progress(self, build: Upload, header: ChunkHeader) -> None:
        assembly = build.assembly
        count = assembly.file.count
        width = max(5, len(str(count)))
        where = f"{_shown(header)} ({header.index + 1:0{width}d}/{count:0{width}d}):   "
        first = header.index == 0
        if not first and (assembly.received_count == count or build.last_seen - build.reported < PROGRESS_EVERY_S):
            log.debug("%s downloaded: %d bytes", where, assembly.received_bytes)
            return
        about = logs.fields(
            uploader=header.uploader, file=header.path, upload_id=header.upload_id, chunk=header.index + 1,
            chunks=count, bytes=assembly.received_bytes,
        )  # fmt: skip
        if first:
            log.info("%s first chunk, downloaded: %d bytes", where, assembly.received_bytes, extra=about)
        else:
            share = 100 * assembly.received_bytes // max(1, assembly.file.file_size)
            log.info("%s downloaded: %d bytes, %d%%", where, assembly.received_bytes, share, extra=about)
        build.reported = build.last_seen

    def _need_space(self, size: int, header: ChunkHeader) -> NeedSpace | None:
        available = self._store.space().available
        if available - size < self._min_free_bytes:
            return NeedSpace(available, size + self._min_free_bytes, header.path)
        return None

    async def _start(self, key: UploadKey, header: ChunkHeader, record: Record, mark: PartitionWatermark) -> Upload:
        staging = await self._store.create(key.name)
        build = Upload(key, Assembly(header, record.offset), staging, self._clock())
        self._uploads.add(build)
        mark.open(key, record.offset)
        self._metrics.open_assemblies.set(len(self._uploads))
        self._metrics.view.start(header.upload_id, f"{header.uploader}/{header.path}", header.file_size)
        return build

    async def _finish(self, build: Upload, record: Record) -> None:
        file = build.assembly.file
        assert build.assembly.digest is not None  # complete implies the final chunk arrived
        build.outcome = "complete"
        self._uploads.finish(build.key)  # its partition's watermark stays open until it is settled
        self._metrics.open_assemblies.set(len(self._uploads))
        settled = await self._completion.complete(
            Assembled(
                key=build.key,
                file=file,
                staging=build.staging,
                sha256=build.sha256.hexdigest(),
                expected=build.assembly.digest,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                first_offset=build.assembly.first_offset,
                verdict=build.verdict,
            )
        )
        self._settle(settled)

    async def flush(self) -> None:
        """Publish the files verified since the last flush (before their offsets are committed), then drop the
        uploads their publication superseded. Called between batches, when no partition is being handled."""
        self._settle(await self._completion.flush())
        superseding, self._superseding = self._superseding, []
        for item in superseding:
            for older in self._uploads.superseded(item.file, item.key):
                why = f"upload {item.file.upload_id} of this version or a newer one is published"
                await self._drop(older, why, "superseded")
        settled, self._settled = self._settled, []
        if settled and self._on_settled is not None:
            await self._on_settled(settled)  # before the offsets that cover them are committed

    def _settle(self, settled: list[Assembled]) -> None:
        """Files published or quarantined no longer hold their partitions' commits back. A published file
        supersedes the unfinished uploads of older versions of it: only then, once it is authenticated and
        verified, so that no unauthenticated record can cut a genuine upload short."""
        if self._on_settled is not None:
            self._settled.extend(settled)
        for item in settled:
            mark = self._marks.get(item.partition)
            if mark is not None:
                mark.close(item.key)
            if item.published:
                self._superseding.append(item)

    async def _drop(self, build: Upload, why: str, reason: str, level: int = logging.WARNING) -> None:
        """The upload leaves the registry unpublished: superseded, stale, or released with its partition."""
        file = build.assembly.file
        log.log(
            level,
            "%s/%s: upload %s dropped after %d of %d chunks: %s",
            file.uploader, file.path, file.upload_id, build.assembly.received_count, file.count, why,
            extra=logs.fields(uploader=file.uploader, file=file.path, upload_id=file.upload_id, chunks=file.count),
        )  # fmt: skip
        await self._store.discard(build.staging)
        self._metrics.files_failed.labels(reason).inc()
        if reason == "released":  # the partition's next owner takes the upload over: no failure of its own
            self._metrics.view.abandoned(file.upload_id)
        else:
            self._metrics.view.failed(file.upload_id, f"{file.uploader}/{file.path}", f"dropped: {why}")
        build.outcome = reason
        if reason == "superseded":
            self._uploads.finish(build.key)  # its late chunks are duplicates
        else:
            self._uploads.drop(build, stale=reason == "stale")
        mark = self._marks.get(build.partition)
        if mark is not None:
            mark.close(build.key)
        self._metrics.open_assemblies.set(len(self._uploads))

    def _reject(self, record: Record, reason: str, message: str) -> None:
        self._admission.reject(record, reason, message)

    async def sweep(self) -> None:
        """Drop uploads that went quiet: their uploader gave up on them, and they hold back commits."""
        now = self._clock()
        for build in [b for b in self._uploads if now - b.last_seen > self._stale_after_s]:
            await self._drop(build, f"no chunk for {self._stale_after_s:.0f} s", "stale")

    def touch(self) -> None:
        """Restart every upload's quiet timer (after a pause that was ours, not the uploader's)."""
        now = self._clock()
        for build in self._uploads:
            build.last_seen = now

    async def committed(self, topic: str, partition: int, offset: int) -> None:
        await self._completion.committed(topic, partition, offset)

    async def release(self, partitions: Sequence[int], why: str) -> None:
        """Forget partitions (revoked, or shutting down): their unfinished uploads are dropped cleanly."""
        for build in [b for b in self._uploads if b.partition in partitions]:
            await self._drop(build, why, "released", logging.INFO)
        for partition in partitions:
            self._marks.pop(partition, None)
            self._completion.release(partition)


def _shown(header: ChunkHeader) -> str:
    """How logs name a file: with its uploader, as in the output tree (several uploaders may share a path)."""
    return f"{header.uploader}/{header.path}"
