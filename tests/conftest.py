"""Fixtures shared by the whole suite: uvloop for every async test, and one real broker per session."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
import uvloop

from streamsend.demo.broker import EmbeddedBroker
from tests.support.kafka import TopicFactory


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, object]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A real Kafka-protocol broker (Tansu) on a free loopback port, for the whole session."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def topics(broker: EmbeddedBroker) -> Iterator[TopicFactory]:
    """Unique topic names for one test; their data is deleted afterwards to keep the broker's memory small."""
    factory = TopicFactory(broker.bootstrap)
    yield factory
    factory.delete_all()
