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
from streamsend.shared.errors import ChunkSizeError, SettingsError
from streamsend.shared.faults import is_transient
from streamsend.shared.health import kafka_readiness, run_with_health
from streamsend.shared.metrics import UploaderMetrics
from streamsend.shared.retry import Outage, probe_forever
from streamsend.shared.seal import Sealer
from streamsend.shared.settings import load_settings, unknown_variables
from streamsend.uploader import check
from streamsend.uploader.budget import ByteBudget
from streamsend.uploader.delivery import Courier
from streamsend.uploader.finish import Finisher
from streamsend.uploader.intake import Intake
from streamsend.uploader.kafka import ProducerPool
from streamsend.uploader.ledger import SentLedger
from streamsend.uploader.pipeline import FileSender
from streamsend.uploader.planner import ChunkSizeChoice, choose_chunk_size
from streamsend.uploader.resume import Resumer
from streamsend.uploader.settings import UploaderSettings
from streamsend.uploader.state_topic import StateTopic
from streamsend.uploader.transactions import FileTransactions
from streamsend.uploader.watcher import TreeWatcher
from streamsend.uploader.window import LinkGauge
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
    ledger = SentLedger(settings.state_max_files, settings.state_forget_after)
    state = StateTopic(settings, outage) if settings.state_topic else None
    if sealer is not None:
        log.info(
            "Files are sealed for %s%s%s", ", ".join(sealer.recipient_ids),
            ", signed" if settings.signing_key is not None else ", unsigned",
            ", names sealed" if settings.encrypt_names else "",
        )  # fmt: skip
    async with Admin(settings, "uploader", outage) as admin:
        topic = await admin.topic_info(settings.topic)
        overhead = sealer.overhead_bytes if sealer is not None else 0
        choice = chunk_size(settings, topic.topic_max_message_bytes, topic.broker_max_message_bytes, overhead)
        log.info("*** %s, topic %s, %d partitions", choice.describe(), topic.name, topic.partitions)
        metrics.chunk_size.set(choice.chunk_size)
        if state is not None:  # every topic exists before a producer starts (kafka_compat.track_topics)
            await state.prepare(admin)
        # The producers start before the state is loaded: a transactional one aborts what its predecessor left
        # open, which a read_committed load of the state topic would otherwise wait for.
        async with ProducerPool(settings, choice.limit, outage) as pool:
            resumer = (
                Resumer(state, settings.resume_within, pool.limit)
                if state is not None and settings.resume_within > 0
                else None
            )
            if state is not None:
                await state.load(ledger, resumer)
            else:
                log.warning(
                    "state_topic is empty: what was sent is remembered in memory only, and sent again after a restart"
                )
            metrics.connected()
            started.set()
            if state is not None:
                state.attach(pool)
            finisher = Finisher(settings, ledger, state, state_written=pool.transactional)
            intake = Intake(
                settings,
                ledger,
                on_skip=lambda reason: metrics.files_skipped.labels(reason).inc(),
                on_forgotten=state.forget_soon if state is not None else lambda path: None,
            )
            transactions = (
                FileTransactions(pool, state, outage, is_transient, settings.retry_backoff_max)
                if pool.transactional and state is not None
                else None
            )
            sender = FileSender(
                uploader=settings.uploader_name,
                chunk_size=choice.chunk_size,
                partitions=lambda: topic.partitions,
                courier=Courier(
                    pool,
                    ByteBudget(settings.max_in_flight_bytes, on_change=metrics.bytes_in_flight.set),
                    outage,
                    is_transient,
                    settings.retry_backoff_max,
                    resend=transactions is None,
                    # in a transaction a file keeps to its lane's producer: a transaction is one producer's
                    gauge=LinkGauge(pool.limit) if transactions is None else None,
                ),
                stop=stop,
                on_chunk=metrics.chunk_acked,
                transactions=transactions,
                view=metrics.view,
                sealer=sealer,
                resumer=resumer,
                on_resume=metrics.resumed,
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


def chunk_size(
    settings: UploaderSettings, topic_max: int | None, broker_max: int | None, overhead: int
) -> ChunkSizeChoice:
    try:
        choice = choose_chunk_size(settings.chunk_size, topic_max, broker_max, overhead)
    except ChunkSizeError as exc:
        raise SettingsError(f"invalid setting chunk_size: {exc}") from None
    if not choice.limits_known:  # a refusal to tell was a warning of its own (shared/admin.py)
        log.info(
            "The broker does not report the message size limits of topic %s: chunks sized for Kafka's default",
            settings.topic,
        )
    return choice
