"""What an input tree can do to the uploader: files vanishing, changing while read, unreadable, replaced by
folders, special files, names that are not UTF-8, and very many files. Each gives a clear line, no crash."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from streamsend.demo.verify import compare_trees, tree_files
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory
from tests.support.processes import DaemonProcess, daemon_env
from tests.support.waiting import wait_until

MiB = 1024 * 1024

# How the uploader meets its own filesystem does not depend on the kind of broker.
pytestmark = pytest.mark.brokers("tansu")


def _log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


async def test_files_that_vanish_before_they_are_read_are_simply_not_sent(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    topic = await topics.create()
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        uploader(broker.bootstrap, topic, source, min_file_age=0.5) as up,
    ):
        for index in range(40):
            (source / f"f{index}.txt").write_text(f"file {index}")
        await asyncio.sleep(0.2)
        for index in range(0, 40, 2):
            (source / f"f{index}.txt").unlink()  # gone before it is static
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 20, 30, "survivors")
        await up.more_scans(1)
        up.check_alive()
        assert up.metric("streamsend_uploader_files_sent_total") == 20
    assert compare_trees(source, target / "edge-1").identical


@pytest.mark.slow
@pytest.mark.parametrize("change", ["append", "truncate"])
async def test_a_file_changed_while_it_is_read_is_abandoned_then_sent_whole_once(
    broker: Broker, topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture, change: str
) -> None:
    caplog.set_level(logging.INFO)
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    path = source / "growing.bin"
    with path.open("wb") as out:
        for _ in range(200):
            out.write(os.urandom(MiB))
    topic = await topics.create()
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        uploader(broker.bootstrap, topic, source, producers=1, max_in_flight_bytes=4 * MiB) as up,
    ):
        await wait_until(lambda: any("growing.bin (00001 of" in m for m in _log(caplog)), 30, "the first chunk")
        if change == "append":
            with path.open("ab") as out:
                out.write(os.urandom(MiB))
        else:
            os.truncate(path, 50 * MiB)
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 1, 120, "the file")
        await up.more_scans(1)
        assert up.metric("streamsend_uploader_files_failed_total", reason="changed") == 1
        assert up.metric("streamsend_uploader_files_sent_total") == 1
    assert any("growing.bin: changed while being read" in m or "growing.bin: truncated" in m for m in _log(caplog))
    assert (target / "edge-1" / "growing.bin").read_bytes() == path.read_bytes()


@pytest.mark.slow
async def test_unreadable_files_and_folders_are_reported_and_retried(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    (source / "locked-folder").mkdir(parents=True)
    target.mkdir()
    (source / "readable.txt").write_text("fine")
    (source / "secret.txt").write_text("not for now")
    (source / "locked-folder" / "inside.txt").write_text("hidden by its folder")
    (source / "secret.txt").chmod(0)
    (source / "locked-folder").chmod(0)
    topic = await topics.create()
    env = daemon_env(broker.bootstrap, topic, input_dir=source, rescan_interval=1, log_level="DEBUG")
    # root reads everything: without the DAC capabilities, permissions bind root too
    wrapper = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    up = DaemonProcess("uploader", tmp_path / "up.log", env)
    up.prefix = wrapper
    async with downloader(broker.bootstrap, topic, target) as down:
        await up.start()
        try:
            await wait_until(lambda: (target / "edge-1" / "readable.txt").exists(), 30, "the readable file")
            await up.wait_for_log("secret.txt: cannot be read: Permission denied")
            await up.wait_for_log("locked-folder: Permission denied")
            await up.wait_for_log("secret.txt: still cannot be read")  # tried again at a rescan
            (source / "secret.txt").chmod(0o644)
            (source / "locked-folder").chmod(0o755)
            await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 3, 30, "the rest")
            code, _ = await up.signal_and_wait()
        finally:
            await up.kill()
    assert code == 0
    assert up.log().count("locked-folder: Permission denied") == 1  # once, not at every rescan
    assert up.log().count("secret.txt: cannot be read") == 1
    assert compare_trees(source, target / "edge-1").identical


async def test_a_folder_replaced_by_a_file_and_back_is_reported_at_the_target(
    broker: Broker, topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    (source / "a").mkdir(parents=True)
    target.mkdir()
    (source / "a" / "inside.txt").write_text("in a folder")
    (source / "b").write_text("a file")
    topic = await topics.create()
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        uploader(broker.bootstrap, topic, source, rescan_interval=0.5) as up,
    ):
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 2, 30, "the first tree")
        shutil.rmtree(source / "a")
        (source / "a").write_text("now a file")
        (source / "b").unlink()
        (source / "b").mkdir()
        (source / "b" / "c.txt").write_text("now in a folder")
        await wait_until(lambda: down.metric("streamsend_downloader_files_quarantined_total") == 2, 30, "both")
        up.check_alive()
        down.check_alive()
    messages = _log(caplog)
    assert any("a folder is in the way at edge-1/a" in m for m in messages)
    assert any("a file is in the way at edge-1/b" in m for m in messages)
    assert (target / "edge-1" / "a" / "inside.txt").read_text() == "in a folder"  # nothing mirrored is destroyed
    assert (target / "edge-1" / "b").read_text() == "a file"


async def test_special_files_and_undecodable_names_are_reported_once_and_never_opened(
    broker: Broker, topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    (source / "plain.txt").write_text("sent")
    os.mkfifo(source / "a-fifo")  # opening it for reading would block forever
    specials = 1
    if os.geteuid() == 0:
        os.mknod(source / "a-device", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        specials += 1
    os.close(os.open(os.fsencode(source) + b"/latin1-\xe9t\xe9.txt", os.O_CREAT | os.O_WRONLY))
    topic = await topics.create()
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        uploader(broker.bootstrap, topic, source, rescan_interval=0.3) as up,
    ):
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 1, 30, "the plain file")
        await up.more_scans(3)
        assert up.metric("streamsend_uploader_files_skipped_total", reason="not_regular") == specials
        assert up.metric("streamsend_uploader_files_skipped_total", reason="unsendable_name") == 1
    messages = _log(caplog)
    assert sum("a-fifo: is a FIFO: never opened" in m for m in messages) == 1
    assert sum("not valid UTF-8" in m for m in messages) == 1
    assert sorted(tree_files(target / "edge-1")) == ["plain.txt"]


@pytest.mark.slow
async def test_fifty_thousand_files_at_start(
    broker: Broker, topics: TopicFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    count = 50_000
    for folder in range(500):
        directory = source / f"batch-{folder:03d}"
        directory.mkdir(parents=True)
        for index in range(count // 500):
            (directory / f"item-{index:03d}.txt").write_bytes(b"%d-%d\n" % (folder, index))
    topic = await topics.create()
    started = time.monotonic()
    async with (
        downloader(broker.bootstrap, topic, target, fsync="off") as down,
        uploader(broker.bootstrap, topic, source, max_concurrent_files=32, rescan_interval=60) as up,
    ):
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == count, 600, "all", 1.0)
        assert up.metric("streamsend_uploader_files_sent_total") == count
        elapsed = time.monotonic() - started
    assert len(tree_files(target / "edge-1")) == count
    with capsys.disabled():
        print(f"\n50,000 files from start to verified mirror: {elapsed:.0f} s")
