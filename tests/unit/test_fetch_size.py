"""The downloader's fetch size: it grows only when records waited on the link and the broker held more than was
asked for, and never beyond its bound."""

from __future__ import annotations

from streamsend.downloader.fetch_size import START_BYTES, FetchSize

MiB = 1024 * 1024


def test_a_full_fetch_after_a_wait_doubles_the_size_up_to_the_bound() -> None:
    fetch = FetchSize(limit=16 * MiB, max_wait_s=2.5)
    assert fetch.bytes == START_BYTES == 2 * MiB
    sizes = []
    for _ in range(6):
        fetch.polled(0.05, [fetch.bytes, 1000])
        sizes.append(fetch.bytes)
    assert sizes == [4 * MiB, 8 * MiB, 16 * MiB, 16 * MiB, 16 * MiB, 16 * MiB]


def test_records_that_did_not_wait_leave_the_size_alone() -> None:
    """The next fetch was in before the downloader asked: the link keeps up, this process is the limit."""
    fetch = FetchSize(limit=16 * MiB, max_wait_s=2.5)
    assert not fetch.polled(0.0001, [2 * MiB])
    assert fetch.bytes == 2 * MiB


def test_a_fetch_that_did_not_fill_leaves_the_size_alone() -> None:
    """The broker had no more: a larger fetch would not bring more."""
    fetch = FetchSize(limit=16 * MiB, max_wait_s=2.5)
    assert not fetch.polled(0.2, [MiB, MiB // 2])
    assert fetch.bytes == 2 * MiB


def test_a_bound_below_the_start_is_the_size() -> None:
    fetch = FetchSize(limit=MiB, max_wait_s=2.5)
    assert fetch.bytes == MiB
    assert not fetch.polled(1.0, [MiB])


def test_the_size_stays_where_a_fetch_would_hold_the_heartbeats_back() -> None:
    """A thin link: a doubled fetch would keep everything behind it (heartbeats too) waiting too long."""
    fetch = FetchSize(limit=16 * MiB, max_wait_s=2.5)
    fetch.polled(0.5, [2 * MiB])
    assert fetch.bytes == 4 * MiB
    assert not fetch.polled(1.3, [4 * MiB])  # twice 1.3 s is past a quarter of the session timeout
    assert fetch.bytes == 4 * MiB
    assert fetch.polled(3.0, [4 * MiB])  # the link slowed down: back off
    assert fetch.bytes == 2 * MiB
    assert not fetch.polled(9.0, [2 * MiB])  # never below where it started
