"""The transactional uploader on Apache Kafka: a file's last chunks and its state record are committed together.

An uploader killed with SIGKILL at any moment, restarted, leaves every file committed on the topic exactly
once: either the file and its state record were committed (and the restart skips it), or neither was (and the
restart sends it again). Without transactions the window between the last acknowledgement and the state
record makes some files go out twice.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

from streamsend.demo.kafka_broker import ApacheKafka
from streamsend.demo.verify import compare_trees
from streamsend.shared.protocol import decode
from tests.support.kafka import TopicFactory, records
from tests.support.processes import DaemonProcess, daemon_env, messages, published, stop_cleanly
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SMALL_FILES = 4000
KILLS = 3
KILL_AFTER = 150  # files each killed uploader sends first; the tree leaves the last one most of them


def _tree(source: Path) -> None:
    for index in range(SMALL_FILES):
        path = source / f"till-{index % 15}" / f"receipt-{index}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(2000 + index % 97))
    (source / "video").mkdir()
    (source / "video" / "shift.mp4").write_bytes(os.urandom(150_000_000))  # commits on the way, every 64 MiB


async def _committed_uploads(bootstrap: str, topic: str) -> dict[str, set[str]]:
    uploads: dict[str, set[str]] = defaultdict(set)
    for record in await records(bootstrap, topic, timeout_s=60, committed_only=True):
        header = decode(record.headers, record.value)
        uploads[header.path].add(header.upload_id)
    return uploads


async def _sent_some(up: DaemonProcess, count: int) -> None:
    """The uploader's own count, not the downloader's: a downloader behind would let it send the whole tree
    before the kill, and leave too few files for the next one."""
    await wait_until(lambda: up.log().count(": Successfully processed.") >= count, 120, f"{count} files sent")


async def test_an_uploader_killed_again_and_again_commits_every_file_once(kafka: ApacheKafka, tmp_path: Path) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    _tree(source)
    bootstrap = kafka.bootstrap
    topic = await TopicFactory(bootstrap).create()
    settings = {"state_topic": f"{topic}-state", "request_timeout": 10, "retry_backoff_max": 3}
    down = await DaemonProcess(
        "downloader", tmp_path / "down.log", daemon_env(bootstrap, topic, output_dir=target, **settings)
    ).start()
    up_env = daemon_env(bootstrap, topic, input_dir=source, transactional="on", **settings)
    ups: list[DaemonProcess] = []
    try:
        for kill in range(KILLS):
            up = await DaemonProcess("uploader", tmp_path / f"up-{kill}.log", up_env).start()
            ups.append(up)
            await up.wait_for_log("Transactions enabled")
            await _sent_some(up, KILL_AFTER)
            await up.kill()  # SIGKILL, wherever it is
        last = await DaemonProcess("uploader", tmp_path / "up-last.log", up_env).start()
        ups.append(last)
        await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 300, "the whole tree", 1.0)
        await stop_cleanly(last, down)
    finally:
        for up in ups:
            await up.kill()
        await down.kill()
    uploads = await _committed_uploads(bootstrap, topic)
    assert len(uploads) == SMALL_FILES + 1
    sent_twice = {path: ids for path, ids in uploads.items() if len(ids) != 1}
    assert not sent_twice, f"{len(sent_twice)} files committed more than once, e.g. {next(iter(sent_twice))}"
    verified = published(messages(down.log()))
    assert sorted(verified) == sorted(set(verified)) and len(verified) == SMALL_FILES + 1
    assert "Kafka fault in its transaction" not in "".join(up.log() for up in ups)
