"""The commit watermark of a partition: never past the first record of a file not yet durable.

After a crash the consumer resumes from the committed offset, so every chunk of every unfinished file is
read again; files completed beyond the watermark are read again too, and recognised as already published.
"""

from __future__ import annotations

from collections.abc import Hashable


class PartitionWatermark:
    """One partition's committable offset; owned by the Receiver, which opens an upload at its first record and
    closes it once published, quarantined or dropped. Pure bookkeeping."""

    def __init__(self) -> None:
        self._next: int | None = None  # offset after the last record handled
        self._open: dict[Hashable, int] = {}  # upload -> offset of its first record seen

    def handled(self, offset: int) -> None:
        """A record is dealt with: its effect is durable, or it belongs to an upload in ``_open``."""
        if self._next is None or offset >= self._next:
            self._next = offset + 1

    def open(self, upload: Hashable, offset: int) -> None:
        self._open.setdefault(upload, offset)

    def close(self, upload: Hashable) -> None:
        """The upload is published durably, or dropped: it no longer holds the watermark back."""
        self._open.pop(upload, None)

    @property
    def open_uploads(self) -> int:
        return len(self._open)

    def committable(self) -> int | None:
        """The offset to commit (the next record to read after a restart), or None before any record."""
        if self._next is None:
            return None
        return min(self._next, *self._open.values()) if self._open else self._next
