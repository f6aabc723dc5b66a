"""Processes killed without warning (kill -9, a power cut) and consumer-group changes, mid-transfer:
every file still arrives whole, and is published once."""

from __future__ import annotations

import itertools
import logging
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from streamsend.demo.verify import compare_trees
from streamsend.uploader.planner import partition_for
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory, keys
from tests.support.processes import (
    FIRST_CHUNK_UPLOADED,
    DaemonProcess,
    daemon_env,
    found_identical,
    messages,
    published,
    published_before,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def _tree(source: Path, big_mb: int = 300, small: int = 30) -> None:
    big = source / "big.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    with big.open("wb") as out:
        for _ in range(big_mb):
            out.write(os.urandom(1_000_000))
    for index in range(small):
        path = source / f"small/{index:02d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(2000 + index))


async def _recorded(bootstrap: str, state_topic: str, count: int) -> bool:
    return len(set(await keys(bootstrap, state_topic))) >= count


def _publications(*logs: str) -> Counter[str]:
    return Counter(name for log in logs for name in published(messages(log)))


def _arrived(*logs: str) -> set[str]:
    """Files published, or found already published: a process killed between publishing files and logging
    them leaves them to the next, which finds them in the published ledger, or identical at their path."""
    again = {name for log in logs for name in found_identical(messages(log)) + published_before(messages(log))}
    return set(_publications(*logs)) | again


async def test_a_downloader_killed_mid_file_rebuilds_it_and_publishes_each_file_once(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    _tree(source)
    topic = await topics.create(partitions=2)  # small files share partitions with the big one
    env = daemon_env(broker.bootstrap, topic, output_dir=target)
    async with uploader(broker.bootstrap, topic, source, max_concurrent_files=4):
        first = await DaemonProcess("downloader", tmp_path / "down1.log", env).start()
        try:
            await first.wait_for_log("big.bin (00001/")
            await wait_until(lambda: len(published(messages(first.log()))) >= 10, 60, "some small files")
            code, _ = await first.signal_and_wait(signal.SIGKILL)
        finally:
            await first.kill()
        assert code == -signal.SIGKILL
        assert not (target / "edge-1" / "big.bin").exists() or "big.bin (00300/00300)" in first.log()
        staged = list((target / ".streamsend" / "staging").rglob("*"))
        second = await DaemonProcess("downloader", tmp_path / "down2.log", env).start()
        try:
            await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 120, "the tree", 1.0)
            code, _ = await second.signal_and_wait()
        finally:
            await second.kill()
        assert code == 0
    publications = _publications(first.log(), second.log())
    assert set(publications.values()) == {1}, publications  # nothing published twice
    assert len(_arrived(first.log(), second.log())) == 31
    if len(staged) > 2:  # the killed process had staging files: the restart removed them
        assert "stale staging files left by an earlier run" in second.log()
    assert [p for p in (target / ".streamsend" / "staging").rglob("*") if p.is_file()] == []


async def test_an_uploader_killed_mid_file_sends_it_again_and_nothing_else(
    broker: Broker, topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    _tree(source, small=10)
    topic = await topics.create()
    env = daemon_env(broker.bootstrap, topic, input_dir=source, producers=1, state_topic=f"{topic}-state")
    async with downloader(broker.bootstrap, topic, target) as down:
        first = await DaemonProcess("uploader", tmp_path / "up1.log", env).start()
        try:
            await first.wait_for_log(FIRST_CHUNK_UPLOADED)
            await wait_until(lambda: first.log().count("Successfully processed") >= 10, 60, "the small files")
            # Their state records are confirmed in the background: a kill before that would send them again.
            await wait_until(lambda: _recorded(broker.bootstrap, f"{topic}-state", 10), 60, "the state records")
            code, _ = await first.signal_and_wait(signal.SIGKILL)
        finally:
            await first.kill()
        assert code == -signal.SIGKILL and "big.bin: Successfully processed" not in first.log()
        second = await DaemonProcess("uploader", tmp_path / "up2.log", env).start()
        try:
            await second.wait_for_log("big.bin: Successfully processed", timeout_s=120)
            await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 11, 60, "all")
            code, _ = await second.signal_and_wait()
        finally:
            await second.kill()
        assert code == 0
        assert "Loaded 10 sent files" in second.log()
        # big.bin alone goes out again: resumed where its progress record says, or whole if none was written yet
        again = [m.split(":")[0] for m in messages(second.log()) if " bytes, creating " in m or ": resuming at " in m]
        assert again == ["big.bin"]
        # Sent whole, the partial upload is dropped as superseded where the downloader saw it (in transactions its
        # uncommitted chunks were aborted and never reached it); resumed, it is one upload, started once.
        superseded = down.metric("streamsend_downloader_files_failed_total", reason="superseded")
        starts = sum("big.bin (00001/00289):    first chunk" in r.getMessage() for r in caplog.records)
        assert superseded == starts - 1 and starts in (1, 2)
    assert compare_trees(source, target / "edge-1").identical
    assert set(Counter(published([r.getMessage() for r in caplog.records])).values()) == {1}


async def test_group_members_joining_and_dying_mid_transfer_lose_nothing_and_duplicate_nothing(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    source.mkdir()
    names = _one_name_per_partition(6)
    for name in names:
        with (source / name).open("wb") as out:
            for _ in range(60):
                out.write(os.urandom(1_000_000))
    topic = await topics.create(partitions=6)
    env = daemon_env(broker.bootstrap, topic, output_dir=target, group_id=f"{topic}-group")
    members = []
    async with uploader(broker.bootstrap, topic, source, producers=1, max_concurrent_files=6):
        try:
            first = await DaemonProcess("downloader", tmp_path / "m1.log", env).start()
            members.append(first)
            await first.wait_for_log("(00001/00058):    first chunk")
            second = await DaemonProcess("downloader", tmp_path / "m2.log", env).start()  # joins: rebalance
            members.append(second)
            await second.wait_for_log("Partitions assigned: ")
            await wait_until(lambda: "first chunk" in second.log(), 60, "the new member to take part")
            await first.signal_and_wait(signal.SIGKILL)  # dies: its partitions move after the session timeout
            await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 180, "every file", 1.0)
            code, _ = await second.signal_and_wait()
            assert code == 0
        finally:
            for member in members:
                await member.kill()
    publications = _publications(*(member.log() for member in members))
    assert sorted(_arrived(*(member.log() for member in members))) == sorted(f"edge-1/{name}" for name in names)
    assert set(publications.values()) == {1}, publications


def _one_name_per_partition(partitions: int) -> list[str]:
    """File names that the uploader sends to every partition, one each."""
    chosen: dict[int, str] = {}
    for index in itertools.count():
        name = f"part-{index}.bin"
        chosen.setdefault(partition_for("edge-1", name, partitions), name)
        if len(chosen) == partitions:
            return sorted(chosen.values())
    raise AssertionError("unreachable")
