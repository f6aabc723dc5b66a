"""Waiting for a condition with a bound, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.1
) -> None:
    """``condition`` may be a coroutine function, for one that has to ask something over the network."""
    deadline = time.monotonic() + timeout_s
    while not await _result(condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)


async def _result(value: bool | Awaitable[bool]) -> bool:
    return await value if inspect.isawaitable(value) else value
