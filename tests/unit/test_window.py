"""The window of a large file's chunks in flight: the gauge widens it while the link carries more, narrows it
when chunks queue at the link, and the window never has more chunks out than the gauge allows."""

from __future__ import annotations

import asyncio

import pytest

from streamsend.uploader.window import LinkGauge, Window
from tests.support.clock import Clock


def link_time(width: int, rtt_s: float, chunk_s: float) -> float:
    """Acknowledgement time of a chunk when ``width`` of them share a link: a round trip plus its transmission
    while the link has room; once it is full, it carries a chunk every ``chunk_s`` and (Little's law) each
    chunk waits for all those in flight."""
    return max(rtt_s + chunk_s, width * chunk_s)


def settle(gauge: LinkGauge, rtt_s: float, chunk_s: float, rounds: int = 200) -> list[int]:
    widths = []
    for _ in range(rounds):
        for _ in range(gauge.width):
            gauge.observe(link_time(gauge.width, rtt_s, chunk_s))
        widths.append(gauge.width)
    return widths


@pytest.mark.parametrize(
    ("rtt_s", "rate", "lowest", "highest"),
    [
        (0.05, 25e6, 3, 5),  # 50 ms, 200 Mbit/s: 1 MiB takes 42 ms, about 2.2 chunks fill the round trip
        (0.1, 6.25e6, 2, 4),
        (0.2, 2.5e6, 2, 4),
        (0.02, 125e6, 3, 6),
    ],
)
def test_the_window_settles_where_the_link_is_full_and_a_few_chunks_wait(
    rtt_s: float, rate: float, lowest: int, highest: int
) -> None:
    chunk_s = (1 << 20) / rate
    gauge = LinkGauge(limit=16, clock=Clock(0.0))
    widths = settle(gauge, rtt_s, chunk_s)
    final = widths[-50:]
    assert lowest <= min(final) and max(final) <= highest, final
    # Full: the chunks in flight carry at least the link's rate.
    width = min(final)
    assert width * (1 << 20) / link_time(width, rtt_s, chunk_s) >= 0.95 * rate


def test_on_a_link_without_delay_the_window_stays_narrow() -> None:
    """Loopback: the acknowledgement time is the chunk's handling, and grows with every chunk added."""
    gauge = LinkGauge(limit=16, clock=Clock(0.0))
    widths = settle(gauge, rtt_s=0.0, chunk_s=0.004)
    assert max(widths[-50:]) <= 4


def test_the_window_never_passes_its_limit() -> None:
    gauge = LinkGauge(limit=3, clock=Clock(0.0))
    widths = settle(gauge, rtt_s=1.0, chunk_s=0.001)
    assert max(widths) == 3


def test_a_link_that_slows_down_narrows_the_window() -> None:
    clock = Clock(0.0)
    gauge = LinkGauge(limit=16, clock=clock)
    settle(gauge, 0.05, 0.001, rounds=100)
    wide = gauge.width
    assert wide == 16  # nothing ever waited at the link
    # Now every chunk queues behind the others: the time grows with the width.
    for _ in range(200):
        clock.now += 0.1
        for _ in range(gauge.width):
            gauge.observe(0.05 + gauge.width * 0.04)
    assert gauge.width < wide / 2


def test_the_base_time_is_forgotten_after_a_while() -> None:
    clock = Clock(0.0)
    gauge = LinkGauge(limit=16, clock=clock)
    gauge.observe(0.01)
    clock.now += 30
    gauge.observe(0.2)
    assert gauge.base_s == 0.01
    clock.now += 40
    gauge.observe(0.3)
    assert gauge.base_s == 0.2  # the fast sample is over a minute old
    clock.now += 70
    gauge.observe(0.3)
    assert gauge.base_s == 0.3


async def test_the_window_holds_back_chunks_beyond_its_width_and_serves_them_in_order() -> None:
    gauge = LinkGauge(limit=8, clock=Clock(0.0), start=2)
    window = Window(gauge)
    first, second = await window.acquire(), await window.acquire()
    assert {first, second} == {0, 1}
    order: list[str] = []

    async def wait(name: str) -> int:
        slot = await window.acquire()
        order.append(name)
        return slot

    third = asyncio.create_task(wait("third"))
    fourth = asyncio.create_task(wait("fourth"))
    await asyncio.sleep(0)
    assert not third.done() and window.busy == 2
    window.release(first)
    assert await third == first
    await asyncio.sleep(0)
    assert not fourth.done()
    window.release(second)
    assert await fourth == second
    assert order == ["third", "fourth"] and window.most == 2


async def test_a_wider_window_lets_waiting_chunks_out() -> None:
    gauge = LinkGauge(limit=8, clock=Clock(0.0), start=1)
    window = Window(gauge)
    slot = await window.acquire()
    waiting = [asyncio.create_task(window.acquire()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)
    gauge.width = 3  # as the gauge does when acknowledgements show room on the link
    window.release(slot, acked_after_s=0.1)
    slots = sorted(await asyncio.gather(*waiting))
    assert slots == [0, 1] and window.busy == 2


async def test_a_waiter_cancelled_as_it_is_woken_passes_the_slot_on() -> None:
    gauge = LinkGauge(limit=8, clock=Clock(0.0), start=1)
    window = Window(gauge)
    slot = await window.acquire()
    cancelled = asyncio.create_task(window.acquire())
    after = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)
    window.release(slot)  # wakes the first waiter...
    cancelled.cancel()  # ...which is cancelled before it runs
    assert await after == 0
    with pytest.raises(asyncio.CancelledError):
        await cancelled
