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


@dataclass(frozen=True, slots=True)
class SentFile:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    md5: str
    upload_id: str
    sent_at: float  # Unix time of the last acknowledgement
