"""When the Kafka consumer itself is stuck: it makes no progress for a while, yet the broker answers.

A broker that is down fails every request, and the consume loop rides that out. A consumer whose group
coordination has wedged inside the client (a background task of aiokafka gone, as once with uvloop; see
shared/kafka_compat.py) looks different, in one of two ways:

- fetches and metadata requests succeed while every offset commit times out, so the downloader keeps going
  at one fetch per commit timeout and never commits;
- a poll never returns: aiokafka waits without limit for a rebalance to end, and one that cannot end holds
  the downloader still.

Only a new consumer mends either. The rule here is pure: ConsumeLoop keeps one watch for its commits and one
for its polls, and rebuilds its consumer when one of them says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class StallWatch:
    """``stuck`` once an operation has kept failing for ``after_s`` counted from the first answer the broker
    gave to another request after it began to fail: a broker that was down and is back gets that long to
    serve it again."""

    after_s: float
    clock: Callable[[], float] = time.monotonic
    _failing_since: float | None = None
    _answered_at: float | None = None

    def failed(self) -> None:
        if self._failing_since is None:
            self._failing_since = self.clock()
            self._answered_at = None

    def succeeded(self) -> None:
        self.reset()

    def broker_answered(self) -> None:
        if self._failing_since is not None and self._answered_at is None:
            self._answered_at = self.clock()

    def stuck(self) -> bool:
        return self._answered_at is not None and self.clock() - self._answered_at >= self.after_s

    def failing_for(self) -> float:
        """Seconds since the first of the failures (0 while the operation succeeds)."""
        return 0.0 if self._failing_since is None else self.clock() - self._failing_since

    def reset(self) -> None:
        self._failing_since = None
        self._answered_at = None
