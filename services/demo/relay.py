"""A TCP relay in front of a broker: a stand-in for the network between a site and its Kafka, shared by the tests
and the benchmarks.

The broker advertises the relay's address, so every client connection (bootstrap, producers, consumers, the
group coordinator) goes through it. The relay runs its own event loop in a thread, so that it keeps moving
bytes whatever the caller's loop is doing.

- A ``Link`` delays each direction by half its round trip and caps each direction's rate across all connections
  (the thin uplink a site shares), like a long-distance line; the default link is plain loopback.
- ``cut()``: stop listening and reset every connection: clients get "connection refused".
- ``black_hole()``: keep accepting, forward nothing: requests hang until the client's timeout.
- ``restore()``: back to normal; bytes held during a black hole are delivered, like a network that recovers.
- ``stats``: bytes each way, connections accepted, Kafka requests and responses, and the most produce requests
  that were in flight at once (sent through the relay and not yet answered), over every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

CHUNK = 64 * 1024  # read at once: small enough for a paced link to move smoothly
QUEUED_CHUNKS = 256  # per direction of a connection: bytes on their way along the line (16 MiB at most)
PRODUCE = 0  # Kafka's API key of a produce request
MIN_FRAME = 8  # a Kafka request header (API key, version, correlation id) or response header, at the least


@dataclass(frozen=True, slots=True)
class Link:
    """A line: its round trip, and each direction's rate (None: as fast as loopback)."""

    rtt_s: float = 0.0
    rate_bytes_s: float | None = None

    def describe(self) -> str:
        rate = "unlimited" if self.rate_bytes_s is None else f"{self.rate_bytes_s * 8 / 1e6:g} Mbit/s"
        return f"{self.rtt_s * 1000:g} ms, {rate}"


@dataclass
class Stats:
    bytes_up: int = 0  # client to broker
    bytes_down: int = 0
    connections: int = 0
    requests: int = 0
    responses: int = 0
    produce_in_flight: int = 0
    max_produce_in_flight: int = 0


class _Pace:
    """One direction's share of the line: bytes leave it one after another at its rate, whatever the connection."""

    def __init__(self, rate_bytes_s: float | None) -> None:
        self._rate = rate_bytes_s
        self._free_at = 0.0

    def wait_s(self, size: int, now: float) -> float:
        """How long ``size`` bytes arriving ``now`` wait for the line to carry them."""
        if self._rate is None:
            return 0.0
        self._free_at = max(now, self._free_at) + size / self._rate
        return self._free_at - now


class Frames:
    """Kafka's framing (a 4-byte size, then the body) of one direction of one connection: the API key (the body's
    first two bytes) of each frame that starts in the bytes fed to it. A stream that is not Kafka's (a frame too
    small to hold a request or response header) is no longer looked at."""

    def __init__(self) -> None:
        self._head = bytearray()  # size and API key of the frame starting
        self._remaining = 0  # bytes of the current frame still to come after its head
        self.kafka = True

    def feed(self, data: bytes) -> list[int]:
        keys: list[int] = []
        view = memoryview(data)
        while view and self.kafka:
            if self._remaining:
                step = min(self._remaining, len(view))
                self._remaining -= step
                view = view[step:]
                continue
            take = view[: 6 - len(self._head)]
            self._head += take
            view = view[len(take) :]
            if len(self._head) == 6:
                size = int.from_bytes(self._head[:4], "big")
                if size < MIN_FRAME:
                    self.kafka = False
                    break
                keys.append(int.from_bytes(self._head[4:6], "big", signed=True))
                self._remaining = max(0, size - 2)
                self._head.clear()
        return keys


@dataclass
class _Connection:
    """The requests of one client connection still waiting for their answers, in order (Kafka answers in order)."""

    pending: deque[int] = field(default_factory=deque)
    up: Frames = field(default_factory=Frames)
    down: Frames = field(default_factory=Frames)


