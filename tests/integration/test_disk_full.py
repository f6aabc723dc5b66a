"""A full output filesystem: the downloader pauses, says so once, and resumes by itself when space returns."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamsend.demo.verify import compare_trees
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory
from tests.support.waiting import wait_until

# What this shows does not depend on the kind of broker: the embedded one is enough.
pytestmark = [pytest.mark.slow, pytest.mark.brokers("tansu")]
MiB = 1024 * 1024


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 48 MiB filesystem (tmpfs), which the test can grow later."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a small tmpfs needs root (CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_a_full_disk_pauses_downloading_until_space_returns(
    broker: Broker, topics: TopicFactory, tmp_path: Path, small_filesystem: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (source / name).write_bytes(os.urandom(20 * MiB))
    topic = await topics.create()
    async with (
        downloader(broker.bootstrap, topic, small_filesystem, min_free_space=MiB) as down,
        uploader(broker.bootstrap, topic, source),
    ):
        await wait_until(lambda: down.metric("streamsend_downloader_paused") == 1, 120, "the pause")
        paused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Downloading paused")]
        assert len(paused) == 1, paused
        assert "bytes available" in paused[0] and paused[0].endswith(".bin")
        await asyncio.sleep(3)  # it stays paused while there is no room, and publishes nothing partial
        assert down.metric("streamsend_downloader_paused") == 1
        published = {p.name for p in (small_filesystem / "edge-1").glob("*")}
        assert len(published) < 3
        for name in published:
            assert (small_filesystem / "edge-1" / name).read_bytes() == (source / name).read_bytes()

        await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,size=200m", str(small_filesystem)], check=True)
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 3, 60, "every file")
        assert down.metric("streamsend_downloader_paused") == 0
        assert down.metric("streamsend_downloader_records_rejected_total", reason="too_large") == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Downloading paused") for m in messages) == 1
    assert sum(m.startswith("Downloading resumed") for m in messages) == 1
    assert compare_trees(source, small_filesystem / "edge-1").identical
