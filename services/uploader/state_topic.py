"""This uploader's records in the state topic (read once at start, one written per file sent, progress records
of large files on their way), and the check that the chunk topic still holds an upload about to be resumed.
Created by the app; writes through the ProducerPool.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaConsumer, TopicPartition

from streamsend.shared.admin import Admin
from streamsend.shared.connection import client_options, stop_client
from streamsend.shared.errors import RecordError
from streamsend.shared.faults import is_transient
from streamsend.shared.protocol import decode
from streamsend.shared.retry import Outage, describe, retry_forever
from streamsend.uploader.files import Progress, SentFile
from streamsend.uploader.kafka import ProducerPool
from streamsend.uploader.ledger import SentLedger
from streamsend.uploader.resume import Resumer
from streamsend.uploader.settings import UploaderSettings
from streamsend.uploader.state import decode_state, encode_progress, encode_sent, state_key, state_partition

log = logging.getLogger(__name__)


STATE_PARTITIONS = 6
PROGRESS_EVERY_S = 5.0


class StateTopic:
    """This uploader's records in the state topic: read once at start, one written per file sent."""

    def __init__(self, settings: UploaderSettings, outage: Outage) -> None:
        self._settings = settings
        self._outage = outage
        self._topic = settings.state_topic
        self._partition = 0
        self._pool: ProducerPool | None = None
        self._forgotten: asyncio.Queue[str] = asyncio.Queue()

    async def prepare(self, admin: Admin) -> None:
        partitions = await admin.ensure_topic(self._topic, STATE_PARTITIONS, {"cleanup.policy": "compact"})
        self._partition = state_partition(self._settings.uploader_name, partitions)

    async def load(self, ledger: SentLedger, resumer: Resumer | None = None) -> int:
        """Read this uploader's records up to the end of its partition; retried until the broker answers."""
        return int(
            await retry_forever(
                lambda: self._load(ledger, resumer),
                outage=self._outage,
                is_transient=is_transient,
                backoff_max_s=self._settings.retry_backoff_max,
            )
        )

    async def _load(self, ledger: SentLedger, resumer: Resumer | None) -> int:
        # read_committed: the state records of an aborted transaction name files that were not sent
        consumer = AIOKafkaConsumer(
            **client_options(self._settings, "uploader"), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_bytes=4 * 1024 * 1024, isolation_level="read_committed",
        )  # fmt: skip
        tp = TopicPartition(self._topic, self._partition)
        started = reported = time.monotonic()
        records = 0
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    records += 1
                    decoded = decode_state(self._settings.uploader_name, record.key, record.value)
                    if decoded is not None:
                        path, sent = decoded
                        if isinstance(sent, Progress):
                            if resumer is not None:
                                resumer.note(sent)
                            continue
                        if resumer is not None:
                            resumer.forget(path)
                        if sent is None:
                            ledger.forget(path)
                        else:
                            ledger.record(sent)
                # The end offset some brokers report is wrong; the stable offset (or high watermark) of a fetch is not.
                end = consumer.last_stable_offset(tp)
                if end is None:
                    end = consumer.highwater(tp)
                if end is not None and await consumer.position(tp) >= end:
                    break
                if time.monotonic() - reported >= PROGRESS_EVERY_S:
                    reported = time.monotonic()
                    log.info("Loading sent files from %s: %d records read so far", self._topic, records)
        finally:
            await stop_client(consumer, self._settings.request_timeout)
        log.info(
            "Loaded %d sent files%s from %s (partition %d, %d records) in %.1f s", len(ledger),
            f" and {len(resumer)} unfinished" if resumer else "", self._topic, self._partition, records,
            time.monotonic() - started,
        )  # fmt: skip
        return records

    def attach(self, pool: ProducerPool) -> None:
        self._pool = pool

    def records(self, sents: list[SentFile]) -> list[tuple[str, bytes, bytes, int]]:
        name = self._settings.uploader_name
        digests = not self._settings.encrypt_to
        return [(self._topic, state_key(name, s.path), encode_sent(s, digests=digests), self._partition) for s in sents]

    async def save_many(self, sents: list[SentFile]) -> None:
        """Remember sent files; returns once the broker has every record. They are handed over in order
        and acknowledged together; any that fails is written again on its own, retried until it succeeds."""
        pool = self._pool
        assert pool is not None
        digests = not self._settings.encrypt_to
        records = [(state_key(self._settings.uploader_name, s.path), encode_sent(s, digests=digests)) for s in sents]
        try:
            acks = [await pool.send(self._topic, key, value, self._partition) for key, value in records]
        except Exception:
            failed = records  # not even handed over: each is written on its own below
        else:
            results = await asyncio.gather(*acks, return_exceptions=True)
            failed = [record for record, result in zip(records, results, strict=True) if isinstance(result, Exception)]
        for key, value in failed:
            await self._write(key, value)

    def progress_record(self, progress: Progress) -> tuple[str, bytes, bytes, int]:
        key = state_key(self._settings.uploader_name, progress.path)
        return self._topic, key, encode_progress(progress), self._partition

    async def save_progress(self, progress: Progress) -> None:
        pool = self._pool
        assert pool is not None
        _, key, value, partition = self.progress_record(progress)
        await (await pool.send(self._topic, key, value, partition))

    async def holds(self, progress: Progress) -> str | None:
        """Whether the chunk topic still holds the upload as the progress record says: its earliest record, and
        chunk ``acked - 1`` at ``last_offset``. Read once, without retries: in doubt, the file is sent whole."""
        try:
            return await asyncio.wait_for(self._holds(progress), 3 * self._settings.request_timeout)
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            return f"the chunk topic could not be read: {describe(exc)}"

    async def _holds(self, progress: Progress) -> str | None:
        consumer = AIOKafkaConsumer(
            **client_options(self._settings, "uploader"), group_id=None, enable_auto_commit=False,
            max_partition_fetch_bytes=progress.chunk_size + 65536, isolation_level="read_committed",
        )  # fmt: skip
        tp = TopicPartition(self._settings.topic, progress.partition)
        await consumer.start()
        try:
            consumer.assign([tp])
            for offset, index in ((progress.first_offset, None), (progress.last_offset, progress.acked - 1)):
                consumer.seek(tp, offset)
                batch = await consumer.getmany(tp, timeout_ms=int(self._settings.request_timeout * 1000), max_records=1)
                found = batch.get(tp, [])
                if not found or found[0].offset != offset:
                    return f"its record at offset {offset} is gone (the topic's retention)"
                try:
                    header = decode(found[0].headers, found[0].value)
                except RecordError:
                    return f"the record at offset {offset} is not one of its chunks"
                if (
                    header.upload_id != progress.upload_id
                    or header.uploader != self._settings.uploader_name
                    or header.path != progress.path
                    or (index is not None and header.index != index)
                ):
                    return f"the record at offset {offset} is not the chunk the progress record names"
        finally:
            await stop_client(consumer, self._settings.request_timeout)
        return None

    def forget_soon(self, path: str) -> None:
        self._forgotten.put_nowait(path)

    async def run(self, stop: asyncio.Event) -> None:
        """Write tombstones for forgotten files (they let compaction drop the records)."""
        while True:
            getter = asyncio.ensure_future(self._forgotten.get())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait((getter, stopper), return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not getter.done():
                getter.cancel()
                return
            await self._write(state_key(self._settings.uploader_name, getter.result()), None)

    async def _write(self, key: bytes, value: bytes | None) -> None:
        pool = self._pool
        assert pool is not None

        async def attempt() -> None:
            await (await pool.send(self._topic, key, value, self._partition))

        await retry_forever(
            attempt, outage=self._outage, is_transient=is_transient, backoff_max_s=self._settings.retry_backoff_max
        )
