"""``--check``: a daemon's settings validated, its broker reached, its topics and permissions looked at, and what
it would do said, without doing any of it (nothing is created, sent or committed).

Exit codes, as the daemons': 0 ready to run; 1 not now (the broker does not answer); 2 a setting to fix (a value,
a certificate, a password, a permission the broker refuses). Each finding is one line::

    ok    broker: 127.0.0.1:9092 answers
    FAIL  topic streamsend: access refused: ...
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from streamsend.shared.access import refusal
from streamsend.shared.admin import Admin, TopicInfo
from streamsend.shared.connection import preflight
from streamsend.shared.errors import SettingsError
from streamsend.shared.retry import Outage, describe
from streamsend.shared.settings import CommonSettings

T = TypeVar("T")


class Check:
    """The findings of one ``--check``, printed as they come; ``code`` is the exit code they add up to."""

    def __init__(self, settings: CommonSettings, topics: Mapping[str, str], out: Callable[[str], None] = print):
        self.settings = settings
        self.topics = topics  # each topic the daemon uses -> the operations it needs there (for refusals)
        self._out = out
        self.code = 0

    def ok(self, what: str, detail: str) -> None:
        self._out(f"ok    {what}: {detail}")

    def fail(self, what: str, detail: str, code: int) -> None:
        self._out(f"FAIL  {what}: {detail}")
        self.code = max(self.code, code)

    def would(self, plan: str) -> None:
        self._out(f"\nWould {plan}" if self.code == 0 else "\nNot ready: fix the lines marked FAIL first")

    async def step(self, what: str, work: Awaitable[T]) -> T | None:
        """Run one look at the broker, bounded in time; a failure is a finding, not an exception."""
        settings = self.settings
        try:
            return await asyncio.wait_for(work, 2 * settings.request_timeout)
        except SettingsError as exc:
            self.fail(what, str(exc), 2)
        except Exception as exc:
            refused = refusal(exc, settings, self.topics)
            if refused is not None:
                self.fail(what, str(refused), 2)
            else:
                self.fail(what, f"{settings.bootstrap_servers} did not answer ({describe(exc)})", 1)
        return None

    async def broker(self, role: str) -> bool:
        if await self.step("broker", _reached(self.settings, role)) is None:
            return False
        self.ok("broker", f"{self.settings.bootstrap_servers} answers")
        return True


async def _reached(settings: CommonSettings, role: str) -> bool:
    await preflight(settings, role)
    return True


async def topic(check: Check, admin: Admin, name: str, partitions_if_made: int) -> TopicInfo | None:
    """The topic as it is, or None (a finding says why) where it cannot be looked at; a topic that does not
    exist yet is a finding only where the daemon would not make it."""
    info = await check.step(f"topic {name}", admin.describe_topic(name))
    if info is None:
        return None
    if info.partitions == 0:
        check.ok(f"topic {name}", f"not there yet: would be created with {partitions_if_made} partitions")
    else:
        check.ok(f"topic {name}", f"{info.partitions} partitions")
    return info


def admin(settings: CommonSettings, role: str) -> Admin:
    """An admin client that does not retry through outages: a check reports them instead."""
    return Admin(settings, role, Outage("Kafka"), retry=False)
