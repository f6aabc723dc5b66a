"""ProducerPool's replacement of a producer that can no longer deliver: one whose background sender ended (aiokafka
ends it on any unexpected error and then refuses every record with a bare KafkaError), or whose sequence broke.
The producers are stand-ins with the two attributes the pool reads; the pool's rule is what is tested."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiokafka.errors as kafka_errors
import pytest

from streamsend.shared.faults import is_transient
from streamsend.shared.retry import Outage
from streamsend.shared.settings import load_settings
from streamsend.uploader.kafka import ProducerPool
from streamsend.uploader.settings import UploaderSettings


class Sender:
    def __init__(self, task: asyncio.Future[None]) -> None:
        self.sender_task = task


class StandIn:
    """Acknowledges what it is given while its sender runs; refuses it, as aiokafka does, once the sender died."""

    def __init__(self) -> None:
        self._sender = Sender(asyncio.get_running_loop().create_future())
        self.sent: list[bytes] = []

    def die(self) -> None:
        self._sender.sender_task.set_exception(kafka_errors.KafkaError("Unexpected error during batch delivery"))

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        if self._sender.sender_task.done():
            raise kafka_errors.KafkaError("Unexpected error during batch delivery")
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProducerPool:
    for name in [name for name in os.environ if name.startswith("STREAMSEND_")]:
        monkeypatch.delenv(name)
    settings = load_settings(UploaderSettings, ["--input-dir", str(tmp_path), "--topic", "chunks"], "t")
    made = ProducerPool(settings, 1 << 20, Outage("Kafka"))
    made.idempotent = True

    async def start(idempotent: bool, transactional_id: str | None = None) -> StandIn:
        return StandIn()

    monkeypatch.setattr(made, "_start", start)
    return made


async def test_a_producer_whose_sender_died_is_replaced_on_the_next_send(pool: ProducerPool) -> None:
    first, second = StandIn(), StandIn()
    pool._producers = [first, second]
    await (await pool.send("chunks", b"k", b"one", 0, lane=0))
    first.die()
    await (await pool.send("chunks", b"k", b"two", 0, lane=0))  # would raise the bare KafkaError
    assert pool._producers[0] is not first and pool._producers[1] is second
    assert first.sent == [b"one"] and pool._producers[0].sent == [b"two"]
    assert pool._retired == [first]  # closed with the pool, not waited for now


async def test_a_record_failed_by_a_dead_sender_is_transient_and_its_producer_replaced(pool: ProducerPool) -> None:
    dead = StandIn()
    pool._producers = [dead]
    dead.die()
    fault = kafka_errors.KafkaError("Unexpected error during batch delivery")
    assert is_transient(fault)  # so the courier sends the record again...
    await pool.recover(0, fault)  # ...after the pool has mended the lane
    assert pool._producers[0] is not dead
    replaced = pool._producers[0]
    await pool.recover(0, fault)  # another record of the dead producer: the lane is well already
    assert pool._producers[0] is replaced


async def test_a_live_producer_is_kept_whatever_the_fault(pool: ProducerPool) -> None:
    live = StandIn()
    pool._producers = [live]
    await pool.recover(0, kafka_errors.KafkaTimeoutError())
    assert pool._producers == [live]
    await pool.recover(0, kafka_errors.OutOfOrderSequenceNumber())  # a broken sequence is the other reason
    assert pool._producers[0] is not live
