from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from streamsend.downloader.publisher import Publication, Publisher
from streamsend.downloader.settings import FsyncPolicy
from streamsend.downloader.store import (
    SHA256_ATTRIBUTE,
    WRITEBACK_WINDOW,
    DescriptorCache,
    Staging,
    Store,
)
from streamsend.shared.errors import PublishError


async def _store(root: Path, *, max_open_files: int = 8) -> Store:
    store = Store(root, max_open_files=max_open_files)
    await store.open()
    return store


async def _publish(
    store: Store, staging: Staging, target: Path, mtime_ns: int, policy: FsyncPolicy = "file", sha256: str | None = None
) -> Publication:
    if sha256 is None:
        sha256 = hashlib.sha256(staging.path.read_bytes()).hexdigest()
    publication = Publication(staging, target, mtime_ns, sha256)
    published: list[Publication] = []
    await Publisher(store, policy).publish([publication], published.append)
    if publication.error is not None:
        raise publication.error
    assert published == [publication]
    return publication


async def _staged(store: Store, content: bytes) -> Staging:
    staging = await store.create(os.urandom(16).hex())
    await store.write(staging, 0, content, None)
    return staging


@pytest.mark.parametrize("policy", ["batch", "file", "off"])
async def test_a_staged_file_is_published_by_rename_with_its_mtime(tmp_path: Path, policy: FsyncPolicy) -> None:
    store = await _store(tmp_path)
    staging = await store.create("a" * 32)
    await store.write(staging, 5, b"world", None)
    await store.write(staging, 0, b"hello", None)
    target = store.target("edge-1", ["photos", "été", "x.txt"])
    await _publish(store, staging, target, 1_600_000_000_123_456_789, policy)
    assert target.read_bytes() == b"helloworld"
    assert target.stat().st_mtime_ns == 1_600_000_000_123_456_789
    assert not staging.path.exists()
    await store.close()
    assert not store.staging_dir.exists()


