"""Sending from inside a program: ``streamsend.Uploader`` in the test's own event loop, and the one-shot
``streamsend send`` command (its receipts, its exit codes, a file truncated while it is sent)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import aiokafka.errors as aiokafka_errors
import pytest

import streamsend
from streamsend.demo.far import far_broker
from streamsend.demo.relay import Link
from tests.support.brokers import Broker
from tests.support.daemons import downloader
from tests.support.kafka import TopicFactory, chunks_on_topic, records
from tests.support.processes import daemon_env
from tests.support.waiting import wait_until

CHUNK = 64 * 1024


async def test_an_application_sends_files_and_gets_receipts(broker: Broker, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    files = {"policy.pdf": os.urandom(5 * CHUNK + 17), "event.json": b'{"type": "updateEvent"}'}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    factory = TopicFactory(broker.bootstrap)
    topic, events = await factory.create(), await factory.create(partitions=1)
    update = streamsend.Event(events, b'{"type": "updateEvent"}', key=b"4711")
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        streamsend.Uploader(
            bootstrap_servers=broker.bootstrap, topic=topic, state_topic=f"{topic}-state", uploader_name="insurer",
            chunk_size=CHUNK,
        ) as uploader,
    ):  # fmt: skip
        receipts = await asyncio.gather(
            uploader.send(tmp_path / "policy.pdf", name="policies/4711/policy.pdf", event=update),
            uploader.send(tmp_path / "event.json"),
        )
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 2, 60, "both files")
        with pytest.raises(streamsend.FileChangedError):
            await uploader.send(tmp_path / "missing.bin")
        with pytest.raises(streamsend.UnsafePathError):
            await uploader.send(tmp_path / "event.json", name="../outside.json")
    policy, event = receipts
    sent = await records(broker.bootstrap, events)  # without transactions: produced once the file was acknowledged
    assert [(r.key, r.value) for r in sent] == [(update.key, update.value)]
    assert (policy.path, policy.chunks, policy.topic) == ("policies/4711/policy.pdf", 6, topic)
    assert event.path == "event.json" and event.chunks == 1
    for receipt, data in ((policy, files["policy.pdf"]), (event, files["event.json"])):
        published = (target / "insurer" / receipt.path).read_bytes()
        assert published == data
        assert receipt.sha256 == hashlib.sha256(data).hexdigest() == hashlib.sha256(published).hexdigest()
        assert receipt.md5 == hashlib.md5(data).hexdigest() and receipt.size == len(data)


async def _send(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamsend", "send", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_send_command_prints_receipts_and_exits_by_outcome(broker: Broker, tmp_path: Path) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.bin").write_bytes(os.urandom(3 * CHUNK))
    (source / "b.txt").write_text("b")
    topic = await TopicFactory(broker.bootstrap).create()
    env = daemon_env(broker.bootstrap, topic, input_dir=source, chunk_size=CHUNK, state_topic=f"{topic}-state")
    code, out, err = await _send(env, "--json", str(source / "sub" / "a.bin"), str(source / "b.txt"))
    assert code == 0, err
    receipts = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in receipts] == ["sub/a.bin", "b.txt"]  # paths below input_dir
    assert receipts[0]["sha256"] == hashlib.sha256((source / "sub" / "a.bin").read_bytes()).hexdigest()
    assert receipts[0]["chunks"] == 3 and receipts[0]["topic"] == topic
    code, out, err = await _send(env, str(source / "b.txt"), str(source / "gone.bin"))
    assert code == 1 and "gone.bin: not sent" in err
    assert out.startswith("edge-1/b.txt: 1 bytes, sha256 ")  # the others are still sent
    code, out, err = await _send(env, "--chunk-size", "lots", str(source / "b.txt"))
    assert code == 2 and "chunk_size" in err and not out


async def test_a_file_truncated_while_sent_fails_the_command(tmp_path: Path) -> None:
    """Across a slow link, so that the file can be cut short while its chunks are on their way."""
    source = tmp_path / "in"
    source.mkdir()
    big = source / "big.bin"
    big.write_bytes(os.urandom(60 * 1024 * 1024))
    with far_broker("tansu", Link(0.0, 10e6)) as far:
        topic = await TopicFactory(far.near).create()
        env = daemon_env(far.far, topic, input_dir=source, state_topic="")
        sending = asyncio.create_task(_send(env, str(big)))
        await wait_until(lambda: far.relay.stats.bytes_up > 10 * 1024 * 1024, 60, "the file on its way")
        with big.open("r+b") as cut:
            cut.truncate(1024)
        code, out, err = await sending
    assert code == 1 and "big.bin: not sent" in err and not out


@pytest.mark.kafka
async def test_an_event_in_the_files_transaction_is_seen_only_with_the_whole_file(
    kafka: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first commit fails (a fault injected into the producer pool): the transaction, its chunks and its
    event are aborted, the file is sent again, and a read_committed reader sees one event and one whole upload."""
    (tmp_path / "policy.pdf").write_bytes(os.urandom(4 * CHUNK + 5))
    factory = TopicFactory(kafka.bootstrap)
    topic, events = await factory.create(), await factory.create(partitions=1)
    event = streamsend.Event(events, b'{"type": "updateEvent", "policy": 4711}', key=b"4711")
    async with streamsend.Uploader(
        bootstrap_servers=kafka.bootstrap, topic=topic, state_topic=f"{topic}-state", chunk_size=CHUNK,
        transactional="on", retry_backoff_max=0.5,
    ) as uploader:  # fmt: skip
        pool = uploader._sending.pool if uploader._sending is not None else None
        assert pool is not None
        commit, failures = pool.commit, list[int]()

        async def fails_once(lane: int) -> None:
            if not failures:
                failures.append(lane)
                raise aiokafka_errors.KafkaConnectionError("injected: the broker went away before the commit")
            await commit(lane)

        monkeypatch.setattr(pool, "commit", fails_once)
        receipt = await uploader.send(tmp_path / "policy.pdf", name="policies/4711.pdf", event=event)
    assert failures  # the fault did happen
    committed = await records(kafka.bootstrap, events, committed_only=True)
    assert [r.value for r in committed] == [event.value] and committed[0].key == b"4711"
    assert len(await records(kafka.bootstrap, events)) == 2  # the aborted one is there, for read_uncommitted
    chunks = await chunks_on_topic(kafka.bootstrap, topic, committed_only=True)
    assert {c.upload_id for c in chunks} == {receipt.upload_id}
    assert sorted(c.index for c in chunks) == list(range(5))
