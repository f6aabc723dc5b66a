"""ConsumeLoop's commit and poll rules, with a fake consumer in front of a real receiver: offsets are committed up
to the receiver's watermark, never past the first record of a file still being assembled, and a commit that fails
is told apart by kind; a poll that never returns, or whose consumer's group coordination died, ends in a new
consumer, and an error the coordination hands to a poll is ridden out."""

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
from streamsend.downloader.stuck import StallWatch
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.retry import Outage
from streamsend.shared.settings import load_settings
from tests.support.clock import Clock
from tests.support.records import chunks_of

TP = TopicPartition("chunks", 0)


class Coordinator:
    def __init__(self) -> None:
        self._coordination_task: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []
        self.fault: Exception | None = None
        self.poll_faults: list[Exception] = []
        self.poll_hangs = False  # as aiokafka's poll does while a rebalance has not ended
        self._coordinator = Coordinator()

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Any]]:
        if self.poll_faults:
            raise self.poll_faults.pop(0)
        if self.poll_hangs:
            await asyncio.Event().wait()
        return {}

    async def topics(self) -> set[str]:
        return {"chunks"}

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


async def test_a_poll_that_never_returns_while_the_broker_answers_ends_in_a_new_consumer(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streamsend.downloader.kafka.POLL_S", 0.01)
    monkeypatch.setattr(rig.loop._settings, "request_timeout", 0.05)
    clock = Clock(100.0)
    rig.loop._polls = StallWatch(after_s=30, clock=clock)
    rig.consumer.poll_hangs = True
    assert await rig.loop._poll(rig.consumer) == {}  # bounded: the loop goes on
    await rig.loop._probe()  # the broker answers other requests
    clock.now += 29
    assert await rig.loop._poll(rig.consumer) == {}
    clock.now += 1
    assert await asyncio.wait_for(rig.loop._fetch_loop(asyncio.Event()), 10) is True  # replaced


async def test_an_error_the_group_coordination_hands_to_a_poll_is_ridden_out(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streamsend.downloader.kafka.POLL_S", 0.01)
    rig.consumer.poll_faults = [
        kafka_errors.KafkaError("Unexpected error in join group response"),
        kafka_errors.UnknownMemberIdError(),
    ]
    assert await rig.loop._poll(rig.consumer) == {} and rig.outage.down
    assert await rig.loop._poll(rig.consumer) == {}
    assert await rig.loop._poll(rig.consumer) == {} and rig.loop._polls.failing_for() == 0  # answered again
    rig.consumer.poll_faults = [kafka_errors.KafkaError("Unexpected error during coordination")]
    rig.consumer._coordinator._coordination_task.set_result(None)  # ended: only a new consumer mends that
    assert await rig.loop._poll(rig.consumer) is None


async def test_a_permanent_poll_fault_is_raised(rig: Rig) -> None:
    rig.consumer.poll_faults = [kafka_errors.GroupAuthorizationFailedError("group")]
    with pytest.raises(kafka_errors.GroupAuthorizationFailedError):
        await rig.loop._poll(rig.consumer)


class Fetched:
    """A record as aiokafka returns it."""

    def __init__(self, offset: int, chunk: Any) -> None:
        self.offset, self.key, self.value, self.headers = offset, b"k", chunk.value, chunk.headers


class PartitionLog(FakeConsumer):
    """One partition's records, a fetch position and a committed offset, with a rebalance that can be made to
    run after a poll has fetched its records and before they are handled: the interleaving that once let a
    commit pass the first chunk of a file not yet published."""

    def __init__(self, loop: ConsumeLoop, chunks: list[Any], per_poll: int) -> None:
        super().__init__()
        self.loop = loop
        self.records = [Fetched(offset, chunk) for offset, chunk in enumerate(chunks)]
        self.per_poll = per_poll
        self.position = 0
        self.committed_offset: int | None = None
        self.rebalance_after_polls: set[int] = set()
        self.all_committed = asyncio.Event()
        self.polls = 0

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Any]]:
        batch = self.records[self.position : self.position + self.per_poll]
        self.position += len(batch)
        self.polls += 1
        if self.polls in self.rebalance_after_polls:  # fetched, not yet handled: the rebalance goes first
            asyncio.get_running_loop().create_task(self._rebalance())
            await asyncio.sleep(0)
        return {TP: batch} if batch else {}

    async def _rebalance(self) -> None:
        await self.loop.revoked({TP})
        self.position = self.committed_offset or 0  # as a new assignment starts from the committed offset
        await self.loop.assigned({TP})

    async def commit(self, offsets: dict[Any, int]) -> None:
        await super().commit(offsets)
        self.committed_offset = offsets[TP]
        if self.committed_offset == len(self.records):
            self.all_committed.set()

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offset

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.position = 0

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.records)


@pytest.mark.parametrize("rebalance_after", [{2}, {2, 3}, {1, 3, 5}, {4}])
async def test_a_rebalance_between_a_poll_and_its_handling_never_lets_a_commit_pass_an_unpublished_file(
    rig: Rig, rebalance_after: set[int]
) -> None:
    big = chunks_of(os.urandom(20_000), 4096, path="video/big.bin")  # 5 chunks, offsets 0-4
    small = chunks_of(b"tiny", 4096, path="small.txt")  # offset 5
    log_ = PartitionLog(rig.loop, [*big, *small], per_poll=1)
    log_.rebalance_after_polls = rebalance_after
    rig.loop._consumer = log_
    stop = asyncio.Event()

    async def until_committed() -> None:
        await log_.all_committed.wait()
        stop.set()

    async with asyncio.TaskGroup() as group:
        group.create_task(until_committed())
        await asyncio.wait_for(rig.loop._fetch_loop(stop), 30)
    published = rig.store.root / "edge-1" / "video" / "big.bin"
    assert published.stat().st_size == 20_000
    # Held at big's first chunk (offset 0) until it is published; then past it (5), then past small (6).
    assert {c[TP] for c in log_.commits} <= {0, 5, 6}