class Relay:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1", link: Link | None = None) -> None:
        self.host = host
        self.listen_port = listen_port
        self.target_port = target_port
        self.link = link or Link()
        self.mode = "normal"
        self.stats = Stats()
        self._up, self._down = _Pace(self.link.rate_bytes_s), _Pace(self.link.rate_bytes_s)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.listen_port}"

    def start(self) -> Relay:
        self._thread.start()
        self._call(self._start())
        return self

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.listen_port, reuse_address=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self.stats.connections += 1
        self._connections |= {client_writer, broker_writer}
        connection = _Connection()
        try:
            await asyncio.gather(
                self._pipe(client_reader, broker_writer, self._up, connection, up=True),
                self._pipe(broker_reader, client_writer, self._down, connection, up=False),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            for writer in (client_writer, broker_writer):
                self._connections.discard(writer)
                writer.transport.abort()
            self.stats.produce_in_flight -= sum(1 for key in connection.pending if key == PRODUCE)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pace: _Pace, connection: _Connection, *,
        up: bool,
    ) -> None:  # fmt: skip
        assert self._flowing is not None
        line: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUED_CHUNKS)
        delivery = asyncio.ensure_future(self._deliver(line, writer))
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()
                self._count(data, connection, up=up)
                now = self._loop.time()
                on_line = pace.wait_s(len(data), now)  # the time it takes the line to carry them...
                await line.put((now + on_line + self.link.rtt_s / 2, data))  # ...and to go the distance
            await line.put(None)
            await delivery
            if writer.can_write_eof():
                writer.write_eof()  # the end goes along too, after the bytes: the other direction still flows
        except BaseException:
            writer.transport.abort()
            raise
        finally:
            delivery.cancel()

    async def _deliver(self, line: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter) -> None:
        while (item := await line.get()) is not None:
            due, data = item
            delay = due - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()

    def _count(self, data: bytes, connection: _Connection, *, up: bool) -> None:
        stats = self.stats
        if up:
            stats.bytes_up += len(data)
            for key in connection.up.feed(data):
                stats.requests += 1
                connection.pending.append(key)
                if key == PRODUCE:
                    stats.produce_in_flight += 1
                    stats.max_produce_in_flight = max(stats.max_produce_in_flight, stats.produce_in_flight)
            return
        stats.bytes_down += len(data)
        for _ in connection.down.feed(data):
            stats.responses += 1
            if connection.pending and connection.pending.popleft() == PRODUCE:
                stats.produce_in_flight -= 1

    def cut(self) -> None:
        self.mode = "cut"
        self._call(self._cut())

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._connections):
            writer.transport.abort()

    async def _shutdown(self) -> None:
        await self._cut()  # every connection reset: their tasks end by themselves
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        for task in tasks:
            task.cancel()

    def black_hole(self) -> None:
        self.mode = "black hole"
        self._call(self._black_hole())

    async def _black_hole(self) -> None:
        assert self._flowing is not None
        self._flowing.clear()

    def restore(self) -> None:
        self.mode = "normal"
        self._call(self._restore())

    async def _restore(self) -> None:
        assert self._flowing is not None
        if self._server is None:
            await self._listen()
        self._flowing.set()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stream_through(relay: Relay, size: int, timeout_s: float = 600) -> float:
    """Seconds one plain TCP stream of ``size`` bytes takes through ``relay`` to a sink at its target: the most a
    single connection gets from the link, the baseline a transfer over it is measured against."""

    async def run() -> float:
        got = 0
        finished = asyncio.Event()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal got
            while data := await reader.read(1 << 20):
                got += len(data)
                if got >= size:
                    writer.write(b"!")  # the end has arrived: one byte back, over the same line
                    await writer.drain()
            writer.close()
            finished.set()

        server = await asyncio.start_server(sink, relay.host, relay.target_port, reuse_address=True)
        try:
            started = time.monotonic()
            reader, writer = await asyncio.open_connection(relay.host, relay.listen_port)
            block = bytes(1 << 20)
            sent = 0
            while sent < size:
                writer.write(block[: min(len(block), size - sent)])
                await writer.drain()
                sent += min(len(block), size - sent)
            await asyncio.wait_for(reader.readexactly(1), timeout_s)
            seconds = time.monotonic() - started
            writer.close()
            await asyncio.wait_for(finished.wait(), timeout_s)
            return seconds
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(run())
