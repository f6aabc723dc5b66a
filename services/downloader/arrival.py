"""Arrival events: one JSON record per outcome of a file, for the applications that wait for files.

With ``events_topic`` set, the downloader produces, for every upload it settles, an event saying what became of
it (``published``, ``identical``: already there as it is, ``quarantined``, ``refused``), keyed
``<uploader>/<path>``, after the outcome is final on disk and before the offsets of its chunks are committed.
The format is ``arrival_event.schema.json`` in ``streamsend.shared`` (and docs/): a consumer needs nothing but a
JSON parser. Delivery is at least once: a downloader that dies between publishing a file and committing its
offsets publishes nothing twice, but tells of it again, with the same ``upload_id``, ``outcome`` and group.

Pure: the event of a settled file; ``events.py`` produces them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from streamsend.downloader.completion import Assembled

EVENT_VERSION = 1
SCHEMA_FILE = "arrival_event.schema.json"


def schema() -> dict[str, Any]:
    """The JSON Schema of arrival events, as shipped in the package."""
    loaded: dict[str, Any] = json.loads(resources.files("streamsend.shared").joinpath(SCHEMA_FILE).read_text())
    return loaded


def event_key(item: Assembled) -> bytes:
    return f"{item.file.uploader}/{item.file.path}".encode()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def arrival_event(item: Assembled, group_id: str, host: str, now: float) -> dict[str, Any]:
    """The event of a settled file (``item.outcome`` set)."""
    file = item.file
    assert item.outcome is not None
    return {
        "v": EVENT_VERSION,
        "outcome": item.outcome,
        "uploader": file.uploader,
        "path": file.path,
        "output_path": f"{file.uploader}/{file.path}",
        "size": file.file_size,
        "sha256": item.sha256,
        "md5": item.expected.md5,
        "mtime_ns": file.mtime_ns,
        "mtime": _iso(file.mtime_ns / 1e9),
        "upload_id": file.upload_id,
        "chunks": {
            "topic": item.topic,
            "partition": item.partition,
            "first_offset": item.first_offset if item.first_offset >= 0 else item.offset,
            "last_offset": item.offset,
            "count": file.count,
        },
        "downloader": {"group_id": group_id, "host": host},
        "time": _iso(now),
        "reason": item.reason if item.outcome in ("quarantined", "refused") else None,
        "metadata": {},
    }


def encode_event(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
