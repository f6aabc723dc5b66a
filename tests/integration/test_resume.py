"""A large file resumes where its upload stopped when the uploader restarts: after kill -9 and after SIGTERM, with
the downloader killed meanwhile, after a pause longer than ``stale_after``; and it is sent whole when it changed,
when the topic's retention removed its first chunks, or when its progress record is forged. What was produced is
counted on the topic, by record timestamps: the uploader's own logs are not the judge."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from streamsend.demo.far import FarBroker, far_broker
from streamsend.demo.relay import Link
from streamsend.demo.verify import compare_trees
from streamsend.uploader.files import Progress
from streamsend.uploader.state import encode_progress, state_key, state_partition
from tests.support.brokers import BROKERS, require_kafka
from tests.support.daemons import Running, downloader
from tests.support.kafka import ChunkSeen, TopicFactory, chunks_on_topic, produce
from tests.support.processes import DaemonProcess, daemon_env, show_tails
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
CHUNKS_RECEIVED = "streamsend_downloader_chunks_received_total"
PUBLISHED = "streamsend_downloader_files_verified_total"
WINDOW_CHUNKS = 32  # max_in_flight_bytes (32 MiB) of 1 MiB chunks: what may be sent again
CHUNK = 1040384  # fits Apache Kafka's default record limit with the headers
UPLINK = Link(0.0, 40e6)


def _chunks(size: int) -> int:
    return -(-size // CHUNK)


def _file(source: Path, size: int) -> Path:
    path = source / "video" / "big.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for _ in range(size // (16 * MiB)):
            out.write(os.urandom(16 * MiB))
        out.write(os.urandom(size % (16 * MiB)))
    (source.parent / "out").mkdir(exist_ok=True)
    return path


@pytest.fixture(params=BROKERS)
def far(request: pytest.FixtureRequest) -> Iterator[FarBroker]:
    """The uploader behind a link of a site's speed, so that it can be stopped part-way through a file."""
    if request.param == "kafka":
        require_kafka()
    with far_broker(request.param, UPLINK) as running:
        yield running


class Site:
    """An uploader process across the link (restarted as often as the test wants) and an in-process downloader
    beside the broker."""

    def __init__(self, far: FarBroker, topic: str, tmp_path: Path, **settings: object) -> None:
        self.bootstrap, self.topic, self.tmp_path = far.near, topic, tmp_path
        self.source, self.target = tmp_path / "in", tmp_path / "out"
        self.env = daemon_env(
            far.far, topic, input_dir=self.source, state_topic=f"{topic}-state", chunk_size=CHUNK, **settings
        )
        self.runs: list[DaemonProcess] = []

    async def start(self) -> DaemonProcess:
        run = await DaemonProcess("uploader", self.tmp_path / f"up-{len(self.runs) + 1}.log", self.env).start()
        self.runs.append(run)
        return run

    def downloader(self, **settings: object) -> Running:
        return downloader(self.bootstrap, self.topic, self.target, **settings)

    async def arrived(self, down: Running, timeout_s: float = 300) -> None:
        def done() -> bool:
            down.check_alive()
            return compare_trees(self.source, self.target / "edge-1").identical

        await wait_until(done, timeout_s, "the file at the target", 0.5)

    async def kill_all(self) -> None:
        for run in self.runs:
            await run.kill()


async def _at_share(down: Running, chunks: int, share: float) -> None:
    await wait_until(lambda: down.metric(CHUNKS_RECEIVED) >= share * chunks, 300, f"{share:.0%} of the chunks", 0.05)


def _after(seen: list[ChunkSeen], since_s: float) -> list[ChunkSeen]:
    return [chunk for chunk in seen if chunk.timestamp_ms >= since_s * 1000]


