from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path

import pytest

from streamsend.shared.errors import FileChangedError
from streamsend.shared.protocol import crc32c
from streamsend.uploader.budget import ByteBudget
from streamsend.uploader.files import state_of
from streamsend.uploader.planner import spans
from streamsend.uploader.reader import ChunkReader


async def _read_all(path: Path, budget: ByteBudget | None = None, chunk: int = 4096) -> bytes:
    budget = budget or ByteBudget(1 << 20)
    got = b""
    async with ChunkReader(path, state_of(path.lstat()), budget) as reader:
        async for span, data, crc, reservation in reader.chunks(spans(path.stat().st_size, chunk)):
            assert crc == crc32c(data) and len(data) == span.length == reservation.size
            reservation.release()
            got += data
    return got


async def test_reads_every_chunk_with_its_crc_and_the_whole_file_digest(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    budget = ByteBudget(1 << 20)
    async with ChunkReader(path, state_of(path.lstat()), budget) as reader:
        got = b""
        async for _span, chunk, _crc, reservation in reader.chunks(spans(len(data), 4096)):
            got += chunk
            reservation.release()
        digest = reader.digest()
    assert got == data
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.md5 == hashlib.md5(data).hexdigest()
    assert budget.used == 0


async def test_chunks_read_ahead_are_counted_in_the_budget_and_freed_when_abandoned(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(40_000))
    budget = ByteBudget(1 << 20)
    async with (
        ChunkReader(path, state_of(path.lstat()), budget) as reader,
        contextlib.aclosing(reader.chunks(spans(40_000, 4096))) as chunks,
    ):
        async for _span, _chunk, _crc, reservation in chunks:
            await asyncio.sleep(0.01)  # the next chunk is read meanwhile
            assert budget.used == 2 * 4096  # this one and the one read ahead
            reservation.release()
            reservation.release()  # a second release frees nothing more
            break
    assert budget.used == 0


async def test_an_empty_file_is_one_empty_chunk(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.touch()
    assert await _read_all(path) == b""


async def test_a_file_changed_since_it_was_found_static_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    state = state_of(path.lstat())
    path.write_bytes(b"a" * 200)
    with pytest.raises(FileChangedError, match="changed while being read"):
        async with ChunkReader(path, state, ByteBudget(1 << 20)):
            pass


async def test_truncation_while_reading_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100_000)
    budget = ByteBudget(8192)  # one chunk in hand and one ahead: the third is read after the cut
    with pytest.raises(FileChangedError, match="truncated"):
        async with ChunkReader(path, state_of(path.lstat()), budget) as reader:
            async for span, _chunk, _crc, reservation in reader.chunks(spans(100_000, 4096)):
                if span.index == 0:
                    os.truncate(path, 5000)
                reservation.release()
    assert budget.used == 0


async def test_an_append_before_the_last_chunk_is_read_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100_000)
    budget = ByteBudget(8192)
    with pytest.raises(FileChangedError, match="changed while being read"):
        async with ChunkReader(path, state_of(path.lstat()), budget) as reader:
            async for span, _chunk, _crc, reservation in reader.chunks(spans(100_000, 4096)):
                if span.index == 0:
                    with path.open("ab") as more:
                        more.write(b"b")
                reservation.release()


async def test_a_file_gone_or_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    state = state_of(path.lstat())
    path.unlink()
    with pytest.raises(FileChangedError, match="gone"):
        async with ChunkReader(path, state, ByteBudget(1 << 20)):
            pass
    (tmp_path / "target").write_bytes(b"x")
    path.symlink_to(tmp_path / "target")
    with pytest.raises(FileChangedError, match="symlink"):
        async with ChunkReader(path, state, ByteBudget(1 << 20)):
            pass


async def test_a_fifo_swapped_in_is_never_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    state = state_of(path.lstat())
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(FileChangedError, match="no longer a regular file"):
        async with ChunkReader(path, state, ByteBudget(1 << 20)):
            pass


async def test_a_sender_cancelled_while_a_chunk_is_read_ahead_stays_cancelled(tmp_path: Path) -> None:
    """The read ahead is stopped and its bytes freed, and the cancellation goes on: it is never eaten."""
    path = tmp_path / "f"
    path.write_bytes(os.urandom(40_000))
    budget = ByteBudget(4096)  # one chunk in hand: the one ahead waits for the budget, which never frees
    held = asyncio.Event()

    async def send() -> None:
        async with (
            ChunkReader(path, state_of(path.lstat()), budget) as reader,
            contextlib.aclosing(reader.chunks(spans(40_000, 4096))) as chunks,
        ):
            async for _span, _chunk, _crc, _reservation in chunks:
                held.set()
                await asyncio.sleep(300)  # e.g. waiting for Kafka; this chunk's bytes stay reserved

    sender = asyncio.create_task(send())
    await held.wait()
    await asyncio.sleep(0.05)  # the next chunk waits for the budget meanwhile
    sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sender, 10)
    assert sender.cancelled()
    assert budget.used == 4096  # the chunk in hand, still the sender's to release; the one ahead took nothing
