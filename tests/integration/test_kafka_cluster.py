"""A three-node Apache Kafka cluster on loopback: the chunk topic has three replicas and needs two in sync.

The leader of the partition carrying a big file is killed with SIGKILL mid-transfer and started again later;
the transfer goes on with the two nodes left (min.insync.replicas 2), files added after the restart follow, and
every file arrives once, intact.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamsend.demo.kafka_broker import ApacheKafka
from streamsend.demo.verify import compare_trees
from streamsend.uploader.planner import partition_for
from tests.support.brokers import require_kafka
from tests.support.kafka import TopicFactory, leader
from tests.support.processes import assert_alive, daemon_pair, found_identical, messages, published, stop_cleanly
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BIG = 150_000_000
PARTITIONS = 3


@pytest.fixture
def cluster() -> Iterator[ApacheKafka]:
    require_kafka()
    properties = {
        "min.insync.replicas": "2",
        "default.replication.factor": "3",
        "broker.session.timeout.ms": "3000",  # a dead node's partitions move within seconds (default 9 s)
        "broker.heartbeat.interval.ms": "500",
    }
    with ApacheKafka(nodes=3, properties=properties) as kafka:
        yield kafka


def _tree(source: Path) -> int:
    (source / "scans").mkdir(parents=True)
    with (source / "scans" / "archive.bin").open("wb") as out:
        for _ in range(BIG // 1_000_000):
            out.write(os.urandom(1_000_000))
    for index in range(12):
        (source / "forms" / f"{index}.pdf").parent.mkdir(exist_ok=True)
        (source / "forms" / f"{index}.pdf").write_bytes(os.urandom(30_000 + index))
    return 13 + 3  # and three files added once the killed node is back


async def test_the_partition_leader_killed_mid_transfer_loses_and_duplicates_nothing(
    cluster: ApacheKafka, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    files = _tree(source)
    bootstrap = cluster.bootstrap
    topic = await TopicFactory(bootstrap).create(PARTITIONS, {"min.insync.replicas": "2"}, replicas=3)
    state = f"{topic}-state"
    settings = {"request_timeout": 10, "retry_backoff_max": 3, "state_topic": state}
    async with daemon_pair(bootstrap, topic, source, target, tmp_path, **settings) as (up, down):
        await down.wait_for_log("archive.bin (00001/")
        victim_id = await leader(bootstrap, topic, partition_for("edge-1", "scans/archive.bin", PARTITIONS))
        victim = next(node for node in cluster.nodes if node.node_id == victim_id)
        victim.kill()
        await up.wait_for_log("scans/archive.bin: Successfully processed", timeout_s=240)
        assert_alive(up, down)
        assert not victim.running
        await asyncio.to_thread(cluster.restart, victim)
        for index in range(3):
            (source / "late" / f"{index}.txt").parent.mkdir(exist_ok=True)
            (source / "late" / f"{index}.txt").write_bytes(os.urandom(50_000))
        await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 300, "the whole tree", 1.0)
        await stop_cleanly(up, down)
    down_messages = messages(down.log())
    verified = published(down_messages)
    assert sorted(verified) == sorted(set(verified)), "a file was published twice"
    assert len(set(verified) | set(found_identical(down_messages))) == files
    assert len(re.findall(r": Successfully processed\.", up.log())) == files, "a file was sent twice"
    assert await leader(bootstrap, state, 0) in {node.node_id for node in cluster.nodes}
