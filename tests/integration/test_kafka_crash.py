"""A real broker crash: Apache Kafka killed with SIGKILL in the middle of a transfer and started again on the
same log dir five seconds later, as an operator's broker restarts. Every file arrives once, intact (the big one
too: no commit may pass its first chunk while it is unpublished, whatever the rebalances in between), and both
daemons stay up throughout."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamsend.demo.kafka_broker import ApacheKafka
from streamsend.demo.verify import compare_trees
from tests.support.brokers import require_kafka
from tests.support.kafka import TopicFactory
from tests.support.processes import assert_alive, daemon_pair, found_identical, messages, published, stop_cleanly
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BIG = 300_000_000
DOWN_S = 5
SMALL = 100


@pytest.fixture
def own_kafka() -> Iterator[ApacheKafka]:
    require_kafka()
    with ApacheKafka() as kafka:
        yield kafka


def _tree(source: Path) -> int:
    (source / "video").mkdir(parents=True)
    with (source / "video" / "big.bin").open("wb") as out:
        for _ in range(BIG // 1_000_000):
            out.write(os.urandom(1_000_000))
    for index in range(SMALL):
        (source / "small" / f"{index}.txt").parent.mkdir(exist_ok=True)
        (source / "small" / f"{index}.txt").write_bytes(os.urandom(4000 + index))
    return SMALL + 1


@pytest.mark.parametrize(("transactional", "kills"), [("off", 1), ("on", 1), ("off", 3)])
async def test_a_broker_killed_mid_transfer_and_restarted_loses_and_duplicates_nothing(
    own_kafka: ApacheKafka, tmp_path: Path, transactional: str, kills: int
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    files = _tree(source)
    bootstrap = own_kafka.bootstrap
    topic = await TopicFactory(bootstrap).create()
    settings = {"request_timeout": 10, "retry_backoff_max": 3, "state_topic": f"{topic}-state",
                "transactional": transactional}  # fmt: skip
    async with daemon_pair(bootstrap, topic, source, target, tmp_path, **settings) as (up, down):
        await down.wait_for_log("big.bin (00001/")
        node = own_kafka.nodes[0]

        def mirrored() -> bool:
            return compare_trees(source, target / "edge-1").identical

        def moved_on(seen: int) -> bool:
            return down.log().count("video/big.bin (") > seen or mirrored()

        for kill in range(kills):
            if kill:  # the next kill once the big file has moved on again (or everything is there)
                await wait_until(functools.partial(moved_on, down.log().count("video/big.bin (")), 120, "progress")
            node.kill()
            await asyncio.sleep(DOWN_S)
            assert_alive(up, down)
            await asyncio.to_thread(own_kafka.restart, node)
        await wait_until(mirrored, 300, "the whole tree", 1.0)
        await stop_cleanly(up, down)
    down_messages = messages(down.log())
    verified = published(down_messages)
    assert sorted(verified) == sorted(set(verified)), "a file was published twice"
    assert len(set(verified) | set(found_identical(down_messages))) == files
    assert "Kafka back after an outage" in up.log() and "Kafka back after an outage" in down.log()
