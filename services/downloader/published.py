"""Uploads already published whose records a restart would read again, kept on disk per partition.

Offsets are committed only up to the first record of the oldest unfinished file, so after a restart the
records of files published beyond that point are read again. This ledger lets the downloader recognise them
and publish nothing twice. An entry is written right after its file's rename (the window between the two
is the only place a crash can still cause one identical re-publication) and pruned once the committed offset
has passed the record that completed the file.

    <output_dir>/.streamsend/published/<topic>-<partition>     lines of "<upload id>[.<seal>] <offset>"
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class PublishedLedger:
    """The per-partition files of uploads published beyond the committed offset; owned by Completion, written
    from the Publisher's worker thread right after each rename."""

    def __init__(self, work_dir: Path) -> None:
        self._folder = work_dir / "published"

    def _path(self, topic: str, partition: int) -> Path:
        return self._folder / f"{topic}-{partition}"

    def load(self, topic: str, partition: int) -> dict[str, int]:
        entries: dict[str, int] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in self._path(topic, partition).read_text().splitlines():
                name, _, offset = line.partition(" ")  # an upload id, with its data key's fingerprint if sealed
                if len(name.partition(".")[0]) == 32 and offset.isdigit():
                    entries[name] = int(offset)
        return entries

    def add(self, topic: str, partition: int, upload_id: str, offset: int, *, sync: bool) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(topic, partition), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, f"{upload_id} {offset}\n".encode())
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def rewrite(self, topic: str, partition: int, entries: dict[str, int]) -> None:
        """Keep only ``entries`` (after pruning); an empty ledger is removed."""
        path = self._path(topic, partition)
        if not entries:
            path.unlink(missing_ok=True)
            return
        fresh = path.with_name(path.name + ".new")
        fresh.write_text("".join(f"{upload_id} {offset}\n" for upload_id, offset in entries.items()))
        fresh.replace(path)
