"""Funnel (many uploaders, one downloader), fan-out (groups each mirror all), and a shared group."""

from __future__ import annotations

import os
from pathlib import Path

from streamsend.demo.verify import compare_trees, tree_files
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory
from tests.support.waiting import wait_until


def _tree(root: Path, count: int, prefix: str = "f") -> None:
    for index in range(count):
        path = root / f"dir{index % 4}" / f"{prefix}{index}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1000 + index * 777))


async def test_two_uploaders_funnel_into_one_downloader(broker: Broker, topics: TopicFactory, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    trees = {name: tmp_path / name for name in ("edge-1", "pos-7")}
    for index, root in enumerate(trees.values()):
        root.mkdir()
        _tree(root, 8 + index, prefix="same-name-")  # the same relative paths from both
    topic = await topics.create()
    async with (
        downloader(broker.bootstrap, topic, target) as down,
        uploader(broker.bootstrap, topic, trees["edge-1"], uploader_name="edge-1"),
        uploader(broker.bootstrap, topic, trees["pos-7"], uploader_name="pos-7", chunk_size=4096),
    ):
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 17, 60, "both trees")
    for name, root in trees.items():
        assert compare_trees(root, target / name).identical


async def test_downloaders_in_different_groups_each_mirror_everything(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    _tree(source, 12)
    targets = [tmp_path / "dc-a", tmp_path / "dc-b"]
    for target in targets:
        target.mkdir()
    topic = await topics.create()
    async with (
        downloader(broker.bootstrap, topic, targets[0], group_id=f"{topic}-a") as first,
        downloader(broker.bootstrap, topic, targets[1], group_id=f"{topic}-b") as second,
        uploader(broker.bootstrap, topic, source),
    ):
        await wait_until(
            lambda: all(d.metric("streamsend_downloader_files_verified_total") == 12 for d in (first, second)),
            60,
            "both mirrors",
        )
    for target in targets:
        assert compare_trees(source, target / "edge-1").identical


async def test_downloaders_in_one_group_share_the_partitions_and_each_file_arrives_once(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    files = 60
    _tree(source, files)
    topic = await topics.create(partitions=6)
    group = f"{topic}-shared"
    async with (
        downloader(broker.bootstrap, topic, target, group_id=group) as first,
        downloader(broker.bootstrap, topic, target, group_id=group) as second,
    ):
        # Both members are in the group before anything is sent, so both get partitions.
        await wait_until(
            lambda: (
                first.metric("streamsend_downloader_kafka_up") == 1
                and second.metric("streamsend_downloader_kafka_up") == 1
            ),
            30,
            "both members",
        )
        async with uploader(broker.bootstrap, topic, source):
            daemons = (first, second)
            await wait_until(
                lambda: sum(d.metric("streamsend_downloader_files_verified_total") for d in daemons) >= files,
                60,
                "the shared mirror",
            )
        verified = [d.metric("streamsend_downloader_files_verified_total") for d in daemons]
    assert sum(verified) == files, verified  # each file published by exactly one member
    assert all(count > 0 for count in verified), verified  # the load was shared
    assert compare_trees(source, target / "edge-1").identical
    assert len(tree_files(target / "edge-1")) == files
