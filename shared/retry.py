"""Retrying forever on transient faults, with one log line per outage rather than one per attempt."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Backoff:
    """Capped exponential delays with full jitter, so that many retrying tasks do not move in step."""

    initial_s: float = 0.2
    max_s: float = 30.0
    factor: float = 2.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(slots=True)
class Outage:
    """Whether a dependency is down, since when, and how often it was retried; logs each state change.

    Shared by every task that talks to the dependency: the first failure opens the outage, the first
    success after it closes it with its duration.
    """

    what: str
    on_change: Callable[[bool], None] | None = None
    where: str = ""  # the address tried, for the log (the bootstrap servers)
    on_retry: Callable[[], None] | None = None  # each failed attempt that will be retried (a metric)
    clock: Callable[[], float] = time.monotonic
    since: float | None = None
    retries: int = 0
    count: int = field(default=0)
    last_error: str = ""  # what the last outage began with

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, retried: bool = True, since: float | None = None) -> None:
        """``retried``: an operation is tried again (False for a probe that only watches). ``since``: when the
        failed operation started waiting (a request that timed out): the outage is counted from there, so its
        logged length is the time the work waited, not the time since the fault was noticed."""
        self.retries += 1
        if retried and self.on_retry is not None:
            self.on_retry()
        if self.since is None:
            now = self.clock()
            self.since = now if since is None else min(now, since)
            self.count += 1
            at = f" at {self.where}" if self.where else ""
            log.warning("%s unavailable%s (%s): retrying until it is back", self.what, at, describe(exc))
            self.last_error = describe(exc)
            if self.on_change is not None:
                self.on_change(True)

    def succeeded(self) -> None:
        if self.since is None:
            return
        duration = self.clock() - self.since
        log.info("%s back after an outage of %.1f s (%d retries)", self.what, duration, self.retries)
        self.since = None
        self.retries = 0
        if self.on_change is not None:
            self.on_change(False)


def describe(exc: BaseException) -> str:
    text, kind = str(exc), type(exc).__name__
    if text.startswith(kind):  # Kafka's errors name themselves already
        return text
    return f"{kind}: {text}" if text else kind


async def retry_forever(
    operation: Callable[[], Awaitable[T]],
    *,
    outage: Outage,
    is_transient: Callable[[BaseException], bool],
    backoff_max_s: float,
) -> T:
    """Await ``operation()`` until it succeeds; transient errors are retried, others raised."""
    backoff = Backoff(max_s=backoff_max_s)
    while True:
        try:
            result = await operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            outage.failed(exc)
            await asyncio.sleep(backoff.next_delay())
        else:
            outage.succeeded()
            return result


async def probe_forever(
    probe: Callable[[], Awaitable[object]],
    *,
    outage: Outage,
    interval_s: float,
    timeout_s: float,
    stop: asyncio.Event,
) -> None:
    """Call a cheap request every ``interval_s`` so that an outage is noticed (and its end logged) even
    while there is no traffic to fail."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(probe(), timeout_s)
        except Exception as exc:
            outage.failed(exc, retried=False)
        else:
            outage.succeeded()
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
