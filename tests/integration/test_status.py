"""The live view: ``GET /status`` during a real transfer, ``streamsend status`` in a terminal, and the page on
``/`` rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import asyncio
import html.parser
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from streamsend.demo.broker import free_port
from streamsend.demo.verify import file_sha256
from streamsend.shared.protocol import FileDigest
from tests.support.brokers import Broker
from tests.support.daemons import Running, downloader, uploader
from tests.support.http import answered, get
from tests.support.kafka import TopicFactory, produce
from tests.support.records import chunks_of
from tests.support.waiting import wait_until

ENDPOINT = {"metrics_host": "127.0.0.1"}


async def status(port: int) -> dict[str, Any]:
    await answered(port, "/healthz", 200)  # listening
    code, body = await get(port, "/status")
    assert code == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


def _entry(entries: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    return next((entry for entry in entries if entry["path"] == path), None)


async def test_status_follows_a_big_file_and_shows_a_quarantined_one(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    (source / "video").mkdir(parents=True)
    target.mkdir()
    with (source / "video" / "big.bin").open("wb") as out:
        for _ in range(300):
            out.write(os.urandom(1_000_000))
    topic = await topics.create()
    down_port, up_port = free_port(), free_port()
    seen: list[int] = []
    async with (
        downloader(broker.bootstrap, topic, target, metrics_port=down_port, **ENDPOINT),
        uploader(broker.bootstrap, topic, source, metrics_port=up_port, **ENDPOINT),
    ):

        async def completed() -> bool:
            document = await status(down_port)
            moving = _entry(document["in_flight"], "edge-1/video/big.bin")
            if moving is not None and moving["done"] > (seen[-1] if seen else 0):
                assert moving["size"] == 300_000_000 and moving["rate"] > 0
                seen.append(moving["done"])
            return _entry(document["completed"], "edge-1/video/big.bin") is not None

        await wait_until(completed, 120, "the file in the completed list", interval_s=0.02)
        assert len(seen) >= 2 and seen == sorted(seen), seen  # in flight, with bytes growing
        done = _entry((await status(down_port))["completed"], "edge-1/video/big.bin")
        assert done is not None and done["sha256"] == file_sha256(source / "video" / "big.bin")
        assert done["size"] == 300_000_000 and done["seconds"] > 0
        sent = _entry((await status(up_port))["completed"], "video/big.bin")
        assert sent is not None and sent["sha256"] == done["sha256"]

        forged = chunks_of(b"not what was signed" * 100, 4096, path="forged.bin",
                           digest=FileDigest("0" * 64, "0" * 32))  # fmt: skip
        await produce(broker.bootstrap, topic, [
            {"value": c.value, "key": b"k", "headers": c.headers, "partition": 0} for c in forged
        ])  # fmt: skip

        async def quarantined() -> bool:
            return _entry((await status(down_port))["failed"], "edge-1/forged.bin") is not None

        await wait_until(quarantined, 60, "the forged file among the failures")
        failure = _entry((await status(down_port))["failed"], "edge-1/forged.bin")
        assert failure is not None and failure["reason"].startswith("quarantined: verification failed: sha256 ")
        document = await status(down_port)
        assert document["role"] == "downloader" and document["kafka"]["connected"]
        assert document["kafka"]["lag"] and all(lag >= 0 for lag in document["kafka"]["lag"].values())


@asynccontextmanager
async def _stuck_transfer(broker: Broker, topics: TopicFactory, tmp_path: Path) -> AsyncIterator[int]:
    """A downloader holding one upload half-way (its second chunk never comes), one file done and one
    quarantined: a view that stays as it is while a browser or the terminal looks."""
    target = tmp_path / "out"
    target.mkdir()
    topic = await topics.create()
    port = free_port()
    half = chunks_of(os.urandom(8192), 4096, path="shop/stuck.bin")[:1]
    whole = chunks_of(b"receipt\n" * 100, 4096, path="shop/receipt.txt")
    forged = chunks_of(b"forged" * 100, 4096, path="shop/forged.pdf", digest=FileDigest("0" * 64, "0" * 32))
    async with downloader(broker.bootstrap, topic, target, metrics_port=port, **ENDPOINT) as down:
        await produce(broker.bootstrap, topic, [
            {"value": c.value, "key": b"k", "headers": c.headers, "partition": 0} for c in [*half, *whole, *forged]
        ])  # fmt: skip

        async def settled() -> bool:
            document = await status(port)
            return bool(document["in_flight"] and document["completed"] and document["failed"])

        await wait_until(settled, 60, "one file in flight, one done, one failed")
        yield port
        _alive(down)


def _alive(running: Running) -> None:
    running.check_alive()


async def test_streamsend_status_prints_the_file_in_flight(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    async with _stuck_transfer(broker, topics, tmp_path) as port:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamsend", "status", "--url", f"http://127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode()
    assert process.returncode == 0, err.decode()
    assert "Streamsend downloader" in text and "Kafka connected" in text
    assert "edge-1/shop/stuck.bin" in text and "[############............]  50%" in text
    assert "edge-1/shop/receipt.txt" in text
    assert "edge-1/shop/forged.pdf: quarantined: verification failed" in text


async def test_streamsend_status_watch_refreshes_until_interrupted(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    async with _stuck_transfer(broker, topics, tmp_path) as port:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamsend", "status", "--url", f"http://127.0.0.1:{port}", "--watch",
            "--interval", "0.2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        seen = b""
        while seen.count(b"IN FLIGHT (1)") < 3:
            seen += await asyncio.wait_for(process.stdout.read(4096), 60)
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert seen.decode().count("edge-1/shop/stuck.bin") >= 3


async def test_streamsend_status_says_when_nothing_answers(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamsend", "status", "--url", f"http://127.0.0.1:{free_port()}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "streamsend status: no answer from http://127.0.0.1:" in err.decode()


class _Dom(html.parser.HTMLParser):
    """The rows the page rendered: their class and data attributes, and the bar widths in them."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.widths: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "tr" and "class" in values:
            self.rows.append(values)
        if tag == "div" and "width:" in values.get("style", ""):
            self.widths.append(values["style"])

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=5000", "--window-size=1200,800",
]  # fmt: skip


async def _chromium(*args: str, profile: Path) -> str:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed: scripts/install-tools installs it (as root, on Debian)")
    process = await asyncio.create_subprocess_exec(
        browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-3000:]
    return out.decode()


async def test_a_browser_renders_the_live_page(broker: Broker, topics: TopicFactory, tmp_path: Path) -> None:
    async with _stuck_transfer(broker, topics, tmp_path) as port:
        url = f"http://127.0.0.1:{port}/"
        dom = await _chromium("--dump-dom", url, profile=tmp_path / "profile")
        screenshot = tmp_path / "status.png"
        await _chromium(f"--screenshot={screenshot}", url, profile=tmp_path / "profile-2")
    parsed = _Dom()
    parsed.feed(dom)
    moving = [row for row in parsed.rows if row["class"] == "transfer"]
    assert [(row["data-path"], row["data-done"], row["data-size"]) for row in moving] == [
        ("edge-1/shop/stuck.bin", "4096", "8192")
    ]
    assert "width: 50%;" in parsed.widths  # the bar, as the browser normalised its style
    done = [row["data-path"] for row in parsed.rows if row["class"] == "done"]
    failed = [row["data-path"] for row in parsed.rows if row["class"] == "failure"]
    assert done == ["edge-1/shop/receipt.txt"] and failed == ["edge-1/shop/forged.pdf"]
    assert f"connected at {broker.bootstrap}" in parsed.texts  # and the broker's address
    assert screenshot.stat().st_size > 10_000
