"""The daemons as users run them: SIGTERM in the middle of a transfer, a bad setting found at start,
and the demo command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamsend.demo.broker import free_port
from streamsend.demo.verify import file_sha256
from tests.support.brokers import BROKERS, Broker, require_kafka
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory, records
from tests.support.processes import FIRST_CHUNK_UPLOADED, DaemonProcess, daemon_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

BIG = 300_000_000


def _big_file(path: Path, size: int = BIG) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1_000_000)
    with path.open("wb") as out:
        for index in range(size // len(block)):
            out.write(block[index % 251 :] + block[: index % 251])  # every block differs: a wrong offset shows


def _staged(target: Path) -> list[Path]:
    staging = target / ".streamsend" / "staging"
    return [p for p in staging.rglob("*") if p.is_file() and p.name != ".lock"] if staging.exists() else []


async def test_sigterm_stops_the_uploader_mid_file_and_a_restart_completes_it(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    _big_file(source / "big.bin")
    topic = await topics.create()
    env = daemon_env(broker.bootstrap, topic, input_dir=source, producers=1)
    async with downloader(broker.bootstrap, topic, target) as down:
        first = await DaemonProcess("uploader", tmp_path / "up1.log", env).start()
        try:
            await first.wait_for_log(FIRST_CHUNK_UPLOADED)
            code, _ = await first.signal_and_wait()
        finally:
            await first.kill()
        assert code == 0, first.log()[-3000:]
        assert "interrupted by shutdown" in first.log()
        assert "Uploader stopped" in first.log()
        sent = len(await records(broker.bootstrap, topic))
        await wait_until(
            lambda: (
                down.metric("streamsend_downloader_chunks_received_total")
                + down.metric("streamsend_downloader_chunks_duplicate_total")
                >= sent
            ),
            60,
            "every chunk sent so far, at the downloader",
        )
        assert not (target / "edge-1" / "big.bin").exists()  # never half-written at its final path
        second = await DaemonProcess("uploader", tmp_path / "up2.log", env).start()
        try:
            await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 1, 120, "the file")
            code, _ = await second.signal_and_wait()
        finally:
            await second.kill()
        assert code == 0
        # It resumed where the clean stop left it, as the same upload: nothing to supersede.
        assert "big.bin: resuming at chunk" in second.log()
        assert "it resumes there after a restart" in first.log()
        assert down.metric("streamsend_downloader_files_failed_total", reason="superseded") == 0
    assert file_sha256(target / "edge-1" / "big.bin") == file_sha256(source / "big.bin")


async def test_sigterm_stops_the_downloader_mid_file_and_a_restart_finishes_it(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    _big_file(source / "big.bin")
    topic = await topics.create()
    env = daemon_env(broker.bootstrap, topic, output_dir=target)
    final = target / "edge-1" / "big.bin"
    async with uploader(broker.bootstrap, topic, source, producers=1) as up:
        first = await DaemonProcess("downloader", tmp_path / "down1.log", env).start()
        try:
            await first.wait_for_log("big.bin (00001/00289):    first chunk")
            code, _ = await first.signal_and_wait()
        finally:
            await first.kill()
        assert code == 0, first.log()[-3000:]
        assert "Downloader stopped" in first.log()
        if final.exists():  # it may just have finished; then it must be whole
            assert file_sha256(final) == file_sha256(source / "big.bin")
        else:
            assert "dropped after" in first.log()
        assert _staged(target) == []  # nothing half-written left behind either
        await wait_until(lambda: up.metric("streamsend_uploader_files_sent_total") == 1, 120, "the upload")
        second = await DaemonProcess("downloader", tmp_path / "down2.log", env).start()
        try:
            await second.wait_for_log("big.bin (00289/00289):    final chunk", timeout_s=120)
            code, _ = await second.signal_and_wait()
        finally:
            await second.kill()
        assert code == 0
    assert file_sha256(final) == file_sha256(source / "big.bin")


async def test_a_chunk_size_the_broker_cannot_take_stops_the_uploader_with_exit_2(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    topic = await topics.create(configs={"max.message.bytes": "65536"})
    env = daemon_env(broker.bootstrap, topic, input_dir=source, chunk_size="1MiB")
    process = await DaemonProcess("uploader", tmp_path / "up.log", env).start()
    try:
        assert await process.wait() == 2
    finally:
        await process.kill()
    assert (
        "invalid setting chunk_size: chunk_size 1048576 exceeds 57344: "
        "max.message.bytes 65536 minus 8192 bytes for headers" in process.log()
    )


@pytest.mark.parametrize("role", ["uploader", "downloader"])
async def test_sigterm_with_nothing_in_flight_exits_at_once(tmp_path: Path, role: str) -> None:
    # No broker listens: the daemon waits for one, with nothing to drain; the long grace is not waited for.
    folder = tmp_path / "data"
    folder.mkdir()
    where = {"input_dir": folder} if role == "uploader" else {"output_dir": folder}
    env = daemon_env(f"127.0.0.1:{free_port()}", "nowhere", shutdown_grace=600, request_timeout=2, **where)
    process = await DaemonProcess(role, tmp_path / f"{role}.log", env).start()
    try:
        await process.wait_for_log("Kafka unavailable")
        code, _ = await process.signal_and_wait(timeout_s=120)
    finally:
        await process.kill()
    assert code == 0, process.log()[-2000:]
    assert "Stopped before start-up was complete: nothing was in flight" in process.log()
    assert "Grace period over" not in process.log()


@pytest.mark.brokers("tansu")
async def test_transactions_on_a_broker_without_them_stop_the_uploader_with_exit_2(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    topic = await topics.create()
    env = daemon_env(broker.bootstrap, topic, input_dir=source, transactional="on", state_topic=f"{topic}-state")
    process = await DaemonProcess("uploader", tmp_path / "up.log", env).start()
    try:
        assert await process.wait() == 2
    finally:
        await process.kill()
    assert "invalid setting transactional: the broker refuses the idempotent producer" in process.log()


@pytest.mark.parametrize("kind", BROKERS)
def test_the_demo_command_streams_and_verifies_a_sample_tree(tmp_path: Path, kind: str) -> None:
    if kind == "kafka":
        require_kafka()
    command = [sys.executable, "-m", "streamsend", "demo", "--big-file", "20MB", "--keep", str(tmp_path / "demo")]
    result = subprocess.run(
        [*command, "--broker", kind], capture_output=True, text=True, timeout=300, check=False
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    assert "result                                : OK" in result.stdout
    assert "files sent and verified byte for byte : 12" in result.stdout
    assert (tmp_path / "demo" / "inbox" / "edge-1" / "video" / "recording.bin").stat().st_size == 20_000_000
    assert ("Apache Kafka 3.9.1" if kind == "kafka" else "Tansu") in result.stdout + result.stderr
