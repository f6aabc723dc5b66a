"""ConsumeLoop's commit rule, with a fake consumer in front of a real receiver: offsets are committed up to the
receiver's watermark, never past the first record of a file still being assembled, and a commit that fails is
told apart by kind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiokafka.errors as kafka_errors
import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from streamsend.downloader.admission import Record
from streamsend.downloader.completion import Completion
from streamsend.downloader.kafka import ConsumeLoop
from streamsend.downloader.pipeline import Receiver
from streamsend.downloader.publisher import Publisher
from streamsend.downloader.settings import DownloaderSettings
from streamsend.downloader.store import Store
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.retry import Outage
from streamsend.shared.settings import load_settings
from tests.support.records import chunks_of

TP = TopicPartition("chunks", 0)


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []
        self.fault: Exception | None = None

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def commit(self, offsets: dict[Any, int]) -> None:
        if self.fault is not None:
            raise self.fault
        self.commits.append(dict(offsets))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STREAMSEND_"):
            monkeypatch.delenv(name)


class Rig:
    def __init__(self, root: Path) -> None:
        settings = load_settings(DownloaderSettings, ["--output-dir", str(root), "--topic", "chunks"], "t")
        self.metrics = DownloaderMetrics(CollectorRegistry())
        self.store = Store(root, max_open_files=4)
        completion = Completion(self.store, Publisher(self.store, "off"), self.metrics)
        self.receiver = Receiver(self.store, self.metrics, completion, stale_after_s=60, min_free_bytes=0)
        self.outage = Outage("Kafka")
        self.loop = ConsumeLoop(settings, self.receiver, self.store, self.metrics, self.outage, asyncio.Event())
        self.consumer = FakeConsumer()
        self.loop._consumer = self.consumer
        self.offset = 0

    async def feed(self, *chunks: Any) -> None:
        for chunk in chunks:
            await self.receiver.handle(Record("chunks", 0, self.offset, b"k", chunk.value, chunk.headers))
            self.offset += 1
        await self.receiver.flush()


@pytest.fixture
async def rig(tmp_path: Path) -> Rig:
    made = Rig(tmp_path)
    await made.store.open()
    return made


async def test_commits_stop_at_the_first_record_of_an_unfinished_file(rig: Rig) -> None:
    big = chunks_of(os.urandom(10_000), 4096, path="big.bin")
    small = chunks_of(b"small", 4096, path="small.txt")
    await rig.feed(big[0], *small)  # offsets 0 (big, first of 3) and 1 (small, whole)
    await rig.loop._commit(None)
    assert rig.consumer.commits == [{TP: 0}]  # small is published, but big holds the partition back
    await rig.loop._commit(None)
    assert rig.consumer.commits == [{TP: 0}]  # nothing new: nothing sent again
    await rig.feed(big[1], big[2])  # offsets 2, 3: big completes
    await rig.loop._commit(None)
    assert rig.consumer.commits == [{TP: 0}, {TP: 4}]


async def test_a_commit_during_a_rebalance_is_skipped_a_transient_fault_opens_an_outage(rig: Rig) -> None:
    await rig.feed(*chunks_of(b"x", 4096))
    rig.consumer.fault = kafka_errors.CommitFailedError("rebalancing")
    await rig.loop._commit(None)  # the next owner reads them again: no error
    rig.consumer.fault = kafka_errors.KafkaConnectionError("cut")
    await rig.loop._commit(None)
    assert rig.outage.down
    rig.consumer.fault = None
    await rig.loop._commit(None)
    assert rig.consumer.commits == [{TP: 1}] and not rig.outage.down


async def test_a_permanent_commit_fault_is_raised(rig: Rig) -> None:
    await rig.feed(*chunks_of(b"x", 4096))
    rig.consumer.fault = kafka_errors.GroupAuthorizationFailedError("group")
    with pytest.raises(kafka_errors.GroupAuthorizationFailedError):
        await rig.loop._commit(None)
