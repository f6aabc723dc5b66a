"""Records of the state topic: what each uploader has sent, one compacted record per file.

Key: ``<uploader>\\0<path>`` (UTF-8). Value: JSON of the file as it was sent, or of how far its upload has come
(a large file being sent: ``"progress"``), or none (a tombstone) once the uploader forgets it. A file's sent
record has the key its progress records had, so compaction keeps only the last word on each file. Every
uploader's records share one partition of the state topic, chosen from its name, so at start an uploader reads
one partition and nothing of other uploaders but their neighbours.
"""

from __future__ import annotations

import json
import zlib
from typing import Final

from streamsend.uploader.files import Progress, SentFile

STATE_VERSION: Final = 1
SEPARATOR: Final = "\x00"


def state_partition(uploader: str, partitions: int) -> int:
    return zlib.crc32(uploader.encode()) % partitions


def state_key(uploader: str, path: str) -> bytes:
    return f"{uploader}{SEPARATOR}{path}".encode()


def encode_sent(sent: SentFile, *, digests: bool = True) -> bytes:
    """The state record's value. Without ``digests`` (sealed files) the file's digests are left out: on the
    broker, a digest in clear would confirm a guess of the content the topic otherwise hides."""
    return json.dumps(
        {
            "v": STATE_VERSION,
            "size": sent.size,
            "mtime_ns": sent.mtime_ns,
            "sha256": sent.sha256 if digests else "",
            "md5": sent.md5 if digests else "",
            "upload_id": sent.upload_id,
            "sent_at": sent.sent_at,
        },
        separators=(",", ":"),
    ).encode()


def encode_progress(progress: Progress) -> bytes:
    return json.dumps(
        {
            "v": STATE_VERSION,
            "progress": {
                "upload_id": progress.upload_id,
                "size": progress.size,
                "mtime_ns": progress.mtime_ns,
                "inode": progress.inode,
                "chunk_size": progress.chunk_size,
                "partition": progress.partition,
                "acked": progress.acked,
                "first_offset": progress.first_offset,
                "last_offset": progress.last_offset,
                "started_at": progress.started_at,
            },
        },
        separators=(",", ":"),
    ).encode()


def decode_state(
    uploader: str, key: bytes | None, value: bytes | None
) -> tuple[str, SentFile | Progress | None] | None:
    """``(path, what)`` for a record of this uploader (``what`` None for a tombstone); None for anything else:
    another uploader's record, or one this version cannot read."""
    if key is None:
        return None
    try:
        owner, path = key.decode().split(SEPARATOR, 1)
    except (UnicodeDecodeError, ValueError):
        return None
    if owner != uploader or not path:
        return None
    if value is None:
        return path, None
    try:
        data = json.loads(value)
        if data.get("v") != STATE_VERSION:
            return None
        if "progress" in data:
            return path, _progress(path, data["progress"])
        sent = SentFile(
            path=path,
            size=int(data["size"]),
            mtime_ns=int(data["mtime_ns"]),
            sha256=str(data["sha256"]),
            md5=str(data["md5"]),
            upload_id=str(data["upload_id"]),
            sent_at=float(data["sent_at"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return path, sent


def _progress(path: str, data: dict[str, object]) -> Progress:
    """ValueError unless every field is there, of its type and in its range."""

    def whole(name: str, least: int = 0) -> int:
        value = data[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"progress {name}: {value!r}")
        return value

    upload_id, started_at = data["upload_id"], data["started_at"]
    if not isinstance(upload_id, str) or not upload_id or not isinstance(started_at, int | float):
        raise ValueError("progress upload_id or started_at")
    return Progress(
        path=path,
        upload_id=upload_id,
        size=whole("size", 1),
        mtime_ns=whole("mtime_ns"),
        inode=whole("inode"),
        chunk_size=whole("chunk_size", 1),
        partition=whole("partition"),
        acked=whole("acked", 1),
        first_offset=whole("first_offset"),
        last_offset=whole("last_offset"),
        started_at=float(started_at),
    )
