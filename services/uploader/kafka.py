"""The uploader's producers: a small pool of aiokafka producers, one connection each.

aiokafka keeps one produce request in flight per broker connection, so a single producer waits a round
trip per request; several producers keep several requests moving. A large file's chunks go through a window of
them (``window.py``), opened one by one as the window first widens, up to ``producers``; a group of one-chunk
files keeps to one producer (its lane).

With ``transactional`` each worker lane has its own transactional producer (a producer holds one transaction
at a time), with a transactional id made of the uploader's name and the lane: a restarted uploader fences off
its predecessor and aborts whatever transaction that left open. State records written outside a file's
transaction (tombstones, files found sent at start) go through one more, plain, idempotent producer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaProducer

from streamsend.shared import kafka_compat
from streamsend.shared.connection import client_options, stop_client
from streamsend.shared.errors import SettingsError
from streamsend.shared.faults import SEQUENCE_FAULTS, is_transient
from streamsend.shared.retry import Outage, describe, retry_forever
from streamsend.uploader.delivery import OutgoingRecord
from streamsend.uploader.settings import UploaderSettings

log = logging.getLogger(__name__)


RECOVER_EVERY_S = 5.0  # a producer replaced after a broken sequence is not replaced again this soon
START_PRODUCERS = 2  # opened at start; more as a file's window widens


class ProducerPool:
    """The aiokafka producers, one lane each (and one plain producer beside transactional lanes). Created by the
    app; used by the Courier (as its ChunkSink), the StateTopic and FileTransactions."""

    def __init__(self, settings: UploaderSettings, max_message_bytes: int, outage: Outage) -> None:
        self._settings = settings
        self._max_message_bytes = max_message_bytes
        self._outage = outage
        self._producers: list[Any] = []
        self._plain: Any = None  # for records outside any transaction
        self.idempotent = False
        self.transactional = False  # decided at start: see _start_transactional
        self._recovering = asyncio.Lock()
        self._recovered: dict[int, float] = {}  # producer index -> when it was last replaced
        self._retired: list[Any] = []  # producers replaced after a broken sequence, closed with the pool
        self._opening = asyncio.Lock()

    def _producer(self, idempotent: bool, transactional_id: str | None = None) -> Any:
        s = self._settings
        return AIOKafkaProducer(
            **client_options(s, "uploader"),
            acks="all",
            enable_idempotence=idempotent,
            transactional_id=transactional_id,
            max_request_size=self._max_message_bytes,
            max_batch_size=s.max_batch_bytes,
            linger_ms=int(s.linger * 1000),
            compression_type=None if s.compression_type == "none" else s.compression_type,
        )

    async def __aenter__(self) -> ProducerPool:
        try:
            self.idempotent = await self._start_first()
            wanted = self._settings.transactional
            if wanted == "on" or (wanted == "auto" and self._settings.state_topic):
                self.transactional = await self._start_transactional(required=wanted == "on")
            if not self.transactional:
                await self._open(min(START_PRODUCERS, self.limit) - 1)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        producers, self._producers = self._producers, []
        plain, self._plain = self._plain, None
        retired, self._retired = self._retired, []
        for producer in [*producers, *([plain] if plain is not None else []), *retired]:
            await stop_client(producer, self._settings.request_timeout)

    async def _start_transactional(self, *, required: bool) -> bool:
        """One transactional producer per worker lane; False (plain producers instead) where the broker has no
        transactions and they are not ``required`` (which stops the daemon with exit code 2 instead)."""
        name = self._settings.uploader_name
        refusal = None if self.idempotent else "the broker refuses the idempotent producer"
        started: list[Any] = []
        for lane in range(self._settings.max_concurrent_files if refusal is None else 0):
            transactional_id = self._transactional_id(lane)
            try:
                started.append(await self._start(True, transactional_id))
            except (kafka_errors.UnsupportedVersionError, kafka_errors.UnknownError) as exc:
                refusal = f"the broker has no transactions ({type(exc).__name__})"
            except kafka_errors.TransactionalIdAuthorizationFailed:
                refusal = (
                    f"not allowed to use transactional id {transactional_id} (kafka-acls --add --operation Write"
                    f" --transactional-id streamsend-{name}- --resource-pattern-type prefixed)"
                )
            if refusal is not None:
                break
        if refusal is not None:
            for producer in started:
                await stop_client(producer, self._settings.request_timeout)
            if required:
                raise SettingsError(f"invalid setting transactional: {refusal}")
            log.warning("Transactions not used (%s): state records follow their files' last chunks", refusal)
            return False
        self._plain = self._producers.pop()
        self._producers = started
        log.info(
            "Transactions enabled: %d transactional producers (ids streamsend-%s-0..%d)",
            len(started), name, len(started) - 1,
        )  # fmt: skip
        return True

    async def begin(self, lane: int) -> None:
        await self._lane(lane).begin_transaction()

    async def commit(self, lane: int) -> None:
        await self._lane(lane).commit_transaction()

    async def abort(self, lane: int) -> None:
        """Abort the lane's open transaction, if any; a producer that cannot abort is replaced."""
        producer = self._lane(lane)
        try:
            if kafka_compat.in_transaction(producer):
                await asyncio.wait_for(producer.abort_transaction(), self._settings.request_timeout)
        except Exception as exc:  # a fatal state (fenced, or a broker gone too long): start the lane anew
            log.warning("Transaction of lane %d not aborted (%s): its producer is restarted", lane, describe(exc))
            await stop_client(producer, self._settings.request_timeout)
            index = lane % len(self._producers)
            self._producers[index] = await self._start(True, self._transactional_id(lane))

    def _transactional_id(self, lane: int) -> str:
        return f"streamsend-{self._settings.uploader_name}-{lane}"

    def _lane(self, lane: int) -> Any:
        return self._producers[lane % len(self._producers)]

    @property
    def limit(self) -> int:
        """The most producers: ``producers`` (plain), or one per lane (transactional: never more)."""
        return len(self._producers) if self.transactional else self._settings.producers

    def _index(self, lane: int, spread: bool) -> int:
        return lane % (self.limit if spread else len(self._producers))

    async def _open(self, index: int) -> None:
        """Start producers until there is one of this number."""
        async with self._opening:
            while len(self._producers) <= index:
                self._producers.append(await self._start(self.idempotent))
                if len(self._producers) > START_PRODUCERS:
                    log.info(
                        "Producer %d of at most %d opened: the link carries more chunks of a file at once",
                        len(self._producers), self.limit,
                    )  # fmt: skip

    async def recover(self, lane: int, exc: BaseException, spread: bool = False) -> None:
        """Replace the lane's producer by a new one, with a new producer id, where it can no longer deliver: a
        broken sequence (a partition leader changed under in-flight batches) leaves it refused for good, and a
        producer whose background sender has ended fails every record it is given. The records are sent again.
        Transactional lanes are restarted by ``abort`` instead."""
        if self.transactional:
            return
        index = self._index(lane, spread)
        if index >= len(self._producers):
            return  # never opened: nothing to mend
        async with self._recovering:
            producer = self._producers[index]
            ended = _sender_end(producer)
            dead = ended is not None
            if not dead and not isinstance(exc, SEQUENCE_FAULTS):
                return
            now = time.monotonic()
            if not dead and now - self._recovered.get(index, -RECOVER_EVERY_S) < RECOVER_EVERY_S:
                return  # the other records of that producer failed with it: it was replaced already
            self._recovered[index] = now
            # The old producer is not stopped here: a stop waits for batches it can no longer deliver. Its records
            # fail on their own and are sent again through the new one; it is closed with the pool.
            self._retired.append(producer)
            why = f"its sender stopped ({ended})" if dead else type(exc).__name__
            log.warning("Producer %d restarted after %s: its records are sent again", index, why)
            self._producers[index] = await self._start(self.idempotent)

    async def _start_first(self) -> bool:
        """Start with the idempotent producer, or learn that the broker cannot give one."""
        try:
            self._producers.append(await self._start(True))
            log.info("Idempotent producer enabled: the broker discards re-sent duplicates")
            return True
        except (
            kafka_errors.UnknownError,
            kafka_errors.UnsupportedVersionError,
            kafka_errors.ClusterAuthorizationFailedError,
        ) as exc:
            log.info(
                "This broker offers no idempotent producer (%s): sending with acks=all. A chunk sent again after a"
                " fault may then arrive twice; the downloader ignores the copy",
                type(exc).__name__,
            )
        self._producers.append(await self._start(False))
        return False

    async def _start(self, idempotent: bool, transactional_id: str | None = None) -> Any:
        async def attempt() -> Any:
            producer = self._producer(idempotent, transactional_id)
            try:
                await producer.start()
                await kafka_compat.track_topics(producer, (self._settings.topic, self._settings.state_topic))
            except BaseException:
                await producer.stop()
                raise
            return producer

        return await retry_forever(
            attempt, outage=self._outage, is_transient=is_transient, backoff_max_s=self._settings.retry_backoff_max
        )

    async def enqueue(self, record: OutgoingRecord, lane: int, spread: bool = False) -> Awaitable[object]:
        return await self.send(
            self._settings.topic, record.key, record.value, record.partition, lane, record.headers, spread
        )

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        lane: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        spread: bool = False,
    ) -> Awaitable[object]:
        """Hand a record to the lane's producer, or with no lane to the one for records outside transactions.
        ``spread``: the lane is a window's slot, and its producer is opened if it is not yet."""
        if lane is None:
            producer = self._plain if self._plain is not None else self._producers[0]
        else:
            index = self._index(lane, spread)
            if index >= len(self._producers):
                await self._open(index)
            producer = self._producers[index]
        if _sender_end(producer) is not None and producer is not self._plain:
            await self.recover(lane or 0, kafka_errors.KafkaError("the producer's sender stopped"), spread)
            producer = self._producers[self._index(lane or 0, spread)]
        future: Awaitable[object] = await producer.send(
            topic, value=value, key=key, headers=headers or [], partition=partition
        )
        return future


def _sender_end(producer: Any) -> str | None:
    """Why the producer's background sender has ended, for the log; None while it runs."""
    ended = kafka_compat.sender_end(producer)
    return ended if ended is None or isinstance(ended, str) else describe(ended)
