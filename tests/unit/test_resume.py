"""Resuming an upload: the progress record's round trip, when an upload may continue and from which chunk, and
the run of acknowledged chunks a progress record reports."""

from __future__ import annotations

import dataclasses
import json

import pytest

from streamsend.uploader.files import FileState, Progress
from streamsend.uploader.resume import PROGRESS_EVERY_BYTES, Resumer, Tracker, judge
from streamsend.uploader.state import decode_state, encode_progress, state_key

MiB = 1024 * 1024
STATE = FileState(size=100 * MiB, mtime_ns=1_700_000_000_000_000_000, inode=42)
PROGRESS = Progress(
    path="video/big.bin", upload_id="ab" * 16, size=STATE.size, mtime_ns=STATE.mtime_ns, inode=STATE.inode,
    chunk_size=MiB, partition=3, acked=60, first_offset=1000, last_offset=1065, started_at=5000.0,
)  # fmt: skip


def test_a_progress_record_round_trips_under_the_files_key() -> None:
    key = state_key("edge-1", PROGRESS.path)
    assert decode_state("edge-1", key, encode_progress(PROGRESS)) == (PROGRESS.path, PROGRESS)


@pytest.mark.parametrize(
    "change",
    [
        {"acked": -5},
        {"acked": 0},
        {"size": "big"},
        {"first_offset": None},
        {"upload_id": ""},
        {"inode": True},
        {"started_at": "yesterday"},
    ],
)
def test_a_corrupt_progress_record_is_not_read(change: dict[str, object]) -> None:
    data = json.loads(encode_progress(PROGRESS))
    data["progress"].update(change)
    key = state_key("edge-1", PROGRESS.path)
    assert decode_state("edge-1", key, json.dumps(data).encode()) is None


def test_the_same_file_resumes() -> None:
    assert judge(PROGRESS, STATE, MiB, 3, now=6000.0, within_s=3600) is None


@pytest.mark.parametrize(
    ("state", "chunk_size", "partition", "now", "why"),
    [
        (dataclasses.replace(STATE, mtime_ns=STATE.mtime_ns + 1), MiB, 3, 6000.0, "changed"),
        (dataclasses.replace(STATE, inode=43), MiB, 3, 6000.0, "changed"),
        (dataclasses.replace(STATE, size=STATE.size + 1), MiB, 3, 6000.0, "changed"),
        (STATE, MiB // 2, 3, 6000.0, "chunk size"),
        (STATE, MiB, 4, 6000.0, "partitions"),
        (STATE, MiB, 3, 5000.0 + 3601, "resume_within"),
    ],
)
def test_what_stops_a_resume(state: FileState, chunk_size: int, partition: int, now: float, why: str) -> None:
    reason = judge(PROGRESS, state, chunk_size, partition, now=now, within_s=3600)
    assert reason is not None and why in reason


def test_a_record_claiming_every_chunk_is_not_believed() -> None:
    claims_all = dataclasses.replace(PROGRESS, acked=100)
    assert judge(claims_all, STATE, MiB, 3, now=6000.0, within_s=3600) is not None


class Store:
    def __init__(self, holds: str | None = None) -> None:
        self._holds = holds
        self.asked: list[Progress] = []

    async def save_progress(self, progress: Progress) -> None:
        raise AssertionError("not written here")

    def progress_record(self, progress: Progress) -> tuple[str, bytes, bytes, int]:
        raise AssertionError("not written here")

    async def holds(self, progress: Progress) -> str | None:
        self.asked.append(progress)
        return self._holds


async def test_an_upload_resumes_a_window_before_its_acknowledged_run_ends() -> None:
    """A window before: however the record came to be, no chunk missing on the topic is skipped."""
    store = Store()
    resumer = Resumer(store, within_s=3600, window=8, clock=lambda: 6000.0)
    resumer.note(PROGRESS)
    plan = await resumer.plan(PROGRESS.path, STATE, MiB, 3)
    assert plan is not None and plan.start == 52 and plan.progress == PROGRESS
    assert store.asked == [PROGRESS]
    assert await resumer.plan(PROGRESS.path, STATE, MiB, 3) is None  # used once


async def test_an_upload_the_topic_no_longer_holds_is_sent_whole() -> None:
    resumer = Resumer(Store(holds="its record at offset 1000 is gone"), within_s=3600, window=8, clock=lambda: 6000.0)
    resumer.note(PROGRESS)
    assert await resumer.plan(PROGRESS.path, STATE, MiB, 3) is None


async def test_a_file_sent_since_is_not_resumed() -> None:
    store = Store()
    resumer = Resumer(store, within_s=3600, window=8, clock=lambda: 6000.0)
    resumer.note(PROGRESS)
    resumer.forget(PROGRESS.path)  # its sent record (or a tombstone) came later
    assert await resumer.plan(PROGRESS.path, STATE, MiB, 3) is None and not store.asked


def test_the_tracker_reports_the_run_from_the_first_chunk_and_the_earliest_offset() -> None:
    tracker = Tracker(start=0, chunk_size=MiB)
    for index, offset in [(1, 101), (0, 103), (3, 102), (2, 104)]:  # a window's chunks land out of order
        tracker.ack(index, offset)
    assert (tracker.acked, tracker.last_offset, tracker.first_offset) == (4, 102, 101)
    tracker.ack(5, 105)
    assert tracker.acked == 4  # chunk 4 is missing: the run stops before it


def test_a_progress_record_is_due_every_so_many_bytes() -> None:
    tracker = Tracker(start=10, chunk_size=MiB, first_offset=7)
    every = PROGRESS_EVERY_BYTES // MiB
    for index in range(10, 10 + every - 1):
        tracker.ack(index, 100 + index)
    assert not tracker.due()
    tracker.ack(10 + every - 1, 100 + every)
    assert tracker.due() and tracker.first_offset == 7
    tracker.saved()
    assert not tracker.due()
