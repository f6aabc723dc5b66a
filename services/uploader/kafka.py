"""The uploader's producers: a small pool of aiokafka producers, one connection each.

aiokafka keeps one produce request in flight per broker connection, so a single producer waits a round
trip per request; several producers keep several requests moving. Each file keeps to one producer (its
lane), so its chunks stay in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaProducer

from streamsend.shared.kafka import client_options, is_transient, stop_client
from streamsend.shared.retry import Outage, retry_forever
from streamsend.uploader.delivery import OutgoingRecord
from streamsend.uploader.settings import UploaderSettings

log = logging.getLogger(__name__)


class ProducerPool:
    def __init__(self, settings: UploaderSettings, max_message_bytes: int, outage: Outage) -> None:
        self._settings = settings
        self._max_message_bytes = max_message_bytes
        self._outage = outage
        self._producers: list[Any] = []
        self.idempotent = False

    def _producer(self, idempotent: bool) -> Any:
        s = self._settings
        return AIOKafkaProducer(
            **client_options(s, "uploader"),
            acks="all",
            enable_idempotence=idempotent,
            max_request_size=self._max_message_bytes,
            max_batch_size=s.max_batch_bytes,
            linger_ms=int(s.linger * 1000),
            compression_type=None if s.compression_type == "none" else s.compression_type,
        )

    async def __aenter__(self) -> ProducerPool:
        try:
            self.idempotent = await self._start_first()
            for _ in range(1, self._settings.producers):
                self._producers.append(await self._start(self.idempotent))
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        producers, self._producers = self._producers, []
        for producer in producers:
            await stop_client(producer, self._settings.request_timeout)

    async def _start_first(self) -> bool:
        """Start with the idempotent producer, or learn that the broker cannot give one."""
        try:
            self._producers.append(await self._start(True))
            log.info("Idempotent producer enabled: the broker discards re-sent duplicates")
            return True
        except (
            kafka_errors.UnknownError,
            kafka_errors.UnsupportedVersionError,
            kafka_errors.ClusterAuthorizationFailedError,
        ) as exc:
            log.warning(
                "The broker refuses the idempotent producer (%s): continuing with acks=all;"
                " the downloader ignores duplicate chunks",
                type(exc).__name__,
            )
        self._producers.append(await self._start(False))
        return False

    async def _start(self, idempotent: bool) -> Any:
        async def attempt() -> Any:
            producer = self._producer(idempotent)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            return producer

        return await retry_forever(
            attempt, outage=self._outage, is_transient=is_transient, backoff_max_s=self._settings.retry_backoff_max
        )

    async def partitions(self, topic: str) -> int:
        return len(await self._producers[0].partitions_for(topic))

    async def enqueue(self, record: OutgoingRecord, lane: int) -> Awaitable[object]:
        producer = self._producers[lane % len(self._producers)]
        future: Awaitable[object] = await producer.send(
            self._settings.topic,
            value=record.value,
            key=record.key,
            headers=record.headers,
            partition=record.partition,
        )
        return future
