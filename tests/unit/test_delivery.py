from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Iterator

import aiokafka.errors as kafka_errors
import pytest

from streamsend.shared.errors import PermanentSendError
from streamsend.shared.faults import is_transient
from streamsend.shared.retry import Outage
from streamsend.uploader.budget import ByteBudget
from streamsend.uploader.delivery import Courier, FileDelivery, OutgoingRecord
from tests.support.clock import Clock


class FakeSink:
    """Acknowledges every record, except that listed outcomes are used up one per enqueue, in order."""

    def __init__(self, outcomes: list[Exception | None] | None = None, enqueue_errors: int = 0) -> None:
        self._outcomes: Iterator[Exception | None] = iter(outcomes or [])
        self._enqueue_errors = enqueue_errors
        self.enqueued: list[int] = []
        self.recovered: list[str] = []

    async def recover(self, lane: int, exc: BaseException, spread: bool = False) -> None:
        self.recovered.append(type(exc).__name__)

    async def enqueue(self, record: OutgoingRecord, lane: int, spread: bool = False) -> Awaitable[object]:
        if self._enqueue_errors:
            self._enqueue_errors -= 1
            raise kafka_errors.KafkaTimeoutError()
        self.enqueued.append(record.index)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        outcome = next(self._outcomes, None)
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
        return future


def _record(index: int, size: int = 10) -> OutgoingRecord:
    return OutgoingRecord(b"k", b"x" * size, [], 0, index)


async def _send(courier: Courier, delivery: FileDelivery, record: OutgoingRecord) -> None:
    """As the reader does: reserve the bytes, then hand the record over with its reservation."""
    reservation = await courier.budget.reserve(len(record.value))
    await delivery.send(dataclasses.replace(record, reservation=reservation))


def _courier(sink: FakeSink, outage: Outage, budget: ByteBudget | None = None) -> Courier:
    return Courier(sink, budget or ByteBudget(1000), outage, is_transient, 0.02)


async def test_every_record_is_acknowledged_and_the_budget_returns_to_zero() -> None:
    sink, budget, acked = FakeSink(), ByteBudget(1000), []
    courier = _courier(sink, Outage("Kafka"), budget)
    async with courier.file(0, lambda r, _: acked.append(r.index)) as delivery:
        for index in range(5):
            await _send(courier, delivery, _record(index))
    assert sorted(acked) == [0, 1, 2, 3, 4]
    assert sink.enqueued == [0, 1, 2, 3, 4]  # handed over in order
    assert budget.used == 0


async def test_transient_faults_are_retried_and_the_outage_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    down = kafka_errors.KafkaConnectionError("broker unreachable")
    sink = FakeSink([down, down, None, down, None])
    retries: list[int] = []
    outage = Outage("Kafka", on_retry=lambda: retries.append(1))
    courier = _courier(sink, outage)
    acked: list[int] = []
    async with courier.file(0, lambda r, _: acked.append(r.index)) as delivery:
        await _send(courier, delivery, _record(0))
        await _send(courier, delivery, _record(1))
    assert sorted(acked) == [0, 1]
    assert len(retries) == 3
    assert not outage.down and outage.count >= 1
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    recoveries = [r for r in caplog.records if "back after an outage" in r.getMessage()]
    assert len(warnings) == outage.count and len(recoveries) == outage.count


async def test_a_failing_enqueue_is_retried_too() -> None:
    sink = FakeSink(enqueue_errors=2)
    courier = _courier(sink, Outage("Kafka"))
    async with courier.file(0, lambda r, _: None) as delivery:
        await _send(courier, delivery, _record(0))
    assert sink.enqueued == [0]


async def test_a_permanent_fault_fails_the_file() -> None:
    sink = FakeSink([None, kafka_errors.MessageSizeTooLargeError("too big")])
    budget = ByteBudget(1000)
    courier = _courier(sink, Outage("Kafka"), budget)
    with pytest.raises(PermanentSendError, match="MessageSizeTooLargeError"):
        async with courier.file(0, lambda r, _: None) as delivery:
            await _send(courier, delivery, _record(0))
            await _send(courier, delivery, _record(1))
            await asyncio.sleep(0.05)
    assert budget.used == 0


async def test_an_error_of_the_sender_itself_comes_out_unwrapped() -> None:
    courier = _courier(FakeSink(), Outage("Kafka"))
    with pytest.raises(FileNotFoundError):
        async with courier.file(0, lambda r, _: None) as delivery:
            await _send(courier, delivery, _record(0))
            raise FileNotFoundError("gone")


def test_fault_classes() -> None:
    assert is_transient(kafka_errors.KafkaConnectionError())
    assert is_transient(kafka_errors.KafkaTimeoutError())
    assert is_transient(kafka_errors.NotLeaderForPartitionError())
    assert is_transient(ConnectionResetError())
    assert is_transient(kafka_errors.KafkaError("Unexpected error during batch delivery"))  # the client is replaced
    assert not is_transient(kafka_errors.MessageSizeTooLargeError())
    assert not is_transient(kafka_errors.TopicAuthorizationFailedError())
    assert not is_transient(ValueError())


async def test_a_broken_sequence_is_retried_after_the_sink_mends_its_producer() -> None:
    # A partition leader changed under in-flight batches: the idempotent producer's sequence is broken.
    sink = FakeSink([kafka_errors.OutOfOrderSequenceNumber(), kafka_errors.ProducerClosed(), None])
    courier = _courier(sink, Outage("Kafka"))
    acked: list[int] = []
    async with courier.file(0, lambda r, _: acked.append(r.index)) as delivery:
        await _send(courier, delivery, _record(0))
    # ...and the records in flight on the producer replaced fail with ProducerClosed: sent again as well
    assert acked == [0] and sink.enqueued == [0, 0, 0]
    assert sink.recovered == ["OutOfOrderSequenceNumber", "ProducerClosed"]


class SlowFailure:
    """A record the broker never acknowledges: it fails after the request timeout, which a fake clock spends."""

    def __init__(self, clock: Clock, waited_s: float) -> None:
        self.clock, self.waited_s, self.failed = clock, waited_s, False
        self.enqueued: list[int] = []

    async def recover(self, lane: int, exc: BaseException, spread: bool = False) -> None:
        pass

    async def enqueue(self, record: OutgoingRecord, lane: int, spread: bool = False) -> Awaitable[object]:
        self.enqueued.append(record.index)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failed:
            future.set_result(None)
        else:
            self.failed = True
            self.clock.now += self.waited_s  # the request timeout goes by before the error comes
            future.set_exception(kafka_errors.NotLeaderForPartitionError())
        return future


async def test_an_outage_is_as_long_as_the_record_waited_not_as_long_as_since_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock(100.0)
    outage = Outage("Kafka", clock=clock)
    sink = SlowFailure(clock, waited_s=30.0)
    courier = Courier(sink, ByteBudget(1000), outage, is_transient, 0.0)
    async with courier.file(0, lambda r, _: None) as delivery:
        await _send(courier, delivery, _record(0))
    back = [r.getMessage() for r in caplog.records if "back after an outage" in r.getMessage()]
    assert back == ["Kafka back after an outage of 30.0 s (1 retries)"]
