"""The measurements, each next to its baseline in the same run.

1. throughput: one file through uploader and downloader, against a plain producer and consumer
2. memory: peak resident memory of each daemon as the file grows
3. small files: 10,000 files of 4 KB in 100 folders, against 10,000 records of 4 KB
4. latency: single 1 MB files, from the moment each becomes eligible to the moment it is visible
5. chunk sizes: throughput and memory for several chunk sizes
6. sealed files: throughput, memory and many small files with encryption and signatures on, against off
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import Bench, Daemon, write_random
from streamsend.shared import keys
from streamsend.uploader.planner import ALIGN_BYTES, HEADROOM_BYTES, KAFKA_DEFAULT_MAX_MESSAGE_BYTES

MB = 1_000_000
MiB = 1024 * 1024
DEFAULT_CHUNK = (KAFKA_DEFAULT_MAX_MESSAGE_BYTES - HEADROOM_BYTES) // ALIGN_BYTES * ALIGN_BYTES
TUNED_ALLOCATOR = {
    "MALLOC_MMAP_THRESHOLD_": str(64 * MiB),
    "MALLOC_TRIM_THRESHOLD_": str(32 * MiB),
    "MALLOC_ARENA_MAX": "1",
}


@dataclass
class Series:
    """Repeated measurements of one figure."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        return f"{min(self.values):.1f}-{max(self.values):.1f}" if len(self.values) > 1 else "-"


@dataclass
class Transfer:
    seconds: float
    uploader_peak: int
    downloader_peak: int


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def baseline_seconds(bench: Bench, records: int, size: int, *, tuned: bool) -> float:
    """A plain producer and consumer; ``tuned`` gives them the same allocator settings the daemons use."""
    with _environment(TUNED_ALLOCATOR if tuned else {}):
        return bench.baseline(records, size)


def transfer(bench: Bench, source: Path, size: int, topic_limit: int | None = None, **settings: object) -> Transfer:
    """One file of ``size`` bytes (already at ``source``) from input tree to verified output."""
    topic = bench.topic(max_message_bytes=topic_limit)
    try:
        with bench.workdir() as work:
            (work / "in").mkdir()
            os.link(source, work / "in" / "file.bin")
            os.sync()
            down = bench.downloader(work, topic, **settings)
            up = bench.uploader(work, topic, **settings)
            try:
                down.wait_for("verified", timeout_s=60 + size / (5 * MB))
                started, finished = up.first("bytes, creating"), down.first("verified")
                assert started is not None and finished is not None
            finally:
                uploader_peak, downloader_peak = up.stop(), down.stop()
            return Transfer(finished - started, uploader_peak, downloader_peak)
    finally:
        bench.drop(topic, f"{topic}-state")


@dataclass
class Throughput:
    size: int
    plain: Series = field(default_factory=Series)  # MB/s
    tuned: Series = field(default_factory=Series)
    pipeline: Series = field(default_factory=Series)
    transactional: Series = field(default_factory=Series)  # on a broker with transactions only


