"""FileSender, with a fake sink behind a real courier: the records a file becomes, in order, on one partition,
with the digest on the last; one-chunk files in groups; shutdown and a file changed mid-way."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from pathlib import Path

import pytest

from streamsend.shared.errors import FileChangedError, Interrupted
from streamsend.shared.faults import is_transient
from streamsend.shared.protocol import decode
from streamsend.shared.retry import Outage
from streamsend.shared.view import TransferView
from streamsend.uploader.budget import ByteBudget
from streamsend.uploader.delivery import Courier, OutgoingRecord
from streamsend.uploader.files import ReadyFile, SentFile, state_of
from streamsend.uploader.pipeline import FileSender

CHUNK = 4096


class RecordingSink:
    def __init__(self, on_enqueue: object = None) -> None:
        self.records: list[OutgoingRecord] = []
        self.on_enqueue = on_enqueue

    async def recover(self, lane: int, exc: BaseException, spread: bool = False) -> None:
        pass

    async def enqueue(self, record: OutgoingRecord, lane: int, spread: bool = False) -> Awaitable[object]:
        self.records.append(record)
        if callable(self.on_enqueue):
            self.on_enqueue(len(self.records))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def _sender(sink: RecordingSink, stop: asyncio.Event | None = None) -> tuple[FileSender, ByteBudget, TransferView]:
    budget = ByteBudget(4 * CHUNK)
    view = TransferView("uploader")
    courier = Courier(sink, budget, Outage("Kafka"), is_transient, 0.01)
    sender = FileSender(
        uploader="till-4", chunk_size=CHUNK, partitions=lambda: 6, courier=courier,
        stop=stop or asyncio.Event(), view=view,
    )  # fmt: skip
    return sender, budget, view


def _ready(root: Path, name: str, data: bytes) -> ReadyFile:
    path = root / name
    path.write_bytes(data)
    return ReadyFile(path, name, state_of(path.lstat()))


async def test_a_file_becomes_its_chunks_in_order_on_one_partition(tmp_path: Path) -> None:
    data = bytes(range(256)) * 50  # 12800 bytes: 4 chunks, the last short
    sink = RecordingSink()
    sender, budget, view = _sender(sink)
    sent = await sender.send(_ready(tmp_path, "z.bin", data), lane=0)
    headers = [decode(record.headers, record.value) for record in sink.records]
    assert [(h.index, h.offset, h.count) for h in headers] == [(i, i * CHUNK, 4) for i in range(4)]
    assert b"".join(record.value for record in sink.records) == data
    assert len({record.partition for record in sink.records}) == 1 and len({h.upload_id for h in headers}) == 1
    assert [h.digest is not None for h in headers] == [False, False, False, True]
    assert headers[-1].digest is not None and headers[-1].digest.sha256 == hashlib.sha256(data).hexdigest()
    assert sent == SentFile("z.bin", len(data), sent.mtime_ns, hashlib.sha256(data).hexdigest(),
                            hashlib.md5(data).hexdigest(), headers[0].upload_id, sent.sent_at)  # fmt: skip
    assert budget.used == 0
    assert view.snapshot()["completed"][0]["path"] == "z.bin" and view.snapshot()["in_flight"] == []


async def test_one_chunk_files_go_as_a_group_and_a_vanished_one_fails_alone(tmp_path: Path) -> None:
    sink = RecordingSink()
    sender, budget, _ = _sender(sink)
    group = [_ready(tmp_path, f"{i}.txt", f"receipt {i}".encode()) for i in range(3)]
    group[1].path.unlink()
    outcomes = await sender.send_group(group, lane=0)
    assert [type(outcome) for outcome in outcomes] == [SentFile, FileChangedError, SentFile]
    assert [decode(r.headers, r.value).path for r in sink.records] == ["0.txt", "2.txt"]
    assert budget.used == 0


async def test_shutdown_stops_a_file_between_chunks(tmp_path: Path) -> None:
    stop = asyncio.Event()
    sink = RecordingSink(on_enqueue=lambda count: stop.set() if count == 2 else None)
    sender, budget, view = _sender(sink, stop)
    with pytest.raises(Interrupted, match="after 2 of 4 chunks"):
        await sender.send(_ready(tmp_path, "big.bin", b"x" * (4 * CHUNK)), lane=1)
    assert len(sink.records) == 2 and budget.used == 0
    assert view.snapshot()["in_flight"] == []


async def test_a_file_rewritten_while_it_is_read_is_abandoned(tmp_path: Path) -> None:
    ready = _ready(tmp_path, "log.txt", b"a" * (3 * CHUNK))

    def rewrite(count: int) -> None:
        if count == 1:
            ready.path.write_bytes(b"b" * (3 * CHUNK + 1))

    sender, budget, _ = _sender(RecordingSink(on_enqueue=rewrite))
    with pytest.raises(FileChangedError):
        await sender.send(ready, lane=0)
    assert budget.used == 0
