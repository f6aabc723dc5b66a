"""The brokers the integration tests run against: Tansu (embedded, in memory) and Apache Kafka itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from streamsend.demo.broker import EmbeddedBroker, free_port
from streamsend.demo.kafka_broker import ApacheKafka, java_binary, kafka_libs
from streamsend.demo.relay import Relay
from streamsend.shared.errors import BrokerError

Broker = EmbeddedBroker | ApacheKafka
BROKERS = ("tansu", "kafka")


def require_kafka() -> None:
    """Skip, naming the command that installs it, where Apache Kafka or Java is missing."""
    try:
        kafka_libs()
        java_binary()
    except BrokerError as exc:
        pytest.skip(f"{exc} (scripts/test installs it)")


@contextlib.contextmanager
def relayed_broker(kind: str) -> Iterator[tuple[Broker, Relay]]:
    """A broker of its own that tells clients to connect through a relay the test controls."""
    relay_port = free_port()
    running: Broker
    if kind == "kafka":
        require_kafka()
        running = ApacheKafka(advertised={"PLAINTEXT": relay_port})
        target = running.nodes[0].ports["PLAINTEXT"]
    else:
        running = EmbeddedBroker(advertised_port=relay_port)
        target = running.port
    with running:
        relay = Relay(relay_port, target).start()
        try:
            yield running, relay
        finally:
            relay.stop()
