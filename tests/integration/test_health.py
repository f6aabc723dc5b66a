"""``/metrics``, ``/healthz`` and ``/readyz`` of both daemons, scraped during a real transfer."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from streamsend.demo.broker import EmbeddedBroker, free_port
from streamsend.demo.relay import Relay
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.http import answered, get
from tests.support.kafka import TopicFactory
from tests.support.waiting import wait_until


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_move_while_a_file_streams(broker: Broker, topics: TopicFactory, tmp_path: Path) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    with (source / "big.bin").open("wb") as out:
        for _ in range(100):
            out.write(os.urandom(1_000_000))
    (source / "notes.txt").write_text("small")
    topic = await topics.create()
    up_port, down_port = free_port(), free_port()
    endpoint = {"metrics_host": "127.0.0.1"}
    async with (
        downloader(broker.bootstrap, topic, target, metrics_port=down_port, **endpoint),
        uploader(broker.bootstrap, topic, source, metrics_port=up_port, producers=1, **endpoint),
    ):
        for port in (up_port, down_port):
            await answered(port, "/healthz", 200)
        sent: list[float] = []
        deadline = asyncio.get_running_loop().time() + 120
        while (not sent or sent[-1] < 100_000_005) and asyncio.get_running_loop().time() < deadline:
            _, text = await get(up_port, "/metrics")
            sent.append(sample(text, "streamsend_uploader_sent_bytes_total"))
            await asyncio.sleep(0.02)
        assert len({value for value in sent if 0 < value < 100_000_005}) >= 2, sent  # seen moving mid-transfer
        await wait_until(lambda: (target / "edge-1" / "big.bin").exists(), 60, "the file")
        await asyncio.sleep(0.5)
        _, up = await get(up_port, "/metrics")
        _, down = await get(down_port, "/metrics")
        for port in (up_port, down_port):
            assert await get(port, "/healthz") == (200, "ok\n")
            assert await get(port, "/readyz") == (200, "ready\n")
        assert (await get(up_port, "/nothing"))[0] == 404
    assert sample(up, "streamsend_uploader_files_sent_total") == 2
    assert sample(up, "streamsend_uploader_sent_bytes_total") == 100_000_005
    assert sample(up, "streamsend_uploader_chunks_sent_total") == 98
    assert sample(up, "streamsend_uploader_chunk_size_bytes") == 1040384
    assert sample(up, "streamsend_uploader_in_flight_bytes") == 0
    assert sample(up, "streamsend_uploader_kafka_up") == 1
    assert sample(up, "streamsend_uploader_last_success_timestamp_seconds") > 0
    assert sample(up, "streamsend_info", '{role="uploader",version="0.1.0"}') == 1
    assert sample(down, "streamsend_downloader_files_verified_total") == 2
    assert sample(down, "streamsend_downloader_received_bytes_total") == 100_000_005
    assert sample(down, "streamsend_downloader_open_assemblies") == 0
    assert sample(down, "streamsend_downloader_paused") == 0
    lags = re.findall(r'^streamsend_downloader_consumer_lag_records\{partition="\d+"\} (\S+)$', down, re.MULTILINE)
    assert lags and all(float(lag) == 0 for lag in lags)
    for text in (up, down):  # conventions: counters end in _total, units in the name, no free-form labels
        for name in re.findall(r"^# TYPE (\S+) counter$", text, re.MULTILINE):
            assert name.endswith("_total"), name


async def test_ready_only_once_the_broker_answers(tmp_path: Path) -> None:
    relay_port = free_port()
    with EmbeddedBroker(advertised_port=relay_port) as broker:
        relay = Relay(relay_port, broker.port).start()
        relay.cut()
        try:
            target = tmp_path / "out"
            target.mkdir()
            port = free_port()
            endpoint = {"metrics_port": port, "metrics_host": "127.0.0.1", "request_timeout": 2}
            async with downloader(broker.bootstrap, "late", target, **endpoint) as down:
                await answered(port, "/healthz", 200)
                status, reason = await get(port, "/readyz")
                assert status == 503 and reason.strip() in ("connecting to Kafka", "Kafka unreachable")
                await wait_until(lambda: down.metric("streamsend_downloader_retries_total") >= 2, 60, "retries")
                relay.restore()
                await answered(port, "/readyz", (200, "ready\n"))
                assert down.metric("streamsend_downloader_outages_total") == 1
        finally:
            relay.stop()
