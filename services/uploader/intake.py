"""From candidate paths to static files ready to send.

Paths come from the watcher (initial scan, file events, periodic rescans); each is judged by its name,
its type and the sent ledger, then waits in the readiness tracker until it has been static long enough.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from streamsend.shared import lifecycle
from streamsend.uploader.files import ReadyFile, state_of
from streamsend.uploader.ledger import SentLedger
from streamsend.uploader.readiness import ReadinessTracker
from streamsend.uploader.selection import select
from streamsend.uploader.settings import UploaderSettings

log = logging.getLogger(__name__)

_SPECIAL_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _lstat_many(paths: Iterable[Path]) -> list[os.stat_result | None]:
    out: list[os.stat_result | None] = []
    for path in paths:
        try:
            out.append(path.lstat())
        except OSError:
            out.append(None)
    return out


class Intake:
    """Candidate paths to files ready to send: owns the readiness tracker, the queue of ready files and the set of
    paths being sent. Fed by the TreeWatcher (``offer``); the Workers ``take`` and ``take_waiting``."""

    def __init__(
        self,
        settings: UploaderSettings,
        ledger: SentLedger,
        on_skip: Callable[[str], None] = lambda reason: None,
        on_forgotten: Callable[[str], None] = lambda path: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ready: asyncio.Queue[ReadyFile] = asyncio.Queue()
        self._root = settings.input_dir
        self._pattern = settings.pattern
        self._ledger = ledger
        self._on_skip = on_skip
        self._on_forgotten = on_forgotten
        self._tidy_sent = settings.after_upload != "keep"
        self._clock = clock
        self._tracker: ReadinessTracker[Path] = ReadinessTracker(settings.min_file_age)
        self._busy: set[str] = set()  # wire paths queued or being sent
        self._reported: set[tuple[Path, str]] = set()
        self._wake = asyncio.Event()

    @property
    def pending(self) -> int:
        """Files waiting to become static, queued, or being sent."""
        return len(self._tracker) + len(self._busy)

    @property
    def waiting(self) -> int:
        """Files waiting to become static, or queued: found, and not yet being sent."""
        return len(self._tracker) + self._ready.qsize()

    def offer(self, path: Path, st: os.stat_result) -> str | None:
        """A path seen in the tree, with its lstat; returns its wire path if it is a file to send."""
        wire_path = self._wire_path(path)
        if wire_path is None or not self._is_regular(path, st):
            return None
        if wire_path in self._busy:
            return wire_path
        state = state_of(st)
        if self._ledger.is_sent(wire_path, state):
            if self._tidy_sent:  # sent before a crash, but not yet deleted or moved
                self._busy.add(wire_path)
                self._ready.put_nowait(ReadyFile(path, wire_path, state, sent_before=True))
        elif not self._ledger.is_done(wire_path, state):
            self._tracker.observe(path, state, self._clock())
            self._wake.set()
        return wire_path

    def rescanned(self, present: set[str]) -> None:
        """After a complete rescan: forget sent files that have stayed away long enough."""
        for path in self._ledger.age_out(present, self._clock()):
            log.info("%s: gone from the tree for a while: forgotten", path)
            self._on_forgotten(path)

    def gone(self, path: Path) -> None:
        self._tracker.forget(path)

    async def take(self, stop: asyncio.Event) -> ReadyFile | None:
        """The next file ready to send, or None once ``stop`` is set."""
        return await lifecycle.next_or_stop(self._ready, stop)

    def take_waiting(self) -> ReadyFile | None:
        """The next file ready to send if one is waiting now, without waiting for one."""
        try:
            return self._ready.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def finished(self, ready: ReadyFile) -> None:
        self._busy.discard(ready.wire_path)

    async def run(self, stop: asyncio.Event) -> None:
        """Look at each waiting file when it is due; queue those that stayed static."""
        while not stop.is_set():
            due_at = self._tracker.next_due()
            timeout = None if due_at is None else max(0.0, due_at - self._clock())
            waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            self._wake.clear()
            due = self._tracker.pop_due(self._clock())
            if due:
                self._confirm(due, await asyncio.to_thread(_lstat_many, due))

    def _confirm(self, due: list[Path], stats: list[os.stat_result | None]) -> None:
        now = self._clock()
        for path, st in zip(due, stats, strict=True):
            if st is None or not stat.S_ISREG(st.st_mode):
                self._tracker.forget(path)
                if st is not None:
                    self.offer(path, st)  # turned into something else: judged afresh
                continue
            state = state_of(st)
            if not self._tracker.confirm(path, state, now):
                continue
            wire_path = self._wire_path(path)
            if wire_path is None or wire_path in self._busy or self._ledger.is_done(wire_path, state):
                continue
            self._busy.add(wire_path)
            self._ready.put_nowait(ReadyFile(path, wire_path, state))

    def _wire_path(self, path: Path) -> str | None:
        try:
            parts = path.relative_to(self._root).parts
        except ValueError:
            return None
        if not parts:
            return None
        verdict = select(parts, self._pattern)
        if verdict.wire_path is None and verdict.report:
            self._report(path, verdict.reason, "unsendable_name")
        return verdict.wire_path

    def _is_regular(self, path: Path, st: os.stat_result) -> bool:
        if stat.S_ISREG(st.st_mode):
            return True
        kind = _SPECIAL_KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is not None:
            self._report(path, f"is {kind}: never opened, not sent", "not_regular")
        return False  # symlinks and folders are not files to send

    def _report(self, path: Path, reason: str, label: str) -> None:
        if (path, reason) in self._reported:
            return
        self._reported.add((path, reason))
        log.warning("%s: %s", os.fsencode(path.relative_to(self._root)).decode("utf-8", "backslashreplace"), reason)
        self._on_skip(label)
