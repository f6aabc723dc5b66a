"""Hostile and broken records, straight to the topic with a plain producer, mixed with good files.

Afterwards: every good file arrived intact, nothing was written outside the output folder, no bad record
produced a visible file, the downloader still runs, and its counters account for every bad record."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamsend.demo.verify import compare_trees, tree_files
from streamsend.shared import protocol
from streamsend.shared.protocol import FileDigest
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory, produce
from tests.support.records import Chunk, chunks_of
from tests.support.waiting import wait_until

# The downloader judges records by their content alone: the embedded broker is enough to show it.
pytestmark = [pytest.mark.slow, pytest.mark.brokers("tansu")]

MARKER = f"fuzzmark{uuid.uuid4().hex[:6]}"
PER_KIND = 60
HOSTILE_PATHS = [
    f"../{MARKER}", f"../../../../tmp/{MARKER}", f"/tmp/{MARKER}", f"/{MARKER}", f"a/../../{MARKER}",
    f"..\\..\\{MARKER}", f"a\\b\\{MARKER}", f"nul\x00{MARKER}", f"bell\x07{MARKER}", f"new\nline{MARKER}",
    "x" * 300 + MARKER, "/".join(["d"] * 200) + "/" + MARKER, "/".join(["d" * 250] * 14) + MARKER,
    f".streamsend/staging/{MARKER}", f".streamsend/quarantine/{MARKER}", f"ok/.streamsend/{MARKER}",
    "", f"a//{MARKER}", f"{MARKER}/", f"./{MARKER}", f"a/./{MARKER}", f".{MARKER}",
]  # fmt: skip
HOSTILE_UPLOADERS = ["../x", ".streamsend", "a/b", "", "-x", "é", "x" * 65, f"..{MARKER}"]
NUMERIC = [protocol.CHUNK_INDEX, protocol.CHUNK_COUNT, protocol.CHUNK_SIZE, protocol.OFFSET, protocol.FILE_SIZE]
GARBAGE_NUMBERS = [b"abc", b"-1", b"1e3", b"", b"0x10", b" 1", b"1 ", b"+1", b"01", b"9" * 30, b"\xff"]


def _chunk(rng: random.Random, size: int = 3000, chunk_size: int = 1024, **kw: Any) -> list[Chunk]:
    return chunks_of(rng.randbytes(size), chunk_size, uploader="fuzzer", path=f"fuzz/{MARKER}-{uuid.uuid4().hex}", **kw)


def _set(headers: protocol.Headers, name: str, value: bytes) -> protocol.Headers:
    return [(n, value if n == name else v) for n, v in headers]


def _bad_records(rng: random.Random) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Bad records of every kind, with the rejection reason each must be counted under."""
    records: list[dict[str, Any]] = []
    expected: Counter[str] = Counter()

    def add(headers: list[tuple[str, bytes]], value: bytes | None, reason: str, key: bytes | None = b"k") -> None:
        records.append({"value": value, "key": key, "headers": headers, "partition": rng.randrange(6)})
        expected[reason] += 1

    for _ in range(PER_KIND):
        good = rng.choice(_chunk(rng))
        # records of other producers
        add([], rng.randbytes(100), "foreign", key=None)
        add([("traceparent", b"00-1"), ("content-type", b"json")], b"{}", "foreign")
        add(good.headers, None, "malformed")  # no value at all
        # a required header missing, or one repeated
        missing = rng.choice(protocol._REQUIRED)
        add([h for h in good.headers if h[0] != missing], good.value, "malformed")
        add([*good.headers, rng.choice(good.headers)], good.value, "malformed")
        # wrong types and forms of numbers
        add(_set(good.headers, rng.choice(NUMERIC), rng.choice(GARBAGE_NUMBERS)), good.value, "malformed")
        add(_set(good.headers, protocol.MTIME_NS, b"yesterday"), good.value, "malformed")
        add(_set(good.headers, protocol.UPLOAD_ID, rng.choice([b"x", b"A" * 32, b"0" * 31])), good.value, "malformed")
        # versions this downloader does not know
        add(_set(good.headers, protocol.VERSION, rng.choice([b"3", b"99", b"0", b"v1"])), good.value, "version")
        # every form of path traversal, and hostile uploader names
        add(_set(good.headers, protocol.PATH, rng.choice(HOSTILE_PATHS).encode()), good.value, "unsafe_path")
        add(_set(good.headers, protocol.UPLOADER, rng.choice(HOSTILE_UPLOADERS).encode()), good.value, "unsafe_path")
        add(_set(good.headers, protocol.PATH, b"\xff\xfe" + MARKER.encode()), good.value, "malformed")
        # sizes and counts that do not add up
        add(_set(good.headers, protocol.FILE_SIZE, b"-5"), good.value, "malformed")
        add(
            _set(good.headers, protocol.CHUNK_COUNT, str(rng.randrange(10**6, 10**12)).encode()),
            good.value,
            "malformed",
        )
        add(_set(good.headers, protocol.CHUNK_INDEX, str(good.header.count + rng.randrange(5)).encode()), good.value,
            "malformed")  # fmt: skip
        add(good.headers, good.value + rng.randbytes(rng.randrange(1, 50)), "malformed")  # larger than declared
        add(good.headers, good.value[:-1], "malformed")
        # a corrupted chunk
        add(good.headers, bytes([good.value[0] ^ 0xFF]) + good.value[1:], "checksum")
        # a chunk contradicting the upload it claims to belong to
        base = _chunk(rng)
        liar = dataclasses.replace(base[1].header, path=f"elsewhere/{MARKER}-{uuid.uuid4().hex}")
        partition = rng.randrange(6)
        records.append({"value": base[0].value, "key": b"k", "headers": base[0].headers, "partition": partition})
        records.append(
            {"value": base[1].value, "key": b"k", "headers": Chunk(liar, b"").headers, "partition": partition}
        )
        expected["conflict"] += 1
        expected["stale"] += 1  # the base never completes
        # an absurd size: larger than the output filesystem
        huge = 4096 * 2**50 + 10
        absurd = dataclasses.replace(
            good.header, chunk_size=4096, file_size=huge, count=2**50 + 1, index=2**50, offset=4096 * 2**50,
            crc32c=protocol.crc32c(b"0123456789"), digest=FileDigest("0" * 64, "0" * 32),
        )  # fmt: skip
        add(Chunk(absurd, b"").headers, b"0123456789", "too_large")
    # larger than the free disk, but not than the disk: taken chunk by chunk, then dropped as stale
    for _ in range(5):
        first = _chunk(rng, size=1024, chunk_size=1024)[0].header
        declared = os.statvfs("/").f_bavail * os.statvfs("/").f_frsize + 2**30
        value = rng.randbytes(1024)
        header = dataclasses.replace(
            first, file_size=declared, count=-(-declared // 1024), crc32c=protocol.crc32c(value), digest=None
        )
        records.append({"value": value, "key": b"k", "headers": Chunk(header, b"").headers, "partition": 0})
        expected["stale"] += 1
    # chunks of uploads whose first chunk never came
    for _ in range(PER_KIND):
        orphan = rng.choice(_chunk(rng, size=10_000)[1:])
        records.append({"value": orphan.value, "key": b"k", "headers": orphan.headers, "partition": rng.randrange(6)})
        expected["stale"] += 1
    # final chunks whose file digest does not match: quarantined, never published
    for _ in range(PER_KIND // 4):
        chunks = _chunk(
            rng, size=2000, chunk_size=4096, digest=FileDigest(rng.randbytes(32).hex(), rng.randbytes(16).hex())
        )
        records.append(
            {"value": chunks[0].value, "key": b"k", "headers": chunks[0].headers, "partition": rng.randrange(6)}
        )
        expected["quarantined"] += 1
    rng.shuffle(records)
    return records, expected


async def test_a_thousand_bad_records_change_nothing_but_the_counters(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    rng = random.Random(20261124)
    source, target, beside = tmp_path / "in", tmp_path / "work" / "out", tmp_path / "work" / "beside"
    target.mkdir(parents=True)
    beside.mkdir()
    good = {f"good/{i:02d}/file {i}.bin": os.urandom(rng.randrange(0, 300_000)) for i in range(20)}
    for name, data in good.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    bad, expected = _bad_records(rng)
    assert len(bad) >= 1000
    topic = await topics.create()
    async with downloader(broker.bootstrap, topic, target, stale_after=3.0) as down:
        async with uploader(broker.bootstrap, topic, source, chunk_size=64 * 1024):
            for start in range(0, len(bad), 100):  # interleaved with the good files as they go
                await produce(broker.bootstrap, topic, bad[start : start + 100])
                await asyncio.sleep(0.05)
            await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 60, "the good files")
        reasons = ("foreign", "malformed", "version", "unsafe_path", "checksum", "conflict", "too_large")

        def rejected() -> dict[str, float]:
            return {r: down.metric("streamsend_downloader_records_rejected_total", reason=r) for r in reasons}

        await wait_until(lambda: sum(rejected().values()) >= sum(expected[r] for r in reasons), 60, "every record")
        await wait_until(lambda: down.metric("streamsend_downloader_open_assemblies") == 0, 60, "stale uploads to go")
        down.check_alive()
        assert rejected() == {reason: float(expected[reason]) for reason in reasons}
        assert down.metric("streamsend_downloader_files_quarantined_total") == expected["quarantined"]
        assert down.metric("streamsend_downloader_files_failed_total", reason="stale") == expected["stale"]
        assert down.metric("streamsend_downloader_files_verified_total") == len(good)
        # still at work: one more good file goes through
        (source / "after.txt").write_text("still running")
        async with uploader(broker.bootstrap, topic, source, chunk_size=64 * 1024):
            await wait_until(lambda: (target / "edge-1" / "after.txt").exists(), 30, "a file after the storm")
    _nothing_outside(tmp_path, target)
    visible = tree_files(target)
    assert sorted(visible) == sorted([f"edge-1/{name}" for name in good] + ["edge-1/after.txt"])
    for path in tree_files(target, include_hidden=True):
        if MARKER in path:
            assert path.startswith(".streamsend/quarantine/fuzzer/"), path


def _nothing_outside(tmp_path: Path, target: Path) -> None:
    """No file or folder named after the marker anywhere but in the output tree."""
    assert not any(MARKER in str(p) for p in tmp_path.rglob("*") if not p.is_relative_to(target))
    for folder in (Path("/"), Path("/tmp"), tmp_path.parent):
        assert not any(MARKER in entry.name for entry in folder.iterdir())
