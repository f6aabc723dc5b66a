"""What sending files takes, set up in order and torn down in reverse: the topic's limits and the chunk size, the
state topic, the producers, what was sent before (and which uploads may resume), and the FileSender over them.

Used by the uploader daemon (``app.py``, which adds the watcher, the intake and the workers) and by the Python
API and the one-shot ``streamsend send`` (``streamsend.api``), which hand files to the FileSender themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from streamsend.shared.admin import Admin, TopicInfo
from streamsend.shared.errors import ChunkSizeError, SettingsError
from streamsend.shared.faults import is_transient
from streamsend.shared.metrics import UploaderMetrics
from streamsend.shared.retry import Outage
from streamsend.shared.seal import Sealer
from streamsend.uploader.budget import ByteBudget
from streamsend.uploader.delivery import Courier
from streamsend.uploader.kafka import ProducerPool
from streamsend.uploader.ledger import SentLedger
from streamsend.uploader.pipeline import FileSender
from streamsend.uploader.planner import ChunkSizeChoice, choose_chunk_size
from streamsend.uploader.resume import Resumer
from streamsend.uploader.settings import UploaderSettings
from streamsend.uploader.state_topic import StateTopic
from streamsend.uploader.transactions import FileTransactions
from streamsend.uploader.window import LinkGauge

log = logging.getLogger(__name__)


@dataclass
class Sending:
    admin: Admin
    topic: TopicInfo
    choice: ChunkSizeChoice
    pool: ProducerPool
    state: StateTopic | None
    ledger: SentLedger
    transactions: FileTransactions | None
    sender: FileSender


@contextlib.asynccontextmanager
async def sending(
    settings: UploaderSettings,
    metrics: UploaderMetrics,
    outage: Outage,
    stop: asyncio.Event,
    sealer: Sealer | None,
) -> AsyncIterator[Sending]:
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
            if state is not None:
                state.attach(pool)
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
            yield Sending(admin, topic, choice, pool, state, ledger, transactions, sender)


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
