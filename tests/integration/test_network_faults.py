"""Network faults in the middle of a transfer: the broker unreachable (refused, or a black hole) for a
minute, and a broker that is down when the daemons start. Both daemons run as processes, through a relay."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamsend.demo.relay import Relay
from streamsend.demo.verify import compare_trees
from tests.support.brokers import BROKERS, Broker, relayed_broker
from tests.support.kafka import TopicFactory
from tests.support.processes import (
    FIRST_CHUNK_UPLOADED,
    assert_alive,
    daemon_pair,
    messages,
    published,
    stop_cleanly,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

OUTAGE_S = float(os.environ.get("STREAMSEND_TEST_OUTAGE_S", "60"))
BIG = 400_000_000


@pytest.fixture(params=BROKERS)
def relayed(request: pytest.FixtureRequest) -> Iterator[tuple[Broker, Relay]]:
    with relayed_broker(request.param) as running:
        yield running


def _tree(source: Path) -> int:
    big = source / "video" / "big.bin"
    big.parent.mkdir(parents=True)
    with big.open("wb") as out:
        for index in range(BIG // 1_000_000):
            out.write(os.urandom(16) * 62_500 if index % 2 else os.urandom(1_000_000))
    for index in range(20):
        (source / "small" / f"{index}.txt").parent.mkdir(parents=True, exist_ok=True)
        (source / "small" / f"{index}.txt").write_bytes(os.urandom(5000 + index))
    return 21


def _outages(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"Kafka back after an outage of ([0-9.]+) s", log)]


async def _transfer_through_an_outage(relay: Relay, bootstrap: str, tmp_path: Path, fault: str) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    files = _tree(source)
    topic = await TopicFactory(bootstrap).create()
    settings = {"request_timeout": 10, "retry_backoff_max": 5}
    async with daemon_pair(bootstrap, topic, source, target, tmp_path, **settings) as (up, down):
        await up.wait_for_log(FIRST_CHUNK_UPLOADED)  # whichever chunk is acknowledged first
        await down.wait_for_log("big.bin (00001/")
        relay.cut() if fault == "refused" else relay.black_hole()
        await asyncio.sleep(OUTAGE_S)
        relay.restore()

        def arrived() -> bool:
            assert_alive(up, down)  # a daemon that died would leave the tree short for good
            return compare_trees(source, target / "edge-1").identical

        await wait_until(arrived, 300, "the whole tree", 1.0)
        await stop_cleanly(up, down)
    up_log, down_log = up.log(), down.log()
    for name, log in (("uploader", up_log), ("downloader", down_log)):
        outages = _outages(log)
        assert len(re.findall("Kafka unavailable", log)) == len(outages), f"{name}: every outage ends in the log"
        # noticed within a probe interval (5 s) plus a request timeout (10 s here) of the cut
        assert outages and max(outages) >= OUTAGE_S - 15, f"{name} logged {outages}"
    verified = published(messages(down_log))
    assert sorted(verified) == sorted(set(verified)) and len(verified) == files  # each file once
    assert len(re.findall(r": Successfully processed\.", up_log)) == files


async def test_a_minute_of_connection_refused_mid_transfer(relayed: tuple[Broker, Relay], tmp_path: Path) -> None:
    broker, relay = relayed
    await _transfer_through_an_outage(relay, broker.bootstrap, tmp_path, "refused")


async def test_a_minute_of_black_hole_mid_transfer(relayed: tuple[Broker, Relay], tmp_path: Path) -> None:
    broker, relay = relayed
    await _transfer_through_an_outage(relay, broker.bootstrap, tmp_path, "black hole")


async def test_daemons_started_before_the_broker_wait_for_it(relayed: tuple[Broker, Relay], tmp_path: Path) -> None:
    broker, relay = relayed
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    (source / "waiting.txt").write_text("sent once the broker is there")
    topic = await TopicFactory(broker.bootstrap).create()
    relay.cut()
    settings = {"request_timeout": 5, "retry_backoff_max": 2}
    async with daemon_pair(broker.bootstrap, topic, source, target, tmp_path, **settings) as (up, down):
        await up.wait_for_log("Kafka unavailable")
        await down.wait_for_log("Kafka unavailable")
        await asyncio.sleep(5)
        assert not (target / "edge-1").exists()
        relay.restore()
        await wait_until(lambda: (target / "edge-1" / "waiting.txt").exists(), 60, "the file")
        for daemon in (up, down):
            assert "Kafka back after an outage" in daemon.log()
        await stop_cleanly(up, down)
