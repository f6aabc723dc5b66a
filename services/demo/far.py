"""A broker with a far side: one address reached directly, one across a ``Link`` (the relay), so that either
daemon can be put across a long link while the other stays beside the broker.

Apache Kafka gets a second listener, ``FAR``, advertised at the relay's port: a client bootstrapped there is sent
to the relay for every connection, while a client of the ``PLAINTEXT`` listener talks to the broker directly.
Tansu advertises one address only: both its sides are the relay's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from streamsend.demo.broker import EmbeddedBroker, free_port
from streamsend.demo.kafka_broker import ApacheKafka
from streamsend.demo.relay import Link, Relay


@dataclass(frozen=True)
class FarBroker:
    broker: EmbeddedBroker | ApacheKafka
    relay: Relay
    near: str  # bootstrap address beside the broker
    far: str  # bootstrap address across the link


@contextlib.contextmanager
def far_broker(kind: str, link: Link | None = None) -> Iterator[FarBroker]:
    """``kind``: "tansu" or "kafka" (one KRaft node, with Kafka's default limits)."""
    relay_port = free_port()
    running: EmbeddedBroker | ApacheKafka
    if kind == "kafka":
        running = ApacheKafka(listeners=("PLAINTEXT", "FAR"), advertised={"FAR": relay_port})
        target = running.nodes[0].ports["FAR"]
    else:
        running = EmbeddedBroker(advertised_port=relay_port)
        target = running.port
    with running, Relay(relay_port, target, link=link) as relay:
        if isinstance(running, ApacheKafka):
            yield FarBroker(running, relay, running.servers("PLAINTEXT"), running.servers("FAR"))
        else:
            yield FarBroker(running, relay, relay.address, relay.address)
