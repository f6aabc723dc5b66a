"""Scanning and intake on a real temporary tree (no Kafka)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import pytest

from streamsend.uploader.files import SentFile
from streamsend.uploader.intake import Intake
from streamsend.uploader.ledger import SentLedger
from streamsend.uploader.settings import UploaderSettings
from streamsend.uploader.watcher import TreeWatcher, scan_tree
from tests.support.waiting import wait_until


def _settings(root: Path, **extra: object) -> UploaderSettings:
    return UploaderSettings(input_dir=root, min_file_age=0.0, **extra)  # type: ignore[arg-type]


def test_scan_skips_hidden_entries_and_does_not_follow_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    outside.mkdir()
    (outside / "secret").write_text("x")
    (tmp_path / "linked-dir").symlink_to(outside)
    (tmp_path / "linked-file").symlink_to(outside / "secret")
    found, problems = scan_tree(tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p, _ in found)
    assert names == ["a/b/f.txt", "linked-dir", "linked-file"]  # the links themselves, judged by intake
    assert problems == []


def test_scan_reports_folders_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "replaced").write_text("a folder that became a file")
    found, problems = scan_tree(tmp_path / "replaced")
    assert found == []
    assert problems == [f"cannot read folder {tmp_path / 'replaced'}: Not a directory"]


async def _ready(intake: Intake, expected: int) -> list[str]:
    stop = asyncio.Event()
    task = asyncio.create_task(intake.run(stop))
    names = []
    try:
        for _ in range(expected):
            ready = await asyncio.wait_for(intake.take(asyncio.Event()), 5)
            assert ready is not None
            names.append(ready.wire_path)
    finally:
        stop.set()
        await task
    return sorted(names)


async def test_regular_files_become_ready_and_special_ones_are_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    (tmp_path / "ok.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "été.txt").write_text("y")
    os.mkfifo(tmp_path / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        (tmp_path / "link").symlink_to(tmp_path / "ok.txt")
        (tmp_path / "bad\\name").write_text("z")
        skipped: list[str] = []
        intake = Intake(_settings(tmp_path), SentLedger(), on_skip=skipped.append)
        for _ in range(2):  # a rescan reports nothing new
            for path, st in scan_tree(tmp_path)[0]:
                intake.offer(path, st)
        assert await _ready(intake, 2) == ["ok.txt", "sub/été.txt"]
    assert sorted(skipped) == ["not_regular", "not_regular", "unsendable_name"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("pipe: is a FIFO: never opened" in m for m in messages)
    assert any("sock: is a socket" in m for m in messages)
    assert any("bad\\name: name cannot be sent" in m for m in messages)


async def test_files_already_sent_as_they_are_are_not_queued(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    (tmp_path / "new.txt").write_text("y")
    st = (tmp_path / "old.txt").lstat()
    ledger = SentLedger()
    ledger.record(SentFile("old.txt", st.st_size, st.st_mtime_ns, "s", "m", "u", 0.0))
    intake = Intake(_settings(tmp_path), ledger)
    for path, stat_result in scan_tree(tmp_path)[0]:
        intake.offer(path, stat_result)
    assert await _ready(intake, 1) == ["new.txt"]


async def test_non_utf8_names_are_reported_not_sent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    os.close(os.open(os.fsencode(tmp_path) + b"/caf\xe9.txt", os.O_CREAT | os.O_WRONLY))
    (tmp_path / "fine.txt").write_text("x")
    intake = Intake(_settings(tmp_path), SentLedger())
    for path, st in scan_tree(tmp_path)[0]:
        intake.offer(path, st)
    assert await _ready(intake, 1) == ["fine.txt"]
    assert any("caf\\xe9.txt" in r.getMessage() and "not valid UTF-8" in r.getMessage() for r in caplog.records)


async def test_a_name_that_is_not_utf8_costs_only_itself_file_events_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """watchfiles fails the whole batch that holds such a name: the watch starts again at once, the tree is
    scanned at once, the name is reported once, and a file dropped next is found by its event, not by the
    rescan an hour away."""
    caplog.set_level(logging.WARNING)
    intake = Intake(_settings(tmp_path), SentLedger())
    scans: list[None] = []
    watcher = TreeWatcher(tmp_path, intake, rescan_interval_s=3600, on_scan=lambda: scans.append(None))
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        await wait_until(lambda: len(scans) == 1, 10, "the first scan")

        def bad_name_noticed() -> bool:  # made again until the watch is up (watchfiles gives no sign of it)
            os.close(os.open(os.fsencode(tmp_path) + b"/till\xff\xfe.log", os.O_CREAT | os.O_WRONLY))
            return len(scans) == 2

        await wait_until(bad_name_noticed, 10, "a scan for the lost batch")

        def dropped() -> bool:  # written again until the restarted watch sees it
            (tmp_path / "next.txt").write_text("dropped after it")
            return intake.pending == 1

        await wait_until(dropped, 10, "next.txt found by its event")  # the next rescan is an hour away
        assert await _ready(intake, 1) == ["next.txt"]
        assert len(scans) == 2
    finally:
        stop.set()
        await task
    messages = [r.getMessage() for r in caplog.records]
    assert sum("till\\xff\\xfe.log" in m for m in messages) == 1, messages
    assert not any("File events unavailable" in m for m in messages)


async def test_a_file_being_sent_is_not_counted_as_waiting(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("y")
    intake = Intake(_settings(tmp_path), SentLedger())
    for path, st in scan_tree(tmp_path)[0]:
        intake.offer(path, st)
    assert intake.waiting == 2
    stop = asyncio.Event()
    task = asyncio.create_task(intake.run(stop))
    try:
        taken = await asyncio.wait_for(intake.take(asyncio.Event()), 5)
        assert taken is not None
        assert (intake.pending, intake.waiting) == (2, 1)  # one being sent, one waiting
        intake.finished(taken)
    finally:
        stop.set()
        await task


async def test_a_fault_of_ours_while_handling_file_events_stops_the_watcher_rather_than_hiding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a batch watchfiles could not read restarts the watch, and only a system's refusal switches events
    off: a bug fails loudly (the daemon exits 1 and is restarted), never turned into "events unavailable"."""
    (tmp_path / "doomed.txt").write_text("x")
    intake = Intake(_settings(tmp_path), SentLedger())

    def broken(path: Path) -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(intake, "gone", broken)
    scans: list[None] = []
    watcher = TreeWatcher(tmp_path, intake, rescan_interval_s=3600, on_scan=lambda: scans.append(None))
    task = asyncio.create_task(watcher.run(asyncio.Event()))
    await wait_until(lambda: len(scans) == 1, 10, "the first scan")

    def deleted_until_noticed() -> bool:
        (tmp_path / "doomed.txt").write_text("x")
        (tmp_path / "doomed.txt").unlink()
        return task.done()

    await wait_until(deleted_until_noticed, 10, "the watcher to stop on the bug")
    with pytest.raises(BaseExceptionGroup) as caught:
        task.result()
    assert caught.group_contains(TypeError, match="a bug")
