"""The few administrative calls the daemons make (topics, their limits), each retried through broker outages."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streamsend.shared import kafka_compat
from streamsend.shared.connection import client_options, preflight, refuse_settings
from streamsend.shared.faults import is_transient
from streamsend.shared.retry import Outage, retry_forever
from streamsend.shared.settings import CommonSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    topic_max_message_bytes: int | None
    broker_max_message_bytes: int | None


METADATA_WAITS = 20  # about 10 s in all


class Admin:
    """The few administrative calls the daemons make, each retried through broker outages."""

    def __init__(self, settings: CommonSettings, role: str, outage: Outage, *, retry: bool = True) -> None:
        self._settings = settings
        self._role = role
        self._outage = outage
        self._retries = retry  # False: each call is tried once (``--check`` reports an outage, it does not wait)
        self._client = AIOKafkaAdminClient(**client_options(settings, role))

    async def __aenter__(self) -> Admin:
        await self._retry(self._start)
        return self

    async def _start(self) -> None:
        await preflight(self._settings, self._role)
        await self._client.start()

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    async def _retry(self, operation: Any) -> Any:
        if not self._retries:
            return await operation()
        try:
            return await retry_forever(
                operation,
                outage=self._outage,
                is_transient=is_transient,
                backoff_max_s=self._settings.retry_backoff_max,
            )
        except Exception as exc:
            refuse_settings(exc, self._settings.bootstrap_servers)
            raise

    async def ping(self) -> None:
        """One cheap request, not retried: for noticing outages while there is no traffic."""
        await self._client.list_topics()

    async def ensure_topic(self, name: str, partitions: int, configs: dict[str, str] | None = None) -> int:
        """Create the topic unless it exists; return its partition count.

        Listing first matters: some brokers create a missing topic, with their own defaults, as soon as a
        metadata request names it.
        """
        if name not in await self._retry(self._client.list_topics):
            topic = NewTopic(name, partitions, self._replication_factor(), topic_configs=configs or {})
            try:
                response = await self._retry(lambda: self._client.create_topics([topic]))
                for _topic, code, message in response.topic_errors:
                    if code not in (0, kafka_errors.TopicAlreadyExistsError.errno):
                        raise kafka_errors.for_code(code)(message)
                log.info("Created topic %s with %d partitions", name, partitions)
            except kafka_errors.TopicAlreadyExistsError:
                pass  # another daemon won the race
        return int(await self._retry(lambda: self._partition_count(name)))

    async def _partition_count(self, name: str) -> int:
        """A topic just created reaches the metadata of every broker a moment later (Kafka answers with no
        partitions, or LEADER_NOT_AVAILABLE, until then): that is waited for quietly, then retried as a fault."""
        for attempt in range(METADATA_WAITS):
            described = (await self._client.describe_topics([name]))[0]
            code = described.get("error_code", 0)
            if not code and described["partitions"]:
                return len(described["partitions"])
            fault = kafka_errors.for_code(code) if code else None
            if fault is not None and not fault.retriable and fault is not kafka_errors.LeaderNotAvailableError:
                raise fault(f"topic {name}")
            await asyncio.sleep(0.05 * (attempt + 1))
        raise kafka_errors.LeaderNotAvailableError(f"topic {name} has no partitions with a leader yet")

    def _replication_factor(self) -> int:
        """Three copies where the cluster has three brokers; pre-create the topic for anything else."""
        return max(1, min(3, kafka_compat.broker_count(self._client)))

    async def describe_topic(self, name: str) -> TopicInfo:
        """The topic as it is, without creating it: ``partitions`` 0 where it does not exist."""
        if name not in await self._retry(self._client.list_topics):
            return TopicInfo(name, 0, None, await self._broker_config_int("message.max.bytes"))
        return await self._info(name, int(await self._retry(lambda: self._partition_count(name))))

    async def topic_info(self, name: str) -> TopicInfo:
        return await self._info(name, await self.ensure_topic(name, self._settings.topic_partitions))

    async def _info(self, name: str, partitions: int) -> TopicInfo:
        return TopicInfo(
            name=name,
            partitions=partitions,
            topic_max_message_bytes=await self._config_int(ConfigResourceType.TOPIC, name, "max.message.bytes"),
            broker_max_message_bytes=await self._broker_config_int("message.max.bytes"),
        )

    async def _broker_config_int(self, key: str) -> int | None:
        cluster = await self._retry(self._client.describe_cluster)
        brokers = cluster.get("brokers") or []
        if not brokers:
            return None
        return await self._config_int(ConfigResourceType.BROKER, str(brokers[0]["node_id"]), key)

    async def _config_int(self, kind: ConfigResourceType, name: str, key: str) -> int | None:
        """One config value, or None where it cannot be read (ACLs, or a broker that does not report it).

        All configs are requested and filtered here: some brokers drop the connection on a key filter.
        """
        try:
            responses = await self._retry(lambda: self._client.describe_configs([ConfigResource(kind, name)]))
        except kafka_errors.KafkaError as exc:
            log.warning("Cannot read %s of %s (%s)", key, name, exc)
            return None
        for response in responses:
            for error_code, _message, _type, _name, entries in response.resources:
                if error_code != 0:
                    log.warning("Cannot read %s of %s (%s)", key, name, kafka_errors.for_code(error_code).__name__)
                    return None
                for entry in entries:
                    if entry[0] == key and entry[1] is not None and str(entry[1]).isdigit():
                        return int(entry[1])
        return None
