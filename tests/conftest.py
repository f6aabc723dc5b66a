"""Fixtures shared by the whole suite: uvloop for every async test, and one real broker of each kind per session.

A test that takes the ``broker`` fixture runs against both Tansu and Apache Kafka (``-m tansu`` / ``-m kafka``
select one); ``@pytest.mark.brokers("tansu")`` keeps a test on the embedded broker where the broker's kind
does not matter to what it shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

import pytest
import uvloop

from streamsend.demo.broker import EmbeddedBroker
from streamsend.demo.kafka_broker import ApacheKafka
from tests.support.brokers import BROKERS, Broker, require_kafka
from tests.support.kafka import TopicFactory

TLS_MODULES = ("test_kafka_security", "test_secure")  # the daemons run TLS on asyncio's loop (shared/lifecycle.py)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, object]:
    if item.path.stem in TLS_MODULES:
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("brokers")
        metafunc.parametrize("broker", marker.args if marker else BROKERS, indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        kind = next((value for value in params if isinstance(value, str) and value in BROKERS), None)
        if kind is None and "kafka" in getattr(item, "fixturenames", ()):
            kind = "kafka"
        if kind is not None:
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def tansu() -> Iterator[EmbeddedBroker]:
    """Tansu on a free loopback port, for the whole session."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="session")
def kafka() -> Iterator[ApacheKafka]:
    """One Apache Kafka node (KRaft) on free loopback ports, for the whole session."""
    require_kafka()
    with ApacheKafka(properties={"log.cleaner.backoff.ms": "200"}) as running:  # compaction tests wait less
        yield running


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest) -> Broker:
    """A real Kafka-protocol broker: the test runs once on each kind."""
    running: Broker = request.getfixturevalue(request.param)
    return running


@pytest.fixture
def topics(broker: Broker) -> Iterator[TopicFactory]:
    """Unique topic names for one test; their data is deleted afterwards to keep the broker's memory small."""
    factory = TopicFactory(broker.bootstrap)
    yield factory
    factory.delete_all()
