"""``python -m bench``: every measurement, each next to its baseline, in one run.

Writes bench/results/<date>.md (also printed) and bench/results/<date>.png.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench import scenarios
from bench.harness import Bench, BenchBroker
from bench.report import chart, render
from streamsend.demo.broker import EmbeddedBroker
from streamsend.demo.kafka_broker import ApacheKafka, kafka_version

MB = scenarios.MB
LARGEST_LIMIT = 32 * 1024 * 1024  # the most this broker takes in one record


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--only", default="throughput,memory,small,latency,chunks,sealed", help="comma-separated parts")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--broker", choices=("tansu", "kafka"), default="tansu",
        help="tansu: the embedded broker, in memory; kafka: Apache Kafka (scripts/install-kafka), on disk",
    )  # fmt: skip
    args = parser.parse_args()
    parts = set(args.only.split(","))
    smoke = args.smoke
    reps = 1 if smoke else args.repetitions

    started = time.monotonic()
    args.results.mkdir(parents=True, exist_ok=True)
    # every measurement's files are kept until the run ends (see Bench.workdir): a source and one copy a repetition
    copies = {"throughput": 1256 * (1 + reps), "memory": 5064 * (1 + reps), "chunks": 512 * (1 + 4 * reps),
              "sealed": 1000 * (1 + 2 * reps) + 80 * reps}  # fmt: skip
    needed = 0 if smoke else 1.1 * MB * (100 + sum(size for part, size in copies.items() if part in parts))
    free = shutil.disk_usage("/var/tmp").free
    if free < needed:
        parser.exit(2, f"python -m bench: needs about {needed / 1e9:.0f} GB free in /var/tmp, has {free / 1e9:.0f}\n")
    with (
        _broker(args.broker) as broker,
        tempfile.TemporaryDirectory(prefix="streamsend-bench-", dir="/var/tmp") as root,
    ):
        bench = Bench(broker, Path(root))
        throughput = (
            scenarios.throughput(bench, [8 * MB] if smoke else [256 * MB, 1000 * MB], reps)
            if "throughput" in parts
            else []
        )
        memory = (
            scenarios.memory(bench, [4 * MB, 8 * MB] if smoke else [64 * MB, 1000 * MB, 4000 * MB], reps)
            if "memory" in parts
            else []
        )
        small = scenarios.small_files(bench, 200 if smoke else 10_000, 4096, 100, reps) if "small" in parts else None
        latency = scenarios.latency(bench, 3 if smoke else 50, 1 * MB, reps) if "latency" in parts else None
        sweep = (
            scenarios.chunk_sizes(bench, 8 * MB if smoke else 512 * MB, reps, LARGEST_LIMIT)
            if "chunks" in parts
            else []
        )
        sealed = (
            scenarios.sealed(bench, 8 * MB if smoke else 1000 * MB, 200 if smoke else 10_000, reps)
            if "sealed" in parts
            else None
        )
    stamp = time.strftime("%Y-%m-%d-%H%M")
    settings = [
        f"- broker: {_describe(broker)} on loopback",
        "- daemons: default settings, except min_file_age 0.5 s and a 2 s consumer session (quick group joins); "
        "topic of 6 partitions; fsync policy batch",
        f"- total run time {time.monotonic() - started:.0f} s"
        + (" (smoke run: sizes too small to mean anything)" if smoke else ""),
    ]
    report = render(f"Streamsend benchmark, {stamp}", settings, throughput, memory, small, latency, sweep, reps, sealed)
    name = f"{stamp}-{args.broker}" + ("-smoke" if smoke else "")
    (args.results / f"{name}.md").write_text(report + f"\n![chart]({name}.png)\n")
    chart(args.results / f"{name}.png", throughput, memory, sweep)
    print(report)
    print(f"\nwritten: {args.results / (name + '.md')} and .png")


def _broker(kind: str) -> BenchBroker:
    # Kafka's own defaults but for quick group joins: durability by replication, page cache, no fsync per write
    return ApacheKafka() if kind == "kafka" else EmbeddedBroker()


def _describe(broker: BenchBroker) -> str:
    if isinstance(broker, ApacheKafka):
        return f"Apache Kafka {kafka_version()} (one KRaft node, logs on disk, started in {broker.startup_s:.1f} s)"
    return "Tansu (memory storage)"


if __name__ == "__main__":
    main()
