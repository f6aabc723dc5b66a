"""aiokafka on uvloop, against a real broker: a connection closed under a request fails as a Kafka connection
error, which aiokafka handles, and never as the RuntimeError that used to end its metadata synchronizer (see
shared/kafka_compat.py). The connection is reset on our side of the socket, and requests are sent in the
loop iterations before aiokafka notices: the moment a broker's crash hits a request by chance."""

from __future__ import annotations

import asyncio

import aiokafka.errors as kafka_errors
import uvloop
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

import streamsend.shared.connection  # noqa: F401  (installs the fix, as every daemon does)
from tests.support.brokers import Broker


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