async def _kill_at_60_percent_and_resume(far: FarBroker, tmp_path: Path, size: int) -> None:
    topic = await TopicFactory(far.near).create()
    site = Site(far, topic, tmp_path)
    _file(site.source, size)
    count = _chunks(size)
    try:
        async with site.downloader() as down:
            first = await site.start()
            await _at_share(down, count, 0.6)
            await first.kill()  # SIGKILL, with a window of chunks in flight
            await asyncio.sleep(1)  # whatever was on its way has landed
            restarted = time.time()
            second = await site.start()
            await second.wait_for_log("big.bin: resuming at chunk")
            resume_s = time.time() - restarted
            await site.arrived(down)
            assert down.metric(PUBLISHED) == 1
    except BaseException:
        show_tails(*site.runs)
        raise
    finally:
        await site.kill_all()
    seen = await chunks_on_topic(far.near, topic)
    assert {chunk.upload_id for chunk in seen} == {seen[0].upload_id}  # one upload, continued
    before = {chunk.index for chunk in seen if chunk.timestamp_ms < restarted * 1000}
    after = _after(seen, restarted)
    remaining = count - len(before)
    assert len(before) >= 0.55 * count
    assert len(after) <= remaining + WINDOW_CHUNKS, (len(after), remaining)
    assert {chunk.index for chunk in seen} == set(range(count))
    print(
        f"\n{size / MiB:.0f} MiB: {len(before)} of {count} chunks before the kill; after the restart"
        f" {len(after)} chunks, {sum(c.length for c in after) / MiB:.0f} MiB (remaining {remaining});"
        f" resuming began {resume_s:.1f} s after the restart"
    )


async def test_an_uploader_killed_at_60_percent_resumes(far: FarBroker, tmp_path: Path) -> None:
    await _kill_at_60_percent_and_resume(far, tmp_path, 200 * MiB)


@pytest.mark.kafka
async def test_an_uploader_killed_at_60_percent_of_a_gigabyte_resumes(tmp_path: Path) -> None:
    require_kafka()
    with far_broker("kafka", Link(0.0, 80e6)) as far:
        await _kill_at_60_percent_and_resume(far, tmp_path, 1024 * MiB)


async def test_a_clean_stop_mid_file_resumes_even_with_the_downloader_killed_meanwhile(
    far: FarBroker, tmp_path: Path
) -> None:
    topic = await TopicFactory(far.near).create()
    site = Site(far, topic, tmp_path)
    _file(site.source, 120 * MiB)
    down_env = daemon_env(far.near, topic, output_dir=site.target)
    downs = [DaemonProcess("downloader", tmp_path / f"down-{n}.log", down_env) for n in (1, 2)]
    try:
        await downs[0].start()
        first = await site.start()
        await first.wait_for_log("big.bin (00001 of")
        await wait_until(lambda: "chunk uploaded, " in first.log() and "% done" in first.log(), 60, "progress")
        code, _ = await first.signal_and_wait()
        assert code == 0
        await downs[0].kill()  # the downloader dies while the uploader is away
        await downs[1].start()
        second = await site.start()
        await second.wait_for_log("big.bin: resuming at chunk")
        await wait_until(lambda: compare_trees(site.source, site.target / "edge-1").identical, 300, "the file", 0.5)
        assert "was published before a restart" not in downs[1].log()
    except BaseException:
        show_tails(*site.runs, *downs)
        raise
    finally:
        await site.kill_all()
        for down in downs:
            await down.kill()
    seen = await chunks_on_topic(far.near, topic)
    assert len({chunk.upload_id for chunk in seen}) == 1


async def test_a_pause_longer_than_stale_after_still_resumes(far: FarBroker, tmp_path: Path) -> None:
    topic = await TopicFactory(far.near).create()
    site = Site(far, topic, tmp_path)
    _file(site.source, 80 * MiB)
    try:
        async with site.downloader(stale_after=1.0) as down:
            first = await site.start()
            await _at_share(down, _chunks(80 * MiB), 0.5)
            await first.kill()
            # the downloader drops the quiet upload (it sweeps every second or so)
            await wait_until(lambda: down.metric("streamsend_downloader_open_assemblies") == 0, 60, "the drop")
            second = await site.start()
            await second.wait_for_log("big.bin: resuming at chunk")
            await site.arrived(down)
            assert down.metric(PUBLISHED) == 1
    finally:
        await site.kill_all()


async def test_a_file_changed_while_the_uploader_was_down_is_sent_whole(far: FarBroker, tmp_path: Path) -> None:
    topic = await TopicFactory(far.near).create()
    site = Site(far, topic, tmp_path)
    path = _file(site.source, 80 * MiB)
    try:
        async with site.downloader() as down:
            first = await site.start()
            await _at_share(down, _chunks(80 * MiB), 0.5)
            await first.kill()
            with path.open("r+b") as changed:
                changed.seek(10 * MiB)
                changed.write(os.urandom(MiB))
            second = await site.start()
            await second.wait_for_log("big.bin: upload")
            assert "not resumed (the file changed since)" in second.log()
            await site.arrived(down)
    finally:
        await site.kill_all()
    seen = await chunks_on_topic(far.near, topic)
    uploads = Counter(chunk.upload_id for chunk in seen)
    assert len(uploads) == 2 and max(uploads.values()) == _chunks(80 * MiB)  # the new version, whole; the old abandoned


