"""The uploader's memory across restarts (the state topic), and what it does with files once sent."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from streamsend.demo.verify import compare_trees, tree_files
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory, records
from tests.support.waiting import wait_until


def _tree(root: Path, count: int = 6) -> dict[str, bytes]:
    files = {f"d{i % 3}/sub/f{i}.bin": os.urandom(3000 + i) for i in range(count)}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


async def _setup(tmp_path: Path, topics: TopicFactory) -> tuple[Path, Path, dict[str, bytes], str]:
    """A source tree of six files, an empty target folder and a new topic."""
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    return source, target, _tree(source), await topics.create()


async def test_a_restarted_uploader_sends_nothing_twice_but_what_changed(
    broker: Broker, topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    source, target, files, topic = await _setup(tmp_path, topics)
    state = topics.reserve()
    async with downloader(broker.bootstrap, topic, target) as down:
        async with uploader(broker.bootstrap, topic, source, state_topic=state) as first:
            await wait_until(lambda: first.metric("streamsend_uploader_files_sent_total") == len(files), 30, "sends")
        caplog.clear()
        async with uploader(broker.bootstrap, topic, source, state_topic=state, rescan_interval=0.5) as second:
            await wait_until(lambda: "Loaded 6 sent files" in caplog.text, 30, "the state")
            await second.more_scans(3)
            assert second.metric("streamsend_uploader_files_sent_total") == 0
            (source / "d0/sub/f0.bin").write_bytes(b"changed")
            await wait_until(lambda: second.metric("streamsend_uploader_files_sent_total") == 1, 30, "the change")
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == len(files) + 1, 30, "all")
    assert (target / "edge-1" / "d0/sub/f0.bin").read_bytes() == b"changed"


async def test_files_sent_again_identical_are_not_published_again(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    # Without a state topic the restarted uploader sends everything again, as one does that died between
    # sending files and recording them: the downloader leaves the published files as they are.
    source, target, files, topic = await _setup(tmp_path, topics)
    async with downloader(broker.bootstrap, topic, target) as down:
        for run in (1, 2):
            async with uploader(broker.bootstrap, topic, source, state_topic="") as up:
                await wait_until(lambda: up.metric("streamsend_uploader_files_sent_total") == len(files), 30, "sends")
            if run == 1:
                await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 6, 30, "all")
                inodes = {name: (target / "edge-1" / name).stat().st_ino for name in files}
        await wait_until(lambda: down.metric("streamsend_downloader_files_unchanged_total") == 6, 30, "again")
        assert down.metric("streamsend_downloader_files_verified_total") == 6
    assert {name: (target / "edge-1" / name).stat().st_ino for name in files} == inodes
    assert compare_trees(source, target / "edge-1").identical


async def test_after_upload_delete_removes_each_file_once_it_is_safe(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target, files, topic = await _setup(tmp_path, topics)
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        uploader(broker.bootstrap, topic, source, after_upload="delete", state_topic=topics.reserve()),
    ):
        await wait_until(lambda: not tree_files(source), 30, "the input tree to empty")
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == len(files), 30, "all")
    for name, data in files.items():
        assert (target / "edge-1" / name).read_bytes() == data
    assert [p for p in source.rglob("*") if p.is_file()] == []  # folders stay, files go


async def test_after_upload_move_mirrors_subfolders_in_done_dir(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target, done = tmp_path / "in", tmp_path / "out", tmp_path / "done"
    target.mkdir()
    done.mkdir()
    files = _tree(source)
    expected = tmp_path / "expected"
    for name, data in files.items():
        (expected / name).parent.mkdir(parents=True, exist_ok=True)
        (expected / name).write_bytes(data)
    topic = await topics.create()
    async with uploader(
        broker.bootstrap, topic, source, after_upload="move", done_dir=done, state_topic=topics.reserve()
    ) as up:
        await wait_until(lambda: len(tree_files(done)) == len(files), 30, "the moves")
        assert up.metric("streamsend_uploader_files_sent_total") == len(files)
    assert compare_trees(expected, done).identical
    assert tree_files(source) == {}


async def test_a_file_sent_before_a_crash_but_not_yet_deleted_is_deleted_not_sent(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    files = _tree(source)
    topic = await topics.create()
    state = topics.reserve()
    async with uploader(broker.bootstrap, topic, source, state_topic=state) as first:  # sent and kept
        await wait_until(lambda: first.metric("streamsend_uploader_files_sent_total") == len(files), 30, "sends")
    async with uploader(broker.bootstrap, topic, source, state_topic=state, after_upload="delete") as second:
        await wait_until(lambda: not tree_files(source), 30, "the deletions")
        assert second.metric("streamsend_uploader_files_sent_total") == 0


async def test_a_sent_file_absent_long_enough_is_forgotten(
    broker: Broker, topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    source = tmp_path / "in"
    source.mkdir()
    path = source / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    stamp = path.stat().st_mtime_ns
    topic = await topics.create()
    state = topics.reserve()
    settings = {"state_topic": state, "rescan_interval": 0.3, "state_forget_after": 1.0}
    async with uploader(broker.bootstrap, topic, source, **settings) as up:
        await wait_until(lambda: up.metric("streamsend_uploader_files_sent_total") == 1, 30, "the send")
        path.unlink()
        await wait_until(lambda: "report.csv: gone from the tree for a while: forgotten" in caplog.text, 30, "aging")

        async def tombstone() -> bool:
            return any(
                r.value is None and r.key.endswith(b"report.csv") for r in await records(broker.bootstrap, state)
            )

        await wait_until(tombstone, 30, "the tombstone on the state topic")
    caplog.clear()
    path.write_bytes(b"a,b\n1,2\n")
    os.utime(path, ns=(stamp, stamp))  # the very same file comes back
    async with uploader(broker.bootstrap, topic, source, **settings) as again:
        await wait_until(lambda: "Loaded 0 sent files" in caplog.text, 30, "the state")
        await wait_until(lambda: again.metric("streamsend_uploader_files_sent_total") == 1, 30, "the send")


async def test_without_a_state_topic_the_uploader_says_what_it_forgets(
    broker: Broker, topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "in"
    _tree(source, 1)
    topic = await topics.create()
    async with uploader(broker.bootstrap, topic, source, state_topic="") as up:
        await wait_until(lambda: up.metric("streamsend_uploader_files_sent_total") == 1, 30, "the send")
    assert "remembered in memory only" in caplog.text
