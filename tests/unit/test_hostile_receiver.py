"""A hostile record costs only itself: records that copy, poison or replay a genuine upload, fed to the
receiver across partitions and interleaved with the genuine records, never keep the genuine file from being
published intact, never publish anything else in its place, and never roll a published file back."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from streamsend.downloader.admission import Record
from streamsend.shared.keys import Identity, Recipient
from streamsend.shared.seal import Opener, Sealer
from tests.support.records import Chunk, chunks_of, sealed_chunks_of
from tests.unit.test_receiver import Harness

DATA = os.urandom(10_000)
EVIL = os.urandom(10_000)
SIGNER = Ed25519PrivateKey.generate()
ME = Identity(X25519PrivateKey.generate())
OLD = 1_700_000_000_000_000_000
NEW = OLD + 60 * 10**9


def _sealer(signer: Ed25519PrivateKey | None = SIGNER, *, encrypt_names: bool = True) -> Sealer:
    """An uploader's sealer; the attacker's is one of these too: it knows the downloader's public key."""
    return Sealer([Recipient(ME.key.public_key())], signer, encrypt_names=encrypt_names)


async def _harness(root: Path, *, trusted: bool = True) -> Harness:
    h = Harness(root, Opener([ME], {"edge-1": [SIGNER.public_key()]} if trusted else {}))
    await h.store.open()
    return h


