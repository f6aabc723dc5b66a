"""The downloader daemon: wiring of store, receiver and consumer loop, and its entry point."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from streamsend import __version__
from streamsend.downloader import check
from streamsend.downloader.completion import Completion
from streamsend.downloader.events import ArrivalEvents
from streamsend.downloader.kafka import ConsumeLoop
from streamsend.downloader.pipeline import Receiver
from streamsend.downloader.publisher import Publisher
from streamsend.downloader.settings import DownloaderSettings
from streamsend.downloader.store import Store
from streamsend.shared import lifecycle
from streamsend.shared.access import naming_refusals
from streamsend.shared.admin import Admin
from streamsend.shared.errors import SettingsError
from streamsend.shared.health import kafka_readiness, run_with_health
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.retry import Outage
from streamsend.shared.seal import Opener
from streamsend.shared.settings import load_settings, unknown_variables
from streamsend.uploader.settings import UploaderSettings

log = logging.getLogger(__name__)


def main(argv: Sequence[str]) -> int:
    try:
        settings = load_settings(DownloaderSettings, argv, "streamsend downloader")
        opener = settings.opener()  # its key files are read once, here
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"streamsend downloader: {line}", file=sys.stderr)
        return lifecycle.EXIT_SETTINGS
    return lifecycle.launch(
        settings, "stms-dnl", functools.partial(run, settings, opener=opener), check=lambda: check.run(settings),
        checking="--check" in argv, warnings=unknown_variables((UploaderSettings, DownloaderSettings)),
    )  # fmt: skip


async def run(
    settings: DownloaderSettings,
    stop: asyncio.Event,
    registry: CollectorRegistry | None = None,
    opener: Opener | None = None,
) -> None:
    """Run until ``stop``; ``opener``: from the key files, read by the caller (read here when not given)."""
    log.info("Streamsend downloader %s starting: %s", __version__, settings.describe())
    registry = registry if registry is not None else CollectorRegistry()
    metrics = DownloaderMetrics(registry, settings.status_history)
    metrics.view.name = settings.group_id
    outage = metrics.kafka_outage(settings.bootstrap_servers)
    joined = asyncio.Event()

    def output_usable() -> str | None:
        if not os.access(settings.output_dir, os.W_OK | os.X_OK):
            return f"output_dir {settings.output_dir} not writable"
        return "output filesystem full: downloading paused" if metrics.is_paused else None

    await naming_refusals(
        run_with_health(
            lifecycle.unless_stopped_first(
                _serve(settings, stop, metrics, outage, joined, opener or settings.opener()), joined, stop
            ),
            host=settings.metrics_host,
            port=settings.metrics_port,
            registry=registry,
            readiness=kafka_readiness(joined, outage, output_usable),
            stop=stop,
            status=metrics.view.snapshot,
        ),
        settings,
        {settings.topic: "READ", settings.events_topic: "WRITE"},
    )


async def _serve(
    settings: DownloaderSettings,
    stop: asyncio.Event,
    metrics: DownloaderMetrics,
    outage: Outage,
    joined: asyncio.Event,
    opener: Opener,
) -> None:
    store = Store(
        settings.output_dir,
        max_open_files=settings.max_open_files,
        quarantine_max_bytes=settings.quarantine_max_bytes,
    )
    await store.open()
    try:
        async with Admin(settings, "downloader", outage) as admin:
            # Create the topic as the uploader would, rather than let a subscribe create it with defaults.
            await admin.ensure_topic(settings.topic, settings.topic_partitions)
            if settings.events_topic:
                await admin.ensure_topic(settings.events_topic, settings.topic_partitions)
        completion = Completion(store, Publisher(store, settings.fsync), metrics)
        if opener.active:
            log.info("Sealed files: %s", opener.describe())
        async with contextlib.AsyncExitStack() as stack:
            events = (
                await stack.enter_async_context(ArrivalEvents(settings, metrics, outage))
                if settings.events_topic
                else None
            )
            receiver = Receiver(
                store,
                metrics,
                completion,
                stale_after_s=settings.stale_after,
                min_free_bytes=settings.min_free_space,
                opener=opener,
                on_settled=events.emit if events is not None else None,
            )
            metrics.connected()
            await ConsumeLoop(settings, receiver, store, metrics, outage, joined).run(stop)
    finally:
        await store.close()
    log.info("Downloader stopped")
