"""``streamsend demo``: an embedded broker, a real uploader and a real downloader (as child processes,
started the way users start them), a generated sample tree, and a byte-for-byte check of the mirror."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ByteSize, TypeAdapter, ValidationError

from streamsend.demo.broker import EmbeddedBroker
from streamsend.demo.kafka_broker import ApacheKafka, kafka_version
from streamsend.demo.sample import sample_plan, write_sample
from streamsend.demo.verify import compare_trees, tree_files
from streamsend.shared import lifecycle, logs
from streamsend.shared.admin import Admin
from streamsend.shared.errors import BrokerError
from streamsend.shared.retry import Outage
from streamsend.shared.settings import CommonSettings
from streamsend.uploader.planner import KAFKA_DEFAULT_MAX_MESSAGE_BYTES, choose_chunk_size

log = logging.getLogger("streamsend.demo")

UPLOADER_NAME = "edge-1"
TOPIC = "file-chunk-topic"


def _size(text: str) -> int:
    try:
        return int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 300MB, 1GiB)") from None


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="streamsend demo",
        description="Stream a generated sample tree through an embedded broker and verify the mirror.",
    )
    parser.add_argument("--big-file", type=_size, default=_size("300MB"), help="size of the big file (300MB)")
    parser.add_argument("--keep", type=Path, help="keep the input and output trees in this (new) folder")
    parser.add_argument(
        "--broker", choices=("tansu", "kafka"), default="tansu",
        help="embedded Tansu (default), or Apache Kafka (needs Java; scripts/install-kafka fetches it)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the mirror (600)")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    logs.configure("INFO", "text")
    return lifecycle.run(functools.partial(run, args), grace_s=10)


async def run(args: argparse.Namespace, stop: asyncio.Event) -> None:
    logs.set_worker("stms-demo")
    if args.keep is not None and args.keep.exists():
        raise SystemExit(f"streamsend demo: --keep {args.keep} exists already")
    work = Path(tempfile.mkdtemp(prefix="streamsend-demo-")) if args.keep is None else args.keep
    try:
        with EmbeddedBroker() if args.broker == "tansu" else ApacheKafka() as broker:
            if isinstance(broker, ApacheKafka):
                log.info("Apache Kafka %s (KRaft) listening on %s", kafka_version(), broker.bootstrap)
            else:
                log.info("Embedded broker (Tansu) listening on %s", broker.bootstrap)
            ok = await Demo(broker.bootstrap, work, args).run(stop)
    except BrokerError as exc:
        log.error("%s", exc)
        ok = False
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log.info("Trees kept in %s", work)
    if not ok:
        raise SystemExit(1)


class Demo:
    def __init__(self, bootstrap: str, work: Path, args: argparse.Namespace) -> None:
        self.bootstrap = bootstrap
        self.input = work / "outbox"
        self.output = work / "inbox"
        self.args = args

    async def run(self, stop: asyncio.Event) -> bool:
        self.input.mkdir(parents=True)
        self.output.mkdir(parents=True)
        # The topic is made with Kafka's default message limit written out, so the uploader reads it back.
        settings = CommonSettings(bootstrap_servers=self.bootstrap)
        async with Admin(settings, "demo", Outage("Kafka")) as admin:
            await admin.ensure_topic(TOPIC, 6, {"max.message.bytes": str(KAFKA_DEFAULT_MAX_MESSAGE_BYTES)})
        chunk_size = choose_chunk_size(0, KAFKA_DEFAULT_MAX_MESSAGE_BYTES, None).chunk_size
        plan = sample_plan(chunk_size, self.args.big_file)
        started = time.monotonic()
        await asyncio.to_thread(write_sample, self.input, plan)
        total = sum(item.size for item in plan if not item.hidden)
        log.info(
            "Sample tree written to %s: %d files to send (%d bytes), %d hidden ones that must not arrive, in %.1f s",
            self.input, sum(not item.hidden for item in plan), total, sum(item.hidden for item in plan),
            time.monotonic() - started,
        )  # fmt: skip
        downloader = await self._spawn("downloader", "--output-dir", str(self.output))
        uploader = await self._spawn("uploader", "--input-dir", str(self.input))
        try:
            started = time.monotonic()
            arrived = await self._wait_for_mirror(stop)
            elapsed = time.monotonic() - started
        finally:
            codes = await self._stop(uploader, downloader)
        return self._report(arrived, elapsed, total, codes)

    async def _spawn(self, role: str, *args: str) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env.update(
            STREAMSEND_BOOTSTRAP_SERVERS=self.bootstrap,
            STREAMSEND_TOPIC=TOPIC,
            STREAMSEND_UPLOADER_NAME=UPLOADER_NAME,
            STREAMSEND_MIN_FILE_AGE="1",
            STREAMSEND_SESSION_TIMEOUT="2",
            STREAMSEND_HEARTBEAT_INTERVAL="0.5",
            STREAMSEND_MIN_FREE_SPACE="0",
        )
        command = [sys.executable, "-m", "streamsend", role, *args]
        log.info("Starting: %s", " ".join(command[1:]))
        return await asyncio.create_subprocess_exec(*command, env=env, stdin=asyncio.subprocess.DEVNULL)

    async def _wait_for_mirror(self, stop: asyncio.Event) -> bool:
        """Until every file is at the target with its size (the full byte check follows)."""
        expected = {name: path.stat().st_size for name, path in tree_files(self.input).items()}
        mirror = self.output / UPLOADER_NAME
        deadline = time.monotonic() + self.args.timeout
        reported = 0.0
        while not stop.is_set() and time.monotonic() < deadline:
            present = await asyncio.to_thread(tree_files, mirror)
            done = sum(1 for name, size in expected.items() if name in present and present[name].stat().st_size == size)
            if done == len(expected):
                return True
            if time.monotonic() - reported >= 5:
                log.info("%d of %d files verified at the target so far", done, len(expected))
                reported = time.monotonic()
            await lifecycle.sleep_or_stop(0.2, stop)
        return False

    async def _stop(self, *processes: asyncio.subprocess.Process) -> list[int]:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in processes:
            try:
                codes.append(await asyncio.wait_for(process.wait(), 30))
            except TimeoutError:
                process.kill()
                codes.append(await process.wait())
        return codes

    def _report(self, arrived: bool, elapsed: float, total: int, codes: list[int]) -> bool:
        comparison = compare_trees(self.input, self.output / UPLOADER_NAME)
        hidden_leaked = [
            name for name in tree_files(self.output / UPLOADER_NAME, include_hidden=True) if "/." in f"/{name}"
        ]
        ok = arrived and comparison.identical and not hidden_leaked and codes == [0, 0]
        print(
            f"""
Streamsend demo
  files sent and verified byte for byte : {len(comparison.same)}
  missing / different / unexpected      : {len(comparison.missing)} / {len(comparison.different)} / {
                len(comparison.extra)
            }
  hidden files that arrived             : {len(hidden_leaked)} (must be 0)
  bytes                                 : {total}
  time from start to verified mirror    : {elapsed:.1f} s ({total / max(elapsed, 1e-9) / 1e6:.1f} MB/s)
  exit codes after SIGTERM (up, down)   : {codes[0]}, {codes[1]}
  result                                : {"OK" if ok else "FAILED"}
""",
            flush=True,
        )
        for name in comparison.missing + comparison.different + comparison.extra + hidden_leaked:
            log.error("Not as expected: %s", name)
        return ok
