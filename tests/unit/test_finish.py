"""Finisher, with a fake state topic: what becomes of a sent file, and when."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from streamsend.shared.settings import load_settings
from streamsend.uploader.files import ReadyFile, SentFile, state_of
from streamsend.uploader.finish import Finisher
from streamsend.uploader.ledger import SentLedger
from streamsend.uploader.settings import UploaderSettings


class FakeState:
    """State records that are acknowledged when the test says so (or fail)."""

    def __init__(self) -> None:
        self.saved: list[str] = []
        self.forgotten: list[str] = []
        self.gate = asyncio.Event()
        self.fault: Exception | None = None

    async def save_many(self, sents: list[SentFile]) -> None:
        await self.gate.wait()
        if self.fault is not None:
            raise self.fault
        self.saved += [sent.path for sent in sents]

    def forget_soon(self, path: str) -> None:
        self.forgotten.append(path)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STREAMSEND_"):
            monkeypatch.delenv(name)


def _settings(root: Path, *flags: str) -> UploaderSettings:
    (root / "in").mkdir(exist_ok=True)
    return load_settings(UploaderSettings, ["--input-dir", str(root / "in"), *flags], "t")


def _sent_file(settings: UploaderSettings, name: str, data: bytes = b"payload") -> tuple[ReadyFile, SentFile]:
    path = settings.input_dir / name
    path.write_bytes(data)
    state = state_of(path.lstat())
    return ReadyFile(path, name, state), SentFile(name, state.size, state.mtime_ns, "s" * 64, "m" * 32, "u1", 1.0)


async def test_a_file_is_deleted_only_once_its_state_record_is_acknowledged(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "--after-upload", "delete")
    state, ledger = FakeState(), SentLedger()
    finisher = Finisher(settings, ledger, state)
    ready, sent = _sent_file(settings, "a.csv")
    await finisher.sent_many([(ready, sent)])
    assert "a.csv" in ledger  # remembered at once, in memory
    await asyncio.sleep(0.05)
    assert ready.path.exists() and state.saved == []  # the record is not acknowledged yet
    state.gate.set()
    await finisher.drain()
    assert state.saved == ["a.csv"] and not ready.path.exists()
    assert state.forgotten == ["a.csv"] and "a.csv" not in ledger  # gone from the tree: nothing to remember


async def test_a_file_changed_since_it_was_sent_is_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "--after-upload", "delete")
    state = FakeState()
    state.gate.set()
    finisher = Finisher(settings, SentLedger(), state)
    ready, sent = _sent_file(settings, "b.csv")
    ready.path.write_bytes(b"rewritten meanwhile, and longer")
    await finisher.sent_many([(ready, sent)])
    await finisher.drain()
    assert ready.path.exists() and state.forgotten == []


async def test_a_state_record_that_fails_for_good_keeps_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, "--after-upload", "delete")
    state = FakeState()
    state.fault = RuntimeError("record too large")
    state.gate.set()
    finisher = Finisher(settings, SentLedger(), state)
    ready, sent = _sent_file(settings, "c.csv")
    await finisher.sent_many([(ready, sent)])
    await finisher.drain()
    assert ready.path.exists()
    assert "c.csv: sent, but not recorded as sent (record too large): kept" in caplog.text


async def test_move_puts_the_file_under_done_dir_in_its_folders(tmp_path: Path) -> None:
    (tmp_path / "done").mkdir()
    settings = _settings(tmp_path, "--after-upload", "move", "--done-dir", str(tmp_path / "done"))
    finisher = Finisher(settings, SentLedger(), None)  # no state topic: tidied at once
    (settings.input_dir / "shop").mkdir()
    ready, sent = _sent_file(settings, "shop/d.csv")
    await finisher.sent_many([(ready, sent)])
    assert (tmp_path / "done" / "shop" / "d.csv").read_bytes() == b"payload" and not ready.path.exists()


async def test_in_transactions_the_state_record_is_not_written_again(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "--after-upload", "delete")
    state = FakeState()  # its gate stays shut: a save_many would never return
    finisher = Finisher(settings, SentLedger(), state, state_written=True)
    ready, sent = _sent_file(settings, "e.csv")
    await asyncio.wait_for(finisher.sent_many([(ready, sent)]), 5)
    await asyncio.wait_for(finisher.drain(), 5)
    assert state.saved == [] and not ready.path.exists()


async def test_keep_leaves_the_tree_alone_and_fail_marks_the_version(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    state, ledger = FakeState(), SentLedger()
    state.gate.set()
    finisher = Finisher(settings, ledger, state)
    ready, sent = _sent_file(settings, "f.csv")
    await finisher.sent_many([(ready, sent)])
    await finisher.drain()
    assert ready.path.exists() and state.saved == ["f.csv"] and state.forgotten == []
    other, _ = _sent_file(settings, "g.csv")
    finisher.fail(other)
    assert ledger.is_done("g.csv", other.state) and not ledger.is_sent("g.csv", other.state)
