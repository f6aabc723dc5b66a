"""The uploader's file model, in one place and pure: what a file looked like when found (``FileState``), a
static file handed to a worker (``ReadyFile``) and a file once every chunk is acknowledged (``SentFile``).

A file's identity across scans is its size, mtime and inode; what makes it "sent" is its size and mtime as
they were when sent, as rsync judges it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FileState:
    size: int
    mtime_ns: int
    inode: int


def state_of(st: os.stat_result) -> FileState:
    return FileState(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


@dataclass(frozen=True, slots=True)
class ReadyFile:
    path: Path
    wire_path: str
    state: FileState
    sent_before: bool = False  # sent already as it is: only after_upload is left to do
    events: tuple[OwnRecord, ...] = ()  # an application's records that go with the file (streamsend.api)


@dataclass(frozen=True, slots=True)
class OwnRecord:
    """A record of the application's own (its event) to produce with a file: in the transaction of the file's last
    chunk where there are transactions, after the file's last acknowledgement otherwise."""

    topic: str
    value: bytes
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class SentFile:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    md5: str
    upload_id: str
    sent_at: float  # Unix time of the last acknowledgement


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the upload of a large file has come: chunks ``[0, acked)`` of upload ``upload_id`` are acknowledged,
    the first at ``first_offset`` and the last of them at ``last_offset`` of ``partition``. The file's size, mtime
    and inode tell whether it is still the same file."""

    path: str
    upload_id: str
    size: int
    mtime_ns: int
    inode: int
    chunk_size: int
    partition: int
    acked: int
    first_offset: int
    last_offset: int
    started_at: float  # Unix time the upload began

    def is_of(self, state: FileState) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (state.size, state.mtime_ns, state.inode)
