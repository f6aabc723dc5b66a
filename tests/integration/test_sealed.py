"""Sealed files through a real broker: only the intended downloaders read them, only trusted uploaders
publish, and the topic holds no plaintext."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from streamsend.demo.verify import compare_trees, tree_files
from streamsend.shared import keys
from tests.support.brokers import Broker
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory, records
from tests.support.waiting import wait_until

MARKER = b"CONFIDENTIAL-policy-holder-Jane-Example"


def _keys(root: Path, name: str) -> Path:
    folder = root / "keys" / name
    keys.generate(folder)
    return folder


def _tree(root: Path, prefix: str, count: int = 6) -> None:
    root.mkdir(parents=True)
    for index in range(count):
        path = root / f"{prefix}-dir{index % 2}" / f"{prefix}-{index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(MARKER * (1 + index * 50) + os.urandom(100))
    (root / f"{prefix}-big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17) + MARKER)  # several chunks


async def test_a_sealed_tree_mirrors_byte_for_byte_and_the_topic_holds_no_plaintext(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    office, old_office, edge = _keys(tmp_path, "office"), _keys(tmp_path, "office-old"), _keys(tmp_path, "edge-1")
    source, target = tmp_path / "in", tmp_path / "out"
    _tree(source, "claims")
    target.mkdir()
    topic = await topics.create()
    async with (
        downloader(
            broker.bootstrap, topic, target,
            decrypt_key=[old_office / keys.RECIPIENT_KEY, office / keys.RECIPIENT_KEY],  # during a rotation
            trusted_uploaders=[f"edge-1={edge / keys.SIGNER_PUB}"],
        ) as down,
        uploader(
            broker.bootstrap, topic, source,
            encrypt_to=[office / keys.RECIPIENT_PUB], signing_key=edge / keys.SIGNER_KEY, encrypt_names=True,
        ),
    ):  # fmt: skip
        await wait_until(lambda: down.metric("streamsend_downloader_files_verified_total") == 7, 60, "7 files")
    assert compare_trees(source, target / "edge-1").identical
    wire = await records(broker.bootstrap, topic)
    assert len(wire) > 7  # the big file took several records
    for record in wire:
        shown = record.value + b"".join(name.encode() + (value or b"") for name, value in record.headers)
        assert MARKER not in shown
        assert b"claims" not in shown  # encrypt_names: not even the names
        assert dict(record.headers)["streamsend.version"] == b"2"
    digests = [hashlib.sha256(path.read_bytes()).hexdigest().encode() for path in tree_files(source).values()]
    state = await records(broker.bootstrap, f"{topic}-state")
    assert len(state) == 7
    assert not any(digest in (record.value or b"") for record in state for digest in digests)


async def test_only_the_trusted_uploader_publishes(broker: Broker, topics: TopicFactory, tmp_path: Path) -> None:
    """Two uploaders with keys of their own seal for the same downloader, which trusts only edge-1; a third
    claims to be edge-1 but signs with edge-2's key."""
    office, edge1, edge2 = _keys(tmp_path, "office"), _keys(tmp_path, "edge-1"), _keys(tmp_path, "edge-2")
    target = tmp_path / "out"
    target.mkdir()
    for name in ("trusted", "stranger", "impostor"):
        _tree(tmp_path / name, name, count=3)
    topic = await topics.create()
    sealed = {"encrypt_to": [office / keys.RECIPIENT_PUB]}
    async with (
        downloader(
            broker.bootstrap, topic, target, decrypt_key=[office / keys.RECIPIENT_KEY],
            trusted_uploaders=[f"edge-1={edge1 / keys.SIGNER_PUB}"],
        ) as down,
        uploader(broker.bootstrap, topic, tmp_path / "trusted", signing_key=edge1 / keys.SIGNER_KEY, **sealed),
        uploader(broker.bootstrap, topic, tmp_path / "stranger", uploader_name="edge-2",
                 signing_key=edge2 / keys.SIGNER_KEY, **sealed),
        uploader(broker.bootstrap, topic, tmp_path / "impostor", uploader_name="edge-1",
                 signing_key=edge2 / keys.SIGNER_KEY, state_topic="", **sealed),
    ):  # fmt: skip
        await wait_until(
            lambda: (
                down.metric("streamsend_downloader_files_verified_total") == 4
                and down.metric("streamsend_downloader_files_failed_total", reason="untrusted") == 4
                and down.metric("streamsend_downloader_files_failed_total", reason="signature") == 4
            ),
            60,
            "4 files published, 4 refused, 4 quarantined",
        )
        down.check_alive()
    assert compare_trees(tmp_path / "trusted", target / "edge-1").identical  # and nothing of the impostor's
    assert not (target / "edge-2").exists()
    assert down.metric("streamsend_downloader_files_quarantined_total") == 4
    kept = tree_files(target / ".streamsend" / "quarantine" / "edge-1")
    assert len(kept) == 4 and all("impostor" in name for name in kept)


@pytest.mark.brokers("tansu")
async def test_a_downloader_without_the_key_refuses_every_file_and_says_why(
    broker: Broker, topics: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    office, elsewhere = _keys(tmp_path, "office"), _keys(tmp_path, "elsewhere")
    source = tmp_path / "in"
    _tree(source, "claims", count=3)
    targets = {name: tmp_path / name for name in ("keyless", "other-key", "office")}
    for folder in targets.values():
        folder.mkdir()
    topic = await topics.create()
    async with (
        downloader(broker.bootstrap, topic, targets["keyless"], group_id=f"{topic}-keyless") as keyless,
        downloader(broker.bootstrap, topic, targets["other-key"], group_id=f"{topic}-other",
                   decrypt_key=[elsewhere / keys.RECIPIENT_KEY]) as other,
        downloader(broker.bootstrap, topic, targets["office"], group_id=f"{topic}-office",
                   decrypt_key=[office / keys.RECIPIENT_KEY]) as intended,
        uploader(broker.bootstrap, topic, source, encrypt_to=[office / keys.RECIPIENT_PUB]),
    ):  # fmt: skip
        await wait_until(
            lambda: (
                intended.metric("streamsend_downloader_files_verified_total") == 4
                and all(
                    d.metric("streamsend_downloader_files_failed_total", reason="not_recipient") == 4
                    for d in (keyless, other)
                )
            ),
            60,
            "4 files mirrored by the intended downloader, refused by the others",
        )
        keyless.check_alive()
        other.check_alive()
    assert compare_trees(source, targets["office"] / "edge-1").identical
    for name in ("keyless", "other-key"):
        assert not (targets[name] / "edge-1").exists()
        assert not tree_files(targets[name] / ".streamsend" / "quarantine")
    lines = [r.getMessage() for r in caplog.records if "refused, nothing written" in r.getMessage()]
    office_id = keys.key_id(keys.load_public(office / keys.RECIPIENT_PUB))
    assert sum("this downloader has no decrypt_key" in line for line in lines) == 4
    assert sum(f"sealed for keys {office_id}" in line for line in lines) == 4
