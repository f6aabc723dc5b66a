"""Log set-up: the familiar ``[20250415 20:30:49.202] INFO [stms-upl-1] message`` lines, or JSON lines.

The bracketed name says which worker speaks; a task sets it once with ``set_worker`` and every line it
logs afterwards carries it (contextvars follow asyncio tasks). A daemon's own main lines say which daemon
speaks (``stms-upl``, ``stms-dnl``).

JSON lines carry, besides the message, the fields a log pipeline filters on, when a line is about a file:
``uploader``, ``file`` (its path), ``upload_id``, ``chunk`` (1-based), ``chunks`` and ``bytes``. A call
passes them with ``extra=logs.fields(...)``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, Literal

_worker: ContextVar[str] = ContextVar("streamsend_worker", default="stms-main")


FIELDS = ("uploader", "file", "upload_id", "chunk", "chunks", "bytes")


def set_worker(name: str) -> None:
    _worker.set(name)


def fields(**values: Any) -> dict[str, Any]:
    """The structured fields of a log line about a file (see FIELDS), for ``extra=``; None values are left out."""
    return {f"ss_{name}": value for name, value in values.items() if value is not None}


class _WorkerFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = _worker.get()
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y%m%d %H:%M:%S", time.localtime(record.created))
        worker = getattr(record, "worker", "-")
        line = f"[{stamp}.{int(record.msecs):03d}] {record.levelname} [{worker}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "worker": getattr(record, "worker", "-"),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, f"ss_{name}", None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: Literal["text", "json"], main_worker: str = "stms-main") -> None:
    """Route every logger to stderr in the chosen shape; quieten the Kafka client's chatter. ``main_worker``
    names the calling task's lines (and those of the tasks it starts, until they name themselves)."""
    set_worker(main_worker)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_WorkerFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every failed connection attempt; our retry loops report outages once instead.
    logging.getLogger("aiokafka").setLevel(logging.WARNING if level == "DEBUG" else logging.CRITICAL)
