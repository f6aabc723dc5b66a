"""Direct broker access for tests: topic management, a plain producer for hand-made records and a reader of
what a topic holds."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamsend.shared.protocol import decode

_counter = itertools.count(1)


class TopicFactory:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._made: list[str] = []

    async def create(self, partitions: int = 6, configs: dict[str, str] | None = None, replicas: int = 1) -> str:
        """A new topic, created before anything else names it (the broker would create it with 4)."""
        name = self.reserve()
        await self._create(name, partitions, configs or {}, replicas)
        return name

    def reserve(self) -> str:
        """A new topic name, left for the daemons to create; deleted after the test all the same."""
        name = f"t{next(_counter)}-{uuid.uuid4().hex[:8]}"
        self._made.append(name)
        return name

    async def _create(self, name: str, partitions: int, configs: dict[str, str], replicas: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, replicas, topic_configs=configs)])
        finally:
            await admin.close()

    def delete_all(self) -> None:
        if self._made:
            asyncio.run(self._delete(self._made))
            self._made = []

    async def _delete(self, names: list[str]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(names)
        finally:
            await admin.close()


async def produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    """Send records as given (value, key, headers, partition) with a plain producer, bypassing streamsend."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, **record) for record in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def partition_count(bootstrap: str, topic: str) -> int:
    """Asked of the admin API: a consumer with no subscription knows no topics on Apache Kafka."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return len((await admin.describe_topics([topic]))[0]["partitions"])
    finally:
        await admin.close()


async def leader(bootstrap: str, topic: str, partition: int) -> int:
    """The node id that leads a partition now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = (await admin.describe_topics([topic]))[0]["partitions"]
        return int(next(p["leader"] for p in described if p["partition"] == partition))
    finally:
        await admin.close()


async def keys(bootstrap: str, topic: str, timeout_s: float = 30) -> list[bytes | None]:
    """The key of every record in the topic now."""
    return [record.key for record in await records(bootstrap, topic, timeout_s)]


async def _to_the_end(
    bootstrap: str, topic: str, timeout_s: float, committed_only: bool, **options: Any
) -> AsyncIterator[Any]:
    """Every record in the topic now, read from the start of each partition to its high watermark (the end
    offsets some brokers report are wrong), or to its last stable offset with ``committed_only``, as a
    read_committed consumer sees them."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
        isolation_level="read_committed" if committed_only else "read_uncommitted", **options,
    )  # fmt: skip
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(await partition_count(bootstrap, topic))]
        consumer.assign(partitions)
        remaining = set(partitions)
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            for batch in (await consumer.getmany(*remaining, timeout_ms=500)).values():
                for record in batch:
                    yield record
            for tp in list(remaining):
                end = consumer.last_stable_offset(tp) if committed_only else consumer.highwater(tp)
                if end is not None and await consumer.position(tp) >= end:
                    remaining.discard(tp)
        if remaining:
            raise AssertionError(f"{topic}: could not read to the end of partitions {sorted(remaining)}")
    finally:
        await consumer.stop()


async def records(bootstrap: str, topic: str, timeout_s: float = 30, committed_only: bool = False) -> list[Any]:
    """Every record in the topic now (``_to_the_end``)."""
    return [record async for record in _to_the_end(bootstrap, topic, timeout_s, committed_only)]


@dataclass(frozen=True)
class ChunkSeen:
    partition: int
    offset: int
    timestamp_ms: int
    path: str
    upload_id: str
    index: int
    length: int


async def chunks_on_topic(
    bootstrap: str, topic: str, timeout_s: float = 120, committed_only: bool = False
) -> list[ChunkSeen]:
    """Every chunk record on the topic (``_to_the_end``), without keeping their values: what was produced, as the
    broker holds it (for a gigabyte, not the test's memory)."""
    found: list[ChunkSeen] = []
    big = 16 * 1024 * 1024
    async for record in _to_the_end(
        bootstrap, topic, timeout_s, committed_only, fetch_max_bytes=big, max_partition_fetch_bytes=big
    ):
        header = decode(record.headers, record.value)
        found.append(ChunkSeen(record.partition, record.offset, record.timestamp, header.path, header.upload_id,
                               header.index, len(record.value or b"")))  # fmt: skip
    return found
