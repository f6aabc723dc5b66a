"""Arrival events: a tree streamed with ``events_topic`` set gives one event per file, valid against the
published schema, with the fields of the published files; a file that fails verification and one older than the
published version give their events too."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jsonschema

from streamsend.demo.verify import compare_trees
from streamsend.downloader.arrival import schema
from streamsend.shared.protocol import FileDigest
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory, produce, records
from tests.support.records import chunks_of
from tests.support.waiting import wait_until

CHUNK = 64 * 1024


def _tree(source: Path) -> dict[str, bytes]:
    files = {f"small/{index}.json": os.urandom(100 + index) for index in range(12)}
    files["video/big.bin"] = os.urandom(5 * CHUNK + 123)
    files["policies/policy.pdf"] = os.urandom(CHUNK)
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    return files


async def test_every_outcome_gives_one_event(broker: Broker, tmp_path: Path) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    target.mkdir()
    files = _tree(source)
    factory = TopicFactory(broker.bootstrap)
    topic, events_topic = await factory.create(), factory.reserve()
    async with (
        downloader(broker.bootstrap, topic, target, events_topic=events_topic) as down,
        uploader(broker.bootstrap, topic, source, chunk_size=CHUNK) as up,
    ):
        await wait_until(lambda: compare_trees(source, target / "edge-1").identical, 120, "the tree")
        # A file whose digest does not match, and an older version of a published file.
        bad = chunks_of(b"x" * 1000, CHUNK, path="bad.bin", digest=FileDigest("0" * 64, "0" * 32))
        older = chunks_of(b"old", CHUNK, path="policies/policy.pdf", mtime_ns=1_000_000_000)
        await produce(
            broker.bootstrap, topic, [{"value": c.value, "key": b"k", "headers": c.headers} for c in bad + older]
        )
        wanted = len(files) + 2
        await wait_until(lambda: down.metric("streamsend_downloader_events_produced_total") >= wanted, 60, "events")
        up.check_alive()
    events = [json.loads(record.value) for record in await records(broker.bootstrap, events_topic)]
    keys = {record.key for record in await records(broker.bootstrap, events_topic)}
    assert len(events) == wanted  # nothing was repeated: the downloader never died
    for event in events:
        jsonschema.validate(event, schema())
    by_outcome: dict[str, list[dict[str, object]]] = {}
    for event in events:
        by_outcome.setdefault(str(event["outcome"]), []).append(event)
    assert len(by_outcome["published"]) == len(files)
    for event in by_outcome["published"]:
        published = target / str(event["output_path"])
        data = published.read_bytes()
        assert event["sha256"] == hashlib.sha256(data).hexdigest() and event["size"] == len(data)
        assert event["md5"] == hashlib.md5(data).hexdigest()
        assert data == files[str(event["path"])]
        chunks = event["chunks"]
        assert isinstance(chunks, dict) and chunks["topic"] == topic
        assert chunks["first_offset"] <= chunks["last_offset"]
    assert keys == {f"edge-1/{name}".encode() for name in [*files, "bad.bin"]}
    [quarantined] = by_outcome["quarantined"]
    assert quarantined["path"] == "bad.bin" and "verification failed" in str(quarantined["reason"])
    [refused] = by_outcome["refused"]
    assert refused["path"] == "policies/policy.pdf" and "older" in str(refused["reason"])
    assert (target / "edge-1" / "policies" / "policy.pdf").read_bytes() == files["policies/policy.pdf"]
