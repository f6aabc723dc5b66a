"""How both daemons connect to Kafka: the client options (TLS, SASL) and the start-up probe that tells a
settings problem (a certificate, a credential) from an unreachable broker.

aiokafka has no type information, so it stays at this edge (and in one module per service).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka.abc import AbstractTokenProvider
from aiokafka.protocol.metadata import MetadataRequest

from streamsend.shared import kafka_compat
from streamsend.shared.errors import SettingsError
from streamsend.shared.faults import tls_failure
from streamsend.shared.retry import describe
from streamsend.shared.settings import CommonSettings

kafka_compat.install()  # before any client exists: every daemon builds its clients with client_options

log = logging.getLogger(__name__)


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
            options["sasl_plain_password"] = settings.sasl_secret.get_secret_value()
    return options


FORCED_CLOSE_S = 1.0


async def stop_client(client: Any, timeout_s: float) -> None:
    """Stop a producer or consumer; a broker that does not answer cannot hold the process past ``timeout_s``."""
    try:
        await asyncio.wait_for(client.stop(), timeout_s)
    except asyncio.CancelledError:  # a forced stop: close it without a word to the broker, then go on stopping
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(kafka_compat.close_abandoned(client, FORCED_CLOSE_S), FORCED_CLOSE_S)
        raise
    except TimeoutError:
        log.warning("Kafka client did not stop within %.0f s: closed without a final flush", timeout_s)
        try:
            await kafka_compat.close_abandoned(client, timeout_s)
        except TimeoutError:
            log.warning("Kafka client connections did not close within %.0f s: left open", timeout_s)


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
            conn = await kafka_compat.connect(
                host.strip("[]"), int(port), client_id=options["client_id"],
                request_timeout_ms=options["request_timeout_ms"], **{k: options[k] for k in keys if k in options},
            )  # fmt: skip
            try:
                await conn.send(MetadataRequest([]))
            finally:
                conn.close()
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            refuse_settings(exc, server)
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
            refuse_settings(exc, server)
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


def refuse_settings(exc: BaseException, server: str) -> None:
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
