"""Process lifecycle: uvloop, two-stage signals and a bounded grace period.

The first SIGTERM or SIGINT sets the stop event: loops finish their current unit of work, in-flight work
drains, clients close, and the process exits 0. When the grace period runs out, or a second signal
arrives, the main task is cancelled instead; that is still an orderly stop, so the exit code stays 0. A
cancelled task may still wait in its clean-up (a Kafka client closing towards a broker that does not answer):
it is cancelled again every ``CANCEL_AGAIN_S`` until it ends, so a forced stop is never held by the network.
A crash of any task exits 1 so that the supervisor (Kubernetes, systemd) restarts the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from streamsend.shared import logs
from streamsend.shared.errors import SettingsError
from streamsend.shared.memory import tune_allocator
from streamsend.shared.settings import CommonSettings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_SETTINGS = 2

CANCEL_AGAIN_S = 0.5

T = TypeVar("T")
Main = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def _loop_factory(tls: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if tls:
        # uvloop's TLS transports may spin at close until the peer sends EOF (MagicStack/uvloop#471): seen
        # holding a Kafka client's stop, and the process after it, for minutes. asyncio's own loop closes them.
        log.info("TLS connections: running on asyncio's own event loop")
        return None
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed: running on asyncio's own event loop")
        return None
    return uvloop.new_event_loop


def launch(
    settings: CommonSettings,
    worker: str,
    main: Main,
    *,
    check: Callable[[], Coroutine[Any, Any, int]],
    checking: bool,
    warnings: Iterable[str] = (),
) -> int:
    """A daemon's start once its settings are read: logging set up, then ``check`` (for ``--check``) or ``main``
    until it ends; the exit code."""
    logs.configure(settings.log_level, settings.log_format, worker)
    if checking:
        return asyncio.run(check())
    for warning in warnings:
        log.warning("%s", warning)
    return run(main, grace_s=settings.shutdown_grace, tls=settings.security_protocol in ("SSL", "SASL_SSL"))


def run(main: Main, *, grace_s: float, tls: bool = False) -> int:
    """Run ``main(stop_event)`` until it returns, fails, or a signal stops it; return the exit code."""
    tune_allocator()
    with asyncio.Runner(loop_factory=_loop_factory(tls)) as runner:
        return runner.run(supervise(main, grace_s=grace_s))


async def supervise(main: Main, *, grace_s: float) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.create_task(main(stop), name="main")
    forced: list[str] = []

    def force(reason: str) -> None:
        if task.done():
            return
        if not forced:
            log.warning("%s: cancelling in-flight work", reason)
        forced.append(reason)
        task.cancel()
        loop.call_later(CANCEL_AGAIN_S, force, reason)  # and again, should its clean-up wait on the network

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            force(f"Second {sig.name}")
            return
        log.info("Received %s: finishing in-flight work (grace period %.0f s)", sig.name, grace_s)
        stop.set()
        loop.call_later(grace_s, force, "Grace period over")

    handled = (signal.SIGTERM, signal.SIGINT)
    for sig in handled:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not forced:
            raise
        return EXIT_OK
    except Exception as exc:
        settings_error = _find(exc, SettingsError)
        if settings_error is not None:
            for line in str(settings_error).splitlines():
                log.error("%s", line)
            return EXIT_SETTINGS
        log.exception("Stopped by an unexpected error")
        return EXIT_CRASH
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return EXIT_OK


def _find(exc: BaseException, kind: type[SettingsError]) -> SettingsError | None:
    """The first ``kind`` inside ``exc``, looking through the exception groups of task groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None


async def unless_stopped_first(work: Coroutine[Any, Any, None], started: asyncio.Event, stop: asyncio.Event) -> None:
    """Run ``work``; a stop that comes before ``started`` cancels it at once.

    Before a daemon has started (while it waits for an unreachable broker, say) nothing is in flight, so there
    is nothing for the grace period to wait for.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(stop.wait())
    starter = asyncio.ensure_future(started.wait())
    try:
        await asyncio.wait((task, watcher, starter), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()  # this coroutine itself was cancelled: the work goes with it
        raise
    finally:
        watcher.cancel()
        starter.cancel()
    if not task.done() and stop.is_set() and not started.is_set():
        log.info("Stopped before start-up was complete: nothing was in flight")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    await task


async def next_or_stop(queue: asyncio.Queue[T], stop: asyncio.Event) -> T | None:
    """The next item of ``queue``, or None once ``stop`` is set (an item already taken is returned)."""
    if stop.is_set():
        return None
    getter = asyncio.ensure_future(queue.get())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((getter, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    return None


async def sleep_or_stop(delay_s: float, stop: asyncio.Event) -> bool:
    """Sleep up to ``delay_s``; True if ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), delay_s)
    except TimeoutError:
        return False
    return True