@pytest.mark.kafka
async def test_first_chunks_removed_by_retention_mean_a_whole_resend(tmp_path: Path) -> None:
    require_kafka()
    with far_broker("kafka", UPLINK) as far:
        await _retention_removed_the_first_chunks(far, tmp_path)


async def _retention_removed_the_first_chunks(far: FarBroker, tmp_path: Path) -> None:
    topic = await TopicFactory(far.near).create()
    site = Site(far, topic, tmp_path)
    _file(site.source, 80 * MiB)
    try:
        async with site.downloader() as down:
            first = await site.start()
            await _at_share(down, _chunks(80 * MiB), 0.5)
            await first.kill()
            seen = sorted(await chunks_on_topic(far.near, topic), key=lambda chunk: chunk.offset)
            partition = seen[0].partition
            admin = AIOKafkaAdminClient(bootstrap_servers=far.near)
            await admin.start()
            try:  # as retention would: the oldest records of the partition go
                await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(seen[5].offset)})
            finally:
                await admin.close()
            second = await site.start()
            await second.wait_for_log("big.bin: upload")
            assert "is gone (the topic's retention)" in second.log()
            await site.arrived(down)
    finally:
        await site.kill_all()
    assert len({chunk.upload_id for chunk in await chunks_on_topic(far.near, topic)}) == 2


async def test_forged_progress_records_never_skip_a_chunk(far: FarBroker, tmp_path: Path) -> None:
    """A progress record that points at a record that is not the chunk it names, and one that is garbage: the
    file is sent whole, and arrives."""
    topic = await TopicFactory(far.near).create()
    site = Site(far, topic, tmp_path)
    path = _file(site.source, 40 * MiB)
    st = path.stat()
    try:
        async with site.downloader() as down:
            first = await site.start()
            await _at_share(down, _chunks(40 * MiB), 0.3)
            await first.kill()
            seen = await chunks_on_topic(far.near, topic)
            real = seen[0]
            forged = Progress(
                path="video/big.bin", upload_id=real.upload_id, size=st.st_size, mtime_ns=st.st_mtime_ns,
                inode=st.st_ino, chunk_size=CHUNK, partition=real.partition, acked=_chunks(40 * MiB) - 1,
                first_offset=real.offset, last_offset=real.offset, started_at=time.time(),
            )  # fmt: skip
            state = f"{topic}-state"
            key = state_key("edge-1", "video/big.bin")
            partition = state_partition("edge-1", 6)
            forgeries = [{"key": key, "value": v, "partition": partition} for v in (b"{x", encode_progress(forged))]
            await produce(far.near, state, forgeries)
            second = await site.start()
            await second.wait_for_log("big.bin: upload")
            assert "is not the chunk the progress record names" in second.log()
            await site.arrived(down)
            assert down.metric(PUBLISHED) == 1
    finally:
        await site.kill_all()


@pytest.mark.kafka
async def test_a_transactional_upload_resumes_from_its_last_committed_part(tmp_path: Path) -> None:
    require_kafka()
    with far_broker("kafka", UPLINK) as far:
        topic = await TopicFactory(far.near).create()
        site = Site(far, topic, tmp_path, transactional="on")
        size = 200 * MiB
        _file(site.source, size)
        try:
            async with site.downloader(isolation_level="read_committed") as down:
                first = await site.start()
                await _at_share(down, _chunks(size), 0.5)  # a part of 64 MiB is committed, the next is open
                await first.kill()
                restarted = time.time()
                second = await site.start()
                await second.wait_for_log("big.bin: resuming at chunk")
                await site.arrived(down)
                assert down.metric(PUBLISHED) == 1
        except BaseException:
            show_tails(*site.runs)
            raise
        finally:
            await site.kill_all()
        seen = await chunks_on_topic(far.near, topic, committed_only=True)
    assert len({chunk.upload_id for chunk in seen}) == 1
    assert {chunk.index for chunk in seen} == set(range(_chunks(size)))
    assert len(_after(seen, restarted)) < _chunks(size) * 0.6  # not sent whole again
