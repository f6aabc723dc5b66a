from __future__ import annotations

from streamsend.uploader.files import FileState
from streamsend.uploader.readiness import ReadinessTracker

A = FileState(size=10, mtime_ns=1, inode=7)


def test_a_new_file_is_due_after_the_minimum_age_and_then_ready() -> None:
    tracker: ReadinessTracker[str] = ReadinessTracker(5.0)
    tracker.observe("f", A, now=100.0)
    assert tracker.next_due() == 105.0
    assert tracker.pop_due(104.9) == []
    assert tracker.pop_due(105.0) == ["f"]
    assert tracker.confirm("f", A, now=105.0)
    assert len(tracker) == 0 and tracker.next_due() is None


def test_a_change_restarts_the_wait() -> None:
    tracker: ReadinessTracker[str] = ReadinessTracker(5.0)
    tracker.observe("f", A, now=100.0)
    grown = FileState(size=20, mtime_ns=2, inode=7)
    tracker.observe("f", grown, now=103.0)
    assert tracker.pop_due(105.0) == []  # the first entry is superseded
    assert tracker.pop_due(108.0) == ["f"]
    assert tracker.confirm("f", grown, now=108.0)


def test_a_change_seen_only_at_confirmation_restarts_the_wait() -> None:
    tracker: ReadinessTracker[str] = ReadinessTracker(5.0)
    tracker.observe("f", A, now=0.0)
    assert tracker.pop_due(5.0) == ["f"]
    replaced = FileState(size=10, mtime_ns=1, inode=8)  # same size and mtime, another file
    assert not tracker.confirm("f", replaced, now=5.0)
    assert tracker.next_due() == 10.0
    assert tracker.pop_due(10.0) == ["f"] and tracker.confirm("f", replaced, now=10.0)


def test_the_same_observation_again_does_not_delay() -> None:
    tracker: ReadinessTracker[str] = ReadinessTracker(5.0)
    tracker.observe("f", A, now=0.0)
    tracker.observe("f", A, now=4.0)  # a rescan sees it unchanged
    assert tracker.pop_due(5.0) == ["f"]


def test_zero_minimum_age_is_ready_at_once() -> None:
    tracker: ReadinessTracker[str] = ReadinessTracker(0.0)
    tracker.observe("f", A, now=1.0)
    assert tracker.pop_due(1.0) == ["f"] and tracker.confirm("f", A, now=1.0)


def test_forgotten_files_are_never_due() -> None:
    tracker: ReadinessTracker[str] = ReadinessTracker(1.0)
    tracker.observe("gone", A, now=0.0)
    tracker.observe("kept", A, now=0.5)
    tracker.forget("gone")
    assert "gone" not in tracker
    assert tracker.next_due() == 1.5
    assert tracker.pop_due(10.0) == ["kept"]


def test_due_files_come_in_time_order() -> None:
    tracker: ReadinessTracker[int] = ReadinessTracker(1.0)
    for key, now in [(3, 0.3), (1, 0.1), (2, 0.2)]:
        tracker.observe(key, A, now=now)
    assert tracker.pop_due(5.0) == [1, 2, 3]
