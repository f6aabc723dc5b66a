"""Reading arrival events (``events_topic``, produced by the downloader) from an application: each as a typed
``Arrival``, or the one a caller waits for.

    async with streamsend.Arrivals("kafka:9092", "file-arrivals") as arrivals:
        arrival = await arrivals.wait_for(output_path="insurer/policies/4711.pdf", timeout_s=60)
        pdf = Path("/mirror") / arrival.output_path   # published and verified, if arrival.outcome == "published"

Events are read from the start of the topic (or from a consumer group's committed offsets, with ``group_id``).
Records that are not arrival events of this version are skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer

__all__ = ["Arrival", "Arrivals"]


@dataclass(frozen=True, slots=True)
class Arrival:
    """One outcome of one file at one downloader (docs/arrival-event.schema.json)."""

    outcome: str  # published, identical, quarantined, refused
    uploader: str
    path: str
    output_path: str  # under the downloader's output_dir
    size: int
    sha256: str
    md5: str
    mtime_ns: int
    upload_id: str
    reason: str | None
    metadata: dict[str, str]
    event: dict[str, Any]  # the whole event, as sent

    @property
    def arrived(self) -> bool:
        """The file is at ``output_path`` with these bytes."""
        return self.outcome in ("published", "identical")

    @classmethod
    def parse(cls, value: bytes | None) -> Arrival | None:
        """The arrival an event record tells of; None for anything else."""
        try:
            event = json.loads(value or b"")
            if not isinstance(event, dict) or event.get("v") != 1:
                return None
            return cls(
                outcome=str(event["outcome"]), uploader=str(event["uploader"]), path=str(event["path"]),
                output_path=str(event["output_path"]), size=int(event["size"]), sha256=str(event["sha256"]),
                md5=str(event["md5"]), mtime_ns=int(event["mtime_ns"]), upload_id=str(event["upload_id"]),
                reason=None if event["reason"] is None else str(event["reason"]),
                metadata={str(k): str(v) for k, v in dict(event["metadata"]).items()}, event=event,
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None


class Arrivals:
    """A reader of one events topic; ``async with`` connects and disconnects it. Extra keyword arguments go to
    the Kafka consumer (security settings, say)."""

    def __init__(self, bootstrap_servers: str, topic: str, *, group_id: str | None = None, **consumer: Any) -> None:
        self._topic = topic
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap_servers, group_id=group_id, auto_offset_reset="earliest",
            enable_auto_commit=group_id is not None, **consumer,
        )  # fmt: skip

    async def __aenter__(self) -> Arrivals:
        await self._consumer.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def __aiter__(self) -> AsyncIterator[Arrival]:
        async for record in self._consumer:
            arrival = Arrival.parse(record.value)
            if arrival is not None:
                yield arrival

    async def wait_for(
        self, *, upload_id: str | None = None, output_path: str | None = None, timeout_s: float | None = None
    ) -> Arrival:
        """The first arrival of this upload or at this path (TimeoutError after ``timeout_s``)."""
        if upload_id is None and output_path is None:
            raise ValueError("wait for an upload_id or an output_path")

        async def first() -> Arrival:
            async for arrival in self:
                if upload_id is not None and arrival.upload_id != upload_id:
                    continue
                if output_path is not None and arrival.output_path != output_path:
                    continue
                return arrival
            raise RuntimeError("the events reader stopped")

        return await asyncio.wait_for(first(), timeout_s)
