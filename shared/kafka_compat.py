"""The one place that knows aiokafka's internals: every private attribute of its clients that Streamsend reads or
patches is read or patched here, behind a named function, and ``tests/integration/test_kafka_client.py`` fails
loudly should a supported aiokafka version no longer have one of them.

What each is for:

- ``install``: a write to a connection the broker has just closed must fail as a Kafka connection error (below).
- ``connect``: one connection to one broker, for the start-up probe that tells TLS and SASL failures apart.
- ``track_topics``, ``partitions_known``, ``refresh_metadata``: the topics a producer's metadata covers (below).
- ``sender_end``: whether a producer's background sender has ended (then it fails every record it is given).
- ``coordination_ended``: whether a consumer's group coordination has ended (then it never joins again).
- ``in_transaction``: whether a transactional producer has a transaction open.
- ``set_fetch_size``: how much a running consumer fetches at once (the downloader grows it on a long link).
- ``broker_count``: how many brokers an admin client knows of.
- ``close_abandoned``: finish a client whose ``stop()`` was given up on (below).

aiokafka on uvloop: a write to a connection the broker has just closed must fail as a Kafka connection error.

asyncio's transports ignore a write after close; uvloop's raise ``RuntimeError`` ("unable to perform operation
on <TCPTransport closed=True>; the handler is closed"). aiokafka 0.14 expects only ``OSError`` there
(aio-libs/aiokafka#1038), so the ``RuntimeError`` escapes whatever task was sending. When that task is the
client's metadata synchronizer, which happens when a broker dies just as a metadata refresh starts, the
synchronizer is gone for good: every later metadata refresh waits forever, the consumer group coordinator is
never found again, and each offset commit times out while fetching goes on. A downloader then crawls at one
fetch per commit timeout until it is restarted.

``install`` wraps the two methods that write (``send`` and the SASL token exchange) so that this error closes
the connection and becomes the ``KafkaConnectionError`` aiokafka already retries. Called once, at import of
``streamsend.shared.connection``, before any client exists.

``track_topics`` fixes the topics a producer's metadata covers. aiokafka's client asks for every topic's
metadata until a send names a topic it has not seen; from then on it asks only for the topics named that way.
A topic whose partitions were already known (from the first, every-topic answer) is never named, so the next
refresh forgets its leaders: batches already queued for it find no leader, the sender asks for metadata in a
tight loop without ever asking for that topic, and the batches wait until they expire (``request_timeout``).
That is what a fresh state topic did to the chunk topic.

``close_abandoned`` finishes a client whose ``stop()`` was given up on: aiokafka's ``stop()`` closes the group
coordinator, then the fetcher or sender, then the connections, each waiting for the one before; cut short, it
leaves every background task running and every connection open.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka.conn import AIOKafkaConnection, CloseReason, create_conn

_CLOSED = "the handler is closed"  # uvloop's words for a transport already closed


def _writes_as_connection_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(conn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(conn, *args, **kwargs)
        except RuntimeError as exc:
            if _CLOSED not in str(exc):
                raise
            address = f"{conn.host}:{conn.port}"
            conn.close(reason=CloseReason.CONNECTION_BROKEN, exc=exc)
            raise kafka_errors.KafkaConnectionError(f"Connection at {address} broken: {exc}") from exc

    wrapper.__streamsend_compat__ = True  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Idempotent."""
    for name in ("send", "_send_sasl_token"):
        method = getattr(AIOKafkaConnection, name)
        if not getattr(method, "__streamsend_compat__", False):
            setattr(AIOKafkaConnection, name, _writes_as_connection_errors(method))


async def connect(host: str, port: int, **options: Any) -> Any:
    """A connection to one broker (``send`` a request on it, then ``close`` it)."""
    return await create_conn(host, port, **options)


def sender_end(producer: Any) -> BaseException | str | None:
    """Why a producer's background sender has ended (it never does while the producer runs): the error that
    ended it, or "cancelled"; None while it runs."""
    task = producer._sender.sender_task
    if task is None or not task.done():
        return None
    cause: BaseException | None = None if task.cancelled() else task.exception()
    return "cancelled" if cause is None else (cause.__cause__ or cause)


def coordination_ended(consumer: Any) -> bool:
    """Whether a consumer's group coordination task has ended (it never does while the consumer runs)."""
    coordinator = consumer._coordinator
    task = None if coordinator is None else coordinator._coordination_task
    return task is not None and task.done()


def set_fetch_size(consumer: Any, size: int) -> None:
    """Bytes a started consumer asks for in its next fetches, per partition and in all (aiokafka reads both
    from its fetcher at every fetch, and has no public way to change them)."""
    fetcher = consumer._fetcher
    fetcher._max_partition_fetch_bytes = size
    fetcher._fetch_max_bytes = size


def in_transaction(producer: Any) -> bool:
    manager = producer._txn_manager
    return manager is not None and bool(manager.is_in_transaction())


def broker_count(admin: Any) -> int:
    """The brokers an admin client knows of (from its last metadata)."""
    return len(admin._client.cluster.brokers())


def track_topics(producer: Any, topics: Iterable[str]) -> Awaitable[Any]:
    """Make the producer's metadata refreshes cover ``topics`` (and any topic a later send names); completes once
    their metadata is in."""
    tracked: Awaitable[Any] = producer.client.set_topics([topic for topic in topics if topic])
    return tracked


def partitions_known(producer: Any, topic: str) -> set[int] | None:
    """The partitions of ``topic`` in the producer's current metadata (None: it knows no leaders for it)."""
    partitions: set[int] | None = producer.client.cluster.partitions_for_topic(topic)
    return partitions


async def refresh_metadata(producer: Any) -> None:
    await producer.client.force_metadata_update()


_BACKGROUND = {  # attribute holding a part of a client: the attributes of that part holding its tasks
    "_coordinator": ("_coordination_task", "_heartbeat_task", "_commit_refresh_task", "_reset_committed_task"),
    "_fetcher": ("_fetch_task",),
    "_sender": ("_sender_task",),
}


async def close_abandoned(client: Any, timeout_s: float) -> None:
    """Cancel the background tasks of a producer or consumer whose stop did not finish, and close its
    connections; a task that ignores its cancellation is left after ``timeout_s`` rather than waited for."""
    tasks: list[Any] = []
    for part_name, task_names in _BACKGROUND.items():
        part = getattr(client, part_name, None)
        tasks += [getattr(part, name, None) for name in task_names]
        tasks += list(getattr(part, "_pending_tasks", ()))
    running = [task for task in tasks if isinstance(task, asyncio.Future) and not task.done()]
    for task in running:
        task.cancel()
    if running:
        await asyncio.wait(running, timeout=timeout_s)
    kafka_client = getattr(client, "_client", None) or getattr(client, "client", None)
    if hasattr(client, "_closed"):
        client._closed = True  # closed by hand: no "Unclosed AIOKafka..." warning when it is collected
    if kafka_client is not None:
        await asyncio.wait_for(kafka_client.close(), timeout_s)
