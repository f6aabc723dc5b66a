"""The real daemons, run in the test's event loop with their own stop event and metrics registry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry

from streamsend.downloader import app as downloader_app
from streamsend.downloader.settings import DownloaderSettings
from streamsend.uploader import app as uploader_app
from streamsend.uploader.settings import UploaderSettings

FAST_GROUP = {"session_timeout": 2.0, "heartbeat_interval": 0.5}  # the test broker holds a join ~timeout/2


class Running:
    def __init__(self, main: Callable[[asyncio.Event, CollectorRegistry], Coroutine[Any, Any, None]]) -> None:
        self._main = main
        self.registry = CollectorRegistry()
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self._main(self.stop_event, self.registry))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def stop(self, timeout_s: float = 30) -> None:
        self.stop_event.set()
        if self.task is not None:
            await asyncio.wait_for(asyncio.shield(self.task), timeout_s)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def more_scans(self, count: int, timeout_s: float = 60) -> None:
        """Wait until the uploader has completed ``count`` more full scans of its tree: whatever a scan would
        find has been found, without guessing at a time."""
        from tests.support.waiting import wait_until

        wanted = self.metric("streamsend_uploader_scans_total") + count
        await wait_until(lambda: self.metric("streamsend_uploader_scans_total") >= wanted, timeout_s, f"{count} scans")

    def check_alive(self) -> None:
        if self.task is not None and self.task.done():
            self.task.result()  # raises what killed it
            raise AssertionError("daemon stopped on its own")


def uploader(bootstrap: str, topic: str, input_dir: Path, **overrides: Any) -> Running:
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "input_dir": input_dir,
        "uploader_name": "edge-1",
        "min_file_age": 0.3,
        "rescan_interval": 2.0,
        "request_timeout": 10.0,
        "retry_backoff_max": 2.0,
        "state_topic": f"{topic}-state",
    }
    values.update(overrides)
    settings = UploaderSettings(**values)
    return Running(lambda stop, registry: uploader_app.run(settings, stop, registry))


def downloader(bootstrap: str, topic: str, output_dir: Path, **overrides: Any) -> Running:
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "output_dir": output_dir,
        "group_id": f"group-{topic}",
        "min_free_space": 0,
        "request_timeout": 10.0,
        "retry_backoff_max": 2.0,
        **FAST_GROUP,
    }
    values.update(overrides)
    settings = DownloaderSettings(**values)
    return Running(lambda stop, registry: downloader_app.run(settings, stop, registry))
