"""What both daemons need from Kafka: client options, fault classes, the topic and its size limits.

aiokafka has no type information, so it stays at this edge (and in one module per service).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from streamsend.shared.retry import Outage, describe, retry_forever
from streamsend.shared.settings import CommonSettings, SettingsError

log = logging.getLogger(__name__)

# Faults that a retry cannot mend: the record, the credentials or the permissions are wrong.
_PERMANENT = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.SaslAuthenticationFailed,  # what Apache Kafka answers to a wrong password or user
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
    kafka_errors.InvalidTopicError,
    kafka_errors.UnsupportedVersionError,
)
# Faults aiokafka does not mark retriable but that a broker outage or a cut network produces.
_TRANSIENT = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.NotControllerError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.GroupCoordinatorNotAvailableError,
    kafka_errors.RebalanceInProgressError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether waiting and trying again can succeed."""
    cause = tls_failure(exc)
    if cause is not None:
        return False
    if isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(exc.retriable) or isinstance(exc, _TRANSIENT)
    return isinstance(exc, OSError | asyncio.TimeoutError | ConnectionError)


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a connection failure, if any: a bad certificate is not a network fault."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class _FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens read from a file on every connect, so a sidecar can rotate them."""

    def __init__(self, path: Path) -> None:
        self._path = path

    async def token(self) -> str:
        return (await asyncio.to_thread(self._path.read_text)).strip()


def ssl_context(settings: CommonSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
        if settings.ssl_certfile is not None:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(f"invalid setting ssl_cafile/ssl_certfile/ssl_keyfile: {exc}") from None
    context.check_hostname = settings.ssl_check_hostname
    return context


def client_options(settings: CommonSettings, role: str) -> dict[str, Any]:
    """Keyword arguments common to every aiokafka client of a daemon."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.servers,
        "client_id": settings.client_id or f"streamsend-{role}",
        "request_timeout_ms": int(settings.request_timeout * 1000),
        "retry_backoff_ms": 200,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            assert settings.sasl_oauth_token_file is not None  # enforced by the settings
            options["sasl_oauth_token_provider"] = _FileTokenProvider(settings.sasl_oauth_token_file)
        else:
            options["sasl_plain_username"] = settings.sasl_username
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


async def stop_client(client: Any, timeout_s: float) -> None:
    """Stop a producer or consumer; a broker that does not answer cannot hold the process past ``timeout_s``."""
    try:
        await asyncio.wait_for(client.stop(), timeout_s)
    except TimeoutError:
        log.warning("Kafka client did not stop within %.0f s: closed without a final flush", timeout_s)


# Faults of the connection itself that no retry mends: they name settings to fix.
_AUTHENTICATION = (
    kafka_errors.AuthenticationFailedError,
    kafka_errors.SaslAuthenticationFailed,  # what Apache Kafka answers to a wrong password or user
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
)


async def preflight(settings: CommonSettings, role: str) -> None:
    """Connect to one bootstrap server the way the clients will, and ask for metadata.

    The Kafka client logs TLS and SASL failures during its bootstrap and carries on as if the broker were
    unreachable; here they are told apart: a certificate or credential problem raises SettingsError (the
    daemon stops with exit code 2), an unreachable broker raises KafkaConnectionError (retried).
    """
    options = client_options(settings, role)
    if "ssl_context" in options:
        await _probe_tls(settings.servers, options["ssl_context"], settings.request_timeout)
    keys = ("ssl_context", "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
            "sasl_oauth_token_provider")  # fmt: skip
    last: BaseException | None = None
    for server in settings.servers:
        host, _, port = server.rpartition(":")
        try:
            conn = await create_conn(
                host.strip("[]"), int(port), client_id=options["client_id"],
                request_timeout_ms=options["request_timeout_ms"], **{k: options[k] for k in keys if k in options},
            )  # fmt: skip
            try:
                await conn.send(MetadataRequest([]))
            finally:
                conn.close()
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            _refuse_settings(exc, server)
            last = exc
            continue
        return
    raise kafka_errors.KafkaConnectionError(f"no bootstrap server answered ({describe(last) if last else ''})")


ALERT_WAIT_S = 0.5  # a server refusing our client certificate says so right after the TLS 1.3 handshake


async def _probe_tls(servers: list[str], context: ssl.SSLContext, timeout_s: float) -> None:
    """A TLS handshake with each server, with the standard library's blocking sockets: asyncio's streams report
    a refused client certificate as a closed connection, and the reason would be lost."""
    for server in servers:
        try:
            await asyncio.to_thread(_handshake, server, context, timeout_s)
        except ssl.SSLError as exc:
            _refuse_settings(exc, server)
        except OSError:
            continue  # unreachable: an outage, for the retries to deal with


def _handshake(server: str, context: ssl.SSLContext, timeout_s: float) -> None:
    host, _, port = server.rpartition(":")
    host = host.strip("[]")
    with (
        socket.create_connection((host, int(port)), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.settimeout(ALERT_WAIT_S)
        try:
            tls.recv(1)  # nothing is due from a Kafka broker: only an alert comes back here
        except TimeoutError:
            pass


# Alerts a server sends when it refuses the client's certificate, or its absence: OpenSSL servers say
# CERTIFICATE_REQUIRED (TLS 1.3) or HANDSHAKE_FAILURE, Java's (Apache Kafka) BAD_CERTIFICATE, and a certificate
# from a CA the server does not trust gets UNKNOWN_CA.
_CLIENT_CERTIFICATE_ALERTS = (
    "CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "ALERT_BAD_CERTIFICATE", "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN", "ALERT_ACCESS_DENIED",
)  # fmt: skip


def _refuse_settings(exc: BaseException, server: str) -> None:
    failure = tls_failure(exc)
    if failure is not None:
        reason = getattr(failure, "reason", None) or str(failure)
        if any(alert in str(reason).upper() for alert in _CLIENT_CERTIFICATE_ALERTS):
            setting = "ssl_certfile/ssl_keyfile"
        elif "HOSTNAME" in str(failure).upper() or "IP ADDRESS MISMATCH" in str(failure).upper():
            setting = "ssl_check_hostname"
        else:
            setting = "ssl_cafile"
        raise SettingsError(f"invalid setting {setting}: TLS with {server} failed: {failure}") from exc
    if isinstance(exc, _AUTHENTICATION):
        raise SettingsError(
            f"invalid setting sasl_mechanism/sasl_username/sasl_password: {server} refused the login: {describe(exc)}"
        ) from exc


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    topic_max_message_bytes: int | None
    broker_max_message_bytes: int | None


METADATA_WAITS = 20  # about 10 s in all


class Admin:
    """The few administrative calls the daemons make, each retried through broker outages."""

    def __init__(self, settings: CommonSettings, role: str, outage: Outage) -> None:
        self._settings = settings
        self._role = role
        self._outage = outage
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
        try:
            return await retry_forever(
                operation,
                outage=self._outage,
                is_transient=is_transient,
                backoff_max_s=self._settings.retry_backoff_max,
            )
        except Exception as exc:
            _refuse_settings(exc, self._settings.bootstrap_servers)
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
        return max(1, min(3, len(self._client._client.cluster.brokers())))

    async def topic_info(self, name: str) -> TopicInfo:
        partitions = await self.ensure_topic(name, self._settings.topic_partitions)
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
                    return None
                for entry in entries:
                    if entry[0] == key and entry[1] is not None and str(entry[1]).isdigit():
                        return int(entry[1])
        return None
