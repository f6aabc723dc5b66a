"""The uploader's workers: each takes static files from the intake and sends them, a big file alone and
one-chunk files in groups, then hands what was sent to the finisher. A failure is logged, counted and shown in
the live view, and what it means for the file (sent again when static, at the next rescan, or not until it
changes) is decided here.

Owned by the uploader's task group (``app._run_tasks``): one task per ``max_concurrent_files``, its index
the lane (the producer) its files go through.
"""

from __future__ import annotations

import asyncio
import logging

from streamsend.shared import logs
from streamsend.shared.errors import FileChangedError, Interrupted, PermanentSendError
from streamsend.shared.metrics import UploaderMetrics
from streamsend.uploader.files import FileState, ReadyFile, SentFile
from streamsend.uploader.finish import Finisher
from streamsend.uploader.intake import Intake
from streamsend.uploader.pipeline import FileSender

log = logging.getLogger(__name__)

GROUP_FILES = 100  # one-chunk files sent together, at most
GROUP_BYTES = 4 * 1024 * 1024
REMEMBER_UNREADABLE = 10_000


class Workers:
    """Take static files off the queue and send them: a big file alone, small ones in groups."""

    def __init__(self, intake: Intake, sender: FileSender, finisher: Finisher, metrics: UploaderMetrics) -> None:
        self._intake = intake
        self._sender = sender
        self._finisher = finisher
        self._metrics = metrics
        self.sent = 0
        # Files that could not be read, and the state they had: reported once, not at every rescan again.
        self._unreadable: dict[str, FileState] = {}

    async def run(self, index: int, stop: asyncio.Event) -> None:
        logs.set_worker(f"stms-upl-{index + 1}")
        while (ready := await self._intake.take(stop)) is not None:
            group, leftover = self._group(ready)
            try:
                if len(group) > 1 or (group and self._sender.fits_one_chunk(group[0])):
                    await self._send_group(group, index)
                for item in leftover:
                    await self._one(item, index)
            finally:
                for item in [*group, *leftover]:
                    self._intake.finished(item)
            self._metrics.files_pending.set(self._intake.pending)

    def _group(self, first: ReadyFile) -> tuple[list[ReadyFile], list[ReadyFile]]:
        """One-chunk files waiting in the queue go together, up to a count and a size."""
        if first.sent_before or not self._sender.fits_one_chunk(first):
            return [], [first]
        group, size = [first], first.state.size
        while len(group) < GROUP_FILES:
            following = self._intake.take_waiting()
            if following is None:
                break
            if following.sent_before or not self._sender.fits_one_chunk(following):
                return group, [following]
            if size + following.state.size > GROUP_BYTES:
                return group, [following]
            group.append(following)
            size += following.state.size
        return group, []

    async def _one(self, ready: ReadyFile, lane: int) -> None:
        if ready.sent_before:
            await self._finisher.tidy(ready)
            return
        try:
            sent = await self._sender.send(ready, lane)
        except (FileChangedError, Interrupted, PermanentSendError, OSError) as exc:
            self._failed(ready, exc)
        else:
            self._done([(ready, sent)])
            await self._finisher.sent_many([(ready, sent)])

    async def _send_group(self, group: list[ReadyFile], lane: int) -> None:
        done = []
        for ready, outcome in zip(group, await self._sender.send_group(group, lane), strict=True):
            if isinstance(outcome, SentFile):
                done.append((ready, outcome))
            else:
                self._failed(ready, outcome)
        self._done(done)
        await self._finisher.sent_many(done)

    def _done(self, done: list[tuple[ReadyFile, SentFile]]) -> None:
        for ready, _ in done:
            self._unreadable.pop(ready.wire_path, None)
        self.sent += len(done)
        if done:
            self._metrics.files_sent.inc(len(done))
            self._metrics.file_done()

    def _failed(self, ready: ReadyFile, exc: Exception) -> None:
        metrics, name = self._metrics, ready.wire_path
        if isinstance(exc, OSError) and self._unreadable.get(name) == ready.state:
            log.debug("%s: still cannot be read: %s", name, exc.strerror or exc)
            return
        if isinstance(exc, FileChangedError | Interrupted | PermanentSendError | OSError):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            metrics.view.failed(None, name, f"{type(exc).__name__}: {reason}")
        if isinstance(exc, FileChangedError):
            log.warning("%s: %s; it will be sent once it is static again", name, exc)
            metrics.files_failed.labels("changed").inc()
        elif isinstance(exc, Interrupted):
            log.info("%s: %s", name, exc)
            metrics.files_failed.labels("interrupted").inc()
        elif isinstance(exc, PermanentSendError):
            log.error("%s: failed: %s; not retried until the file changes", name, exc)
            metrics.files_failed.labels("kafka").inc()
            self._finisher.fail(ready)
        elif isinstance(exc, OSError):
            self._unreadable[name] = ready.state
            while len(self._unreadable) > REMEMBER_UNREADABLE:
                del self._unreadable[next(iter(self._unreadable))]
            log.error(
                "%s: cannot be read: %s; tried again at each rescan, reported again once it changes",
                name, exc.strerror or exc,
            )  # fmt: skip
            metrics.files_failed.labels("unreadable").inc()
        else:
            raise exc
