"""Candidate paths from the input tree: an initial scan, file events from watchfiles, and full rescans.

Events can be missed (network filesystems, a folder moved in whole, start-up races), so the periodic
rescan is the safety net and events only make things faster. Folders and files whose name starts with
a dot are not entered; symlinks are never followed.

One bad entry costs only itself. watchfiles fails a whole batch of events when one of its names is not valid
UTF-8 (shares written by Windows and point-of-sale machines have such names); the watch is then started again at
once and the tree scanned at once for what that batch held, and the scan reports the name (once). Folders the
watch cannot enter are skipped by it; the scans report them (once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch
from watchfiles._rust_notify import WatchfilesRustInternalError  # what a batch it cannot read raises

from streamsend.shared.lifecycle import sleep_or_stop
from streamsend.shared.retry import describe
from streamsend.uploader.intake import Intake

log = logging.getLogger(__name__)

Found = list[tuple[Path, os.stat_result]]
WATCH_RESTART_S = 1.0  # a watch that lost a batch is started again at once, but not more often than this


def scan_tree(root: Path) -> tuple[Found, list[str]]:
    """Every non-hidden entry under ``root`` that is not a folder, with its lstat; and folders not readable."""
    found: Found = []
    problems: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            found.append((Path(entry.path), entry.stat(follow_symlinks=False)))
                    except OSError:
                        continue  # vanished between listing and stat
        except OSError as exc:
            problems.append(f"cannot read folder {folder}: {exc.strerror}")
    return found, problems


def _inspect(paths: list[Path]) -> Found:
    """What changed paths are now: files with their lstat, and the contents of folders that appeared."""
    found: Found = []
    for path in paths:
        try:
            st = path.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            found.extend(scan_tree(path)[0])
        else:
            found.append((path, st))
    return found


class TreeWatcher:
    """Owns the scans and the watchfiles watch of the input tree; feeds the Intake. Run by the app."""

    def __init__(
        self, root: Path, intake: Intake, rescan_interval_s: float, on_scan: Callable[[], None] = lambda: None
    ) -> None:
        self._root = root
        self._intake = intake
        self._rescan_interval_s = rescan_interval_s
        self._on_scan = on_scan  # a counter: lets an observer wait for "one more full scan" instead of time
        self._problems: set[str] = set()
        self._rescan_now = asyncio.Event()  # events were lost: scan before the interval is up

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._rescans(stop))
            group.create_task(self._events(stop))

    async def _rescans(self, stop: asyncio.Event) -> None:
        first = True
        while not stop.is_set():
            started = time.monotonic()
            found, problems = await asyncio.to_thread(scan_tree, self._root)
            for problem in problems:
                if problem not in self._problems:
                    log.warning("%s", problem)
            self._problems = set(problems)
            present = {wire for path, st in found if (wire := self._intake.offer(path, st)) is not None}
            if not any(problem.startswith(f"cannot read folder {self._root}:") for problem in problems):
                self._intake.rescanned(present)
            log.log(
                logging.INFO if first else logging.DEBUG,
                "Scanned %s: %d entries in %.2f s, %d files waiting",
                self._root, len(found), time.monotonic() - started, self._intake.pending,
            )  # fmt: skip
            first = False
            self._on_scan()
            await self._until_next_scan(stop)

    async def _until_next_scan(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._rescan_now.wait())]
        try:
            await asyncio.wait(waits, timeout=self._rescan_interval_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        self._rescan_now.clear()

    async def _events(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async for changes in awatch(
                    self._root, stop_event=stop, watch_filter=None, recursive=True, ignore_permission_denied=True
                ):
                    await self._apply(changes)
            except Exception as exc:
                if _only(exc, WatchfilesRustInternalError):  # a batch it could not read (a name not UTF-8)
                    log.debug("File events: a batch was lost (%s): watching again, scanning now", describe(exc))
                    self._rescan_now.set()
                    await sleep_or_stop(max(0.0, WATCH_RESTART_S - (time.monotonic() - started)), stop)
                    continue
                if not _only(exc, OSError):
                    raise  # a fault of ours: the daemon stops (exit 1) and its supervisor starts it again
                # A vanished root, an inotify limit: the rescans carry on alone.
                log.warning(
                    "File events unavailable (%s): relying on rescans every %.0f s",
                    describe(exc), self._rescan_interval_s,
                )  # fmt: skip
                await sleep_or_stop(self._rescan_interval_s, stop)

    async def _apply(self, changes: set[tuple[Change, str]]) -> None:
        changed: list[Path] = []
        for change, raw in changes:
            path = Path(raw)
            try:
                parts = path.relative_to(self._root).parts
            except ValueError:
                continue
            if not parts or any(part.startswith(".") for part in parts):
                continue
            if change == Change.deleted:
                self._intake.gone(path)
            else:
                changed.append(path)
        if changed:
            for path, st in await asyncio.to_thread(_inspect, changed):
                self._intake.offer(path, st)


def _only(exc: Exception, kind: type[Exception]) -> bool:
    """Whether ``exc`` is a ``kind``, or a group of them only (watchfiles raises from a task group)."""
    if isinstance(exc, BaseExceptionGroup):
        rest = exc.split(kind)[1]
        return rest is None
    return isinstance(exc, kind)
