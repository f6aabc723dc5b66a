"""Uploader and downloader against a real broker: trees arrive byte for byte, and only what should."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from pathlib import Path

import pytest

from streamsend.demo.verify import compare_trees, file_sha256, tree_files
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory
from tests.support.waiting import wait_until

CHUNK = 64 * 1024


def _write(root: Path, relative: str, size: int) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


async def test_a_mixed_tree_arrives_byte_for_byte(broker: Broker, topics: TopicFactory, tmp_path: Path) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    sizes = {
        "empty.txt": 0,
        "one-byte": 1,
        "boundaries/chunk-minus-one.bin": CHUNK - 1,
        "boundaries/chunk.bin": CHUNK,
        "boundaries/chunk-plus-one.bin": CHUNK + 1,
        "boundaries/many.bin": 10 * CHUNK + 3,
        "photos/2024/été à Paris/plage 01.jpg": 300_000,
        "データ/レポート 第1四半期.pdf": 70_000,
        "music/🎵 mix (final).mp3": 150_000,
        "deep/a/b/c/d/e/f/g/h/i/j/deep.txt": 10,
        "spaces in name/ and leading space.txt": 5,
    }
    for relative, size in sizes.items():
        _write(source, relative, size)
    # What must not arrive: hidden entries, symlinks, and special files.
    _write(source, ".hidden", 10)
    _write(source, ".cache/inner.bin", 10)
    _write(source, "photos/.DS_Store", 10)
    (source / "link-to-file").symlink_to(source / "one-byte")
    (source / "link-to-dir").symlink_to(source / "photos")
    os.mkfifo(source / "a-fifo")
    topic = await topics.create()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(source / "a-socket"))
        async with (
            downloader(broker.bootstrap, topic, target) as down,
            uploader(broker.bootstrap, topic, source, chunk_size=CHUNK) as up,
        ):
            await wait_until(
                lambda: down.metric("streamsend_downloader_files_verified_total") >= len(sizes), 60, "the mirror"
            )
            await up.more_scans(1)  # anything that should not arrive has had its chance
            comparison = compare_trees(source, target / "edge-1")
            assert comparison.identical, comparison
            assert sorted(comparison.same) == sorted(sizes)
            mirrored = tree_files(target / "edge-1", include_hidden=True)
            assert sorted(mirrored) == sorted(sizes)
            assert up.metric("streamsend_uploader_files_sent_total") == len(sizes)
            assert up.metric("streamsend_uploader_files_skipped_total", reason="not_regular") == 2
            assert down.metric("streamsend_downloader_files_verified_total") == len(sizes)
            assert up.metric("streamsend_uploader_chunk_size_bytes") == CHUNK
    # published files keep their source mtime
    for relative in sizes:
        assert (target / "edge-1" / relative).stat().st_mtime_ns == (source / relative).stat().st_mtime_ns
    assert list((target / ".streamsend" / "staging").iterdir()) == []  # nothing left behind


@pytest.mark.slow
async def test_a_200_mb_file_end_to_end(
    broker: Broker, topics: TopicFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    big = source / "video" / "big.bin"
    big.parent.mkdir()
    digest = hashlib.sha256()
    with big.open("wb") as out:
        for _ in range(200):
            block = os.urandom(1_000_000)
            digest.update(block)
            out.write(block)
    topic = await topics.create()
    async with downloader(broker.bootstrap, topic, target) as down, uploader(broker.bootstrap, topic, source) as up:
        started = time.monotonic()
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 1, 240, "the big file")
        elapsed = time.monotonic() - started
        assert up.metric("streamsend_uploader_sent_bytes_total") == 200_000_000
    arrived = target / "edge-1" / "video" / "big.bin"
    assert arrived.stat().st_size == 200_000_000
    assert file_sha256(arrived) == digest.hexdigest()
    with capsys.disabled():
        print(f"\n200 MB file end to end (in one process, min_file_age 0.3 s): {elapsed:.1f} s")


async def test_a_file_written_slowly_arrives_complete_and_once(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    topic = await topics.create()
    published = target / "edge-1" / "slow.log"
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        uploader(broker.bootstrap, topic, source, min_file_age=1.0, rescan_interval=0.5) as up,
    ):
        content = b""
        with (source / "slow.log").open("ab") as out:
            for _ in range(12):  # about 3.6 s of writing, pausing shorter than min_file_age
                block = os.urandom(10_000)
                out.write(block)
                out.flush()
                content += block
                await asyncio.sleep(0.3)
                assert not published.exists(), "a partial file was published"
        await wait_until(lambda: published.exists(), 30, "the slowly written file")
        await up.more_scans(2)
        assert published.read_bytes() == content
        assert up.metric("streamsend_uploader_files_sent_total") == 1
        assert down.metric("streamsend_downloader_files_verified_total") == 1


async def test_a_file_changed_after_sending_is_sent_again(broker: Broker, topics: TopicFactory, tmp_path: Path) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    topic = await topics.create()
    (source / "notes.txt").write_text("first version")
    published = target / "edge-1" / "notes.txt"
    async with downloader(broker.bootstrap, topic, target) as down, uploader(broker.bootstrap, topic, source) as up:
        await wait_until(lambda: published.exists(), 30, "the first version")
        (source / "notes.txt").write_text("second, longer version")
        await wait_until(
            lambda: down.metric("streamsend_downloader_files_verified_total") == 2, 30, "the second version"
        )
        assert published.read_text() == "second, longer version"
        assert up.metric("streamsend_uploader_files_sent_total") == 2
