"""Files sent in Kafka transactions (``transactional = true``): a file's last chunks and its state record are
committed together, or not at all.

Without transactions an uploader killed between its file's last acknowledgement and the state record sends
the file again after a restart (the downloader recognises it). In a transaction the state record and the
chunks become visible at once to read_committed consumers: the downloader and the state topic's loader. A big
file commits every ``COMMIT_EVERY_BYTES`` on the way, so that the downloader is never further behind than that;
only its last part waits for the state record. A transient fault inside a transaction aborts it, and the file
is sent again from the start, under a new upload id, after a backoff, as many times as it takes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import aiokafka.errors as kafka_errors

from streamsend.shared.errors import TransactionFault
from streamsend.shared.retry import Backoff, Outage, describe
from streamsend.uploader.files import OwnRecord, SentFile

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMIT_EVERY_BYTES = 64 * 1024 * 1024


class TransactionalSink(Protocol):
    async def begin(self, lane: int) -> None: ...

    async def commit(self, lane: int) -> None: ...

    async def abort(self, lane: int) -> None: ...

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None, lane: int | None = None
    ) -> Awaitable[object]: ...


class StateRecordMaker(Protocol):
    def records(self, sents: list[SentFile]) -> list[tuple[str, bytes, bytes, int]]:
        """(topic, key, value, partition) of each file's state record."""


class FileTransactions:
    """Begins, commits and aborts the transactions of each worker lane, and writes state records into them."""

    def __init__(
        self,
        sink: TransactionalSink,
        state: StateRecordMaker,
        outage: Outage,
        is_transient: Callable[[BaseException], bool],
        backoff_max_s: float,
    ) -> None:
        self._sink = sink
        self._state = state
        self._outage = outage
        self._is_transient = is_transient
        self._backoff_max_s = backoff_max_s

    async def begin(self, lane: int) -> None:
        await self._sink.begin(lane)

    async def commit_part(self, lane: int, progress: tuple[str, bytes, bytes, int] | None = None) -> None:
        """Commit what a big file has sent so far, with its ``progress`` record (topic, key, value, partition)
        if any, and open the next transaction for the rest."""
        if progress is not None:
            topic, key, value, partition = progress
            await self._sink.send(topic, key, value, partition, lane)
        await self._sink.commit(lane)
        await self._sink.begin(lane)

    async def finish(self, lane: int, sents: list[SentFile], events: Sequence[OwnRecord] = ()) -> None:
        """Add the state records of files whose chunks are all acknowledged, and the application's ``events``
        that go with them, and commit: a read_committed consumer sees an event only with its whole file."""
        for topic, key, value, partition in self._state.records(sents):
            await self._sink.send(topic, key, value, partition, lane)
        for event in events:
            await self._sink.send(event.topic, event.key, event.value, None, lane)
        await self._sink.commit(lane)

    async def retrying(self, attempt: Callable[[], Awaitable[T]], lane: int, name: str) -> T:
        """Run ``attempt`` (one whole send, in transactions) until it succeeds; abort after any failure."""
        backoff = Backoff(max_s=self._backoff_max_s)
        while True:
            try:
                result = await attempt()
            except Exception as exc:
                await asyncio.shield(self._sink.abort(lane))
                if not isinstance(exc, TransactionFault) and not self._transient(exc):
                    raise
                log.warning("%s: Kafka fault in its transaction (%s): aborted; sent again from its last committed"
                            " part", name, describe(exc))  # fmt: skip
                self._outage.failed(exc)
                await asyncio.sleep(backoff.next_delay())
            except BaseException:
                await asyncio.shield(self._sink.abort(lane))
                raise
            else:
                return result

    def _transient(self, exc: BaseException) -> bool:
        # begin and commit fail with the broker's own errors (chunk faults arrive as TransactionFault); a file
        # that cannot be read is no Kafka fault, whatever its OSError says
        return isinstance(exc, kafka_errors.KafkaError) and self._is_transient(exc)
