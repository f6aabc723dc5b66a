"""The downloader's pipeline fed with hand-made records, on a real filesystem, without Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry

from streamsend.downloader.admission import Record
from streamsend.downloader.completion import Assembled, Completion
from streamsend.downloader.pipeline import NeedSpace, Receiver, Rewind
from streamsend.downloader.publisher import Publisher
from streamsend.downloader.store import Store
from streamsend.shared.keys import Identity, Recipient
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.protocol import FileDigest, crc32c
from streamsend.shared.seal import Opener, Sealer
from tests.support.clock import Clock
from tests.support.records import Chunk, chunks_of, sealed_chunks_of

DATA = os.urandom(10_000)


class Harness:
    def __init__(
        self,
        root: Path,
        opener: Opener | None = None,
        on_settled: Callable[[list[Assembled]], Awaitable[None]] | None = None,
        **options: float,
    ) -> None:
        self.root = root
        self.registry = CollectorRegistry()
        self.metrics = DownloaderMetrics(self.registry)
        self.store = Store(root, max_open_files=4)
        self.clock = Clock()
        publisher = Publisher(self.store, "batch" if options.get("batch") else "off")
        self.receiver = Receiver(
            self.store,
            self.metrics,
            Completion(self.store, publisher, self.metrics),
            stale_after_s=options.get("stale_after_s", 60.0),
            min_free_bytes=int(options.get("min_free_bytes", 0)),
            opener=opener,
            clock=self.clock,
            on_settled=on_settled,
        )
        self.offset = 0

    async def feed(self, chunks: list[Chunk], partition: int = 0) -> None:
        for chunk in chunks:
            await self.receiver.handle(self.record(chunk.headers, chunk.value, partition))
        await self.receiver.flush()  # as the consumer loop does after each batch

    def record(self, headers: list[tuple[str, bytes]], value: bytes | None, partition: int = 0) -> Record:
        self.offset += 1
        return Record("topic", partition, self.offset - 1, b"key", value, headers)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def published(self, path: str = "file.bin") -> Path:
        return self.root / "edge-1" / path


@pytest.fixture
async def harness(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    await h.store.open()
    return h


async def test_in_order_chunks_publish_a_verified_file(harness: Harness) -> None:
    chunks = chunks_of(DATA, 4096, path="a/b/file.bin")
    await harness.feed(chunks[:-1])
    assert not harness.published("a/b/file.bin").exists()  # never visible before verification
    assert harness.receiver.committable(0) == 0  # held at the first chunk of the unfinished file
    await harness.feed(chunks[-1:])
    assert harness.published("a/b/file.bin").read_bytes() == DATA
    assert harness.receiver.committable(0) == 3
    assert harness.metric("streamsend_downloader_files_verified_total") == 1
    assert harness.metric("streamsend_downloader_open_assemblies") == 0


async def test_out_of_order_and_duplicate_chunks_still_verify(harness: Harness) -> None:
    c = chunks_of(DATA, 1024)
    await harness.feed([c[5], c[0], c[0], c[9], c[1], c[2], c[3], c[4], c[6], c[8], c[7], c[9]])
    assert harness.published().read_bytes() == DATA
    assert harness.metric("streamsend_downloader_chunks_duplicate_total") == 2


async def test_chunks_of_a_finished_upload_arriving_late_are_ignored(harness: Harness) -> None:
    chunks = chunks_of(DATA, 4096)
    await harness.feed(chunks)
    await harness.feed(chunks[1:2])
    assert harness.metric("streamsend_downloader_chunks_duplicate_total") == 1
    assert harness.metric("streamsend_downloader_open_assemblies") == 0


async def test_a_digest_mismatch_is_quarantined_never_published(harness: Harness) -> None:
    wrong = FileDigest(hashlib.sha256(b"other").hexdigest(), hashlib.md5(b"other").hexdigest())
    await harness.feed(chunks_of(DATA, 4096, digest=wrong))
    assert not harness.published().exists()
    kept = list((harness.root / ".streamsend" / "quarantine" / "edge-1").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == DATA
    assert harness.metric("streamsend_downloader_files_quarantined_total") == 1
    assert harness.receiver.committable(0) == 3  # dealt with: it does not hold commits back


async def test_malformed_records_are_counted_and_skipped(harness: Harness) -> None:
    good = chunks_of(DATA, 4096)
    await harness.receiver.handle(harness.record([], b"foreign"))
    await harness.receiver.handle(harness.record([(k, b"../../x" if k.endswith("path") else v)
                                                  for k, v in good[0].headers], good[0].value))  # fmt: skip
    await harness.feed(good)
    assert harness.published().read_bytes() == DATA
    assert harness.metric("streamsend_downloader_records_rejected_total", reason="foreign") == 1
    assert harness.metric("streamsend_downloader_records_rejected_total", reason="unsafe_path") == 1
    assert harness.receiver.committable(0) == 5


async def test_a_chunk_contradicting_its_upload_is_refused(harness: Harness) -> None:
    chunks = chunks_of(DATA, 4096)
    liar = chunks_of(DATA, 4096, path="other.bin", upload_id=chunks[0].header.upload_id)[1]
    await harness.feed([chunks[0], liar, *chunks[1:]])
    assert harness.published().read_bytes() == DATA
    assert harness.metric("streamsend_downloader_records_rejected_total", reason="conflict") == 1


async def test_copies_of_an_upload_on_other_partitions_are_uploads_of_their_own_handled_side_by_side(
    harness: Harness,
) -> None:
    chunks = chunks_of(DATA, 4096)

    async def partition(number: int, chunks: list[Chunk]) -> None:
        for offset, chunk in enumerate(chunks):
            await harness.receiver.handle(Record("topic", number, offset, b"k", chunk.value, chunk.headers))

    # Both partitions meet the upload id at once: neither may trip over the other's staging file.
    await asyncio.gather(partition(0, chunks[:2]), partition(1, chunks[1:2]), partition(2, chunks[:1]))
    assert harness.metric("streamsend_downloader_open_assemblies") == 3
    await partition(0, chunks)  # the genuine upload completes: the copies cost only their own partitions
    await harness.receiver.flush()
    assert harness.published().read_bytes() == DATA
    assert harness.receiver.committable(0) == len(chunks)
    # The copies are of a version now published: dropped, they no longer hold their partitions back.
    assert harness.receiver.committable(1) == 1 and harness.receiver.committable(2) == 1
    assert harness.metric("streamsend_downloader_files_failed_total", reason="superseded") == 2
    assert list(harness.store.staging_dir.iterdir()) == []


async def test_a_newer_upload_of_the_same_path_supersedes_the_older(harness: Harness) -> None:
    older = chunks_of(DATA, 4096)
    newer_data = os.urandom(5000)
    newer = chunks_of(newer_data, 4096)
    await harness.feed(older[:2])
    await harness.feed(newer)
    await harness.feed(older[2:])  # late chunks of the abandoned attempt
    assert harness.published().read_bytes() == newer_data
    assert harness.metric("streamsend_downloader_files_failed_total", reason="superseded") == 1
    assert list(harness.store.staging_dir.iterdir()) == []


async def test_a_quiet_upload_is_dropped_and_rebuilt_if_its_uploader_comes_back(harness: Harness) -> None:
    chunks = chunks_of(DATA, 4096)
    await harness.feed(chunks[:1])
    first_offset = 0
    harness.clock.now = 61.0
    await harness.receiver.sweep()
    assert harness.metric("streamsend_downloader_files_failed_total", reason="stale") == 1
    assert harness.receiver.committable(0) == 1  # no longer holds commits back
    rewind = await harness.receiver.handle(harness.record(chunks[1].headers, chunks[1].value))
    assert rewind == Rewind(0, first_offset, "edge-1/file.bin")
    # The consumer reads the partition again from there:
    await harness.receiver.handle(Record("topic", 0, 0, b"k", chunks[0].value, chunks[0].headers))
    await harness.feed(chunks[1:])
    assert harness.published().read_bytes() == DATA


async def test_a_file_larger_than_the_filesystem_is_refused(harness: Harness) -> None:
    chunk = chunks_of(DATA, 4096)[0]
    huge = dataclasses.replace(chunk.header, file_size=2**62, count=2**62 // 4096)
    await harness.receiver.handle(harness.record(Chunk(huge, chunk.value).headers, chunk.value))
    assert harness.metric("streamsend_downloader_records_rejected_total", reason="too_large") == 1
    assert harness.metric("streamsend_downloader_open_assemblies") == 0


async def test_no_room_for_a_chunk_leaves_the_record_unconsumed(tmp_path: Path) -> None:
    harness = Harness(tmp_path, min_free_bytes=2**62)
    await harness.store.open()
    chunk = chunks_of(DATA, 4096)[0]
    need = await harness.receiver.handle(harness.record(chunk.headers, chunk.value))
    assert isinstance(need, NeedSpace)
    assert need.path == "file.bin" and need.required > need.available
    assert harness.receiver.committable(0) is None
    assert harness.metric("streamsend_downloader_open_assemblies") == 0


async def test_released_partitions_drop_their_uploads_for_the_next_owner(harness: Harness) -> None:
    chunks = chunks_of(DATA, 4096)
    await harness.feed(chunks[:2], partition=3)
    await harness.receiver.release([3], "partition revoked")
    assert harness.receiver.committable(3) is None
    assert harness.metric("streamsend_downloader_open_assemblies") == 0
    # Given back later, the upload is rebuilt from its first chunk, not ignored:
    await harness.feed(chunks, partition=3)
    assert harness.published().read_bytes() == DATA


async def test_many_files_interleaved_on_one_partition(harness: Harness) -> None:
    files = {f"f{i}.bin": os.urandom(3000 + i) for i in range(5)}
    streams = [chunks_of(data, 1000, path=name, upload_id=uuid.uuid4().hex) for name, data in files.items()]
    for round_ in range(4):
        await harness.feed([s[round_] for s in streams if round_ < len(s)])
    for name, data in files.items():
        assert harness.published(name).read_bytes() == data


async def test_a_restart_reading_published_records_again_publishes_nothing_twice(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    await first.store.open()
    big = chunks_of(os.urandom(20_000), 4096, path="big.bin")
    small = chunks_of(DATA, 4096, path="small.bin")
    await first.feed(big[:1])  # the big file stays open: commits hold at offset 0
    await first.feed(small)
    inode = first.published("small.bin").stat().st_ino
    assert first.receiver.committable(0) == 0
    await first.store.close()  # "crash": nothing committed past offset 0

    second = Harness(tmp_path)
    await second.store.open()
    await second.feed(big[:1])
    await second.feed(small)  # read again after the restart
    await second.feed(big[1:])
    assert first.published("small.bin").stat().st_ino == inode  # not published again
    assert second.metric("streamsend_downloader_files_verified_total") == 1  # only the big one
    assert first.published("big.bin").stat().st_size == 20_000
    ledger = tmp_path / ".streamsend" / "published" / "topic-0"
    assert ledger.read_text().count("\n") == 2
    await second.receiver.committed("topic", 0, second.receiver.committable(0) or 0)
    assert not ledger.exists()  # everything committed: nothing left to remember


async def test_under_the_batch_policy_files_appear_and_release_commits_when_the_batch_is_flushed(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path, batch=True)
    await harness.store.open()
    for chunk in chunks_of(DATA, 4096):
        await harness.receiver.handle(harness.record(chunk.headers, chunk.value))
    assert not harness.published().exists()
    assert harness.receiver.committable(0) == 0  # verified, not yet durable: commits wait
    await harness.receiver.flush()
    assert harness.published().read_bytes() == DATA
    assert harness.receiver.committable(0) == 3
    assert (tmp_path / ".streamsend" / "published" / "topic-0").read_text().split()[1] == "2"


async def test_a_one_chunk_file_is_verified_in_memory_and_written_at_publication(tmp_path: Path) -> None:
    harness = Harness(tmp_path, batch=True)
    await harness.store.open()
    [chunk] = chunks_of(b"small but whole", 4096, path="notes/a.txt")
    await harness.receiver.handle(harness.record(chunk.headers, chunk.value))
    assert list(harness.store.staging_dir.iterdir()) == []  # nothing on disk before the batch ends
    await harness.receiver.flush()
    assert harness.published("notes/a.txt").read_bytes() == b"small but whole"
    assert harness.receiver.committable(0) == 1


async def test_a_one_chunk_file_with_the_wrong_digest_is_quarantined(harness: Harness) -> None:
    wrong = FileDigest(hashlib.sha256(b"x").hexdigest(), hashlib.md5(b"x").hexdigest())
    await harness.feed(chunks_of(b"payload", 4096, digest=wrong))
    assert not harness.published().exists()
    [kept] = (harness.root / ".streamsend" / "quarantine" / "edge-1").iterdir()
    assert kept.read_bytes() == b"payload"
    assert harness.receiver.committable(0) == 1


async def test_a_one_chunk_upload_supersedes_an_unfinished_older_one(harness: Harness) -> None:
    older = chunks_of(DATA, 4096)
    await harness.feed(older[:1])
    await harness.feed(chunks_of(b"now tiny", 4096))
    assert harness.published().read_bytes() == b"now tiny"
    assert harness.metric("streamsend_downloader_files_failed_total", reason="superseded") == 1
    assert harness.receiver.committable(0) == 2


SIGNER = Ed25519PrivateKey.generate()
ME = Identity(X25519PrivateKey.generate())


async def _sealed_harness(root: Path) -> Harness:
    h = Harness(root, Opener([ME], {"edge-1": [SIGNER.public_key()]}))
    await h.store.open()
    return h


def _sealer(signer: Ed25519PrivateKey = SIGNER) -> Sealer:
    return Sealer([Recipient(ME.key.public_key())], signer, encrypt_names=True)


async def test_a_sealed_file_is_opened_and_published_at_its_real_path(tmp_path: Path) -> None:
    harness = await _sealed_harness(tmp_path)
    await harness.feed(sealed_chunks_of(DATA, 4096, _sealer(), path="a/real name.bin"))
    assert harness.published("a/real name.bin").read_bytes() == DATA
    assert not (tmp_path / "edge-1" / "sealed").exists()  # the stand-in name is never used


async def test_a_tampered_sealed_chunk_is_skipped_and_nothing_is_published_until_the_genuine_one_comes(
    tmp_path: Path,
) -> None:
    harness = await _sealed_harness(tmp_path)
    chunks = sealed_chunks_of(DATA, 4096, _sealer())
    flipped = bytearray(chunks[1].value)
    flipped[7] ^= 0x80
    forged = Chunk(dataclasses.replace(chunks[1].header, crc32c=crc32c(bytes(flipped))), bytes(flipped))
    await harness.feed([chunks[0], forged, chunks[2]])
    assert harness.metric("streamsend_downloader_records_rejected_total", reason="sealed") == 1
    assert not harness.published().exists()
    await harness.feed([chunks[1]])  # the chunk as it was sent: the file completes
    assert harness.published().read_bytes() == DATA


async def test_a_file_signed_by_another_key_is_quarantined_not_published(tmp_path: Path) -> None:
    harness = await _sealed_harness(tmp_path)
    await harness.feed(sealed_chunks_of(DATA, 4096, _sealer(Ed25519PrivateKey.generate())))
    await harness.feed(sealed_chunks_of(b"small", 4096, _sealer(Ed25519PrivateKey.generate()), path="small.txt"))
    assert not harness.published().exists() and not harness.published("small.txt").exists()
    assert harness.metric("streamsend_downloader_files_failed_total", reason="signature") == 2
    assert harness.metric("streamsend_downloader_files_quarantined_total") == 2
    assert harness.receiver.committable(0) == harness.offset  # settled: they hold no commit back


async def test_a_refused_upload_is_reported_once_and_holds_no_commit_back(tmp_path: Path) -> None:
    harness = await _sealed_harness(tmp_path)
    await harness.feed(sealed_chunks_of(DATA, 4096, _sealer(), uploader="edge-9"))
    assert harness.metric("streamsend_downloader_files_failed_total", reason="untrusted") == 1
    assert harness.metric("streamsend_downloader_records_rejected_total", reason="refused") == 3
    assert harness.receiver.committable(0) == harness.offset
    assert not (tmp_path / "edge-9").exists()


async def test_every_settled_file_is_told_once_and_again_after_a_restart_before_the_commit(tmp_path: Path) -> None:
    """Arrival events are at least once: a downloader that died after publishing a file, before committing its
    offsets, reads the file's records again, publishes nothing, and tells of it again with the same upload."""
    told: list[Assembled] = []

    async def tell(settled: list[Assembled]) -> None:
        told.extend(settled)

    chunks = chunks_of(DATA, 4096, path="policy.pdf")
    bad = chunks_of(b"y" * 100, 4096, path="bad.bin", digest=FileDigest("0" * 64, "0" * 32))
    first = Harness(tmp_path, on_settled=tell)
    await first.store.open()
    await first.feed(chunks + bad)
    assert [(t.file.path, t.outcome) for t in told] == [("policy.pdf", "published"), ("bad.bin", "quarantined")]
    assert told[0].first_offset == 0 and told[0].offset == len(chunks) - 1
    told.clear()
    again = Harness(tmp_path, on_settled=tell)  # the restart: nothing was committed
    await again.store.open()
    await again.feed(chunks + bad)
    assert [(t.file.path, t.outcome, t.file.upload_id) for t in told] == [
        ("policy.pdf", "published", chunks[0].header.upload_id),
        ("bad.bin", "quarantined", bad[0].header.upload_id),
    ]
    assert again.metric("streamsend_downloader_files_verified_total") == 0  # not published twice
    assert again.published("policy.pdf").read_bytes() == DATA
