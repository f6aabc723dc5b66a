"""The static-file rule: a file is ready once its size, mtime and inode stay unchanged for a minimum age.

Ages are measured on the local monotonic clock from when a change was observed, not from the file's mtime:
a network filesystem's clock may be skewed, and copies that preserve mtimes would otherwise look old
while they are still being written.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

from streamsend.uploader.files import FileState

K = TypeVar("K", bound=Hashable)


class ReadinessTracker(Generic[K]):
    """Files waiting to become static, with the time each is next due for a look."""

    def __init__(self, min_age_s: float) -> None:
        self._min_age_s = min_age_s
        self._watched: dict[K, tuple[FileState, float, int]] = {}  # state, since, heap entry in force
        self._due: list[tuple[float, int, K]] = []
        self._sequence = 0  # names heap entries; also the tie-breaker, as keys need not be orderable

    def __len__(self) -> int:
        return len(self._watched)

    def __contains__(self, key: K) -> bool:
        return key in self._watched

    def observe(self, key: K, state: FileState, now: float) -> None:
        """Note what stat says; a new file or a change restarts its wait."""
        known = self._watched.get(key)
        if known is not None and known[0] == state:
            return
        self._sequence += 1
        self._watched[key] = (state, now, self._sequence)
        heapq.heappush(self._due, (now + self._min_age_s, self._sequence, key))

    def confirm(self, key: K, state: FileState, now: float) -> bool:
        """A fresh stat of a due file: True (and forgotten) if it is static, else its wait restarts."""
        known = self._watched.get(key)
        if known is not None and known[0] == state and now - known[1] >= self._min_age_s:
            del self._watched[key]
            return True
        self.observe(key, state, now)
        return False

    def forget(self, key: K) -> None:
        self._watched.pop(key, None)

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._due[0][0] if self._due else None

    def pop_due(self, now: float) -> list[K]:
        """Files whose wait has run out and that need a fresh stat to confirm."""
        due: list[K] = []
        while True:
            self._drop_stale()
            if not self._due or self._due[0][0] > now:
                return due
            _when, _seq, key = heapq.heappop(self._due)
            due.append(key)

    def _drop_stale(self) -> None:
        """Discard heap entries superseded by a later observation or for forgotten files."""
        while self._due:
            _when, sequence, key = self._due[0]
            known = self._watched.get(key)
            if known is not None and known[2] == sequence:
                return
            heapq.heappop(self._due)
