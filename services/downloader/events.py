"""The producer of arrival events (``arrival.py``): one per settled file, acknowledged before the offsets of the
file's chunks are committed, retried like every Kafka write until the broker takes it.

Created by the app when ``events_topic`` is set; the Receiver hands it the files each flush settled.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from streamsend.downloader.arrival import arrival_event, encode_event, event_key
from streamsend.downloader.completion import Assembled
from streamsend.downloader.settings import DownloaderSettings
from streamsend.shared.connection import client_options, stop_client
from streamsend.shared.faults import is_transient
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.retry import Outage, retry_forever

log = logging.getLogger(__name__)


class ArrivalEvents:
    def __init__(self, settings: DownloaderSettings, metrics: DownloaderMetrics, outage: Outage) -> None:
        self._settings = settings
        self._metrics = metrics
        self._outage = outage
        self._topic = settings.events_topic
        self._host = socket.gethostname()
        self._producer: Any = None

    async def __aenter__(self) -> ArrivalEvents:
        async def start() -> Any:
            producer = AIOKafkaProducer(**client_options(self._settings, "downloader"), acks="all", linger_ms=5)
            try:
                await producer.start()
            except BaseException:
                await stop_client(producer, self._settings.request_timeout)
                raise
            return producer

        self._producer = await retry_forever(
            start, outage=self._outage, is_transient=is_transient, backoff_max_s=self._settings.retry_backoff_max
        )
        log.info("Arrival events go to %s", self._topic)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._producer is not None:
            await stop_client(self._producer, self._settings.request_timeout)
            self._producer = None

    async def emit(self, settled: list[Assembled]) -> None:
        """Produce the events of these settled files; returns once the broker has every one."""
        now = time.time()
        records = [
            (event_key(item), encode_event(arrival_event(item, self._settings.group_id, self._host, now)))
            for item in settled
            if item.outcome is not None
        ]
        producer = self._producer
        assert producer is not None
        try:
            acks = [await producer.send(self._topic, value=value, key=key) for key, value in records]
            results = await asyncio.gather(*acks, return_exceptions=True)
            failed = [rec for rec, result in zip(records, results, strict=True) if isinstance(result, Exception)]
        except Exception:
            failed = records
        for key, value in failed:
            self._metrics.event_failures.inc()
            await retry_forever(
                functools.partial(producer.send_and_wait, self._topic, value=value, key=key),
                outage=self._outage,
                is_transient=is_transient,
                backoff_max_s=self._settings.retry_backoff_max,
            )
        self._metrics.events_produced.inc(len(records))
