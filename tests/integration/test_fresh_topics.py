"""A transfer right after its topics are made: the first minute a new user sees. No chunk may wait for a
request timeout because a producer's metadata forgot the chunk topic when the state topic appeared
(shared/kafka_compat.track_topics): with a request timeout of a minute, any such wait is an outage."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from streamsend.demo.verify import compare_trees
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("attempt", range(3))  # the stall came in about one transfer in three
async def test_files_right_after_the_topics_are_made_never_wait_for_kafka(
    broker: Broker, topics: TopicFactory, tmp_path: Path, attempt: int, caplog: pytest.LogCaptureFixture
) -> None:
    """... and the happy path says nothing a user must act on: no warning (an embedded broker without the
    idempotent producer is worth an INFO line, not a WARNING)."""
    caplog.set_level(logging.INFO)
    source, target = tmp_path / "in", tmp_path / "out"
    for index in range(30):
        path = source / f"small/{index:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(500 + index))
    (source / "video").mkdir()
    for name in ("a.bin", "b.bin"):
        (source / "video" / name).write_bytes(os.urandom(1024 * 1024 + 7))  # 17 chunks of 64 KiB
    target.mkdir()
    topic = await topics.create()
    state = topics.reserve()  # made by the uploader, after it has looked at the chunk topic
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        uploader(broker.bootstrap, topic, source, state_topic=state, chunk_size=64 * 1024, request_timeout=60.0) as up,
    ):
        await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 120, "the whole tree")
        assert up.metric("streamsend_uploader_outages_total") == 0
        down.check_alive()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("stream")]
    assert not warnings
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("edge-1/video/a.bin (00001/00017):") for line in lines)  # the uploader named
