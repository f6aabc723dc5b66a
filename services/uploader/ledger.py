"""What the uploader has sent (so it sends nothing twice) and what failed for good (so it does not loop).

A file counts as sent while its size and mtime are those it had when sent, as rsync judges it. The ledger
holds at most ``max_files`` entries; past that the longest-unchanged entries are forgotten, and those files
would be sent again after a restart. Entries whose file stays absent from the tree for ``forget_after_s``
are forgotten too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from streamsend.uploader.files import FileState, SentFile

log = logging.getLogger(__name__)


class SentLedger:
    """Created by the app; filled by the StateTopic at start and by the Finisher, read by the Intake."""

    def __init__(self, max_files: int = 1_000_000, forget_after_s: float = float("inf")) -> None:
        self._max_files = max_files
        self._forget_after_s = forget_after_s
        # path -> size and mtime_ns packed in one int: about 150 bytes a file in all (a dict keeps insertion order,
        # so re-inserting moves an entry to the young end)
        self._sent: dict[str, int] = {}
        self._failed: dict[str, FileState] = {}
        self._absent_since: dict[str, float] = {}
        self._overflow_reported = False

    def __len__(self) -> int:
        return len(self._sent)

    def __contains__(self, path: str) -> bool:
        return path in self._sent

    def is_sent(self, path: str, state: FileState) -> bool:
        return self._sent.get(path) == _pack(state.size, state.mtime_ns)

    def is_done(self, path: str, state: FileState) -> bool:
        """Sent as it is now, or failed for good as it is now: either way, nothing to send."""
        return self.is_sent(path, state) or self._failed.get(path) == state

    def record(self, sent: SentFile) -> None:
        self._sent.pop(sent.path, None)
        self._sent[sent.path] = _pack(sent.size, sent.mtime_ns)
        self._failed.pop(sent.path, None)
        self._absent_since.pop(sent.path, None)
        while len(self._sent) > self._max_files:
            del self._sent[next(iter(self._sent))]
            if not self._overflow_reported:
                self._overflow_reported = True
                log.warning(
                    "More than %d files sent: the oldest are forgotten, and would be sent again after a restart"
                    " (raise state_max_files, or use after_upload = delete or move)",
                    self._max_files,
                )

    def fail(self, path: str, state: FileState) -> None:
        self._failed[path] = state

    def forget(self, path: str) -> bool:
        """Drop a file's entry; True if there was one."""
        self._failed.pop(path, None)
        self._absent_since.pop(path, None)
        return self._sent.pop(path, None) is not None

    def age_out(self, present: Iterable[str], now: float) -> list[str]:
        """After a full rescan that saw ``present``: forget (and return) entries absent for long enough."""
        seen = set(present)
        expired = []
        for path in list(self._sent):
            if path in seen:
                self._absent_since.pop(path, None)
                continue
            since = self._absent_since.setdefault(path, now)
            if now - since >= self._forget_after_s:
                self.forget(path)
                expired.append(path)
        return expired


def _pack(size: int, mtime_ns: int) -> int:
    return (size << 64) | (mtime_ns & 0xFFFF_FFFF_FFFF_FFFF)
