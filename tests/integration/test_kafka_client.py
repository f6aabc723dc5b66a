"""aiokafka on uvloop, against a real broker: a connection closed under a request fails as a Kafka connection
error, which aiokafka handles, and never as the RuntimeError that used to end its metadata synchronizer (see
shared/kafka_compat.py). The connection is reset on our side of the socket, and requests are sent in the
loop iterations before aiokafka notices: the moment a broker's crash hits a request by chance."""

from __future__ import annotations

import asyncio

import aiokafka.errors as kafka_errors
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

import streamsend.shared.connection  # noqa: F401  (installs the fix, as every daemon does)
from streamsend.shared import kafka_compat
from tests.support.brokers import Broker
from tests.support.kafka import TopicFactory, produce


def _host_port(broker: Broker) -> tuple[str, int]:
    host, port = broker.bootstrap.split(",")[0].rsplit(":", 1)
    return host, int(port)


async def test_a_request_on_a_connection_closed_under_it_is_a_kafka_connection_error(broker: Broker) -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)  # asyncio's own transports never raised here
    conn = await create_conn(*_host_port(broker), request_timeout_ms=10_000)
    try:
        assert (await conn.send(MetadataRequest([]))).brokers
        conn._writer.transport.abort()  # as a reset from a broker that died
        failures: list[str] = []
        while conn._writer is not None:  # the window between uvloop closing its handle and aiokafka noticing
            await asyncio.sleep(0)
            try:
                conn.send(MetadataRequest([])).close()
            except kafka_errors.KafkaConnectionError as exc:
                failures.append(str(exc))
        assert failures and "broken" in failures[0], failures
        assert not conn.connected()
    finally:
        conn.close()


async def test_a_producer_tracking_its_topics_keeps_their_leaders_after_a_send_to_a_topic_made_later(
    broker: Broker, topics: TopicFactory
) -> None:
    """aiokafka's behaviour behind the stall on fresh topics (shared/kafka_compat.track_topics), and its remedy.
    Should a later aiokafka keep every known topic in its refreshes, the first half fails: the remedy may go."""
    chunks = await topics.create()
    await produce(broker.bootstrap, chunks, [{"value": b"first", "partition": p} for p in range(6)])  # leaders up
    plain = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    tracking = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await plain.start()
    await tracking.start()
    try:
        for producer in (plain, tracking):  # as an idempotent producer's start does: every topic's metadata
            await kafka_compat.refresh_metadata(producer)
        state = await topics.create(1)  # made after the producers started: their first metadata lacks it
        await kafka_compat.track_topics(tracking, [chunks, state])
        for producer in (plain, tracking):
            await (await producer.send(chunks, b"chunk", partition=0))  # known from the every-topic metadata
            await (await producer.send(state, b"state", partition=0))  # named now: tracked from here on
            await kafka_compat.refresh_metadata(producer)
        assert kafka_compat.partitions_known(plain, chunks) is None  # forgotten: queued chunks find no leader
        assert kafka_compat.partitions_known(tracking, chunks) == set(range(6))
    finally:
        await plain.stop()
        await tracking.stop()


async def test_the_aiokafka_internals_streamsend_relies_on_are_there(broker: Broker, topics: TopicFactory) -> None:
    """Every function of shared/kafka_compat on real, running clients: fails loudly with an aiokafka that no
    longer has what one of them reads."""
    topic = await topics.create(2)
    host, port = _host_port(broker)
    conn = await kafka_compat.connect(host, port, request_timeout_ms=10_000)
    try:
        assert (await conn.send(MetadataRequest([]))).brokers
    finally:
        conn.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=f"g-{topic}",
                                session_timeout_ms=2000, heartbeat_interval_ms=500)  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await producer.start()
    await consumer.start()
    await admin.start()
    try:
        await kafka_compat.track_topics(producer, [topic])
        await (await producer.send(topic, b"x", partition=0))
        await kafka_compat.refresh_metadata(producer)
        assert kafka_compat.partitions_known(producer, topic) == {0, 1}
        assert kafka_compat.sender_end(producer) is None
        assert not kafka_compat.in_transaction(producer)
        await consumer.getmany(timeout_ms=500)
        assert not kafka_compat.coordination_ended(consumer)
        await admin.list_topics()
        assert kafka_compat.broker_count(admin) >= 1
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()
    assert kafka_compat.sender_end(producer) == "cancelled"
    assert kafka_compat.coordination_ended(consumer)
    abandoned = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await abandoned.start()
    await kafka_compat.close_abandoned(abandoned, 5)  # no "Unclosed AIOKafkaProducer" when it is collected
    assert kafka_compat.sender_end(abandoned) == "cancelled"