class Topic:
    """Records written to several partitions, each with its own offsets, handled partition by partition at once
    (as the consumer loop does with a batch)."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.offsets: dict[int, int] = {}

    def record(self, partition: int, chunk: Chunk) -> Record:
        offset = self.offsets.get(partition, 0)
        self.offsets[partition] = offset + 1
        return Record("topic", partition, offset, b"k", chunk.value, chunk.headers)

    async def batch(self, by_partition: dict[int, list[Chunk]]) -> None:
        async def one(partition: int, chunks: list[Chunk]) -> None:
            for chunk in chunks:
                assert await self.harness.receiver.handle(self.record(partition, chunk)) is None

        await asyncio.gather(*(one(p, chunks) for p, chunks in by_partition.items()))
        await self.harness.receiver.flush()


@pytest.mark.parametrize("sealed", [False, True])
async def test_a_genuine_record_copied_onto_other_partitions_at_once_never_stops_the_downloader(
    tmp_path: Path, sealed: bool
) -> None:
    harness = await _harness(tmp_path, trusted=False)
    chunks = sealed_chunks_of(DATA, 4096, _sealer()) if sealed else chunks_of(DATA, 4096)
    topic = Topic(harness)
    await topic.batch({0: chunks[:1], 1: chunks[:1], 2: chunks[:2], 3: chunks[2:]})  # all at once
    await topic.batch({0: chunks[1:]})
    assert harness.published().read_bytes() == DATA
    assert list(harness.store.staging_dir.iterdir()) == []  # the copies went with the genuine publication
    assert all(harness.receiver.committable(p) == topic.offsets[p] for p in topic.offsets)


async def test_a_record_with_the_genuine_upload_id_and_a_key_of_its_own_cannot_poison_the_genuine_key(
    tmp_path: Path,
) -> None:
    harness = await _harness(tmp_path)
    upload_id = uuid.uuid4().hex
    genuine = sealed_chunks_of(DATA, 4096, _sealer(), upload_id=upload_id)
    poison = sealed_chunks_of(EVIL, 4096, _sealer(Ed25519PrivateKey.generate()), upload_id=upload_id)
    topic = Topic(harness)
    # Written before the genuine records, on the same partition and on another, and again in between:
    await topic.batch({0: poison[:2], 1: poison[:1]})
    await topic.batch({0: [genuine[0], poison[2], genuine[1]], 1: poison[1:]})
    await topic.batch({0: genuine[2:]})
    assert harness.published().read_bytes() == DATA
    assert harness.metric("streamsend_downloader_files_failed_total", reason="signature") == 2  # the forgeries
    assert harness.metric("streamsend_downloader_files_verified_total") == 1


async def test_a_record_naming_another_uploader_or_unsealed_cannot_get_the_genuine_upload_refused(
    tmp_path: Path,
) -> None:
    harness = await _harness(tmp_path)
    upload_id = uuid.uuid4().hex
    genuine = sealed_chunks_of(DATA, 4096, _sealer(), upload_id=upload_id)
    mallory = chunks_of(EVIL, 4096, upload_id=upload_id, uploader="mallory")
    unsigned = chunks_of(EVIL, 4096, upload_id=upload_id)
    topic = Topic(harness)
    await topic.batch({1: mallory[:1], 2: unsigned[:1]})
    await topic.batch({0: genuine[:1], 1: mallory[1:], 2: unsigned[1:]})
    await topic.batch({0: genuine[1:]})
    assert harness.published().read_bytes() == DATA
    assert harness.metric("streamsend_downloader_files_failed_total", reason="untrusted") == 1  # reported once
    assert harness.metric("streamsend_downloader_files_failed_total", reason="unsigned") == 1
    assert not (tmp_path / "mallory").exists()


async def test_an_unsigned_newer_upload_of_the_same_path_cannot_supersede_the_genuine_one(tmp_path: Path) -> None:
    harness = await _harness(tmp_path)
    genuine = sealed_chunks_of(DATA, 4096, _sealer(), mtime_ns=OLD)
    newer = sealed_chunks_of(EVIL, 4096, _sealer(None), mtime_ns=NEW)  # sealed for us, signed by nobody
    topic = Topic(harness)
    await topic.batch({0: [genuine[0], *newer, genuine[1]], 1: newer})
    await topic.batch({0: genuine[2:]})
    assert harness.published().read_bytes() == DATA
    assert harness.metric("streamsend_downloader_files_failed_total", reason="superseded") == 0
    assert harness.metric("streamsend_downloader_files_failed_total", reason="unsigned") == 2


async def test_a_stripped_sealed_name_is_refused_and_the_file_keeps_its_real_path(tmp_path: Path) -> None:
    harness = await _harness(tmp_path, trusted=False)  # no signatures to lean on
    chunks = sealed_chunks_of(DATA, 4096, _sealer(None), path="a/real.bin")
    stripped = []
    for chunk in chunks:
        assert chunk.header.seal is not None
        seal = dataclasses.replace(chunk.header.seal, sealed_path=None)
        stripped.append(Chunk(dataclasses.replace(chunk.header, seal=seal), chunk.value))
    topic = Topic(harness)
    await topic.batch({0: stripped, 1: stripped})
    assert harness.metric("streamsend_downloader_records_rejected_total", reason="sealed") == 6
    await topic.batch({0: chunks})
    assert harness.published("a/real.bin").read_bytes() == DATA
    assert not (tmp_path / "edge-1" / "sealed").exists()


@pytest.mark.parametrize("sealed", [False, True])
async def test_a_replayed_older_upload_never_rolls_the_published_file_back(tmp_path: Path, sealed: bool) -> None:
    harness = await _harness(tmp_path, trusted=sealed)

    def version(data: bytes, mtime_ns: int) -> list[Chunk]:
        if sealed:
            return sealed_chunks_of(data, 4096, _sealer(), mtime_ns=mtime_ns)
        return chunks_of(data, 4096, mtime_ns=mtime_ns)

    older, newer = version(EVIL, OLD), version(DATA, NEW)
    topic = Topic(harness)
    await topic.batch({0: older[:1]})
    await topic.batch({0: newer})  # the newer version is published; the older one in progress goes
    assert harness.published().read_bytes() == DATA
    assert harness.metric("streamsend_downloader_files_failed_total", reason="superseded") == 1
    await topic.batch({0: older, 1: older})  # replayed whole, later, on its partition and another
    assert harness.published().read_bytes() == DATA
    assert harness.metric("streamsend_downloader_files_failed_total", reason="older") == 1  # 0: known as dropped
    assert all(harness.receiver.committable(p) == topic.offsets[p] for p in topic.offsets)
    assert list(harness.store.staging_dir.iterdir()) == []
    await harness.store.close()

    again = await _harness(tmp_path, trusted=sealed)  # a restarted downloader knows the version from the file
    await Topic(again).batch({0: older})
    assert again.published().read_bytes() == DATA
    assert again.metric("streamsend_downloader_files_failed_total", reason="older") == 1


async def test_a_forgery_published_under_the_genuine_upload_id_does_not_hide_the_genuine_upload_after_a_restart(
    tmp_path: Path,
) -> None:
    """Without trusted_uploaders anyone may publish a sealed file; the publication ledger still names uploads by
    their data key too, so the genuine one read again after a restart is not taken for the forgery."""
    harness = await _harness(tmp_path, trusted=False)
    upload_id = uuid.uuid4().hex
    forged = sealed_chunks_of(EVIL, 4096, _sealer(None), upload_id=upload_id, mtime_ns=OLD)
    genuine = sealed_chunks_of(DATA, 4096, _sealer(None), upload_id=upload_id, mtime_ns=OLD)
    await Topic(harness).batch({0: forged})
    assert harness.published().read_bytes() == EVIL
    await harness.store.close()  # nothing committed: the forgery is in the ledger, and read again

    again = await _harness(tmp_path, trusted=False)
    await Topic(again).batch({0: [*forged, *genuine]})
    assert again.published().read_bytes() == DATA
