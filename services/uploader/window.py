"""The window of a large file's chunks in flight: how many produce requests of one file travel at once.

aiokafka keeps one produce request in flight per connection, and a partition takes at most one batch (one
chunk) per request, so one producer moves one chunk per round trip. Across a long link that is a small share
of what the link can carry. A file's chunks therefore go out through several producers at once, one chunk
outstanding on each: the window is the number of producers a file uses. Chunks of one file may then reach the
partition out of order; the downloader writes each at its place.

How wide is worth it depends on the link, which the uploader measures as it sends (the ``LinkGauge``, shared by
every file): the time from handing a chunk over to its acknowledgement. Alone on the link that time is the
round trip plus the chunk's transmission (``base``, the least seen lately). When the window is wider than the
link can carry, chunks queue at the link and the time grows. The gauge keeps about one to three chunks queued,
as TCP Vegas keeps packets: once a round it compares ``width * (1 - base / latest)`` (the chunks waiting at
the link) with those bounds and widens or narrows the window by one (while nothing waits at all, it doubles:
a short file on a long link would otherwise end before the window is wide). Memory is not the window's concern: the
byte budget (``max_in_flight_bytes``) bounds what is read and unacknowledged, whatever the width.

Pure logic, with a clock passed in for the tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

START_WIDTH = 2
QUEUED_LOW = 1.0  # chunks waiting at the link below which the window widens
QUEUED_HIGH = 3.0  # and above which it narrows
BASE_MEMORY_S = 60.0  # how long an uncontended sample is remembered as the link's base time


class LinkGauge:
    """How many chunks of a file are worth having in flight at once, from the acknowledgement times seen."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic, start: int = START_WIDTH) -> None:
        self.limit = max(1, limit)
        self.width = min(start, self.limit)
        self._clock = clock
        self._lows: deque[tuple[float, float]] = deque()  # (when, seconds): increasing seconds, a sliding minimum
        self._round: list[float] = []

    @property
    def base_s(self) -> float | None:
        """The least acknowledgement time seen lately: a round trip plus one chunk's transmission."""
        return self._lows[0][1] if self._lows else None

    def observe(self, seconds: float) -> None:
        """One chunk acknowledged ``seconds`` after it was handed to its producer."""
        now = self._clock()
        lows = self._lows
        while lows and lows[-1][1] >= seconds:
            lows.pop()
        lows.append((now, seconds))
        while len(lows) > 1 and lows[0][0] < now - BASE_MEMORY_S:
            lows.popleft()
        self._round.append(seconds)
        if len(self._round) >= self.width:
            self._adjust(sum(self._round) / len(self._round))
            self._round.clear()

    def queued(self, latest_s: float) -> float:
        """Chunks waiting at the link, as a round of this mean acknowledgement time shows it."""
        base = self.base_s
        if base is None or latest_s <= 0:
            return 0.0
        return self.width * max(0.0, 1.0 - base / latest_s)

    def _adjust(self, mean_s: float) -> None:
        waiting = self.queued(mean_s)
        if waiting < QUEUED_LOW / 2:  # nothing waits at the link: far from full, widen fast (as TCP's slow start)
            self.width = min(self.limit, 2 * self.width)
        elif waiting < QUEUED_LOW and self.width < self.limit:
            self.width += 1
        elif waiting > QUEUED_HIGH and self.width > 1:
            self.width -= 1


class Window:
    """One file's chunks in flight: a slot each, at most ``gauge.width`` at once. A slot is an offset from the
    file's lane: the producer the chunk goes through."""

    def __init__(self, gauge: LinkGauge) -> None:
        self._gauge = gauge
        self._busy: set[int] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.most = 0  # the most slots busy at once

    @property
    def busy(self) -> int:
        return len(self._busy)

    def _free(self) -> int | None:
        for slot in range(self._gauge.width):
            if slot not in self._busy:
                return slot
        return None

    async def acquire(self) -> int:
        """A free slot, once there is one; the first waiter is served first."""
        while self._waiters or (slot := self._free()) is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                else:
                    self._wake()  # woken just as it was cancelled: the wake goes to the next
                raise
            if (slot := self._free()) is not None:
                break
        self._busy.add(slot)
        self.most = max(self.most, len(self._busy))
        self._wake()  # the window may have widened: the next waiter may fit too
        return slot

    def release(self, slot: int, acked_after_s: float | None = None) -> None:
        """The slot's chunk is settled; ``acked_after_s``: how long after its hand-over it was acknowledged, if
        it was on its first hand-over (a chunk sent again after a fault says nothing of the link)."""
        if acked_after_s is not None:
            self._gauge.observe(acked_after_s)
        self._busy.discard(slot)
        self._wake()

    def _wake(self) -> None:
        if self._waiters and self._free() is not None:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
