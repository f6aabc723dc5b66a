"""A downloader whose Kafka consumer is stuck inside the client replaces it and goes on committing.

The consumer is wedged the way it was found once (see shared/kafka_compat.py): its group coordinator marked
dead and the coordinator's lookup never finishing, so that every commit and heartbeat waits on it, while
fetches and metadata requests still succeed.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamsend.demo.verify import compare_trees
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory, records
from tests.support.waiting import wait_until

REQUEST_TIMEOUT_S = 4.0  # stuck after three of these with the broker answering; above the test broker's join hold


def _write(source: Path, names: range) -> None:
    source.mkdir(exist_ok=True)
    for index in names:
        (source / f"{index}.bin").write_bytes(os.urandom(20_000 + index))


def _consumer_of(group: str) -> AIOKafkaConsumer:
    found = [o for o in gc.get_objects() if isinstance(o, AIOKafkaConsumer) and o._group_id == group]
    assert len(found) == 1, found
    return found[0]


async def _ends(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """The offset after each partition's last record."""
    ends: dict[TopicPartition, int] = {}
    for record in await records(bootstrap, topic):
        tp = TopicPartition(record.topic, record.partition)
        ends[tp] = max(ends.get(tp, 0), record.offset + 1)
    return ends


async def _committed(bootstrap: str, group: str, ends: dict[TopicPartition, int]) -> bool:
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        return all([await committer.committed(tp) == end for tp, end in ends.items()])
    finally:
        await committer.stop()


async def test_a_consumer_that_cannot_commit_while_the_broker_answers_is_replaced(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    _write(source, range(3))
    topic = await topics.create()
    group = f"group-{topic}"
    async with (
        uploader(broker.bootstrap, topic, source) as up,
        downloader(broker.bootstrap, topic, target, request_timeout=REQUEST_TIMEOUT_S) as down,
    ):
        await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 60, "the first files")
        wedged = _consumer_of(group)
        coordinator = wedged._coordinator
        lookup = coordinator._coordinator_lookup_lock
        await lookup.acquire()  # a coordinator lookup that never ends
        try:
            coordinator.coordinator_dead()
            _write(source, range(3, 8))
            await wait_until(
                lambda: down.metric("streamsend_downloader_consumers_replaced_total") >= 1, 90, "a new consumer"
            )
            # nothing of the old consumer is left running, though its stop could not finish
            assert coordinator._coordination_task.done() and wedged._fetcher._fetch_task.done()
            assert not any(conn.connected() for conn in wedged._client._conns.values())
            await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 60, "the later files")
            ends = await _ends(broker.bootstrap, topic)
            assert sum(ends.values()) >= 8  # one record a file: each is smaller than a chunk
            await wait_until(lambda: _committed(broker.bootstrap, group, ends), 60, "every offset committed")
            up.check_alive()
            down.check_alive()
        finally:
            lookup.release()
    assert down.metric("streamsend_downloader_consumers_replaced_total") == 1
