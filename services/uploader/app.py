"""The uploader daemon: wiring of watcher, intake, workers, producers and state, and its entry point."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from streamsend import __version__
from streamsend.downloader.settings import DownloaderSettings
from streamsend.shared import lifecycle
from streamsend.shared.access import naming_refusals
from streamsend.shared.admin import Admin
from streamsend.shared.errors import SettingsError
from streamsend.shared.health import kafka_readiness, run_with_health
from streamsend.shared.metrics import UploaderMetrics
from streamsend.shared.retry import Outage, probe_forever
from streamsend.shared.seal import Sealer
from streamsend.shared.settings import load_settings, unknown_variables
from streamsend.uploader import check
from streamsend.uploader.finish import Finisher
from streamsend.uploader.intake import Intake
from streamsend.uploader.sending import sending
from streamsend.uploader.settings import UploaderSettings
from streamsend.uploader.state_topic import StateTopic
from streamsend.uploader.watcher import TreeWatcher
from streamsend.uploader.workers import Workers

log = logging.getLogger(__name__)

PROBE_EVERY_S = 5.0


def main(argv: Sequence[str]) -> int:
    try:
        settings = load_settings(UploaderSettings, argv, "streamsend uploader")
        sealer = settings.sealer()  # its key files are read once, here
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"streamsend uploader: {line}", file=sys.stderr)
        return lifecycle.EXIT_SETTINGS
    return lifecycle.launch(
        settings, "stms-upl", functools.partial(run, settings, sealer=sealer), check=lambda: check.run(settings),
        checking="--check" in argv, warnings=unknown_variables((UploaderSettings, DownloaderSettings)),
    )  # fmt: skip


async def run(
    settings: UploaderSettings,
    stop: asyncio.Event,
    registry: CollectorRegistry | None = None,
    sealer: Sealer | None = None,
) -> None:
    """Run until ``stop``; ``sealer``: from the key files, read by the caller (read here when not given)."""
    log.info("Streamsend uploader %s starting: %s", __version__, settings.describe())
    registry = registry if registry is not None else CollectorRegistry()
    metrics = UploaderMetrics(registry, settings.status_history)
    outage = metrics.kafka_outage(settings.bootstrap_servers)
    started = asyncio.Event()

    def input_readable() -> str | None:
        if os.access(settings.input_dir, os.R_OK | os.X_OK):
            return None
        return f"input_dir {settings.input_dir} not readable"

    await naming_refusals(
        run_with_health(
            lifecycle.unless_stopped_first(
                _serve(settings, stop, metrics, outage, started, sealer or settings.sealer()), started, stop
            ),
            host=settings.metrics_host,
            port=settings.metrics_port,
            registry=registry,
            readiness=kafka_readiness(started, outage, input_readable),
            stop=stop,
            status=metrics.view.snapshot,
        ),
        settings,
        {settings.topic: "WRITE", settings.state_topic: "READ,WRITE"},
    )


async def _serve(
    settings: UploaderSettings,
    stop: asyncio.Event,
    metrics: UploaderMetrics,
    outage: Outage,
    started: asyncio.Event,
    sealer: Sealer | None,
) -> None:
    async with sending(settings, metrics, outage, stop, sealer) as ready:
        state, pool, sender, admin = ready.state, ready.pool, ready.sender, ready.admin
        started.set()
        finisher = Finisher(settings, ready.ledger, state, state_written=pool.transactional)
        intake = Intake(
            settings,
            ready.ledger,
            on_skip=lambda reason: metrics.files_skipped.labels(reason).inc(),
            on_forgotten=state.forget_soon if state is not None else lambda path: None,
        )
        workers = Workers(intake, sender, finisher, metrics)
        metrics.view.name, metrics.view.waiting = settings.uploader_name, lambda: intake.waiting
        try:
            watcher = TreeWatcher(settings.input_dir, intake, settings.rescan_interval, metrics.scans.inc)
            await _run_tasks(settings, stop, watcher, intake, workers, admin, outage, state)
        finally:
            await finisher.drain()
    log.info("Uploader stopped: %d files sent since start, %d waiting", workers.sent, intake.pending)


async def _run_tasks(
    settings: UploaderSettings,
    stop: asyncio.Event,
    watcher: TreeWatcher,
    intake: Intake,
    workers: Workers,
    admin: Admin,
    outage: Outage,
    state: StateTopic | None,
) -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(watcher.run(stop))
        group.create_task(intake.run(stop))
        group.create_task(
            probe_forever(
                admin.ping, outage=outage, interval_s=PROBE_EVERY_S, timeout_s=settings.request_timeout, stop=stop
            )
        )
        if state is not None:
            group.create_task(state.run(stop))
        for index in range(settings.max_concurrent_files):
            group.create_task(workers.run(index, stop), name=f"stms-upl-{index + 1}")
