"""One file from the input tree to acknowledged chunk records, with the progress lines users know:

video.avi: 100000000 bytes, creating 96 1044480-byte chunks
video.avi (00001 of 00096) chunk uploaded
video.avi: Successfully processed. sha256 … md5 …
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable

from streamsend.shared import logs
from streamsend.shared.errors import Interrupted
from streamsend.shared.protocol import chunk_count, encode, record_key
from streamsend.shared.seal import Sealer
from streamsend.shared.view import TransferView
from streamsend.uploader.delivery import Courier, OutgoingRecord
from streamsend.uploader.files import Progress as FileProgress
from streamsend.uploader.files import ReadyFile, SentFile
from streamsend.uploader.framing import Framing, framing_for
from streamsend.uploader.planner import Span, partition_for, spans
from streamsend.uploader.reader import ChunkReader, read_many
from streamsend.uploader.resume import Resumer, Resumption, Tracker
from streamsend.uploader.transactions import COMMIT_EVERY_BYTES, FileTransactions

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


_ids = random.Random(os.urandom(32))  # unique ids without a system call each


def new_upload_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


class Progress:
    """Logs the first and last chunk of a file, and one line every few seconds in between."""

    def __init__(
        self,
        name: str,
        count: int,
        clock: Callable[[], float] = time.monotonic,
        fields: dict[str, object] | None = None,
        done: int = 0,
        done_bytes: int = 0,
    ) -> None:
        """``done``, ``done_bytes``: chunks on the topic before this run (a resumed upload)."""
        self._name = name
        self._fields = fields or {}
        self._count = count
        self._clock = clock
        self._started = clock()
        self._last_report = self._started
        self._first = done + 1
        self._done_bytes = done_bytes
        self.acked = done
        self.acked_bytes = done_bytes

    def ack(self, record: OutgoingRecord) -> None:
        self.acked += 1
        self.acked_bytes += len(record.value)
        now = self._clock()
        width = max(5, len(str(self._count)))
        line = f"{self._name} ({record.index + 1:0{width}d} of {self._count:0{width}d}) chunk uploaded"
        if self._count == 1:
            log.debug("%s", line)  # the "Successfully processed" line says it all for a one-chunk file
        elif self.acked in (self._first, self._count) or now - self._last_report >= PROGRESS_EVERY_S:
            self._last_report = now
            elapsed = max(now - self._started, 1e-6)
            log.info(
                "%s, %d%% done, %.1f MB/s", line, 100 * self.acked // self._count,
                (self.acked_bytes - self._done_bytes) / elapsed / 1e6,
                extra={**self._fields, **self._where(record)},
            )  # fmt: skip
        else:
            log.debug("%s", line)

    def _where(self, record: OutgoingRecord) -> dict[str, object]:
        return logs.fields(chunk=record.index + 1, chunks=self._count, bytes=self.acked_bytes)


class FileSender:
    """One file (or a group of one-chunk files) from disk to acknowledged records: reads through ChunkReader,
    frames (plain or sealed), hands records to the Courier. Created by the app; called by the Workers."""

    def __init__(
        self,
        *,
        uploader: str,
        chunk_size: int,
        partitions: Callable[[], int],
        courier: Courier,
        stop: asyncio.Event,
        on_chunk: Callable[[int], None] = lambda size: None,
        transactions: FileTransactions | None = None,
        view: TransferView | None = None,
        sealer: Sealer | None = None,
        resumer: Resumer | None = None,
        on_resume: Callable[[int], None] = lambda skipped: None,
    ) -> None:
        self._transactions = transactions
        # Sealed files are sent whole again after a restart: see resume.py.
        self._resumer = resumer if sealer is None else None
        self._on_resume = on_resume
        self._sealer = sealer  # None: files travel as they are
        self._view = view if view is not None else TransferView("uploader")
        self._uploader = uploader
        self._chunk_size = chunk_size
        self._partitions = partitions
        self._courier = courier
        self._stop = stop
        self._on_chunk = on_chunk

    def fits_one_chunk(self, ready: ReadyFile) -> bool:
        return ready.state.size <= self._chunk_size

    async def send_group(self, group: list[ReadyFile], lane: int) -> list[SentFile | Exception]:
        """One-chunk files together: read in one thread hop, their records handed over in order, their
        acknowledgements awaited together. Returns, for each file, what was sent or why it was not."""
        transactions = self._transactions
        if transactions is None:
            return await self._send_group(group, lane)
        name = f"{group[0].wire_path} and {len(group) - 1} more" if len(group) > 1 else group[0].wire_path
        try:
            return await transactions.retrying(lambda: self._send_group(group, lane), lane, name)
        except Exception as exc:  # permanent: every file of the group shares the outcome
            return [exc for _ in group]

    async def _send_group(self, group: list[ReadyFile], lane: int) -> list[SentFile | Exception]:
        transactions = self._transactions
        if transactions is not None:
            await transactions.begin(lane)
        budget = self._courier.budget
        framings = [self._framing(ready, new_upload_id()) for ready in group]
        sizes = [ready.state.size + framing.extra_bytes(True) for ready, framing in zip(group, framings, strict=True)]
        reservation = await budget.reserve(sum(sizes))
        try:
            wholes = await asyncio.to_thread(
                read_many, [(ready.path, ready.state, framing) for ready, framing in zip(group, framings, strict=True)]
            )
        except BaseException:
            reservation.release()
            raise
        outcomes: list[SentFile | Exception] = []
        records: list[OutgoingRecord] = []
        for ready, framing, part, whole in zip(group, framings, reservation.split(sizes), wholes, strict=True):
            if isinstance(whole, Exception):
                part.release()
                outcomes.append(whole)
                continue
            name = ready.wire_path
            log.info("%s: %d bytes, creating 1 %d-byte chunks", name, ready.state.size, self._chunk_size)
            header = framing.header(Span(0, 0, ready.state.size), whole.crc32c, whole.digest)
            upload_id = header.upload_id
            partition = partition_for(self._uploader, name, self._partitions())
            records.append(OutgoingRecord(record_key(upload_id), whole.data, encode(header), partition, 0, part))
            outcomes.append(SentFile(name, ready.state.size, ready.state.mtime_ns, whole.digest.sha256,
                                     whole.digest.md5, upload_id, 0.0))  # fmt: skip
        handed = 0
        try:
            async with self._courier.file(lane, lambda record, _: self._on_chunk(len(record.value))) as delivery:
                for record in records:
                    handed += 1
                    await delivery.send(record)
        except BaseException as exc:
            for record in records[handed:]:
                record.settled()
            if not isinstance(exc, Exception) or transactions is not None:
                raise
            return [exc if isinstance(outcome, SentFile) else outcome for outcome in outcomes]
        now = time.time()
        sent = [dataclasses.replace(o, sent_at=now) if isinstance(o, SentFile) else o for o in outcomes]
        if transactions is not None:
            events = [e for ready, o in zip(group, sent, strict=True) if isinstance(o, SentFile) for e in ready.events]
            await transactions.finish(lane, [outcome for outcome in sent if isinstance(outcome, SentFile)], events)
        for outcome in sent:
            if isinstance(outcome, SentFile):
                self._view.completed(outcome.upload_id, outcome.path, outcome.size, outcome.sha256)
                log.info(
                    "%s: Successfully processed. sha256 %s md5 %s", outcome.path, outcome.sha256, outcome.md5,
                    extra=logs.fields(uploader=self._uploader, file=outcome.path, upload_id=outcome.upload_id,
                                      chunks=1, bytes=outcome.size),
                )  # fmt: skip
        return sent

    async def send(self, ready: ReadyFile, lane: int) -> SentFile:
        """Send every chunk and wait for all acknowledgements; FileChangedError if the file moved under us."""
        transactions = self._transactions
        if transactions is None:
            return await self._send(ready, lane)
        return await transactions.retrying(lambda: self._send(ready, lane), lane, ready.wire_path)

    async def _send(self, ready: ReadyFile, lane: int) -> SentFile:
        partition = partition_for(self._uploader, ready.wire_path, self._partitions())
        resumed = None
        if self._resumer is not None:
            resumed = await self._resumer.plan(ready.wire_path, ready.state, self._chunk_size, partition)
        upload_id = resumed.progress.upload_id if resumed is not None else new_upload_id()
        self._view.start(upload_id, ready.wire_path, ready.state.size)
        try:
            sent = await self._transfer(ready, lane, upload_id, partition, resumed)
        except BaseException:
            self._view.abandoned(upload_id)  # the failure, if it is one, is the caller's to show
            raise
        self._view.completed(upload_id, sent.path, sent.size, sent.sha256)
        return sent

    async def _chunks(
        self,
        reader: ChunkReader,
        framing: Framing,
        lane: int,
        acked: Callable[[OutgoingRecord, int], None],
        upload: tuple[str, int, int],
        count: int,
        start: int,
        checkpoint: Callable[[], FileProgress | None] = lambda: None,
    ) -> None:
        """Read, frame and hand over chunks ``start..count`` of ``upload`` (id, partition, file size); returns once
        every one is acknowledged. In a transaction, each part commits with the ``checkpoint`` of the upload: a
        fault or a restart continues from the last part committed."""
        upload_id, partition, size = upload
        transactions = self._transactions
        uncommitted = 0
        async with (
            self._courier.file(lane, acked, spread=transactions is None) as delivery,
            contextlib.aclosing(reader.chunks(spans(size, self._chunk_size, start))) as chunks,
        ):
            async for span, data, crc, reservation in chunks:
                try:
                    if self._stop.is_set():
                        raise Interrupted(f"interrupted by shutdown after {span.index} of {count} chunks")
                    final = span.index == count - 1
                    header = framing.header(span, crc, reader.digest() if final else None)
                    record = OutgoingRecord(
                        record_key(upload_id), data, encode(header), partition, span.index, reservation
                    )
                except BaseException:
                    reservation.release()
                    raise
                await delivery.send(record)
                uncommitted += len(data)
                if transactions is not None and uncommitted >= COMMIT_EVERY_BYTES and not final:
                    progress = checkpoint()
                    await transactions.commit_part(lane, self._progress_record(progress))
                    if progress is not None and self._resumer is not None:
                        self._resumer.note(progress)  # a fault in the next part resumes from here
                    uncommitted = 0

    def _progress_record(self, progress: FileProgress | None) -> tuple[str, bytes, bytes, int] | None:
        return None if progress is None or self._resumer is None else self._resumer.record(progress)

    async def _save_progress(self, progress: FileProgress) -> None:
        """One attempt: a progress record lost only means a resume from an earlier one."""
        assert self._resumer is not None
        try:
            await self._resumer.save(progress)
        except Exception as exc:
            log.debug("%s: progress record not written (%s)", progress.path, exc)

    def _framing(self, ready: ReadyFile, upload_id: str) -> Framing:
        return framing_for(self._sealer, self._uploader, ready.wire_path, upload_id, ready.state.size,
                           self._chunk_size, ready.state.mtime_ns)  # fmt: skip

    async def _transfer(
        self, ready: ReadyFile, lane: int, upload_id: str, partition: int, resumed: Resumption | None
    ) -> SentFile:
        transactions = self._transactions
        if transactions is not None:
            await transactions.begin(lane)
        name, size, chunk_size = ready.wire_path, ready.state.size, self._chunk_size
        count = chunk_count(size, chunk_size)
        start = 0 if resumed is None else resumed.start
        about = logs.fields(uploader=self._uploader, file=name, upload_id=upload_id)
        if resumed is None:
            log.info("%s: %d bytes, creating %d %d-byte chunks", name, size, count, chunk_size, extra=about)
        else:
            log.info(
                "%s: resuming at chunk %d of %d (%d%%), upload %s", name, start + 1, count, 100 * start // count,
                upload_id, extra={**about, **logs.fields(chunk=start + 1, chunks=count)},
            )  # fmt: skip
        progress = Progress(name, count, fields=about, done=start, done_bytes=start * chunk_size)
        tracker = Tracker(start, chunk_size, None if resumed is None else resumed.progress.first_offset)
        saving: asyncio.Task[None] | None = None
        began = time.time() if resumed is None else resumed.progress.started_at
        view = self._view

        def checkpoint() -> FileProgress | None:
            """Where the upload stands, if a chunk from the first on is acknowledged."""
            if tracker.first_offset is None or tracker.last_offset < 0 or tracker.acked <= start:
                return None
            return FileProgress(
                name, upload_id, size, ready.state.mtime_ns, ready.state.inode, chunk_size, partition,
                tracker.acked, tracker.first_offset, tracker.last_offset, began,
            )  # fmt: skip

        def acked(record: OutgoingRecord, offset: int) -> None:
            nonlocal saving
            progress.ack(record)
            view.progress(upload_id, progress.acked_bytes)
            self._on_chunk(len(record.value))
            tracker.ack(record.index, offset)
            if transactions is not None or self._resumer is None or not tracker.due():
                return  # in a transaction, progress commits with each part
            if (saving is None or saving.done()) and (now := checkpoint()) is not None:
                tracker.saved()
                saving = asyncio.create_task(self._save_progress(now))

        budget = self._courier.budget
        framing = self._framing(ready, upload_id)
        async with ChunkReader(ready.path, ready.state, budget, framing) as reader:
            if start:
                await reader.rehash(start * chunk_size)
                self._on_resume(start * chunk_size)
            try:
                await self._chunks(reader, framing, lane, acked, (upload_id, partition, size), count, start, checkpoint)
            except Interrupted as exc:
                if transactions is not None and self._resumer is not None:
                    raise Interrupted(f"{exc}; it resumes from its last committed part after a restart") from None
                if self._resumer is None or (now := checkpoint()) is None:
                    raise Interrupted(f"{exc}; it will be sent again from the start") from None
                await self._save_progress(now)  # its chunks handed over are all settled by now
                raise Interrupted(f"{exc}; it resumes there after a restart") from None
            finally:
                if saving is not None:
                    await asyncio.wait({saving})  # a progress record lands before the file's sent record
            digest = reader.digest()
        sent = SentFile(
            path=name,
            size=size,
            mtime_ns=ready.state.mtime_ns,
            sha256=digest.sha256,
            md5=digest.md5,
            upload_id=upload_id,
            sent_at=time.time(),
        )
        if transactions is not None:
            await transactions.finish(lane, [sent], ready.events)
        log.info(
            "%s: Successfully processed. sha256 %s md5 %s", name, digest.sha256, digest.md5,
            extra={**about, **logs.fields(chunks=count, bytes=size)},
        )  # fmt: skip
        return sent
