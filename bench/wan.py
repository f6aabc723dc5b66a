"""``python -m bench.wan``: one large file across a long, thin link (streamsend.demo.relay), the uploader across it
and then the downloader across it, on both brokers, next to baselines measured through the same link in the same
run: one plain TCP stream (the link's limit) and a plain aiokafka producer and consumer.

- Uploader across the link: from its first chunk handed to Kafka to its last one acknowledged (the log lines
  "creating N chunks" and "Successfully processed"): the time the site's link is busy.
- Downloader across the link: the file already on the topic, from its first chunk received to the file verified
  and published.
- Apache Kafka runs with its default limits (1 MiB records) and a second listener advertised at the relay, so the
  daemon measured is across the link and the other is not (streamsend.demo.far); Tansu advertises one address, so
  both of its daemons go through the relay.

Writes bench/results/<date>-wan.md (also printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Bench, write_random
from bench.report import machine
from streamsend.demo.broker import free_port
from streamsend.demo.far import FarBroker, far_broker
from streamsend.demo.kafka_broker import kafka_version
from streamsend.demo.relay import Link, Relay, stream_through

MB = 1_000_000
RECORD = 1_000_000  # the plain clients' records: under Kafka's default 1 MiB limit with their overhead
LINKS = [Link(0.05, 25e6), Link(0.1, 6.25e6), Link(0.2, 2.5e6), Link(0.02, 125e6)]


@dataclass
class Row:
    broker: str
    link: Link
    size: int
    tcp_s: float
    producer_s: float
    uploader_s: float
    consumer_s: float
    downloader_s: float
    uploader_rss: int
    downloader_rss: int
    max_produce_in_flight: int

    def line(self) -> str:
        def rate(seconds: float) -> str:
            return f"{self.size / seconds / 1e6:.2f} ({self.tcp_s / seconds:.2f})"

        return (
            f"| {self.broker} | {self.link.describe()} | {self.size / MB:.0f} MB | "
            f"{self.size / self.tcp_s / 1e6:.2f} | "
            f"{rate(self.producer_s)} | {rate(self.uploader_s)} | {self.max_produce_in_flight} | "
            f"{rate(self.consumer_s)} | {rate(self.downloader_s)} | "
            f"{self.uploader_rss / 1e6:.0f} / {self.downloader_rss / 1e6:.0f} MB |"
        )


def _baseline(*arguments: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.baseline", *arguments], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(kind: str, link: Link, seconds: float, root: Path) -> Row:
    size = int(min(link.rate_bytes_s or 125e6, 125e6) * seconds) // RECORD * RECORD
    with Relay(free_port(), free_port(), link=link) as line:
        tcp_s = stream_through(line, size)
    with far_broker(kind, link) as far:
        bench = Bench(far.broker, root)
        plain = bench.topic(partitions=6)
        records = size // RECORD
        produced = _baseline("produce", far.far, plain, str(records), str(RECORD), "0")
        consumed = _baseline("consume", far.far, plain, str(records), "6")
        bench.drop(plain)
        uploader_s, uploader_rss, in_flight, topic = _upload(bench, far, size)
        downloader_s, downloader_rss = _download(bench, far, topic)
    return Row(
        broker=kind,
        link=link,
        size=size,
        tcp_s=tcp_s,
        producer_s=produced["finished"] - produced["started"],
        uploader_s=uploader_s,
        consumer_s=consumed["finished"] - consumed["first"],
        downloader_s=downloader_s,
        uploader_rss=uploader_rss,
        downloader_rss=downloader_rss,
        max_produce_in_flight=in_flight,
    )


def _upload(bench: Bench, far: FarBroker, size: int) -> tuple[float, int, int, str]:
    topic = bench.topic(partitions=6)
    with bench.workdir() as work:
        (work / "in").mkdir()
        write_random(work / "in" / "big.bin", size)
        far.relay.stats.max_produce_in_flight = 0
        uploader = bench.uploader(work, topic, bootstrap_servers=far.far)
        try:
            uploader.wait_for("big.bin: Successfully processed", 600)
        finally:
            rss = uploader.stop()
        began, ended = uploader.first("big.bin: "), uploader.first("big.bin: Successfully processed")
        assert began is not None and ended is not None
    return ended - began, rss, far.relay.stats.max_produce_in_flight, topic


def _download(bench: Bench, far: FarBroker, topic: str) -> tuple[float, int]:
    with bench.workdir() as work:
        # the group's default timeouts: heartbeats cross the same thin link as the fetches
        downloader = bench.downloader(work, topic, bootstrap_servers=far.far, session_timeout=10, heartbeat_interval=3)
        try:
            downloader.wait_for("verified", 600)
        finally:
            rss = downloader.stop()
        began, ended = downloader.first("big.bin ("), downloader.first("verified")
        assert began is not None and ended is not None
    bench.drop(topic, f"{topic}-state")
    return ended - began, rss


SMALL_FILES, SMALL_SIZE = 10_000, 4096
SMALL_LINK = Link(0.05, 25e6)


def small_files(kind: str, root: Path) -> str:
    """10,000 files of 4 KB from a site 50 ms away: the uploader across the link, the downloader beside the
    broker (on Tansu, through the relay too); from the first file handed to Kafka to the last one verified."""
    with far_broker(kind, SMALL_LINK) as far:
        bench = Bench(far.broker, root)
        topic = bench.topic(partitions=6)
        with bench.workdir() as work:
            for index in range(SMALL_FILES):
                path = work / "in" / f"folder-{index % 100:03d}" / f"file-{index:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(os.urandom(SMALL_SIZE))
            down = bench.downloader(work, topic, bootstrap_servers=far.near)
            up = bench.uploader(work, topic, bootstrap_servers=far.far)
            try:
                down.wait_for("verified", timeout_s=600, times=SMALL_FILES)
                started = min(when for when, message in up.lines() if "bytes, creating" in message)
                finished = max(when for when, message in down.lines() if " verified" in message)
            finally:
                up_rss, down_rss = up.stop(), down.stop()
        bench.drop(topic, f"{topic}-state")
    seconds = finished - started
    return (
        f"| {kind} | {SMALL_LINK.describe()} | {SMALL_FILES} x {SMALL_SIZE} B | {seconds:.1f} s |"
        f" {SMALL_FILES / seconds:.0f} | {up_rss / 1e6:.0f} / {down_rss / 1e6:.0f} MB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wan", description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="size each file to take about this long")
    parser.add_argument("--brokers", default="tansu,kafka", help="comma-separated: tansu, kafka")
    parser.add_argument("--parts", default="large,small", help="comma-separated: large, small")
    parser.add_argument(
        "--links", default="", help="comma-separated round trips in ms to measure (default: all four links)"
    )
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    parts = args.parts.split(",")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="streamsend-wan-", dir="/var/tmp") as root:
        rows, small = [], []
        for kind in args.brokers.split(","):
            chosen = [link for link in LINKS if not args.links or f"{link.rtt_s * 1000:g}" in args.links.split(",")]
            for link in chosen if "large" in parts else []:
                rows.append(measure(kind, link, args.seconds, Path(root)))
                print(rows[-1].line(), flush=True)
            if "small" in parts:
                small.append(small_files(kind, Path(root)))
                print(small[-1], flush=True)
    stamp = time.strftime("%Y-%m-%d-%H%M")
    lines = [
        f"# Streamsend across a long, thin link, {stamp}",
        "",
        *machine(),
        f"- brokers: Tansu (memory storage); Apache Kafka {kafka_version()} (one KRaft node, default limits)",
        "- the relay delays each direction by half the round trip and caps each direction's rate across all",
        "  connections; both daemons with default settings",
        f"- total run time {time.monotonic() - started:.0f} s",
        "",
        "MB/s of file data; in brackets, the share of one plain TCP stream through the same link. The plain",
        "producer sends 1 MB records to one partition and awaits up to 64 at once; the plain consumer fetches",
        "up to 16 MiB at once.",
        "",
        "| broker | link | file | TCP stream | aiokafka producer | streamsend uploader | produce requests in"
        " flight, at most | aiokafka consumer | streamsend downloader | peak RSS, uploader / downloader |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(row.line() for row in rows),
        "",
        "Many small files from a site 50 ms away (the uploader across the link):",
        "",
        "| broker | link | files | first sent to last verified | files/s | peak RSS, uploader / downloader |",
        "|---|---|---|---|---|---|",
        *small,
    ]
    report = "\n".join(lines) + "\n"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{stamp}-wan.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
