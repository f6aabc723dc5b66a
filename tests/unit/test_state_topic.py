"""StateTopic's writes, with a fake producer pool: records handed over in order and acknowledged together; one
that fails is written again on its own until the broker takes it; forgotten files get tombstones."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path

import aiokafka.errors as kafka_errors
import pytest

from streamsend.shared.retry import Outage
from streamsend.shared.settings import load_settings
from streamsend.uploader.files import SentFile
from streamsend.uploader.settings import UploaderSettings
from streamsend.uploader.state import decode_state
from streamsend.uploader.state_topic import StateTopic


class FakePool:
    def __init__(self, failures: list[int]) -> None:
        self.failures = failures  # which sends (by count) fail their acknowledgement
        self.sent: list[tuple[str, bytes, bytes | None, int, int | None]] = []
        self.written: list[tuple[bytes, bytes | None]] = []
        self.took = asyncio.Event()  # a record was acknowledged

    async def send(
        self, topic: str, key: bytes, value: bytes | None, partition: int, lane: int | None = None
    ) -> Awaitable[object]:
        self.sent.append((topic, key, value, partition, lane))
        ack: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if len(self.sent) in self.failures:
            ack.set_exception(kafka_errors.RequestTimedOutError("slow broker"))
        else:
            self.written.append((key, value))
            self.took.set()
            ack.set_result(None)
        return ack


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STREAMSEND_"):
            monkeypatch.delenv(name)


def _state(tmp_path: Path, pool: FakePool) -> StateTopic:
    settings = load_settings(
        UploaderSettings, ["--input-dir", str(tmp_path), "--uploader-name", "till-4", "--retry-backoff-max", "0.01"],
        "t",
    )  # fmt: skip
    state = StateTopic(settings, Outage("Kafka"))
    state.attach(pool)  # type: ignore[arg-type]
    return state


def _sent(path: str) -> SentFile:
    return SentFile(path, 10, 1, "a" * 64, "b" * 32, f"id-{path}", 1.0)


async def test_a_failed_state_record_is_written_again_on_its_own(tmp_path: Path) -> None:
    pool = FakePool(failures=[2])
    state = _state(tmp_path, pool)
    await state.save_many([_sent("a.csv"), _sent("b.csv"), _sent("c.csv")])
    paths = [decode_state("till-4", key, value) for key, value in pool.written]
    assert [p[0] for p in paths if p is not None] == ["a.csv", "c.csv", "b.csv"]
    assert all(lane is None for *_, lane in pool.sent)  # outside any transaction
    assert pool.sent[0][0] == "streamsend-state"


async def test_records_name_the_uploader_and_path(tmp_path: Path) -> None:
    state = _state(tmp_path, FakePool([]))
    [(topic, key, value, partition)] = state.records([_sent("shop/x.pdf")])
    assert topic == "streamsend-state" and key == b"till-4\x00shop/x.pdf" and partition == 0
    decoded = decode_state("till-4", key, value)
    assert decoded is not None and decoded[1] == _sent("shop/x.pdf")


async def test_forgotten_files_get_tombstones_until_the_stop(tmp_path: Path) -> None:
    pool = FakePool([])
    state = _state(tmp_path, pool)
    stop = asyncio.Event()
    task = asyncio.create_task(state.run(stop))
    state.forget_soon("gone.csv")
    await asyncio.wait_for(pool.took.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert pool.written == [(b"till-4\x00gone.csv", None)]
