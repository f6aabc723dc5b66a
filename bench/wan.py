"""``python -m bench.wan``: one large file from a site across a long, thin link (streamsend.demo.relay) to the
embedded broker, next to two baselines measured through the same link in the same run: one plain TCP stream (the
link's limit) and one plain aiokafka producer sending 1 MiB records to one partition (what the client library gives).

The uploader is measured alone, from its first chunk handed to Kafka to its last one acknowledged (the log lines
"creating N chunks" and "Successfully processed"): the time the site's link is busy. Every connection, the
bootstrap and the metadata included, goes through the relay: the broker advertises it.

Writes bench/results/<date>-wan.md (also printed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Bench, peak_rss, write_random
from bench.report import machine
from streamsend.demo.broker import EmbeddedBroker, free_port
from streamsend.demo.relay import Link, Relay, stream_through

MB = 1_000_000
LINKS = [Link(0.05, 25e6), Link(0.1, 6.25e6), Link(0.2, 2.5e6), Link(0.02, 125e6)]


@dataclass
class Row:
    link: Link
    size: int
    tcp_s: float
    producer_s: float
    uploader_s: float
    uploader_rss: int
    max_produce_in_flight: int

    def line(self) -> str:
        def rate(seconds: float) -> str:
            return f"{self.size / seconds / 1e6:.2f}"

        return (
            f"| {self.link.describe()} | {self.size / MB:.0f} MB | {rate(self.tcp_s)} | {rate(self.producer_s)} "
            f"({self.tcp_s / self.producer_s:.2f}) | {rate(self.uploader_s)} ({self.tcp_s / self.uploader_s:.2f}) | "
            f"{self.max_produce_in_flight} | {self.uploader_rss / 1e6:.0f} MB |"
        )


def measure(link: Link, seconds: float, root: Path) -> Row:
    size = int(min(link.rate_bytes_s or 125e6, 125e6) * seconds)
    with Relay(free_port(), free_port(), link=link) as line:
        tcp_s = stream_through(line, size)
    relay_port = free_port()
    with EmbeddedBroker(advertised_port=relay_port) as broker, Relay(relay_port, broker.port, link=link) as relay:
        bench = Bench(broker, root)
        topic = bench.topic(partitions=6)
        produced = subprocess.run(
            [sys.executable, "-m", "bench.baseline", "produce", relay.address, topic, str(size // (1 << 20)),
             str(1 << 20), "0"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        times = json.loads(produced.stdout.strip().splitlines()[-1])
        producer_s = (float(times["finished"]) - float(times["started"])) * size / ((size // (1 << 20)) << 20)
        with bench.workdir() as work:
            (work / "in").mkdir()
            write_random(work / "in" / "big.bin", size)
            relay.stats.max_produce_in_flight = 0
            uploader = bench.uploader(work, topic, bootstrap_servers=relay.address)
            try:
                uploader.wait_for("big.bin: Successfully processed", 30 * seconds + 120)
                rss = peak_rss(uploader.process.pid)
            finally:
                uploader.stop()
            began, ended = uploader.first("big.bin: "), uploader.first("big.bin: Successfully processed")
            assert began is not None and ended is not None
        return Row(link, size, tcp_s, producer_s, ended - began, rss, relay.stats.max_produce_in_flight)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wan", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="size each file to take about this long")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="streamsend-wan-", dir="/var/tmp") as root:
        rows = [measure(link, args.seconds, Path(root)) for link in LINKS]
    stamp = time.strftime("%Y-%m-%d-%H%M")
    lines = [
        f"# Streamsend across a long, thin link, {stamp}",
        "",
        *machine(),
        "- broker: Tansu (memory storage) behind the relay, which delays each direction by half the round trip and",
        "  caps each direction's rate across all connections; the uploader with default settings",
        f"- total run time {time.monotonic() - started:.0f} s",
        "",
        "MB/s of file data; in brackets, the share of one plain TCP stream through the same link.",
        "",
        "| link | file | TCP stream | aiokafka producer, 1 MiB records | streamsend uploader | produce requests in "
        "flight, at most | uploader peak RSS |",
        "|---|---|---|---|---|---|---|",
        *(row.line() for row in rows),
    ]
    report = "\n".join(lines) + "\n"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{stamp}-wan.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
