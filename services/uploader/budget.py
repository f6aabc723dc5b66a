"""A budget of bytes in flight: chunk data is held until Kafka acknowledges it, and no more than this.

It is what keeps the uploader's memory flat whatever the file size. Waiters are served in order, and a
chunk larger than the whole budget may still pass, alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Reservation:
    """Bytes held in the budget for one record (or, until ``split``, for a group of them). It travels with
    its bytes, from the reader to the record to the Courier, and is released once, by whoever holds it when the
    bytes are no longer needed: acknowledged, failed for good, or never handed over. A second release does
    nothing, so no path can free bytes twice or free bytes it does not hold."""

    __slots__ = ("_budget", "_released", "size")

    def __init__(self, budget: ByteBudget, size: int) -> None:
        self._budget = budget
        self.size = size
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._budget.release(self.size)

    def split(self, sizes: list[int]) -> list[Reservation]:
        """This reservation as parts of these sizes (they add up to it), each released on its own."""
        if self._released or sum(sizes) != self.size:
            raise ValueError(f"cannot split {self.size} bytes{' released' if self._released else ''} into {sizes}")
        self._released = True
        return [Reservation(self._budget, size) for size in sizes]


class ByteBudget:
    """The bytes of chunks read and not yet acknowledged. Created by the app and held by the Courier; a
    ``Reservation`` is taken by ChunkReader (each chunk before it is read) or FileSender (a group of small
    files), handed on with the record it belongs to, and released by the Courier once Kafka acknowledges the
    record or it fails for good, or by its holder when the record is never handed over."""

    def __init__(self, limit: int, on_change: Callable[[int], None] | None = None) -> None:
        self._limit = limit
        self._used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._on_change = on_change

    @property
    def used(self) -> int:
        return self._used

    async def reserve(self, size: int) -> Reservation:
        await self.acquire(size)
        return Reservation(self, size)

    async def acquire(self, size: int) -> None:
        if not self._waiters and self._fits(size):
            self._take(size)
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(size)  # granted just as we were cancelled: hand it on
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, size: int) -> None:
        self._used -= size
        self._changed()
        self._wake()

    def _fits(self, size: int) -> bool:
        return self._used == 0 or self._used + size <= self._limit

    def _take(self, size: int) -> None:
        self._used += size
        self._changed()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            size, waiter = self._waiters.popleft()
            self._take(size)
            waiter.set_result(None)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._used)
