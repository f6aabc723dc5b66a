"""Running the real daemons and the baseline as separate processes, and reading their timings and memory.

Times come from the daemons' own log lines (same wall clock, millisecond stamps): a file's transfer starts at
the uploader's ``creating N chunks`` line and ends at the downloader's ``verified`` line. Peak memory is the
process's ``VmHWM`` (peak resident set) from /proc, read just before it is stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamsend.demo.broker import EmbeddedBroker
from streamsend.demo.kafka_broker import ApacheKafka

BenchBroker = EmbeddedBroker | ApacheKafka

BLOCK = 8 * 1024 * 1024
_STAMP = re.compile(r"^\[(\d{8} \d\d:\d\d:\d\d\.\d{3})\] \w+ \[[^\]]*\] (.*)$")


def stamp_of(line: str) -> tuple[float, str] | None:
    match = _STAMP.match(line)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%d %H:%M:%S.%f").timestamp(), match.group(2)


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(BLOCK, max(size, 1)))
    with path.open("wb") as out:
        left = size
        while left > 0:
            # every block differs a little, so that no two chunks are alike
            piece = block[: min(left, len(block))]
            out.write(os.urandom(16) + piece[16:] if len(piece) > 16 else piece)
            left -= len(piece)


class Daemon:
    """One daemon process with its log in a file."""

    def __init__(self, role: str, workdir: Path, env: dict[str, str], args: list[str]) -> None:
        self.role = role
        self.log_path = workdir / f"{role}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamsend", role, *args],
                env={**os.environ, **env}, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def lines(self) -> list[tuple[float, str]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            parsed = stamp_of(line)
            if parsed is not None:
                found.append(parsed)
        return found

    def first(self, needle: str) -> float | None:
        return next((when for when, message in self.lines() if needle in message), None)

    def count(self, needle: str) -> int:
        return sum(needle in message for _, message in self.lines())

    def wait_for(self, needle: str, timeout_s: float, times: int = 1) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(needle) < times:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.role} exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise TimeoutError(f"{self.role}: no {needle!r} after {timeout_s:.0f} s; its log ends:\n{tail}")
            time.sleep(0.02)

    def stop(self) -> int:
        """Peak RSS in bytes, read before stopping it with SIGTERM."""
        peak = peak_rss(self.process.pid) if self.process.poll() is None else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return peak


@dataclass
class Bench:
    """A broker for the whole run, and fresh topics, folders and daemons for each measurement."""

    broker: BenchBroker
    root: Path

    @property
    def has_transactions(self) -> bool:
        return isinstance(self.broker, ApacheKafka)

    def topic(self, partitions: int = 6, max_message_bytes: int | None = None) -> str:
        name = f"bench-{time.time_ns()}"
        configs = {} if max_message_bytes is None else {"max.message.bytes": str(max_message_bytes)}
        asyncio.run(_admin(self.broker.bootstrap, create=[NewTopic(name, partitions, 1, topic_configs=configs)]))
        return name

    def drop(self, *topics: str) -> None:
        """Delete topics: Tansu keeps everything in memory, Kafka on the disk the measurements use."""
        asyncio.run(_admin(self.broker.bootstrap, delete=list(topics)))

    @contextmanager
    def workdir(self) -> Iterator[Path]:
        """A folder for one measurement. It is kept until the whole run ends: deleting thousands of files
        makes some filesystems (those mounted with discard) slow for a while, and the next measurement would
        pay for this one's cleanup."""
        yield Path(tempfile.mkdtemp(dir=self.root))

    def env(self, topic: str, **settings: object) -> dict[str, str]:
        values: dict[str, object] = {
            "bootstrap_servers": self.broker.bootstrap,
            "topic": topic,
            "state_topic": f"{topic}-state",
            "uploader_name": "bench",
            "min_file_age": 0.5,
            "session_timeout": 2,
            "heartbeat_interval": 0.5,
            "group_id": f"{topic}-group",
        }
        values.update(settings)
        return {f"STREAMSEND_{key.upper()}": str(value) for key, value in values.items()}

    def downloader(self, work: Path, topic: str, **settings: object) -> Daemon:
        out = work / "out"
        out.mkdir(exist_ok=True)
        daemon = Daemon("downloader", work, self.env(topic, output_dir=out, **settings), [])
        daemon.wait_for("Partitions assigned: 0", 60)
        return daemon

    def uploader(self, work: Path, topic: str, **settings: object) -> Daemon:
        return Daemon("uploader", work, self.env(topic, input_dir=work / "in", **settings), [])

    def baseline(self, records: int, size: int, partitions: int = 6) -> float:
        """Seconds from the producer's first send to the consumer's last record."""
        topic = self.topic(partitions)
        try:
            command = [sys.executable, "-m", "bench.baseline"]
            consumer = subprocess.Popen(
                [*command, "consume", self.broker.bootstrap, topic, str(records), str(partitions)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert consumer.stdout is not None
            consumer.stdout.readline()  # ready
            produced = subprocess.run(
                [*command, "produce", self.broker.bootstrap, topic, str(records), str(size), "spread"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            consumed = json.loads(consumer.stdout.read().strip().splitlines()[-1])
            consumer.wait(timeout=60)
            return float(consumed["finished"]) - float(json.loads(produced.stdout.strip().splitlines()[-1])["started"])
        finally:
            self.drop(topic)


async def _admin(bootstrap: str, create: list[NewTopic] | None = None, delete: list[str] | None = None) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics(create)
        if delete:
            await admin.delete_topics(delete)
    finally:
        await admin.close()
