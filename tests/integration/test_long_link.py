"""Across a long link (the relay, 100 ms round trip): a large file travels with several of its chunks in flight at
once, a downloader across the link fetches more at once, and neither cuts, stalls, a killed uploader nor
transactions lose a file or publish one twice. Both brokers; on Apache Kafka the daemon that is not across the
link talks to the broker directly (streamsend.demo.far)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamsend.demo.far import FarBroker, far_broker
from streamsend.demo.relay import Link
from streamsend.demo.verify import compare_trees
from streamsend.shared.protocol import decode
from tests.support.brokers import BROKERS, require_kafka
from tests.support.daemons import Running, downloader, uploader
from tests.support.kafka import TopicFactory, records
from tests.support.processes import DaemonProcess, daemon_env, messages, published, show_tails, stop_cleanly
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
LONG = Link(0.1, 12.5e6)  # 100 ms, 100 Mbit/s
PUBLISHED = "streamsend_downloader_files_verified_total"


@pytest.fixture(params=BROKERS)
def far(request: pytest.FixtureRequest) -> Iterator[FarBroker]:
    if request.param == "kafka":
        require_kafka()
    with far_broker(request.param, LONG) as running:
        yield running


def _big(source: Path, size: int, name: str = "big.bin") -> Path:
    (source.parent / "out").mkdir(exist_ok=True)
    path = source / "video" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def _alive(*daemons: Running) -> None:
    for daemon in daemons:
        daemon.check_alive()


async def _arrived(source: Path, target: Path, *daemons: Running, timeout_s: float = 180) -> None:
    def done() -> bool:
        _alive(*daemons)
        return compare_trees(source, target / "edge-1").identical

    await wait_until(done, timeout_s, "the whole tree", 0.2)


async def test_a_large_file_crosses_the_link_with_several_chunks_in_flight(far: FarBroker, tmp_path: Path) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    _big(source, 24 * MiB)
    topic = await TopicFactory(far.near).create()
    async with (
        downloader(far.near, topic, target) as down,
        uploader(far.far, topic, source) as up,
    ):
        await _arrived(source, target, up, down)
        # Only the large file was on its way: every produce request the link saw at once was one of its chunks.
        assert far.relay.stats.max_produce_in_flight > 1
        for index in range(10):  # then the rest of the tree: small files, in a group
            (source / "small" / f"{index}.txt").parent.mkdir(exist_ok=True)
            (source / "small" / f"{index}.txt").write_bytes(os.urandom(3000 + index))
        await _arrived(source, target, up, down)
        assert down.metric(PUBLISHED) == 11


async def test_a_downloader_across_the_link_fetches_more_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file is on the topic before the downloader starts, far from the broker: its records wait on the link."""
    require_kafka()
    caplog.set_level(logging.INFO, logger="streamsend.downloader.kafka")
    source, target = tmp_path / "in", tmp_path / "out"
    _big(source, 40 * MiB)
    with far_broker("kafka", LONG) as far:
        topic = await TopicFactory(far.near).create()
        async with uploader(far.near, topic, source) as up:
            await wait_until(lambda: up.metric("streamsend_uploader_files_sent_total") == 1, 120, "the file sent")
        async with downloader(far.far, topic, target) as down:
            await _arrived(source, target, down)
    grew = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Fetching up to")]
    assert grew, "the fetch size never grew across the link"
    assert far.relay.stats.bytes_down >= 40 * MiB  # the records did cross the link


async def test_cuts_and_stalls_while_a_window_is_open(far: FarBroker, tmp_path: Path) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    _big(source, 64 * MiB)
    topic = await TopicFactory(far.near).create()
    stats = far.relay.stats
    fast = {"request_timeout": 5.0, "retry_backoff_max": 1.0}
    async with (
        downloader(far.near, topic, target, **fast) as down,
        uploader(far.far, topic, source, **fast) as up,
    ):
        for fault in (far.relay.cut, far.relay.black_hole):
            await wait_until(lambda: stats.produce_in_flight > 1, 120, "a window of chunks in flight")
            fault()
            await asyncio.sleep(6)  # past a request timeout: the requests in flight are lost
            far.relay.restore()
            _alive(up, down)
        await _arrived(source, target, up, down)
        assert up.metric("streamsend_uploader_outages_total") > 0  # the faults did hit the window
        assert down.metric(PUBLISHED) == 1


async def test_an_uploader_killed_with_a_full_window_sends_the_file_again(far: FarBroker, tmp_path: Path) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    _big(source, 48 * MiB)
    topic = await TopicFactory(far.near).create()
    env = daemon_env(far.far, topic, input_dir=source, state_topic=f"{topic}-state")
    first = await DaemonProcess("uploader", tmp_path / "up-1.log", env).start()
    second = DaemonProcess("uploader", tmp_path / "up-2.log", env)
    try:
        async with downloader(far.near, topic, target) as down:
            await first.wait_for_log("big.bin (00001 of")
            await wait_until(lambda: far.relay.stats.produce_in_flight > 1, 120, "a window of chunks in flight")
            await first.kill()  # SIGKILL, with chunks in flight
            await second.start()
            await _arrived(source, target, down)
            await stop_cleanly(second)
            assert down.metric(PUBLISHED) == 1
    except BaseException:
        show_tails(first, second)
        raise
    finally:
        await first.kill()
        await second.kill()


async def test_transactions_across_the_link_commit_every_file_once(tmp_path: Path) -> None:
    require_kafka()
    source, target = tmp_path / "in", tmp_path / "out"
    _big(source, 24 * MiB)
    for index in range(50):
        (source / "small" / f"{index}.json").parent.mkdir(parents=True, exist_ok=True)
        (source / "small" / f"{index}.json").write_bytes(os.urandom(2000 + index))
    with far_broker("kafka", LONG) as far:
        topic = await TopicFactory(far.near).create()
        settings = {"state_topic": f"{topic}-state", "request_timeout": 5, "retry_backoff_max": 1}
        down = await DaemonProcess(
            "downloader", tmp_path / "down.log", daemon_env(far.near, topic, output_dir=target, **settings)
        ).start()
        up_env = daemon_env(far.far, topic, input_dir=source, transactional="on", **settings)
        up = await DaemonProcess("uploader", tmp_path / "up.log", up_env).start()
        try:
            await up.wait_for_log("Transactions enabled")
            await up.wait_for_log("big.bin (00001 of")
            far.relay.cut()  # a transaction open across the link: aborted, and its file sent again
            await asyncio.sleep(6)
            far.relay.restore()
            await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 180, "the whole tree", 0.5)
            await stop_cleanly(up, down)
        except BaseException:
            show_tails(up, down)
            raise
        finally:
            await up.kill()
            await down.kill()
        uploads: dict[str, set[str]] = defaultdict(set)
        for record in await records(far.near, topic, timeout_s=60, committed_only=True):
            header = decode(record.headers, record.value)
            uploads[header.path].add(header.upload_id)
    assert len(uploads) == 51
    assert all(len(ids) == 1 for ids in uploads.values()), {p: i for p, i in uploads.items() if len(i) > 1}
    verified = published(messages(down.log()))
    assert sorted(verified) == sorted(set(verified)) and len(verified) == 51
