"""What the uploader has sent (so it sends nothing twice) and what failed for good (so it does not loop).

A file counts as sent while its size and mtime are those it had when sent, as rsync judges it.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamsend.uploader.readiness import FileState


@dataclass(frozen=True, slots=True)
class SentFile:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    md5: str
    upload_id: str
    sent_at: float  # Unix time of the last acknowledgement


class SentLedger:
    def __init__(self) -> None:
        self._sent: dict[str, SentFile] = {}
        self._failed: dict[str, FileState] = {}

    def __len__(self) -> int:
        return len(self._sent)

    def get(self, path: str) -> SentFile | None:
        return self._sent.get(path)

    def is_done(self, path: str, state: FileState) -> bool:
        """Sent as it is now, or failed for good as it is now: either way, nothing to do."""
        sent = self._sent.get(path)
        if sent is not None and (sent.size, sent.mtime_ns) == (state.size, state.mtime_ns):
            return True
        return self._failed.get(path) == state

    def record(self, sent: SentFile) -> None:
        self._sent[sent.path] = sent
        self._failed.pop(sent.path, None)

    def fail(self, path: str, state: FileState) -> None:
        self._failed[path] = state

    def forget(self, path: str) -> SentFile | None:
        self._failed.pop(path, None)
        return self._sent.pop(path, None)

    def paths(self) -> list[str]:
        return list(self._sent)
