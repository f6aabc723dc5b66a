"""Streamsend inside a Python application: send files from the application's own asyncio loop, each with an
event of the application's own if it likes.

    async with streamsend.Uploader(bootstrap_servers="kafka:9092", topic="file-chunk-topic") as uploader:
        event = streamsend.Event("policy-events", b'{"type": "updateEvent", "policy": 4711}', key=b"4711")
        receipt = await uploader.send("out/policy.pdf", name="policies/4711.pdf", event=event)
        print(receipt.upload_id, receipt.sha256)

An ``Uploader`` is started once and used many times, by any number of tasks at once (``max_concurrent_files`` at
a time, the others wait their turn). It is the daemon's machinery without the watcher: the same settings (keyword
arguments, ``STREAMSEND_*`` variables or a config file, as the daemon reads them), the same chunking, retries
(a Kafka outage is waited out, however long), memory bound, window of chunks in flight, sealing, transactions and
state records. ``send`` returns a ``Receipt`` once every chunk is acknowledged; it raises ``FileChangedError``
for a file that is missing, changes while it is read or is not a regular file, ``UnsafePathError`` for a name
the downloader would refuse, and ``PermanentSendError`` for a file the broker refuses for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry

from streamsend.shared.errors import FileChangedError
from streamsend.shared.faults import is_transient
from streamsend.shared.metrics import UploaderMetrics
from streamsend.shared.paths import to_wire_path, validate_wire_path
from streamsend.shared.protocol import chunk_count
from streamsend.shared.retry import retry_forever
from streamsend.uploader.files import OwnRecord as Event
from streamsend.uploader.files import ReadyFile, SentFile, state_of
from streamsend.uploader.planner import partition_for
from streamsend.uploader.sending import Sending, sending
from streamsend.uploader.settings import UploaderSettings

__all__ = ["Event", "Receipt", "Uploader"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """A file every chunk of which Kafka has acknowledged."""

    source: Path  # the file sent
    path: str  # its path at the target: <output_dir>/<uploader>/<path>
    uploader: str
    size: int
    mtime_ns: int
    sha256: str
    md5: str
    upload_id: str
    topic: str  # where its chunks went
    partition: int
    chunks: int

    def as_dict(self) -> dict[str, object]:
        return {
            "source": str(self.source), "path": self.path, "uploader": self.uploader, "size": self.size,
            "mtime_ns": self.mtime_ns, "sha256": self.sha256, "md5": self.md5, "upload_id": self.upload_id,
            "topic": self.topic, "partition": self.partition, "chunks": self.chunks,
        }  # fmt: skip


class Uploader:
    """Sends files on request; ``async with Uploader(...)`` starts it (producers, state) and stops it."""

    def __init__(self, settings: UploaderSettings | None = None, /, **values: Any) -> None:
        if settings is None:
            values.setdefault("input_dir", Path.cwd())  # only the daemon watches it
            settings = UploaderSettings(**values)
        elif values:
            settings = settings.model_copy(update=values)
        self.settings = settings
        self.registry = CollectorRegistry()
        self._metrics = UploaderMetrics(self.registry, settings.status_history)
        self._outage = self._metrics.kafka_outage(settings.bootstrap_servers)
        self._stop = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._sending: Sending | None = None
        self._lanes: asyncio.Queue[int] = asyncio.Queue()

    async def __aenter__(self) -> Uploader:
        try:
            self._sending = await self._stack.enter_async_context(
                sending(self.settings, self._metrics, self._outage, self._stop, self.settings.sealer())
            )
        except BaseException:
            await self._stack.aclose()
            raise
        for lane in range(self.settings.max_concurrent_files):
            self._lanes.put_nowait(lane)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._sending = None
        await self._stack.aclose()

    async def send(
        self, path: str | os.PathLike[str], name: str | None = None, *, event: Event | None = None
    ) -> Receipt:
        """Send one file; ``name``: its path at the target (a relative path with ``/``), by default its own name.
        Returns once every chunk is acknowledged. ``event``: the application's own record to go with the file:
        where the broker has transactions (``transactional``), in the transaction of the file's last chunk, so
        that a read_committed consumer never sees it without the whole file; otherwise produced once every
        chunk is acknowledged. Either way never before the file."""
        running = self._sending
        if running is None:
            raise RuntimeError("the Uploader is not started: use it in `async with`")
        source = Path(path)
        wire_path = to_wire_path([source.name]) if name is None else "/".join(validate_wire_path(name))
        try:
            st = await asyncio.to_thread(os.stat, source)
        except FileNotFoundError:
            raise FileChangedError(f"{source}: no such file") from None
        if not stat.S_ISREG(st.st_mode):
            raise FileChangedError(f"{source}: not a regular file")
        ready = ReadyFile(source, wire_path, state_of(st), events=() if event is None else (event,))
        lane = await self._lanes.get()
        try:
            sender = running.sender
            if sender.fits_one_chunk(ready):
                [outcome] = await sender.send_group([ready], lane)
                if isinstance(outcome, Exception):
                    raise outcome
                sent = outcome
            else:
                sent = await sender.send(ready, lane)
        finally:
            self._lanes.put_nowait(lane)
        await self._remember(running, sent)
        if event is not None and running.transactions is None:
            await self._produce(running, event)
        self._metrics.files_sent.inc()
        return Receipt(
            source=source, path=sent.path, uploader=self.settings.uploader_name, size=sent.size,
            mtime_ns=sent.mtime_ns, sha256=sent.sha256, md5=sent.md5, upload_id=sent.upload_id,
            topic=self.settings.topic, partition=partition_for(self.settings.uploader_name, sent.path,
                                                               running.topic.partitions),
            chunks=chunk_count(sent.size, running.choice.chunk_size),
        )  # fmt: skip

    async def _produce(self, running: Sending, event: Event) -> None:
        async def attempt() -> None:
            await (await running.pool.send(event.topic, event.key, event.value, None))

        await retry_forever(
            attempt, outage=self._outage, is_transient=is_transient, backoff_max_s=self.settings.retry_backoff_max
        )

    async def _remember(self, running: Sending, sent: SentFile) -> None:
        """The state record, as the daemon writes it (in a transaction it is written with the last chunk)."""
        running.ledger.record(sent)
        if running.state is not None and running.transactions is None:
            await running.state.save_many([sent])
