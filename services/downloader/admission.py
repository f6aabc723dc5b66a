"""Admission of records: what the receiver gets of each record, or why it gets nothing.

A record is decoded (``shared/protocol.py``) and, when sealed, opened (``shared/seal.py``) before anything
touches the disk. A record that breaks the wire format or fails authentication is counted and skipped; the
log gets a burst per reason and minute, then a summary, so a flood of hostile records cannot flood the log.
An upload the seal policy refuses (not for this downloader, or not from an uploader it trusts) is reported
once, and its later records are skipped quietly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamsend.shared.errors import ProtocolError, RefusedUpload
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.protocol import decode
from streamsend.shared.seal import Opened, Opener

log = logging.getLogger(__name__)

REJECT_LOG_BURST = 20  # rejected records logged one by one per reason and minute; the rest are summed up


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a Kafka record the pipeline reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Admission:
    """Owned by the Receiver, which calls ``admit`` for every record and ``reject`` for the records it skips
    itself (conflicts, files too large)."""

    def __init__(self, opener: Opener, metrics: DownloaderMetrics, clock: Callable[[], float]) -> None:
        self._opener = opener
        self._metrics = metrics
        self._clock = clock
        self._window: dict[str, tuple[float, int]] = {}  # reason -> start of its minute, records in it

    def admit(self, record: Record) -> Opened | None:
        """The record's chunk in plain form (sealed chunks opened), or None when it is skipped."""
        try:
            header = decode(record.headers, record.value)
        except ProtocolError as exc:
            self.reject(record, exc.reason, str(exc))
            return None
        assert record.value is not None  # decode refuses a record without a value
        try:
            return self._opener.open(header, record.value)
        except ProtocolError as exc:
            self.reject(record, exc.reason, str(exc))
        except RefusedUpload as exc:
            self._metrics.records_rejected.labels("refused").inc()
            if exc.first:
                shown = f"{header.uploader}/{header.path}"
                log.warning("%s: upload %s refused, nothing written: %s", shown, header.upload_id, exc)
                self._metrics.files_failed.labels(exc.reason).inc()
                self._metrics.view.failed(header.upload_id, shown, f"refused: {exc}")
        return None

    def reject(self, record: Record, reason: str, message: str) -> None:
        self._metrics.records_rejected.labels(reason).inc()
        where = f"record {record.topic}/{record.partition}@{record.offset}"
        self._metrics.view.failed(None, where, f"rejected ({reason}): {message}")
        now = self._clock()
        start, count = self._window.get(reason, (now, 0))
        if now - start >= 60:
            if count > REJECT_LOG_BURST:
                log.warning("... %d more records skipped as %s in the last minute", count - REJECT_LOG_BURST, reason)
            start, count = now, 0
        count += 1
        self._window[reason] = (start, count)
        if count <= REJECT_LOG_BURST:
            log.warning(
                "Skipped record %s-%d@%d (%s): %s", record.topic, record.partition, record.offset, reason, message
            )
