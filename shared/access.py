"""Authorization refusals (Kafka ACLs) turned into one line an operator can act on.

A broker that refuses an operation on a topic, a group or the cluster refuses it again on every retry: the
daemon stops with exit code 2 (through ``SettingsError``) and says which principal lacks what, with the
``kafka-acls`` arguments that grant it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping

import aiokafka.errors as kafka_errors

from streamsend.shared.errors import AccessRefused
from streamsend.shared.settings import CommonSettings

REFUSALS = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
)


def principal(settings: CommonSettings) -> str:
    """The principal the broker sees, as far as the client can tell."""
    if settings.security_protocol.startswith("SASL"):
        if settings.sasl_mechanism == "OAUTHBEARER":
            return "the principal of the OAUTHBEARER token"
        return f"User:{settings.sasl_username}"
    if settings.security_protocol == "SSL" and settings.ssl_certfile is not None:
        return f"the principal of ssl_certfile {settings.ssl_certfile}"
    return "User:ANONYMOUS"


def first_refusal(exc: BaseException) -> BaseException | None:
    """The first authorization error in ``exc``, its causes or its exception groups."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, REFUSALS):
            refused: BaseException = current
            return refused
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def refusal(exc: BaseException, settings: CommonSettings, topics: Mapping[str, str]) -> AccessRefused | None:
    """The ``AccessRefused`` for an authorization error anywhere in ``exc``, or None.

    ``topics`` maps each topic the daemon uses to the operations it needs there (``"WRITE"``, ``"READ"``); the
    broker names the topic it refused, and the first one is assumed where it does not.
    """
    found = first_refusal(exc)
    if found is None:
        return None
    if isinstance(found, kafka_errors.GroupAuthorizationFailedError):
        operations, kind, name = "READ", "group", str(getattr(settings, "group_id", ""))
    elif isinstance(found, kafka_errors.ClusterAuthorizationFailedError):
        operations, kind, name = "DESCRIBE", "cluster", ""
    else:
        named = [topic for topic in topics if topic and topic in str(found)]
        kind, name = "topic", max(named, key=len) if named else next(iter(topics))
        operations = topics.get(name, "READ")
    who = principal(settings)
    flags = " ".join(f"--operation {op.title()}" for op in operations.split(","))
    target = f"--{kind}" + (f" {name}" if name else "")
    allow = f"--allow-principal {who} " if who.startswith("User:") else ""
    what = f"{kind} {name}".strip()
    return AccessRefused(
        f"access refused: the broker does not allow {who} to {operations.replace(',', ' and ')} {what}"
        f" ({type(found).__name__}); grant it (kafka-acls --add {allow}{flags} {target})"
        " or connect as a principal that has it"
    )


async def naming_refusals(work: Awaitable[None], settings: CommonSettings, topics: Mapping[str, str]) -> None:
    """Await a daemon's work; an ACL refusal anywhere in what it raises becomes the AccessRefused naming it."""
    try:
        await work
    except Exception as exc:
        raise_if_refused(exc, settings, topics)
        raise


def raise_if_refused(exc: BaseException, settings: CommonSettings, topics: Mapping[str, str]) -> None:
    refused = refusal(exc, settings, topics)
    if refused is not None:
        raise refused from None
