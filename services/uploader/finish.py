"""What happens once a file is sent: remember it, then keep it, delete it or move it to ``done_dir``.

A file is deleted or moved only after every chunk and its state record are acknowledged, and only if it is
still exactly what was sent (a file rewritten meanwhile stays, and is sent again). State records are
confirmed in the background, so that a worker moves on to its next file at once: with many small files,
waiting a round trip for each record would halve the rate. ``drain()`` waits for them before shutdown.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
from pathlib import Path
from typing import Protocol

from streamsend.uploader.files import ReadyFile, SentFile, state_of
from streamsend.uploader.ledger import SentLedger
from streamsend.uploader.settings import UploaderSettings

log = logging.getLogger(__name__)


class StateRecords(Protocol):
    async def save_many(self, sents: list[SentFile]) -> None: ...

    def forget_soon(self, path: str) -> None: ...


MAX_UNCONFIRMED = 100  # groups of state records awaiting acknowledgement; a worker waits past that


class Finisher:
    """What follows a file's sending: owns the state records still unconfirmed; called by the Workers after each
    file or group, and drained by the app before shutdown."""

    def __init__(
        self, settings: UploaderSettings, ledger: SentLedger, state: StateRecords | None, *, state_written: bool = False
    ) -> None:
        self._state_written = state_written  # in the file's own transaction, already committed
        self._action = settings.after_upload
        self._done_dir = settings.done_dir
        self._ledger = ledger
        self._state = state
        self._unconfirmed: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_UNCONFIRMED)

    async def sent_many(self, done: list[tuple[ReadyFile, SentFile]]) -> None:
        """Remember files just sent; their state records are confirmed (and the files tidied) in the
        background."""
        if not done:
            return
        for _, sent in done:
            self._ledger.record(sent)
        if self._state is None or self._state_written:
            for ready, _ in done:
                await self.tidy(ready)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._record(done))
        self._unconfirmed.add(task)
        task.add_done_callback(self._unconfirmed.discard)

    async def _record(self, done: list[tuple[ReadyFile, SentFile]]) -> None:
        assert self._state is not None
        try:
            await self._state.save_many([sent for _, sent in done])
        except Exception as exc:  # transient faults are retried inside; this one will not mend
            for ready, _ in done:
                log.error("%s: sent, but not recorded as sent (%s): kept, and sent again after a restart",
                          ready.wire_path, exc)  # fmt: skip
            return
        finally:
            self._slots.release()
        for ready, _ in done:
            await self.tidy(ready)

    async def drain(self) -> None:
        """Wait until every state record is acknowledged (and the file it names tidied)."""
        while self._unconfirmed:
            await asyncio.gather(*self._unconfirmed, return_exceptions=True)

    async def tidy(self, ready: ReadyFile) -> None:
        """Apply ``after_upload`` to a sent file (also to one found sent at start, after a crash)."""
        if self._action == "keep":
            return
        try:
            done = await asyncio.to_thread(self._tidy, ready)
        except OSError as exc:
            log.error("%s: sent, but could not be %sd: %s", ready.wire_path, self._action, exc.strerror or exc)
            return
        if done:
            self.forget(ready.wire_path)

    def _tidy(self, ready: ReadyFile) -> bool:
        try:
            now = state_of(ready.path.lstat())
        except FileNotFoundError:
            return True
        if now != ready.state:
            log.info("%s: changed since it was sent: kept, and sent again once static", ready.wire_path)
            return False
        if self._action == "delete":
            ready.path.unlink()
            log.info("%s: deleted after upload", ready.wire_path)
        else:
            assert self._done_dir is not None  # enforced by the settings
            destination = self._done_dir.joinpath(*ready.wire_path.split("/"))
            destination.parent.mkdir(parents=True, exist_ok=True)
            _move(ready.path, destination)
            log.info("%s: moved to %s after upload", ready.wire_path, destination)
        return True

    def fail(self, ready: ReadyFile) -> None:
        self._ledger.fail(ready.wire_path, ready.state)

    def forget(self, wire_path: str) -> None:
        if self._ledger.forget(wire_path) and self._state is not None:
            self._state.forget_soon(wire_path)


def _move(source: Path, destination: Path) -> None:
    try:
        source.replace(destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # on another filesystem: copy, then delete
            raise
        shutil.move(source, destination)
