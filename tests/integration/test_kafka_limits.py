"""What only a real Kafka enforces: message size limits, the range of session timeouts, the idempotent producer,
and compaction of the state topic."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streamsend.demo.kafka_broker import ApacheKafka
from streamsend.demo.verify import compare_trees
from tests.support.daemons import Running, downloader, uploader
from tests.support.kafka import TopicFactory, keys
from tests.support.processes import DaemonProcess, daemon_env, messages
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka

KiB, MiB = 1024, 1024 * 1024


@pytest.fixture
def kafka_topics(kafka: ApacheKafka) -> Iterator[TopicFactory]:
    factory = TopicFactory(kafka.bootstrap)
    yield factory
    factory.delete_all()


@pytest.mark.parametrize(("limit", "expected"), [(512 * KiB, 512 * KiB - 8 * KiB), (4 * MiB, MiB)])
async def test_the_automatic_chunk_size_follows_an_enforced_max_message_bytes(
    kafka: ApacheKafka, kafka_topics: TopicFactory, tmp_path: Path, limit: int, expected: int
) -> None:
    # 512 KiB: the limit less 8 KiB of headroom; 4 MiB: the 1 MiB cap of the automatic choice (the broker's own
    # limit is 1048588, but a topic's max.message.bytes overrides it: that is what Kafka enforces).
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    (source / "big.bin").write_bytes(os.urandom(5 * MiB + 17))
    topic = await kafka_topics.create(configs={"max.message.bytes": str(limit)})
    async with downloader(kafka.bootstrap, topic, target) as down, uploader(kafka.bootstrap, topic, source) as up:
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 1, 60, "the file")
        assert up.metric("streamsend_uploader_chunk_size_bytes") == expected
        assert up.metric("streamsend_uploader_files_failed_total", reason="kafka") == 0
    assert compare_trees(source, target / "edge-1").identical


async def test_a_chunk_size_above_the_brokers_limit_fits_a_topic_that_allows_it(
    kafka: ApacheKafka, kafka_topics: TopicFactory, tmp_path: Path
) -> None:
    # The broker's message.max.bytes stays at 1048588; the topic's 32 MiB overrides it, and 8 MiB records pass.
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    (source / "scan.tiff").write_bytes(os.urandom(20 * MiB + 5))
    topic = await kafka_topics.create(configs={"max.message.bytes": str(32 * MiB)})
    async with (
        downloader(kafka.bootstrap, topic, target) as down,
        uploader(kafka.bootstrap, topic, source, chunk_size=8 * MiB) as up,
    ):
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 1, 60, "the file")
        assert up.metric("streamsend_uploader_chunk_size_bytes") == 8 * MiB
    assert compare_trees(source, target / "edge-1").identical


async def test_a_record_the_broker_rejects_fails_the_file_clearly(
    kafka: ApacheKafka, kafka_topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The topic's limit is lowered while the uploader runs: its chunks no longer fit, and Kafka says so.
    source = tmp_path / "in"
    source.mkdir()
    topic = await kafka_topics.create()
    async with uploader(kafka.bootstrap, topic, source, state_topic="") as up:
        await wait_until(lambda: up.metric("streamsend_uploader_chunk_size_bytes") > 0, 30, "the start")
        await _set_topic_config(kafka.bootstrap, topic, "max.message.bytes", "100000")
        (source / "too-big.bin").write_bytes(os.urandom(3 * MiB))
        await wait_until(lambda: up.metric("streamsend_uploader_files_failed_total", reason="kafka") == 1, 60, "it")
        assert up.metric("streamsend_uploader_files_sent_total") == 0
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(m.startswith("too-big.bin: failed: ") and "TooLarge" in m for m in failures), failures


async def test_a_session_timeout_the_broker_refuses_stops_the_downloader_naming_it(
    kafka: ApacheKafka, kafka_topics: TopicFactory, tmp_path: Path
) -> None:
    # The broker's group.min.session.timeout.ms is 1000 here; the refusal comes back through the consumer's poll.
    topic = await kafka_topics.create()
    env = daemon_env(kafka.bootstrap, topic, output_dir=tmp_path, session_timeout=0.5, heartbeat_interval=0.1)
    process = await DaemonProcess("downloader", tmp_path / "down.log", env).start()
    try:
        assert await process.wait(timeout_s=60) == 2, process.log()[-3000:]
    finally:
        await process.kill()
    assert "Traceback" not in process.log()
    assert (
        "invalid setting session_timeout: 0.5 s is outside the range the broker allows"
        " (its group.min.session.timeout.ms and group.max.session.timeout.ms)"
    ) in messages(process.log())


async def _sent(up: Running, count: int) -> None:
    await wait_until(lambda: up.metric("streamsend_uploader_files_sent_total") == count, 30, f"{count} sends")


async def _set_topic_config(bootstrap: str, topic: str, key: str, value: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={key: value})])
    finally:
        await admin.close()


async def test_the_idempotent_producer_is_used_where_the_broker_offers_it(
    kafka: ApacheKafka, kafka_topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(3 * MiB))
    topic = await kafka_topics.create()
    async with uploader(kafka.bootstrap, topic, source, state_topic="", chunk_size=256 * KiB) as up:
        await wait_until(lambda: up.metric("streamsend_uploader_files_sent_total") == 1, 60, "the send")
    assert "Idempotent producer enabled" in caplog.text
    assert "offers no idempotent producer" not in caplog.text
    assert len(await keys(kafka.bootstrap, topic)) == 12  # every chunk once


async def test_a_compacted_state_topic_still_remembers_every_file(
    kafka: ApacheKafka, kafka_topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    source = tmp_path / "in"
    source.mkdir()
    topic = await kafka_topics.create()
    # The uploader would create it compacted; here also with segments that roll and clean at once.
    state = await kafka_topics.create(partitions=6, configs={
    "cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.001",
    "min.compaction.lag.ms": "0", "delete.retention.ms": "100",
    })  # fmt: skip
    names = [f"f{i}.txt" for i in range(5)]
    async with uploader(kafka.bootstrap, topic, source, state_topic=state, rescan_interval=0.3) as up:
        for version in range(4):  # four state records per file; the last of each is what counts
            for name in names:
                (source / name).write_text(f"{name} version {version}")
            await _sent(up, 5 * (version + 1))
    written = 4 * len(names)

    async def compacted() -> bool:
        return len(await keys(kafka.bootstrap, state)) <= written - len(names)

    await wait_until(compacted, 120, "the log cleaner to compact the state topic", interval_s=1.0)
    caplog.clear()
    async with uploader(kafka.bootstrap, topic, source, state_topic=state, rescan_interval=0.3) as again:
        await wait_until(lambda: "Loaded 5 sent files" in caplog.text, 30, "the state")
        await again.more_scans(3)
        assert again.metric("streamsend_uploader_files_sent_total") == 0
