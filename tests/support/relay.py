"""A TCP relay in front of the broker, which a test can cut, black-hole or restore.

The broker advertises the relay's address, so every client connection (bootstrap, producers, consumers,
the group coordinator) goes through it. The relay runs its own event loop in a thread, so that it keeps
moving bytes whatever the test's loop is doing.

- ``cut()``: stop listening and reset every connection: clients get "connection refused".
- ``black_hole()``: keep accepting, forward nothing: requests hang until the client's timeout.
- ``restore()``: back to normal; bytes held during a black hole are delivered, like a network that recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

CHUNK = 256 * 1024


class Relay:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.listen_port = listen_port
        self.target_port = target_port
        self.mode = "normal"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._connections: set[asyncio.StreamWriter] = set()

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
        self._connections |= {client_writer, broker_writer}
        try:
            await asyncio.gather(
                self._pipe(client_reader, broker_writer), self._pipe(broker_reader, client_writer),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            for writer in (client_writer, broker_writer):
                self._connections.discard(writer)
                writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

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
            self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