def throughput(bench: Bench, sizes: list[int], repetitions: int) -> list[Throughput]:
    results = []
    for size in sizes:
        result = Throughput(size)
        with bench.workdir() as work:
            source = work / "source.bin"
            write_random(source, size)
            os.sync()  # the daemons' syncs must not pay for writing the test's own input
            records = -(-size // DEFAULT_CHUNK)
            for _ in range(repetitions):
                result.plain.values.append(size / baseline_seconds(bench, records, DEFAULT_CHUNK, tuned=False) / MB)
                result.tuned.values.append(size / baseline_seconds(bench, records, DEFAULT_CHUNK, tuned=True) / MB)
                plain: dict[str, object] = {"transactional": "off"} if bench.has_transactions else {}
                result.pipeline.values.append(size / transfer(bench, source, size, None, **plain).seconds / MB)
                if bench.has_transactions:
                    seconds = transfer(bench, source, size, transactional="on").seconds
                    result.transactional.values.append(size / seconds / MB)
        results.append(result)
    return results


@dataclass
class Memory:
    size: int
    uploader: Series = field(default_factory=Series)  # MB
    downloader: Series = field(default_factory=Series)


def memory(bench: Bench, sizes: list[int], repetitions: int) -> list[Memory]:
    results = []
    for size in sizes:
        result = Memory(size)
        with bench.workdir() as work:
            source = work / "source.bin"
            write_random(source, size)
            os.sync()
            for _ in range(repetitions):
                done = transfer(bench, source, size)
                result.uploader.values.append(done.uploader_peak / MB)
                result.downloader.values.append(done.downloader_peak / MB)
        results.append(result)
    return results


@dataclass
class SmallFiles:
    count: int
    size: int
    plain: Series = field(default_factory=Series)  # seconds
    tuned: Series = field(default_factory=Series)
    pipeline: Series = field(default_factory=Series)


def small_files(bench: Bench, count: int, size: int, folders: int, repetitions: int) -> SmallFiles:
    result = SmallFiles(count, size)
    with bench.workdir() as tree:
        for index in range(count):
            path = tree / f"folder-{index % folders:03d}" / f"file-{index:05d}.bin"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(os.urandom(size))
        os.sync()
        for _ in range(repetitions):
            result.plain.values.append(baseline_seconds(bench, count, size, tuned=False))
            result.tuned.values.append(baseline_seconds(bench, count, size, tuned=True))
            result.pipeline.values.append(_tree_transfer(bench, tree, count))
    return result


def _tree_transfer(bench: Bench, tree: Path, count: int, **settings: object) -> float:
    topic = bench.topic()
    try:
        with bench.workdir() as work:
            for path in tree.rglob("*.bin"):  # hard links: the same files, no copy
                target = work / "in" / path.relative_to(tree)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
            os.sync()  # what the harness itself wrote (links, the last run's cleanup) is not the daemons' to flush
            down = bench.downloader(work, topic, **settings)
            up = bench.uploader(work, topic, **settings)
            try:
                down.wait_for("verified", timeout_s=600, times=count)
                started = min(when for when, message in up.lines() if "bytes, creating" in message)
                finished = max(when for when, message in down.lines() if " verified" in message)
            finally:
                up.stop()
                down.stop()
            return finished - started
    finally:
        bench.drop(topic, f"{topic}-state")


@dataclass
class Latency:
    files: int
    min_file_age: float
    p50: Series = field(default_factory=Series)  # seconds after eligibility
    p95: Series = field(default_factory=Series)


def latency(bench: Bench, files: int, size: int, repetitions: int, min_file_age: float = 0.5) -> Latency:
    result = Latency(files, min_file_age)
    for _ in range(repetitions):
        delays = _latencies(bench, files, size, min_file_age)
        quantiles = statistics.quantiles(delays, n=20, method="inclusive")
        result.p50.values.append(statistics.median(delays))
        result.p95.values.append(quantiles[18])
    return result


def _latencies(bench: Bench, files: int, size: int, min_file_age: float) -> list[float]:
    topic = bench.topic()
    try:
        with bench.workdir() as work:
            (work / "in").mkdir()
            (work / ".drafts").mkdir()
            down = bench.downloader(work, topic, min_file_age=min_file_age)
            up = bench.uploader(work, topic, min_file_age=min_file_age)
            delays = []
            try:
                up.wait_for("Scanned", 60)
                for index in range(files):
                    draft = work / ".drafts" / f"drop-{index:03d}.bin"
                    draft.write_bytes(os.urandom(size))
                    eligible = draft.stat().st_mtime + min_file_age
                    draft.rename(work / "in" / draft.name)  # appears whole, as a finished copy does
                    down.wait_for(f"drop-{index:03d}.bin (00001/00001):    final chunk", timeout_s=60)
                    visible = _when(down, f"drop-{index:03d}.bin (00001/00001):    final chunk")
                    delays.append(visible - eligible)
            finally:
                up.stop()
                down.stop()
            return delays
    finally:
        bench.drop(topic, f"{topic}-state")


def _when(daemon: Daemon, needle: str) -> float:
    found = daemon.first(needle)
    assert found is not None
    return found


@dataclass
class Sweep:
    label: str
    chunk_size: int
    mb_per_s: Series = field(default_factory=Series)
    uploader: Series = field(default_factory=Series)  # peak MB
    downloader: Series = field(default_factory=Series)


def chunk_sizes(bench: Bench, size: int, repetitions: int, largest_limit: int) -> list[Sweep]:
    largest = (largest_limit - HEADROOM_BYTES) // ALIGN_BYTES * ALIGN_BYTES
    points = [
        ("256 KiB", 256 * 1024, None),
        ("512 KiB", 512 * 1024, None),
        ("1 MB (Kafka's default limit)", DEFAULT_CHUNK, None),
        (f"{largest // MiB} MiB (largest the broker allows)", largest, largest_limit),
    ]
    results = []
    with bench.workdir() as work:
        source = work / "source.bin"
        write_random(source, size)
        os.sync()
        for label, chunk, limit in points:
            sweep = Sweep(label, chunk)
            for _ in range(repetitions):
                done = transfer(bench, source, size, topic_limit=limit, chunk_size=chunk)
                sweep.mb_per_s.values.append(size / done.seconds / MB)
                sweep.uploader.values.append(done.uploader_peak / MB)
                sweep.downloader.values.append(done.downloader_peak / MB)
            results.append(sweep)
    return results


@dataclass
class Sealed:
    size: int
    count: int
    plain: Series = field(default_factory=Series)  # MB/s, sealing off
    sealed: Series = field(default_factory=Series)  # MB/s, sealed and signed
    plain_uploader: Series = field(default_factory=Series)  # peak MB
    sealed_uploader: Series = field(default_factory=Series)
    plain_downloader: Series = field(default_factory=Series)
    sealed_downloader: Series = field(default_factory=Series)
    small_plain: Series = field(default_factory=Series)  # seconds for ``count`` files of 4 KB
    small_encrypted: Series = field(default_factory=Series)  # sealed, not signed
    small_sealed: Series = field(default_factory=Series)  # sealed and signed


def sealed(bench: Bench, size: int, count: int, repetitions: int) -> Sealed:
    """The same transfers with sealing off and on (one recipient, signed, trusted), taken in turns; for many
    small files also sealed without signatures, whose cost is per file."""
    result = Sealed(size, count)
    with bench.workdir() as work:
        folder = work / "keys"
        keys.generate(folder)
        encrypted: dict[str, object] = {
            "encrypt_to": folder / keys.RECIPIENT_PUB,
            "decrypt_key": folder / keys.RECIPIENT_KEY,
        }
        on: dict[str, object] = {
            **encrypted,
            "signing_key": folder / keys.SIGNER_KEY,
            "trusted_uploaders": f"bench={folder / keys.SIGNER_PUB}",
        }
        source = work / "source.bin"
        write_random(source, size)
        tree = work / "tree"
        for index in range(count):
            path = tree / f"folder-{index % 100:03d}" / f"file-{index:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(4096))
        os.sync()
        for repetition in range(repetitions):
            # Taken in turns, first one then the other first: a transfer pays for the writeback of the last one.
            pair = [
                ({}, result.plain, result.plain_uploader, result.plain_downloader),
                (on, result.sealed, result.sealed_uploader, result.sealed_downloader),
            ]
            for settings, speed, uploader, downloader in pair[repetition % 2 :] + pair[: repetition % 2]:
                done = transfer(bench, source, size, None, **settings)
                speed.values.append(size / done.seconds / MB)
                uploader.values.append(done.uploader_peak / MB)
                downloader.values.append(done.downloader_peak / MB)
            # Taken in a rotating order: creating many files slows this filesystem down as a run goes on.
            turns = [(result.small_plain, {}), (result.small_encrypted, encrypted), (result.small_sealed, on)]
            for series, settings in turns[repetition % 3 :] + turns[: repetition % 3]:
                series.values.append(_tree_transfer(bench, tree, count, **settings))
    return result