async def test_publishing_replaces_an_existing_file(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    target = store.target("edge-1", ["f"])
    for content in (b"old", b"new"):
        staging = await store.create(content.hex().ljust(32, "0"))
        await store.write(staging, 0, content, None)
        await _publish(store, staging, target, 0, "off")
    assert target.read_bytes() == b"new"


async def test_a_published_file_carries_its_sha256(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    target = store.target("edge-1", ["f"])
    await _publish(store, await _staged(store, b"data"), target, 0, sha256="ab" * 32)
    assert os.getxattr(target, SHA256_ATTRIBUTE) == b"ab" * 32


@pytest.mark.parametrize("policy", ["batch", "file", "off"])
async def test_the_same_file_received_again_leaves_the_published_one_untouched(
    tmp_path: Path, policy: FsyncPolicy
) -> None:
    store = await _store(tmp_path)
    target = store.target("edge-1", ["f"])
    await _publish(store, await _staged(store, b"data"), target, 7, policy, sha256="ab" * 32)
    inode = target.stat().st_ino
    again = await _staged(store, b"data")
    assert (await _publish(store, again, target, 7, policy, sha256="ab" * 32)).unchanged
    assert target.stat().st_ino == inode and not again.path.exists()


@pytest.mark.parametrize(("content", "mtime_ns", "sha256"), [(b"dat", 7, "ab"), (b"data", 8, "ab"), (b"data", 7, "cd")])
async def test_a_file_that_differs_in_size_mtime_or_sha256_replaces_the_published_one(
    tmp_path: Path, content: bytes, mtime_ns: int, sha256: str
) -> None:
    store = await _store(tmp_path)
    target = store.target("edge-1", ["f"])
    await _publish(store, await _staged(store, b"data"), target, 7, sha256="ab" * 32)
    inode = target.stat().st_ino
    publication = await _publish(store, await _staged(store, content), target, mtime_ns, sha256=sha256 * 32)
    assert not publication.unchanged and target.stat().st_ino != inode
    assert os.getxattr(target, SHA256_ATTRIBUTE) == sha256.encode() * 32


async def test_read_back_folds_what_was_written(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    staging = await store.create("b" * 32)
    folded: list[bytes] = []
    await store.write(staging, 0, b"abcdef", folded.append)
    await store.read(staging, 2, 3, folded.append)
    assert folded == [b"abcdef", b"cde"]


@pytest.mark.parametrize("obstacle", ["file", "symlink"])
async def test_a_file_or_symlink_where_a_folder_belongs_stops_publication(tmp_path: Path, obstacle: str) -> None:
    store = await _store(tmp_path)
    (tmp_path / "edge-1").mkdir()
    if obstacle == "file":
        (tmp_path / "edge-1" / "docs").write_text("I am a file")
    else:
        outside = tmp_path.parent / f"{tmp_path.name}-outside"
        outside.mkdir()
        (tmp_path / "edge-1" / "docs").symlink_to(outside)
    staging = await store.create("c" * 32)
    with pytest.raises(PublishError, match=f"a {obstacle} is in the way at edge-1/docs"):
        await _publish(store, staging, store.target("edge-1", ["docs", "x"]), 0)
    assert staging.path.exists()


async def test_a_folder_where_the_file_belongs_stops_publication(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    (tmp_path / "edge-1" / "x").mkdir(parents=True)
    staging = await store.create("d" * 32)
    with pytest.raises(PublishError, match="folder is in the way"):
        await _publish(store, staging, store.target("edge-1", ["x"]), 0)


async def test_quarantine_keeps_the_file_outside_the_tree(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    staging = await store.create("e" * 32)
    await store.write(staging, 0, b"bad", None)
    kept = await store.quarantine(staging, "edge-1", ["a", "report.pdf"], "e" * 32)
    assert kept is not None and kept.read_bytes() == b"bad"
    assert kept.is_relative_to(tmp_path / ".streamsend" / "quarantine")
    assert not (tmp_path / "edge-1").exists()


async def test_the_quarantine_keeps_the_newest_files_within_its_limit(tmp_path: Path) -> None:
    store = Store(tmp_path, max_open_files=4, quarantine_max_bytes=250)
    await store.open()
    kept: list[Path] = []
    for index in range(5):
        staging = await _staged(store, bytes(100))
        path = await store.quarantine(staging, f"edge-{index % 2}", [f"f{index}"], f"{index:032x}")
        assert path is not None
        kept.append(path)
    remaining = sorted(p for p in store.quarantine_root.rglob("*") if p.is_file())
    assert remaining == sorted(kept[3:])  # 200 bytes: the last two; the older three went, oldest first
    too_big = await _staged(store, bytes(251))
    assert await store.quarantine(too_big, "edge-0", ["huge"], "f" * 32) is None
    assert not too_big.path.exists()
    assert sorted(p for p in store.quarantine_root.rglob("*") if p.is_file()) == sorted(kept[3:])
    again = Store(tmp_path, max_open_files=4, quarantine_max_bytes=250)  # a restart finds what was kept
    await again.open()
    newest = await again.quarantine(await _staged(again, bytes(100)), "edge-0", ["f5"], "a" * 32)
    assert newest is not None
    assert sorted(p for p in store.quarantine_root.rglob("*") if p.is_file()) == sorted([kept[4], newest])


async def test_staging_left_by_a_dead_process_is_removed_but_a_live_ones_is_not(tmp_path: Path) -> None:
    live = await _store(tmp_path)
    (await live.create("f" * 32)).path.write_bytes(b"in progress")
    staging = tmp_path / ".streamsend" / "staging"
    dead = staging / "deadbeef0000"
    dead.mkdir()
    (dead / ("0" * 32)).write_bytes(b"left over")
    (staging / "deadbeef0000.lock").touch()  # its lock, no longer held
    unlocked = staging / "cafe00000000"  # crashed while cleaning up: folder without lock
    unlocked.mkdir()
    (staging / "0123456789ab.lock").touch()  # crashed before making its folder
    second = await _store(tmp_path)
    assert not dead.exists() and not (staging / "deadbeef0000.lock").exists()
    assert not unlocked.exists() and not (staging / "0123456789ab.lock").exists()
    assert (live.staging_dir / ("f" * 32)).read_bytes() == b"in progress"
    await second.close()
    await live.close()
    assert list(staging.iterdir()) == []


async def test_downloaders_starting_together_on_one_folder_keep_each_others_staging(tmp_path: Path) -> None:
    stores = [Store(tmp_path, max_open_files=4) for _ in range(8)]
    await asyncio.gather(*(store.open() for store in stores))
    assert all(store.staging_dir.is_dir() for store in stores)
    for store in stores:
        await store.close()


async def test_the_descriptor_cache_closes_the_least_recently_used_idle_file(tmp_path: Path) -> None:
    cache = DescriptorCache(2)
    stagings = []
    for name in "abc":
        path = tmp_path / name
        path.touch()
        stagings.append(Staging(path))
    for staging in stagings:
        async with cache.use(staging) as fd:
            os.write(fd, b"x")
    assert [s.fd is None for s in stagings] == [True, False, False]
    async with cache.use(stagings[1]), cache.use(stagings[2]), cache.use(stagings[0]):
        assert all(s.fd is not None for s in stagings)  # all pinned: over the limit rather than close one in use
    for staging in stagings:
        cache.close(staging)


async def test_space_reports_the_filesystem(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    space = store.space()
    assert 0 < space.available <= space.capacity


async def test_a_large_file_goes_to_disk_while_it_arrives_a_window_behind_the_newest_write(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    staging = await store.create("c" * 32)
    chunk = 1024 * 1024
    window = WRITEBACK_WINDOW // chunk
    hashed: list[int] = []
    for index in range(3 * window):
        await store.write(staging, index * chunk, bytes([index % 251]) * chunk, lambda data: hashed.append(len(data)))
        behind = (index + 1) * chunk - staging.written_back
        assert staging.written_back == 0 or WRITEBACK_WINDOW <= behind < 2 * WRITEBACK_WINDOW
    assert staging.written_back == 2 * WRITEBACK_WINDOW  # only the newest window is left to the final sync
    # chunks ahead of their turn are not hashed yet, and stay cached for their read-back
    await store.write(staging, 4 * WRITEBACK_WINDOW, b"ahead", None)
    assert staging.written_back == 2 * WRITEBACK_WINDOW
    with staging.path.open("rb") as written:
        for index in range(3 * window):
            assert written.read(chunk) == bytes([index % 251]) * chunk
    assert len(hashed) == 3 * window
