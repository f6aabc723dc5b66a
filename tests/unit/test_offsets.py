from __future__ import annotations

from streamsend.downloader.offsets import PartitionWatermark


def test_nothing_to_commit_before_any_record() -> None:
    assert PartitionWatermark().committable() is None


def test_commits_follow_handled_records_when_nothing_is_open() -> None:
    mark = PartitionWatermark()
    for offset in (10, 11, 12):
        mark.handled(offset)
    assert mark.committable() == 13


def test_an_unfinished_file_holds_the_watermark_at_its_first_record() -> None:
    mark = PartitionWatermark()
    mark.open("big", 10)
    for offset in range(10, 20):
        mark.handled(offset)
    mark.open("small", 15)
    mark.close("small")
    assert mark.committable() == 10
    mark.close("big")
    assert mark.committable() == 20


def test_the_lowest_open_file_wins() -> None:
    mark = PartitionWatermark()
    mark.open("b", 7)
    mark.open("a", 3)
    mark.handled(9)
    assert mark.committable() == 3
    mark.close("a")
    assert mark.committable() == 7
    assert mark.open_uploads == 1


def test_opening_twice_keeps_the_first_offset() -> None:
    mark = PartitionWatermark()
    mark.open("a", 3)
    mark.open("a", 8)
    mark.handled(9)
    assert mark.committable() == 3


def test_records_read_again_do_not_move_it_back() -> None:
    mark = PartitionWatermark()
    mark.handled(20)
    mark.handled(5)
    assert mark.committable() == 21
