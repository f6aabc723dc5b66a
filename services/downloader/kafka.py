"""The downloader's consumer loop: fetch, hand each partition's records to the receiver, commit.

Offsets are committed only up to the receiver's watermark. On a rebalance the revoked partitions are
committed, then their unfinished uploads dropped: their new owner rebuilds them from the first chunk. A poll
runs outside the lock that rebalances take, so a rebalance may run between a poll and the handling of what it
returned: such a batch is never handled (its records may be of the assignment the rebalance ended, and would
start uploads mid-file); the partitions still ours are read again from their committed offsets instead.
When the output filesystem fills up, every partition is paused at the record that did not fit, and
consumption resumes by itself once space returns. A consumer that cannot commit, or whose polls never return,
while the broker answers is stuck (stuck.py) and is replaced by a new one; so is one whose group coordination
task has died. Errors the group coordination hands to a poll are faults to ride out, not reasons to stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from streamsend.downloader.admission import Record
from streamsend.downloader.fetch_size import FetchSize
from streamsend.downloader.pipeline import Halt, NeedSpace, Receiver, Rewind
from streamsend.downloader.settings import DownloaderSettings
from streamsend.downloader.store import Store
from streamsend.downloader.stuck import StallWatch
from streamsend.shared import kafka_compat, logs
from streamsend.shared.access import REFUSALS
from streamsend.shared.connection import client_options, stop_client
from streamsend.shared.errors import SettingsError
from streamsend.shared.faults import is_transient
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.retry import Outage, describe, probe_forever, retry_forever

log = logging.getLogger(__name__)

SPACE_CHECK_S = 2.0
PROBE_EVERY_S = 5.0
STUCK_AFTER_TIMEOUTS = 3  # commits failing this many request timeouts while the broker answers: see stuck.py
POLL_S = 1.0  # what a poll waits for records


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumeLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self._loop.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        await self._loop.assigned(assigned)


class ConsumeLoop:
    """The consumer group member: owns the aiokafka consumer, the offsets committed and the pause while the disk
    is full; hands each partition's records to the Receiver and commits up to its watermark. Run by the app."""

    def __init__(
        self,
        settings: DownloaderSettings,
        receiver: Receiver,
        store: Store,
        metrics: DownloaderMetrics,
        outage: Outage,
        joined: asyncio.Event,
    ) -> None:
        self._settings = settings
        self._joined = joined
        self._receiver = receiver
        self._store = store
        self._metrics = metrics
        self._outage = outage
        self._consumer: Any = None
        self._lock = asyncio.Lock()  # batch handling and rebalance callbacks take turns
        self._rebalances = 0  # revocations so far: a batch polled before one is not handled
        self._committed: dict[Any, int] = {}
        self._next: dict[Any, int] = {}
        self._lowest: dict[Any, int] = {}  # the lowest offset polled of each partition: where nothing is committed
        self._waiting: NeedSpace | None = None
        self._fetch = FetchSize(int(settings.max_fetch_bytes), max_wait_s=settings.session_timeout / 4)
        self._commits = StallWatch(after_s=STUCK_AFTER_TIMEOUTS * settings.request_timeout)
        # A rebalance may rightly last a session timeout or two while a member rejoins.
        self._polls = StallWatch(
            after_s=max(STUCK_AFTER_TIMEOUTS * settings.request_timeout, 3 * settings.session_timeout)
        )

    def _new_consumer(self) -> Any:
        s = self._settings
        return AIOKafkaConsumer(
            **client_options(s, "downloader"),
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=s.isolation_level,
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval * 1000),
            fetch_max_bytes=self._fetch.bytes,
            max_partition_fetch_bytes=self._fetch.bytes,
            # aiokafka's batch CRC is a software CRC32C (~1.8 GB/s, a few % of the CPU a transfer needs); every
            # chunk carries its own CRC32C, checked on arrival in hardware, and every file its sha256.
            check_crcs=False,
        )

    async def _start(self) -> Any:
        consumer = self._new_consumer()
        try:
            await consumer.start()
        except BaseException:
            await stop_client(consumer, self._settings.request_timeout)
            raise
        return consumer

    async def run(self, stop: asyncio.Event) -> None:
        while await self._run_consumer(stop):
            self._metrics.consumers_replaced.inc()

    async def _run_consumer(self, stop: asyncio.Event) -> bool:
        """One consumer, until ``stop`` (False) or until it is stuck (True: the caller starts a new one)."""
        self._consumer = await retry_forever(
            self._start, outage=self._outage, is_transient=is_transient, backoff_max_s=self._settings.retry_backoff_max
        )
        consumer = self._consumer
        consumer.subscribe([self._settings.topic], listener=_Rebalance(self))
        log.info("Joined consumer group %s on topic %s", self._settings.group_id, self._settings.topic)
        stuck = False
        try:
            ended = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    probe_forever(
                        self._probe,
                        outage=self._outage,
                        interval_s=PROBE_EVERY_S,
                        timeout_s=self._settings.request_timeout,
                        stop=ended,
                    )
                )
                try:
                    stuck = await self._fetch_loop(stop)
                finally:
                    ended.set()
        finally:
            async with self._lock:
                await self._receiver.flush()
                if not stuck:  # a stuck consumer would only time out once more
                    await self._commit(None)
                reason = "the Kafka consumer is replaced" if stuck else "shutting down"
                await self._receiver.release(list({tp.partition for tp in consumer.assignment()}), reason)
            await stop_client(consumer, self._settings.request_timeout)
        if stuck:
            self._forget_consumer()
        return stuck

    async def _probe(self) -> None:
        await self._consumer.topics()
        self._commits.broker_answered()
        self._polls.broker_answered()

    def _forget_consumer(self) -> None:
        """The next consumer starts from the committed offsets, unpaused: whatever does not fit pauses it again."""
        self._committed.clear()
        self._next.clear()
        self._lowest.clear()
        self._commits.reset()
        self._polls.reset()
        if self._waiting is not None:
            self._waiting = None
            self._metrics.set_paused(False)

    async def _fetch_loop(self, stop: asyncio.Event) -> bool:
        """Until ``stop`` (False), or until the consumer is stuck (True)."""
        consumer = self._consumer
        while not stop.is_set():
            if self._waiting is not None:
                await self._wait_for_space(stop)
                continue
            rebalances = self._rebalances
            batch = await self._poll(consumer)
            if batch is None:
                return True
            for tp, records in batch.items():
                if records and (tp not in self._lowest or records[0].offset < self._lowest[tp]):
                    self._lowest[tp] = records[0].offset
            async with self._lock:
                if batch and rebalances != self._rebalances:
                    if not await self._read_again(batch):
                        return True
                    batch = {}
                if batch:
                    await self._handle(batch)
                    await self._receiver.flush()
                if self._waiting is None:
                    await self._receiver.sweep()
                await self._commit(None)
            self._report_lag()
            for watch, what in ((self._commits, "Offsets not committed"), (self._polls, "No poll returned")):
                if watch.stuck():
                    log.error(
                        "%s for %.0f s while Kafka answers other requests: the Kafka consumer is stuck and is"
                        " replaced by a new one (files in progress are read again from the last commit)",
                        what, watch.failing_for(),
                    )  # fmt: skip
                    return True
        return False

    async def _poll(self, consumer: Any) -> dict[Any, list[Any]] | None:
        """The next records, if any; None once the consumer cannot go on (its group coordination died).

        aiokafka waits without limit for a rebalance to end, so the wait is bounded here and a poll that keeps
        timing out counts towards a stuck consumer. The errors its group coordination meets are handed to the
        poll; the coordination tries again once one is taken, so only permanent ones stop the daemon.
        """
        began = time.monotonic()
        try:
            batch: dict[Any, list[Any]] = await asyncio.wait_for(
                consumer.getmany(timeout_ms=int(POLL_S * 1000)), POLL_S + self._settings.request_timeout
            )
        except TimeoutError:
            self._polls.failed()
            return {}
        except kafka_errors.InvalidSessionTimeoutError as exc:
            raise SettingsError(
                f"invalid setting session_timeout: {self._settings.session_timeout:g} s is outside the range the"
                " broker allows (its group.min.session.timeout.ms and group.max.session.timeout.ms)"
            ) from exc
        except kafka_errors.InconsistentGroupProtocolError as exc:
            raise SettingsError(
                f"invalid setting group_id: group {self._settings.group_id} is used by another application"
                " whose consumers speak a different group protocol; give the downloaders a group of their own"
            ) from exc
        except kafka_errors.KafkaError as exc:
            if isinstance(exc, REFUSALS) or not (is_transient(exc) or _coordination_fault(exc)):
                raise
            if kafka_compat.coordination_ended(consumer):
                log.error("The Kafka consumer's group coordination stopped (%s): it is replaced", describe(exc))
                return None
            self._outage.failed(exc)
            self._polls.failed()
            await asyncio.sleep(POLL_S)  # the coordination tries again on its own: no need to spin meanwhile
            return {}
        self._polls.succeeded()
        waited_s = time.monotonic() - began
        if batch and self._fetch.polled(waited_s, [_bytes(records) for records in batch.values()]):
            kafka_compat.set_fetch_size(consumer, self._fetch.bytes)
            log.info("Fetching up to %d bytes at once (a poll waited %.2f s for %d bytes)", self._fetch.bytes, waited_s,
                     max(_bytes(records) for records in batch.values()))  # fmt: skip
        return batch

    async def _read_again(self, batch: dict[Any, list[Any]]) -> bool:
        """Set a batch polled before a rebalance aside: each of its partitions still ours is read again from its
        committed offset (never past the first chunk of a file not yet published). False when the committed
        offsets cannot be read: the consumer is then replaced, and starts from them anyway."""
        consumer = self._consumer
        assigned = consumer.assignment()
        for tp in [tp for tp in batch if tp in assigned]:
            try:
                committed = await asyncio.wait_for(consumer.committed(tp), self._settings.request_timeout)
            except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
                log.warning("Committed offset of partition %d not read (%s): the consumer is replaced",
                            tp.partition, describe(exc))  # fmt: skip
                return False
            if committed is not None:
                consumer.seek(tp, committed)
            elif tp in self._lowest:  # nothing committed: from the first record polled (no offset lookup)
                consumer.seek(tp, self._lowest[tp])
            else:
                await consumer.seek_to_beginning(tp)
            self._next.pop(tp, None)
        log.info(
            "Records fetched before a rebalance set aside: partitions %s read again from their committed offsets",
            _names(set(batch)),
        )
        return True

    async def _handle(self, batch: dict[Any, list[Any]]) -> None:
        async with asyncio.TaskGroup() as group:
            tasks = {tp: group.create_task(self._partition(tp, records)) for tp, records in batch.items()}
        for tp, task in tasks.items():
            halted = task.result()
            if halted is None:
                continue
            offset, reason = halted
            if isinstance(reason, Rewind):
                log.warning("%s", reason)
                self._consumer.seek(tp, reason.offset)
            else:
                self._consumer.seek(tp, offset)
                self._pause(reason)

    async def _partition(self, tp: Any, records: list[Any]) -> tuple[int, Halt] | None:
        logs.set_worker(f"stms-dnl-{tp.partition}")
        for record in records:
            halt = await self._receiver.handle(
                Record(tp.topic, tp.partition, record.offset, record.key, record.value, record.headers)
            )
            if halt is not None:
                return record.offset, halt
            self._next[tp] = record.offset + 1
        return None

    def _pause(self, need: NeedSpace) -> None:
        if self._waiting is None:
            log.warning("Downloading paused: %s", need)
            self._metrics.set_paused(True)
        self._waiting = need
        self._consumer.pause(*self._consumer.assignment())

    async def _wait_for_space(self, stop: asyncio.Event) -> None:
        """Keep polling (so the group keeps us) with every partition paused, until the chunk fits."""
        await self._consumer.getmany(timeout_ms=int(SPACE_CHECK_S * 1000))
        need = self._waiting
        if need is None or stop.is_set():
            return
        available = self._store.space().available
        if available >= need.required:
            log.info("Downloading resumed: %d bytes available", available)
            self._waiting = None
            self._metrics.set_paused(False)
            self._receiver.touch()
            self._consumer.resume(*self._consumer.assignment())

    async def _commit(self, partitions: set[Any] | None) -> None:
        consumer = self._consumer
        offsets = {}
        for tp in partitions if partitions is not None else consumer.assignment():
            offset = self._receiver.committable(tp.partition)
            if offset is not None and offset != self._committed.get(tp):
                offsets[tp] = offset
        if not offsets:
            return
        try:
            await asyncio.wait_for(consumer.commit(offsets), self._settings.request_timeout)
        except (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError):
            log.info("Offsets not committed: the group is rebalancing (the next owner reads them again)")
        except (kafka_errors.KafkaError, OSError) as exc:
            if not is_transient(exc):
                raise
            self._outage.failed(exc)
            self._commits.failed()
        else:
            self._committed.update(offsets)
            self._outage.succeeded()
            self._commits.succeeded()
            for tp, offset in offsets.items():
                await self._receiver.committed(tp.topic, tp.partition, offset)

    def _report_lag(self) -> None:
        for tp, position in self._next.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag = max(0, highwater - position)
                self._metrics.consumer_lag.labels(str(tp.partition)).set(lag)
                self._metrics.view.lag(tp.partition, lag)

    async def revoked(self, revoked: set[Any]) -> None:
        async with self._lock:
            if not revoked:
                return  # the first join: nothing held, nothing polled before it is stale
            self._rebalances += 1
            await self._receiver.flush()
            await self._commit(revoked)
            await self._receiver.release([tp.partition for tp in revoked], "partition revoked")
            for tp in revoked:
                self._committed.pop(tp, None)
                self._next.pop(tp, None)
                self._metrics.view.lag(tp.partition, None)
                try:
                    self._metrics.consumer_lag.remove(str(tp.partition))
                except KeyError:
                    pass
        log.info("Partitions revoked: %s", _names(revoked))

    async def assigned(self, assigned: set[Any]) -> None:
        log.info("Partitions assigned: %s", _names(assigned) or "none")
        self._joined.set()
        if self._waiting is not None and assigned:
            self._consumer.pause(*assigned)


def _coordination_fault(exc: kafka_errors.KafkaError) -> bool:
    """An error of the group protocol that a later join mends, though aiokafka marks it not retriable."""
    return isinstance(exc, (kafka_errors.IllegalGenerationError, kafka_errors.UnknownMemberIdError))


def _bytes(records: list[Any]) -> int:
    return sum(len(record.value or b"") for record in records)


def _names(partitions: set[TopicPartition]) -> str:
    return ", ".join(str(tp.partition) for tp in sorted(partitions, key=lambda tp: tp.partition))
