"""Prometheus metrics of both daemons, registered on a registry the caller owns.

Labels stay low-cardinality: a reason from a fixed set, or a partition number; never a path or an id.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamsend import __version__
from streamsend.shared.retry import Outage
from streamsend.shared.view import TransferView


class KafkaMetrics:
    """Connection health, shared by both daemons; and the live view (``view``), fed where the metrics are."""

    def __init__(self, registry: CollectorRegistry, role: str, history: int = 50) -> None:
        self.view = TransferView(role, history)
        prefix = f"streamsend_{role}"
        Gauge("streamsend_info", "Version of the running daemon", ["version", "role"], registry=registry).labels(
            __version__, role
        ).set(1)
        self.retries = Counter(
            f"{prefix}_retries", "Kafka operations retried after a transient fault", registry=registry
        )
        self.outages = Counter(
            f"{prefix}_outages", "Periods during which Kafka could not be reached", registry=registry
        )
        self.kafka_up = Gauge(f"{prefix}_kafka_up", "1 while Kafka answers, 0 during an outage", registry=registry)
        self.last_success = Gauge(
            f"{prefix}_last_success_timestamp_seconds", "Unix time of the last file completed", registry=registry
        )

    def kafka_outage(self, address: str) -> Outage:
        """The daemon's one record of whether Kafka (at ``address``) answers, counted here and shown in the view."""
        outage = Outage("Kafka", on_change=self.outage_changed, on_retry=self.retries.inc, where=address)
        self.view.address, self.view.last_error = address, lambda: outage.last_error
        return outage

    def outage_changed(self, down: bool) -> None:
        if down:
            self.outages.inc()
        self.kafka_up.set(0 if down else 1)
        self.view.outage(down)

    def connected(self) -> None:
        self.kafka_up.set(1)
        self.view.connected()

    def file_done(self) -> None:
        self.last_success.set(time.time())


class UploaderMetrics(KafkaMetrics):
    def __init__(self, registry: CollectorRegistry, history: int = 50) -> None:
        super().__init__(registry, "uploader", history)
        r = registry
        self.files_sent = Counter("streamsend_uploader_files_sent", "Files sent and acknowledged", registry=r)
        self.bytes_sent = Counter("streamsend_uploader_sent_bytes", "File bytes acknowledged by Kafka", registry=r)
        self.chunks_sent = Counter("streamsend_uploader_chunks_sent", "Chunk records acknowledged", registry=r)
        self.files_failed = Counter(
            "streamsend_uploader_files_failed", "Send attempts that failed or were abandoned", ["reason"], registry=r
        )
        self.files_skipped = Counter(
            "streamsend_uploader_files_skipped", "Files in the tree that are not sent", ["reason"], registry=r
        )
        self.bytes_in_flight = Gauge(
            "streamsend_uploader_in_flight_bytes", "Chunk bytes sent but not yet acknowledged", registry=r
        )
        self.files_pending = Gauge(
            "streamsend_uploader_files_pending", "Files waiting to become static or for a worker", registry=r
        )
        self.chunk_size = Gauge("streamsend_uploader_chunk_size_bytes", "Chunk size in use", registry=r)
        self.scans = Counter("streamsend_uploader_scans", "Full scans of the input tree completed", registry=r)
        self.uploads_resumed = Counter(
            "streamsend_uploader_uploads_resumed", "Uploads continued after a restart, not sent again whole", registry=r
        )
        self.bytes_not_resent = Counter(
            "streamsend_uploader_resumed_bytes", "Bytes of resumed uploads not sent again", registry=r
        )

    def chunk_acked(self, size: int) -> None:
        self.chunks_sent.inc()
        self.bytes_sent.inc(size)

    def resumed(self, skipped: int) -> None:
        self.uploads_resumed.inc()
        self.bytes_not_resent.inc(skipped)


class DownloaderMetrics(KafkaMetrics):
    def __init__(self, registry: CollectorRegistry, history: int = 50) -> None:
        super().__init__(registry, "downloader", history)
        r = registry
        self.files_verified = Counter(
            "streamsend_downloader_files_verified", "Files verified and published", registry=r
        )
        self.files_unchanged = Counter(
            "streamsend_downloader_files_unchanged",
            "Files received again, identical to the published file, and left as they were", registry=r,
        )  # fmt: skip
        self.files_failed = Counter("streamsend_downloader_files_failed", "Files not published", ["reason"], registry=r)
        self.files_quarantined = Counter(
            "streamsend_downloader_files_quarantined", "Files that failed verification, kept aside", registry=r
        )
        self.bytes_received = Counter(
            "streamsend_downloader_received_bytes", "Chunk bytes written to staging files", registry=r
        )
        self.chunks_received = Counter("streamsend_downloader_chunks_received", "Chunks accepted", registry=r)
        self.chunks_duplicate = Counter(
            "streamsend_downloader_chunks_duplicate", "Chunks received again and ignored", registry=r
        )
        self.records_rejected = Counter(
            "streamsend_downloader_records_rejected", "Records logged and skipped", ["reason"], registry=r
        )
        self.open_assemblies = Gauge("streamsend_downloader_open_assemblies", "Files being assembled", registry=r)
        self.consumer_lag = Gauge(
            "streamsend_downloader_consumer_lag_records", "Records behind the partition's end", ["partition"],
            registry=r,
        )  # fmt: skip
        self.paused = Gauge("streamsend_downloader_paused", "1 while consumption waits for disk space", registry=r)
        self.events_produced = Counter(
            "streamsend_downloader_events_produced", "Arrival events acknowledged by Kafka", registry=r
        )
        self.event_failures = Counter(
            "streamsend_downloader_event_failures", "Arrival events that failed and were sent again", registry=r
        )
        self.consumers_replaced = Counter(
            "streamsend_downloader_consumers_replaced",
            "Kafka consumers found stuck (no commit while the broker answered) and replaced", registry=r,
        )  # fmt: skip
        self.is_paused = False

    def set_paused(self, paused: bool) -> None:
        self.is_paused = paused
        self.paused.set(1 if paused else 0)
