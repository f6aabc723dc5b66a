from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from streamsend.shared.protocol import crc32c
from streamsend.uploader.planner import spans
from streamsend.uploader.reader import ChunkReader, FileChangedError, state_of


async def test_reads_every_chunk_with_its_crc_and_the_whole_file_digest(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    got = b""
    async with ChunkReader(path, state_of(path.lstat())) as reader:
        for span in spans(len(data), 4096):
            chunk, crc = await reader.read(span)
            assert crc == crc32c(chunk)
            got += chunk
        await reader.verify_unchanged()
        digest = reader.digest()
    assert got == data
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.md5 == hashlib.md5(data).hexdigest()


async def test_a_file_changed_since_it_was_found_static_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    state = state_of(path.lstat())
    path.write_bytes(b"a" * 200)
    with pytest.raises(FileChangedError, match="changed while being read"):
        async with ChunkReader(path, state):
            pass


async def test_truncation_while_reading_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 10_000)
    async with ChunkReader(path, state_of(path.lstat())) as reader:
        planned = list(spans(10_000, 4096))
        await reader.read(planned[0])
        os.truncate(path, 5000)
        with pytest.raises(FileChangedError, match="truncated"):
            await reader.read(planned[1])
            await reader.read(planned[2])


async def test_an_append_before_the_last_chunk_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    async with ChunkReader(path, state_of(path.lstat())) as reader:
        await reader.read(next(spans(100, 4096)))
        with path.open("ab") as more:
            more.write(b"b")
        with pytest.raises(FileChangedError):
            await reader.verify_unchanged()


async def test_a_file_gone_or_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    state = state_of(path.lstat())
    path.unlink()
    with pytest.raises(FileChangedError, match="gone"):
        async with ChunkReader(path, state):
            pass
    (tmp_path / "target").write_bytes(b"x")
    path.symlink_to(tmp_path / "target")
    with pytest.raises(FileChangedError, match="symlink"):
        async with ChunkReader(path, state):
            pass


async def test_a_fifo_swapped_in_is_never_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    state = state_of(path.lstat())
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(FileChangedError, match="no longer a regular file"):
        async with ChunkReader(path, state):
            pass
