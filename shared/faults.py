"""Which Kafka faults a retry can mend: the broker is down or the network cut (transient), or the record, the
credentials or the permissions are wrong (permanent)."""

from __future__ import annotations

import asyncio
import ssl

import aiokafka.errors as kafka_errors

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
# An idempotent producer's sequence broken, typically by a partition leader changing while batches were in
# flight: the records are sent again, and the producer is restarted with a new producer id (ProducerPool).
SEQUENCE_FAULTS = (
    kafka_errors.OutOfOrderSequenceNumber,
    kafka_errors.UnknownProducerId,
    kafka_errors.InvalidProducerEpoch,
)
# The records still in flight on a producer so replaced fail with ProducerClosed: they are sent again too.
_REPLACED = (kafka_errors.ProducerClosed,)
# Faults aiokafka does not mark retriable but that a broker outage or a cut network produces.
_TRANSIENT = (
    *SEQUENCE_FAULTS,
    *_REPLACED,
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
        return bool(exc.retriable) or isinstance(exc, _TRANSIENT) or client_failure(exc)
    return isinstance(exc, OSError | asyncio.TimeoutError | ConnectionError)


def client_failure(exc: BaseException) -> bool:
    """The bare KafkaError that aiokafka raises when one of its own background tasks fails ("Unexpected error
    during batch delivery", "... during coordination"): the client is broken, not the request. The producer pool
    and the consume loop replace such a client, so trying again can succeed."""
    return type(exc) is kafka_errors.KafkaError


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
