"""Delivery of chunk records: enqueue in order, confirm in the background, retry transient faults forever.

A file's chunks are handed over one after another while their acknowledgements are awaited by one task each,
inside a task group owned by the file. A large file's chunks go through a ``Window`` of several producers, one
chunk outstanding on each, as wide as the link calls for (``window.py``); a group of one-chunk files, and the
chunks of a transaction, go through the lane's one producer, in order.
A chunk that fails on a transient fault is re-sent after a capped, jittered backoff, however long the
outage lasts; a permanent fault (record too large, not authorised) fails the whole file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from streamsend.shared.access import REFUSALS
from streamsend.shared.errors import PermanentSendError, TransactionFault
from streamsend.shared.protocol import Headers
from streamsend.shared.retry import Backoff, Outage, describe
from streamsend.uploader.budget import ByteBudget, Reservation
from streamsend.uploader.window import LinkGauge, Window

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    key: bytes
    value: bytes
    headers: Headers
    partition: int
    index: int  # chunk index, for progress reports
    reservation: Reservation | None = None  # its bytes in the budget: released once it is settled

    def settled(self) -> None:
        """Acknowledged, failed for good, or never to be sent: its bytes leave the budget."""
        if self.reservation is not None:
            self.reservation.release()


class ChunkSink(Protocol):
    async def enqueue(self, record: OutgoingRecord, lane: int, spread: bool = False) -> Awaitable[object]:
        """Hand a record to the lane's producer; the result completes when the broker acknowledges it. With
        ``spread`` the lane is a window's slot: the producer of that number, opened if it is not yet."""

    async def recover(self, lane: int, exc: BaseException, spread: bool = False) -> None:
        """Mend the lane's producer after a transient fault, if the fault calls for it."""


class Courier:
    """Delivers the records of every file through one sink, within one budget of bytes in flight."""

    def __init__(
        self,
        sink: ChunkSink,
        budget: ByteBudget,
        outage: Outage,
        is_transient: Callable[[BaseException], bool],
        backoff_max_s: float,
        resend: bool = True,
        gauge: LinkGauge | None = None,
    ) -> None:
        self.sink = sink
        self.gauge = gauge  # None: every file keeps to its lane's producer
        self.resend = resend  # False in transactions: a transient fault raises TransactionFault instead
        self.budget = budget
        self.outage = outage
        self.is_transient = is_transient
        self.backoff_max_s = backoff_max_s

    def file(self, lane: int, on_ack: Callable[[OutgoingRecord, int], None], spread: bool = False) -> FileDelivery:
        """The delivery of one file's records; ``spread``: through a window of producers (a large file outside
        a transaction), rather than the lane's producer alone."""
        window = Window(self.gauge) if spread and self.gauge is not None else None
        return FileDelivery(self, lane, on_ack, window)


class FileDelivery:
    """The records of one file; leaving the ``async with`` block waits until all are acknowledged."""

    def __init__(
        self, courier: Courier, lane: int, on_ack: Callable[[OutgoingRecord, int], None], window: Window | None = None
    ) -> None:
        self._courier = courier
        self._lane = lane
        self._on_ack = on_ack
        self._group = asyncio.TaskGroup()
        self.window = window

    async def __aenter__(self) -> FileDelivery:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._group.__aexit__(kind, exc, tb)
        except BaseExceptionGroup as group:
            # Callers see the error itself, not the task group's wrapping: the body's own first.
            if exc is not None and exc in group.exceptions:
                raise exc from None
            for kind in (PermanentSendError, TransactionFault):
                found = group.subgroup(kind)
                if found is not None:
                    raise _first_leaf(found) from None
            raise

    async def send(self, record: OutgoingRecord) -> None:
        """Enqueue a record whose bytes are reserved in the budget; it is confirmed in the background, and its
        reservation released once acknowledged (or once it fails for good). In a window, this waits for a
        free slot first."""
        window = self.window
        try:
            slot = await window.acquire() if window is not None else None
        except BaseException:
            record.settled()
            raise
        lane = self._lane if slot is None else slot
        sent = self._courier.outage.clock()
        try:
            ack = await self._enqueue(record, lane, slot is not None)
        except BaseException:
            record.settled()
            if window is not None and slot is not None:
                window.release(slot)
            raise
        self._group.create_task(self._confirm(record, ack, sent, lane, slot))

    async def _enqueue(self, record: OutgoingRecord, lane: int, spread: bool) -> Awaitable[object]:
        courier = self._courier
        backoff = Backoff(max_s=courier.backoff_max_s)
        while True:
            try:
                return await courier.sink.enqueue(record, lane, spread)
            except Exception as exc:
                await self._pause_or_raise(exc, backoff, lane, spread)

    async def _confirm(
        self, record: OutgoingRecord, ack: Awaitable[object], sent: float, lane: int, slot: int | None
    ) -> None:
        """``sent``: when the record was handed to Kafka (an outage it meets is counted from there)."""
        courier = self._courier
        backoff = Backoff(max_s=courier.backoff_max_s)
        first = True  # a record sent again: its time says nothing of the link
        acked_after: float | None = None
        try:
            while True:
                try:
                    result = await ack
                except Exception as exc:
                    await self._pause_or_raise(exc, backoff, lane, slot is not None, since=sent)
                    sent, first = courier.outage.clock(), False
                    ack = await self._enqueue(record, lane, slot is not None)
                else:
                    courier.outage.succeeded()
                    acked_after = courier.outage.clock() - sent if first else None
                    self._on_ack(record, getattr(result, "offset", -1))  # where the broker put it
                    return
        finally:
            record.settled()
            if self.window is not None and slot is not None:
                self.window.release(slot, acked_after)

    async def _pause_or_raise(
        self, exc: Exception, backoff: Backoff, lane: int, spread: bool, since: float | None = None
    ) -> None:
        """``since``: when the failed record was handed to Kafka, the start of the wait an outage accounts for."""
        courier = self._courier
        if isinstance(exc, REFUSALS):
            raise exc  # the ACLs refuse every file alike: not a fault of this file, the daemon stops
        if not courier.is_transient(exc):
            raise PermanentSendError(describe(exc)) from exc
        if not courier.resend:
            raise TransactionFault(describe(exc)) from exc
        courier.outage.failed(exc, since=since)
        await courier.sink.recover(lane, exc, spread)
        await asyncio.sleep(backoff.next_delay())


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
