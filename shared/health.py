"""``/metrics``, ``/healthz``, ``/readyz``, ``/status`` and ``/`` on ``metrics_port``, served from the daemon's
own event loop.

prometheus-client's server runs in a thread of its own, so it keeps answering while the event loop is stuck;
this one is answered by the loop itself, so a ``/healthz`` answer proves the loop responsive. It speaks just
enough HTTP/1.1 for Prometheus and Kubernetes probes: GET, one request a connection.

- ``/healthz``: 200 while the event loop turns (a lag watcher reports 503 past ``MAX_LAG_S``).
- ``/readyz``: 200 once connected to the broker and while the data folder is usable; 503 with the reason.
- ``/metrics``: the registry in Prometheus text format.
- ``/status``: the live view (``shared/view.py``) as JSON; ``/``: a page, shipped in the package, that polls it.

Everything here is read-only: GET and HEAD, nothing that changes state.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import logging
import time
from collections.abc import Callable, Coroutine
from functools import cache
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streamsend.shared.retry import Outage

log = logging.getLogger(__name__)

MAX_LAG_S = 5.0
TICK_S = 0.5
READ_TIMEOUT_S = 5.0

Readiness = Callable[[], str | None]  # None when ready, else why not
Status = Callable[[], dict[str, Any]]


@cache
def status_page() -> bytes:
    return importlib.resources.files("streamsend.shared").joinpath("status.html").read_bytes()


class HealthServer:
    """The metrics port's HTTP server; run by ``run_with_health`` beside the daemon, reading its registry,
    readiness and live view."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness, status: Status | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._registry = registry
        self._readiness = readiness
        self._status = status
        self._lag_s = 0.0
        self.port = port  # the one bound, when port 0 asked for any

    async def run(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._serve, self._host, self._port)
        self.port = server.sockets[0].getsockname()[1]
        log.info("Serving /metrics, /healthz, /readyz, /status and / on http://%s:%d", self._host, self.port)
        try:
            async with server:
                await self._watch_lag(stop)
        finally:
            server.close()
            await server.wait_closed()

    async def _watch_lag(self, stop: asyncio.Event) -> None:
        """How late the loop wakes up: a blocked loop shows here before the kubelet gives up on it."""
        while not stop.is_set():
            expected = time.monotonic() + TICK_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            self._lag_s = max(0.0, time.monotonic() - expected)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, _, rest = request.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            status, content_type, body = self._route(method, path)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + (body if method != "HEAD" else b"")
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            if self._lag_s > MAX_LAG_S:
                return "503 Service Unavailable", "text/plain", f"event loop {self._lag_s:.1f} s late\n".encode()
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            reason = self._readiness()
            if reason is not None:
                return "503 Service Unavailable", "text/plain", f"{reason}\n".encode()
            return "200 OK", "text/plain", b"ready\n"
        if self._status is not None:
            if path == "/status":
                return "200 OK", "application/json", json.dumps(self._status(), separators=(",", ":")).encode()
            if path in ("/", "/index.html"):
                return "200 OK", "text/html; charset=utf-8", status_page()
        return "404 Not Found", "text/plain", b"/, /status, /metrics, /healthz or /readyz\n"


def kafka_readiness(connected: asyncio.Event, outage: Outage, *checks: Readiness) -> Readiness:
    """Ready once connected to Kafka, while it answers, and while every further check passes."""

    def not_ready() -> str | None:
        if not connected.is_set():
            return "connecting to Kafka"
        if outage.down:
            return "Kafka unreachable"
        return next((reason for check in checks if (reason := check()) is not None), None)

    return not_ready


async def run_with_health(
    main: Coroutine[Any, Any, None],
    *,
    host: str,
    port: int,
    registry: CollectorRegistry,
    readiness: Readiness,
    stop: asyncio.Event,
    status: Status | None = None,
) -> None:
    """Run a daemon's main coroutine with the health endpoints beside it (none when ``port`` is 0)."""
    if port == 0:
        await main
        return
    server = HealthServer(host, port, registry, readiness, status)
    async with asyncio.TaskGroup() as group:
        group.create_task(server.run(stop))
        try:
            await main
        finally:
            stop.set()  # the endpoints go when the daemon goes
