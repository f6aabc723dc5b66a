"""Completion, with a fake publisher: verification, quarantine, grouped publication and the ledger of what
was published, without the publisher's filesystem work."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streamsend.downloader.assembly import FileDescription
from streamsend.downloader.completion import Assembled, Completion
from streamsend.downloader.publisher import Publication
from streamsend.downloader.store import Staging, Store
from streamsend.downloader.uploads import UploadKey
from streamsend.shared.errors import PublishError
from streamsend.shared.metrics import DownloaderMetrics
from streamsend.shared.protocol import FileDigest

DATA = b"policy 42\n" * 100


class FakePublisher:
    def __init__(self, groups: bool) -> None:
        self.groups = groups
        self.syncs_ledger_lines = False
        self.batches: list[list[str]] = []
        self.refuse: set[str] = set()
        self.identical: set[str] = set()

    async def publish(self, items: list[Publication], published: Callable[[Publication], None]) -> None:
        self.batches.append([item.target.name for item in items])
        for item in items:
            if item.data is not None:  # as the real one does: a file still in memory is written first
                item.staging.path.write_bytes(item.data)
            if item.target.name in self.refuse:
                item.error = PublishError("a folder is in the way")
                continue
            item.unchanged = item.target.name in self.identical
            published(item)


def _id(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()  # upload ids are 32 hex digits


class Rig:
    def __init__(self, root: Path, groups: bool) -> None:
        self.registry = CollectorRegistry()
        self.store = Store(root, max_open_files=4)
        self.publisher = FakePublisher(groups)
        self.completion = Completion(self.store, self.publisher, DownloaderMetrics(self.registry))  # type: ignore[arg-type]
        self.done: list[str] = []

    def item(self, name: str, offset: int, data: bytes = DATA, sent: bytes = DATA) -> Assembled:
        digest = FileDigest(hashlib.sha256(sent).hexdigest(), hashlib.md5(sent).hexdigest())
        upload_id = _id(name)
        return Assembled(
            key=UploadKey(0, upload_id),
            file=FileDescription("edge-1", name, upload_id, len(data), 1, 4096, 1),
            staging=Staging(self.store.staging_dir / UploadKey(0, upload_id).name),
            sha256=hashlib.sha256(data).hexdigest(),
            expected=digest, topic="chunks", partition=0, offset=offset,
            data=data,
        )  # fmt: skip

    async def complete(self, item: Assembled) -> None:
        self.done += [settled.file.path for settled in await self.completion.complete(item)]

    async def flush(self) -> None:
        self.done += [settled.file.path for settled in await self.completion.flush()]

    def metric(self, name: str) -> float:
        return self.registry.get_sample_value(name) or 0.0


@pytest.fixture
async def rig(tmp_path: Path) -> Rig:
    made = Rig(tmp_path, groups=True)
    await made.store.open()
    await made.completion.load("chunks", 0)
    return made


async def test_verified_files_wait_for_the_flush_and_are_published_together(rig: Rig) -> None:
    await rig.complete(rig.item("a.pdf", 10))
    await rig.complete(rig.item("b.pdf", 11))
    assert rig.publisher.batches == [] and rig.done == []  # grouped: nothing before the end of the batch
    await rig.flush()
    assert rig.publisher.batches == [["a.pdf", "b.pdf"]] and rig.done == ["a.pdf", "b.pdf"]
    assert (
        rig.completion.uploads.was_published(UploadKey(0, _id("a.pdf")))
        and rig.metric("streamsend_downloader_files_verified_total") == 2
    )


async def test_a_digest_mismatch_is_quarantined_and_never_handed_to_the_publisher(rig: Rig) -> None:
    await rig.complete(rig.item("bad.pdf", 3, sent=b"something else"))
    await rig.flush()
    assert rig.publisher.batches == [] and rig.done == ["bad.pdf"]
    assert rig.metric("streamsend_downloader_files_quarantined_total") == 1
    assert not rig.completion.uploads.was_published(UploadKey(0, _id("bad.pdf")))
    assert list((rig.store.work / "quarantine" / "edge-1").iterdir())


async def test_a_refused_publication_is_quarantined_an_identical_file_counted_as_unchanged(rig: Rig) -> None:
    rig.publisher.refuse.add("blocked.pdf")
    rig.publisher.identical.add("same.pdf")
    await rig.complete(rig.item("blocked.pdf", 1))
    await rig.complete(rig.item("same.pdf", 2))
    await rig.flush()
    assert rig.metric("streamsend_downloader_files_quarantined_total") == 1
    assert rig.metric("streamsend_downloader_files_unchanged_total") == 1
    uploads = rig.completion.uploads
    assert uploads.was_published(UploadKey(0, _id("same.pdf")))
    assert not uploads.was_published(UploadKey(0, _id("blocked.pdf")))


async def test_committed_offsets_prune_the_ledger_and_a_restart_reads_it_back(rig: Rig, tmp_path: Path) -> None:
    for offset, name in enumerate(["a", "b", "c"]):
        await rig.complete(rig.item(name, offset))
    await rig.flush()
    await rig.completion.committed("chunks", 0, 2)  # records before 2 are never read again
    assert [rig.completion.uploads.was_published(UploadKey(0, _id(n))) for n in "abc"] == [False, False, True]
    again = Rig(tmp_path, groups=False)
    await again.completion.load("chunks", 0)
    assert again.completion.uploads.was_published(UploadKey(0, _id("c")))
    assert not again.completion.uploads.was_published(UploadKey(0, _id("a")))


async def test_without_grouping_each_file_is_published_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, groups=False)
    await rig.store.open()
    await rig.completion.load("chunks", 0)
    await rig.complete(rig.item("now.pdf", 0))
    assert rig.publisher.batches == [["now.pdf"]] and rig.done == ["now.pdf"]
