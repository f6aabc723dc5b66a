"""A live, bounded view of a daemon's work, for ``GET /status``, the page on ``/`` and ``streamsend status``.

It holds the files in flight (path, size, bytes done, rate, start), the last ``history`` files completed and
the last ``history`` failed or quarantined, the number waiting, totals since start, and the Kafka state
(connected, outage since, consumer lag per partition). Its memory is bounded whatever the number of files:
the histories are rings, and at most ``MAX_IN_FLIGHT_SHOWN`` transfers are tracked (the rest are counted).
Pure bookkeeping: the daemons feed it where they update their metrics; it does no I/O.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
MAX_IN_FLIGHT_SHOWN = 256


@dataclass(slots=True)
class _InFlight:
    path: str
    size: int
    started: float  # wall clock, for display
    started_mono: float
    done: int = 0


@dataclass(frozen=True, slots=True)
class _Completed:
    path: str
    size: int
    sha256: str
    seconds: float
    finished: float


@dataclass(frozen=True, slots=True)
class _Failed:
    path: str
    reason: str
    at: float


@dataclass
class TransferView:
    """Owned by the metrics object (``metrics.view``), fed by both daemons where they count, read by the
    HealthServer for ``/status``."""

    role: str
    history: int = 50
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    waiting: Callable[[], int] = lambda: 0  # files found and not yet being sent
    name: str = ""  # the uploader's name or the downloader's group
    address: str = ""  # the Kafka bootstrap servers
    last_error: Callable[[], str] = lambda: ""  # what the current outage began with
    _in_flight: dict[str, _InFlight] = field(default_factory=dict)
    _untracked: int = 0
    _completed: deque[_Completed] = field(init=False)
    _failed: deque[_Failed] = field(init=False)
    _totals: dict[str, int] = field(default_factory=lambda: {"files": 0, "bytes": 0, "failed": 0})
    _connected: bool = False
    _outage_since: float | None = None
    _lag: dict[int, int] = field(default_factory=dict)
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self._completed = deque(maxlen=self.history)
        self._failed = deque(maxlen=self.history)
        self._started = self.wall()

    # transfers

    def start(self, key: str, path: str, size: int) -> None:
        if key in self._in_flight:
            return
        if len(self._in_flight) >= MAX_IN_FLIGHT_SHOWN:
            self._untracked += 1
            return
        self._in_flight[key] = _InFlight(path, size, self.wall(), self.clock())

    def progress(self, key: str, done: int) -> None:
        transfer = self._in_flight.get(key)
        if transfer is not None:
            transfer.done = done

    def completed(self, key: str, path: str, size: int, sha256: str) -> None:
        transfer = self._in_flight.pop(key, None)
        seconds = 0.0 if transfer is None else self.clock() - transfer.started_mono
        self._completed.append(_Completed(path, size, sha256, seconds, self.wall()))
        self._totals["files"] += 1
        self._totals["bytes"] += size

    def failed(self, key: str | None, path: str, reason: str) -> None:
        if key is not None:
            self._in_flight.pop(key, None)
        self._failed.append(_Failed(path, reason, self.wall()))
        self._totals["failed"] += 1

    def abandoned(self, key: str) -> None:
        """A transfer that stops without an outcome of its own (shutdown, a partition moved away)."""
        if self._in_flight.pop(key, None) is None and self._untracked:
            self._untracked -= 1

    # Kafka

    def connected(self) -> None:
        self._connected = True

    def outage(self, down: bool) -> None:
        self._outage_since = self.wall() if down else None

    def lag(self, partition: int, records: int | None) -> None:
        if records is None:
            self._lag.pop(partition, None)
        else:
            self._lag[partition] = records

    # the document

    def snapshot(self) -> dict[str, Any]:
        """The JSON document of ``GET /status`` (schema in README, "Live view")."""
        now = self.clock()
        in_flight = []
        for transfer in sorted(self._in_flight.values(), key=lambda t: t.started_mono):
            elapsed = max(now - transfer.started_mono, 1e-3)
            in_flight.append({
                "path": transfer.path, "size": transfer.size, "done": transfer.done,
                "rate": round(transfer.done / elapsed), "started": round(transfer.started, 3),
            })  # fmt: skip
        return {
            "schema": SCHEMA_VERSION,
            "role": self.role,
            "name": self.name,
            "time": round(self.wall(), 3),
            "since": round(self._started, 3),
            "kafka": {
                "connected": self._connected and self._outage_since is None,
                "outage_since": None if self._outage_since is None else round(self._outage_since, 3),
                "address": self.address,
                "error": self.last_error() if self._outage_since is not None else None,
                "lag": {str(p): lag for p, lag in sorted(self._lag.items())},
            },
            "waiting": self.waiting(),
            "in_flight": in_flight,
            "in_flight_untracked": self._untracked,
            "completed": [self._completed_entry(c) for c in reversed(self._completed)],
            "failed": [{"path": f.path, "reason": f.reason, "at": round(f.at, 3)} for f in reversed(self._failed)],
            "totals": dict(self._totals),
        }

    @staticmethod
    def _completed_entry(c: _Completed) -> dict[str, Any]:
        return {"path": c.path, "size": c.size, "sha256": c.sha256, "seconds": round(c.seconds, 3),
                "finished": round(c.finished, 3)}  # fmt: skip
