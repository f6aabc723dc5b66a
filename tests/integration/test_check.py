"""``--check``: both daemons say whether they are ready to run and what they would do, without doing it, with
the daemons' exit codes: 0 ready, 1 the broker or the topic is not there, 2 a setting to fix."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.brokers import Broker
from tests.support.kafka import TopicFactory
from tests.support.processes import daemon_env

pytestmark = pytest.mark.brokers("tansu")


async def _check(role: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamsend", role, "--check", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_ready_uploader_and_downloader_say_what_they_would_do_and_create_nothing(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    topic = await topics.create(3)
    state = topics.reserve()
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    env = daemon_env(broker.bootstrap, topic, input_dir=tmp_path / "in", output_dir=tmp_path / "out",
                     state_topic=state, chunk_size="256KiB")  # fmt: skip
    code, out = await _check("uploader", env)
    assert code == 0, out
    assert "ok    broker: " in out and f"ok    topic {topic}: 3 partitions" in out
    assert f"ok    topic {state}: not there yet: would be created with 6 partitions" in out
    assert "ok    chunk_size: chunk size 262144" in out
    assert f"Would watch {tmp_path / 'in'}" in out and "as uploader edge-1" in out
    code, out = await _check("downloader", env)
    assert code == 0, out
    assert f"Would join group group-{topic} on topic {topic}" in out
    assert list((tmp_path / "out").iterdir()) == []  # nothing made
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        assert state not in await admin.list_topics()  # nor the state topic
    finally:
        await admin.close()


async def test_an_unreachable_broker_is_1_and_a_setting_to_fix_is_2(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    nowhere = f"127.0.0.1:{_free_port()}"
    env = daemon_env(nowhere, "t", input_dir=tmp_path / "in", request_timeout="2s")
    code, out = await _check("uploader", env)
    assert code == 1, out
    assert f"FAIL  broker: {nowhere} did not answer" in out and "Not ready" in out
    code, out = await _check("uploader", {**env, "STREAMSEND_INPUT_DIR": str(tmp_path / "missing")})
    assert code == 2 and "invalid setting input_dir: not a directory" in out, out
    code, out = await _check("uploader", {**env, "STREAMSEND_CHUNK_SIZE": "lots"})
    assert code == 2 and "invalid setting chunk_size" in out, out


async def test_a_downloader_without_its_topic_is_not_ready(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    env = daemon_env(broker.bootstrap, topics.reserve(), output_dir=tmp_path / "out")
    code, out = await _check("downloader", env)
    assert code == 1 and "does not exist: nothing to read" in out, out
