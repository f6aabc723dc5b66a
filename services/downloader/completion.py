"""Files whose every chunk is in: digest check, quarantine, publication (grouped or not), and the ledger of
publications that a restart would otherwise repeat."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from streamsend.downloader.assembly import FileDescription
from streamsend.downloader.published import PublishedLedger
from streamsend.downloader.publisher import Publication, Publisher
from streamsend.downloader.store import Staging, Store
from streamsend.downloader.uploads import UploadKey, Uploads
from streamsend.shared import logs
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.protocol import FileDigest
from streamsend.shared.seal import Refusal, SignatureCheck, Verdict

log = logging.getLogger(__name__)


@dataclass
class Assembled:
    """A file with every chunk written and hashed, and where its last record came from; ``published`` once it
    took its place in the tree (or was found there already)."""

    key: UploadKey
    file: FileDescription
    staging: Staging
    sha256: str
    expected: FileDigest
    topic: str
    partition: int
    offset: int
    first_offset: int = -1  # of its upload's earliest record (-1: the last record's)
    data: bytes | None = None  # a one-chunk file, still in memory (``staging`` not yet on disk)
    verdict: Verdict | None = None  # a sealed file's: refused now, or a signature the publisher checks
    published: bool = False
    outcome: str | None = None  # once settled: published, identical, quarantined or refused
    reason: str | None = None  # why, for quarantined and refused

    @property
    def fields(self) -> dict[str, object]:
        """For the structured log fields of the lines about it."""
        file = self.file
        return logs.fields(uploader=file.uploader, file=file.path, upload_id=file.upload_id, chunks=file.count,
                           bytes=file.file_size)  # fmt: skip

    @property
    def where(self) -> str:
        width = max(5, len(str(self.file.count)))
        return f"{self.file.uploader}/{self.file.path} ({self.file.count:0{width}d}/{self.file.count:0{width}d}):   "


class Completion:
    """Files whose every chunk is in: verified, then published (at once or with their batch) or quarantined.

    Owns the publication ledger and the publications waiting for the end of a batch. Created by the app with
    the Publisher injected; called by the Receiver (``complete``, ``flush``, ``load``, ``committed``,
    ``release``). Holds the registry of uploads seen (``uploads``), whose published part it keeps in step with
    the ledger."""

    def __init__(self, store: Store, publisher: Publisher, metrics: DownloaderMetrics) -> None:
        self._store = store
        self._publisher = publisher
        self._metrics = metrics
        self._ledger = PublishedLedger(store.work)
        self.uploads = Uploads()
        self._pending: list[tuple[Assembled, Publication]] = []

    async def load(self, topic: str, partition: int) -> None:
        self.uploads.load_published(partition, await asyncio.to_thread(self._ledger.load, topic, partition))

    async def complete(self, item: Assembled) -> list[Assembled]:
        """Verify; a match is published now or at the end of the batch (``flush``), a mismatch kept aside.

        Returns the files settled by this call (published or quarantined): they no longer hold their
        partitions' commits back.
        """
        failure = item.verdict.failure() if isinstance(item.verdict, Refusal) else None
        if item.sha256 != item.expected.sha256:
            failure = "checksum", f"verification failed: sha256 {item.sha256} where {item.expected.sha256} was sent"
        if failure is not None:
            if item.data is not None:
                await self._store.write(await self._store.create(item.key.name), 0, item.data, None)
            reason, why = failure
            await self._quarantine(item, why, reason, refused=reason != "checksum")
            return [item]
        parts = item.file.path.split("/")
        target = self._store.target(item.file.uploader, parts)
        check = item.verdict.failure if isinstance(item.verdict, SignatureCheck) else None
        publication = Publication(item.staging, target, item.file.mtime_ns, item.sha256, data=item.data, check=check)
        self._pending.append((item, publication))
        return [] if self._publisher.groups else await self.flush()

    async def flush(self) -> list[Assembled]:
        """Publish every verified file waiting for it, then record them in the ledger; returns them (each is
        published, or quarantined if it could not take its place)."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        by_publication = {id(publication): item for item, publication in pending}
        sync_lines = self._publisher.syncs_ledger_lines

        def published(publication: Publication) -> None:
            item = by_publication[id(publication)]
            self._ledger.add(item.topic, item.partition, item.key.published_name, item.offset, sync=sync_lines)

        await self._publisher.publish([publication for _, publication in pending], published)
        for item, publication in pending:
            if publication.refusal is not None:
                reason, why = publication.refusal
                await self._quarantine(item, why, reason, refused=True)
                continue
            if publication.error is not None:
                await self._quarantine(item, f"cannot be published: {publication.error}", "conflict")
                continue
            self.uploads.published(item.key, item.offset)
            if publication.newer_there:
                log.warning(
                    "%s final chunk, sha256 %s verified, not published: the published file is a newer version"
                    " (a late or replayed upload never rolls a file back)", item.where, item.sha256, extra=item.fields,
                )  # fmt: skip
                self._metrics.files_failed.labels("older").inc()
                item.outcome, item.reason = "refused", "older than the published version"
                file = item.file
                self._metrics.view.failed(file.upload_id, f"{file.uploader}/{file.path}", "older than the published")
                continue
            item.published = True
            item.outcome = "identical" if publication.unchanged else "published"
            if publication.unchanged:
                log.info(
                    "%s final chunk, downloaded: %d bytes, sha256 %s verified: the published file is identical, "
                    "left as it is", item.where, item.file.file_size, item.sha256, extra=item.fields,
                )  # fmt: skip
                self._metrics.files_unchanged.inc()
            else:
                log.info(
                    "%s final chunk, downloaded: %d bytes, sha256 %s verified (md5 %s)",
                    item.where, item.file.file_size, item.sha256, item.expected.md5, extra=item.fields,
                )  # fmt: skip
                self._metrics.files_verified.inc()
            self._metrics.file_done()
            file = item.file
            self._metrics.view.completed(file.upload_id, f"{file.uploader}/{file.path}", file.file_size, item.sha256)
        return [item for item, _ in pending]

    async def _quarantine(self, item: Assembled, why: str, reason: str, refused: bool = False) -> None:
        item.outcome, item.reason = "refused" if refused else "quarantined", why
        kept = await self._store.quarantine(item.staging, item.file.uploader, item.file.path.split("/"), item.key.name)
        if kept is None:
            log.error("%s final chunk, %s; not kept: larger than quarantine_max_bytes", item.where, why,
                      extra=item.fields)  # fmt: skip
        else:
            log.error("%s final chunk, %s; kept aside as %s", item.where, why, kept, extra=item.fields)
            self._metrics.files_quarantined.inc()
        self._metrics.files_failed.labels(reason).inc()
        file = item.file
        self._metrics.view.failed(file.upload_id, f"{file.uploader}/{file.path}", f"quarantined: {why}")

    async def committed(self, topic: str, partition: int, offset: int) -> None:
        """The offset is committed: records before it are never read again, so their ledger entries can go."""
        kept = self.uploads.prune_published(partition, offset)
        if kept is not None:
            await asyncio.to_thread(self._ledger.rewrite, topic, partition, kept)

    def release(self, partition: int) -> None:
        self.uploads.release(partition)
