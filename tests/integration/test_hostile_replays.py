"""A principal with write access to the topic, against sealed and signed files: it replays genuine records onto
other partitions and later offsets, poisons upload ids with keys and names of its own, strips sealed names,
sends unsigned newer versions, replays an older version once a newer one is published, and the downloader is
restarted in the middle of it. Every genuine file is published intact, nothing else is, nothing is rolled
back, nothing lands outside the tree, and the downloader keeps running."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamsend.demo.verify import compare_trees, tree_files
from streamsend.shared import keys, protocol
from streamsend.shared.errors import ProtocolError
from streamsend.shared.protocol import FileDigest, crc32c
from streamsend.shared.seal import Sealer
from tests.support.brokers import Broker
from tests.support.daemons import Running, downloader, uploader
from tests.support.kafka import TopicFactory, produce, records
from tests.support.records import Chunk, sealed_chunks_of
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow]

PARTITIONS = 6
CHUNK = 64 * 1024


def _tree(root: Path, rng: random.Random) -> None:
    for index in range(8):
        path = root / f"claims/{index % 3}/claim-{index}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(100, 200_000)))
    (root / "video").mkdir()
    (root / "video/big.bin").write_bytes(rng.randbytes(6 * 1024 * 1024 + 11))  # ~100 chunks: poisoned mid-way


class Attacker:
    """Writes hostile records made from what it reads on the topic, with a key pair and signer of its own."""

    def __init__(self, bootstrap: str, topic: str, office_pub: Path, real_paths: list[str], seed: int) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.rng = random.Random(seed)
        recipient = [keys.load_recipient(office_pub)]
        self.forger = Sealer(recipient, Ed25519PrivateKey.generate(), encrypt_names=True)
        self.unsigned = Sealer(recipient, None, encrypt_names=True)
        self.real_paths = real_paths
        self.sent = 0

    def _record(self, chunk: Chunk, partition: int) -> dict[str, Any]:
        return {"value": chunk.value, "key": b"k", "headers": chunk.headers, "partition": partition}

    def _other(self, partition: int) -> int:
        return self.rng.choice([p for p in range(PARTITIONS) if p != partition])

    def _forged(self, genuine: protocol.ChunkHeader) -> Chunk:
        """The genuine chunk's place (upload id, index, geometry), its bytes and data key the forger's."""
        seal = self.forger.file("edge-1", self.rng.choice(self.real_paths), genuine.upload_id)
        plain = dataclasses.replace(genuine, seal=None, path=seal.wire_path)
        header = dataclasses.replace(plain, seal=seal.for_file(plain))
        data = self.rng.randbytes(genuine.length)
        value = seal.seal(header, data, FileDigest("0" * 64, "0" * 32) if genuine.is_final else None)
        return Chunk(dataclasses.replace(header, crc32c=crc32c(value)), value)

    async def round(self) -> None:
        """One pass over the genuine records on the topic now."""
        hostile: list[dict[str, Any]] = []
        for record in await records(self.bootstrap, self.topic):
            try:
                header = protocol.decode(record.headers, record.value)
            except ProtocolError:
                continue  # one of ours
            if header.uploader != "edge-1" or header.seal is None or self.rng.random() > 0.3:
                continue
            genuine = {"value": record.value, "key": record.key, "headers": list(record.headers)}
            hostile.append({**genuine, "partition": record.partition})  # a later offset, same partition
            hostile.append({**genuine, "partition": self._other(record.partition)})
            # The same upload id and index under a data key of the forger's, on its partition and another:
            forged = self._forged(header)
            hostile.append(self._record(forged, record.partition))
            hostile.append(self._record(forged, self._other(record.partition)))
            # The same upload id under another uploader's name, and unsealed under edge-1's:
            for uploader_name in ("mallory", "edge-1"):
                data = self.rng.randbytes(header.length)
                plain = dataclasses.replace(
                    header, uploader=uploader_name, path="claims/0/claim-0.pdf", seal=None, crc32c=crc32c(data),
                    digest=FileDigest("0" * 64, "0" * 32) if header.is_final else None,
                )  # fmt: skip
                hostile.append(self._record(Chunk(plain, data), record.partition))
            # Its sealed name stripped: it would be published under the stand-in name
            if header.seal.sealed_path is not None:
                stripped = dataclasses.replace(header, seal=dataclasses.replace(header.seal, sealed_path=None))
                hostile.append({**genuine, "headers": protocol.encode(stripped), "partition": record.partition})
        # A newer version of a real file, sealed for the downloader but signed by nobody, whole:
        for path in self.rng.sample(self.real_paths, 2):
            newer = sealed_chunks_of(self.rng.randbytes(5000), 4096, self.unsigned, path=path,
                                     mtime_ns=4_000_000_000_000_000_000)  # fmt: skip
            partition = self.rng.randrange(PARTITIONS)
            hostile += [self._record(chunk, partition) for chunk in newer]
        self.rng.shuffle(hostile)
        await produce(self.bootstrap, self.topic, hostile)
        self.sent += len(hostile)


async def test_replays_and_poison_across_partitions_cost_only_themselves(
    broker: Broker, topics: TopicFactory, tmp_path: Path
) -> None:
    rng = random.Random(20261207)
    office, edge = tmp_path / "keys/office", tmp_path / "keys/edge-1"
    keys.generate(office)
    keys.generate(edge)
    source, target = tmp_path / "in", tmp_path / "out"
    _tree(source, rng)
    target.mkdir()
    topic = await topics.create(PARTITIONS)
    attacker = Attacker(broker.bootstrap, topic, office / keys.RECIPIENT_PUB, list(tree_files(source)), seed=7)
    receiving = {
        "decrypt_key": [office / keys.RECIPIENT_KEY],
        "trusted_uploaders": [f"edge-1={edge / keys.SIGNER_PUB}"],
        "stale_after": 5.0,
    }
    sending = {"encrypt_to": [office / keys.RECIPIENT_PUB], "signing_key": edge / keys.SIGNER_KEY,
               "encrypt_names": True, "chunk_size": CHUNK}  # fmt: skip

    def mirrored() -> bool:
        return compare_trees(source, target / "edge-1").identical

    down: Running = downloader(broker.bootstrap, topic, target, **receiving)
    await down.__aenter__()
    try:
        async with uploader(broker.bootstrap, topic, source, **sending):
            for turn in range(4):
                await attacker.round()
                down.check_alive()
                if turn == 1:  # restarted in the middle of it all
                    await down.stop()
                    down = downloader(broker.bootstrap, topic, target, **receiving)
                    await down.__aenter__()
            await wait_until(mirrored, 120, "every genuine file, intact")
            down.check_alive()

            # A newer version is published; then the older one is replayed whole, on its partition and another.
            older = [r for r in await records(broker.bootstrap, topic) if _names_sealed(r)]
            (source / "video/big.bin").write_bytes(rng.randbytes(300_000))
            await wait_until(mirrored, 60, "the newer version of big.bin")
            # Restarted, the downloader no longer remembers the uploads it saw: only the published file's version
            # stands between the replay and a rollback.
            await down.stop()
            down = downloader(broker.bootstrap, topic, target, **receiving)
            await down.__aenter__()
            replay = [
                {"value": r.value, "key": r.key, "headers": list(r.headers), "partition": p}
                for r in older
                for p in (r.partition, (r.partition + 1) % PARTITIONS)
            ]
            await produce(broker.bootstrap, topic, replay)
            await attacker.round()
            await wait_until(lambda: down.metric("streamsend_downloader_files_failed_total", reason="older") >= 1,
                             60, "the replayed older versions to be turned away")  # fmt: skip
            assert mirrored()  # nothing rolled back
            down.check_alive()
    finally:
        await down.stop()
    assert attacker.sent > 100
    assert compare_trees(source, target / "edge-1").identical
    assert sorted(p.name for p in target.iterdir()) == [".streamsend", "edge-1"]  # no mallory, nothing else
    assert not (target / "edge-1" / "sealed").exists()  # no stand-in name ever published


def _names_sealed(record: Any) -> bool:
    return dict(record.headers).get(protocol.SEAL_PATH) is not None
