"""A budget of bytes in flight: chunk data is held until Kafka acknowledges it, and no more than this.

It is what keeps the uploader's memory flat whatever the file size. Waiters are served in order, and a
chunk larger than the whole budget may still pass, alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class ByteBudget:
    """The bytes of chunks read and not yet acknowledged. Created by the app and held by the Courier; reserved by
    ChunkReader (each chunk before it is read) and FileSender (a group of small files), released by the
    Courier once Kafka acknowledges a record or it fails for good, or by the reserver when a record is never
    handed over."""

    def __init__(self, limit: int, on_change: Callable[[int], None] | None = None) -> None:
        self._limit = limit
        self._used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._on_change = on_change

    @property
    def used(self) -> int:
        return self._used

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
