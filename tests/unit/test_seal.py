from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping, Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from streamsend.shared import protocol
from streamsend.shared.errors import ProtocolError, RefusedUpload
from streamsend.shared.keys import Identity, Recipient
from streamsend.shared.protocol import decode, encode
from streamsend.shared.seal import Opened, Opener, Sealer
from tests.support.records import Chunk, chunks_of, sealed_chunks_of

DATA = os.urandom(10_000)  # chunks of 4096, 4096, 1808
SIGNER = Ed25519PrivateKey.generate()
ME = Identity(X25519PrivateKey.generate())
OTHER = Identity(X25519PrivateKey.generate())


def _sealer(*identities: Identity, signer: Ed25519PrivateKey | None = SIGNER, names: bool = False) -> Sealer:
    return Sealer([Recipient(i.key.public_key()) for i in identities or (ME,)], signer, names)


def _opener(*identities: Identity, trusted: Mapping[str, Sequence[Ed25519PublicKey]] | None = None) -> Opener:
    return Opener(identities or (ME,), {"edge-1": [SIGNER.public_key()]} if trusted is None else trusted)


def _open_all(opener: Opener, chunks: list[Chunk]) -> list[Opened]:
    """Each record as the downloader reads it: decoded from its headers, then opened."""
    return [opener.open(decode(encode(c.header), c.value), c.value) for c in chunks]


def _failure(opened: Opened) -> tuple[str, str] | None:
    """Why the file must not be published, as the downloader finds out before it would publish it."""
    return None if opened.verdict is None else opened.verdict.failure()


def _assembled(opened: list[Opened]) -> bytes:
    return b"".join(o.data for o in sorted(opened, key=lambda o: o.header.index))


@pytest.mark.parametrize("names", [False, True], ids=["clear names", "encrypt_names"])
@pytest.mark.parametrize("data", [DATA, b"", b"one chunk"], ids=["three chunks", "empty", "one chunk"])
def test_round_trip(data: bytes, names: bool) -> None:
    chunks = sealed_chunks_of(data, 4096, _sealer(names=names), path="docs/policy 7.pdf")
    opened = _open_all(_opener(), chunks)
    assert _assembled(opened) == data
    final = opened[-1]
    assert _failure(final) is None
    assert final.header.digest == protocol.FileDigest(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())
    assert {o.header.path for o in opened} == {"docs/policy 7.pdf"}
    assert all(o.header.seal is None for o in opened)


def test_the_record_shows_no_plaintext_nor_its_digest() -> None:
    text = b"policy holder: Jane Example, IBAN DE00 1234 " * 300
    chunks = sealed_chunks_of(text, 4096, _sealer(names=True), path="secret/name.txt")
    wire = b"".join(c.value + b"".join(n.encode() + v for n, v in encode(c.header)) for c in chunks)
    assert b"Jane Example" not in wire and b"secret/name" not in wire
    assert hashlib.sha256(text).hexdigest().encode() not in wire
    assert all(dict(encode(c.header))[protocol.PATH].startswith(b"sealed/") for c in chunks)


def test_a_version_1_receiver_skips_sealed_records() -> None:
    """Version 1 receivers skip a version they do not know; even one that did not would find the value's
    length wrong for the file's geometry, and never write ciphertext as a file."""
    for chunk in sealed_chunks_of(DATA, 4096, _sealer()):
        headers = dict(encode(chunk.header))
        assert headers[protocol.VERSION] == b"2"
        assert headers[protocol.SEAL] == b"1"
        assert len(chunk.value) != chunk.header.length


def test_key_rotation_opens_files_sealed_for_either_key() -> None:
    opener = _opener(ME, OTHER)
    for identity in (ME, OTHER):
        chunks = sealed_chunks_of(DATA, 4096, _sealer(identity))
        assert _assembled(_open_all(opener, chunks)) == DATA


def test_several_recipients_each_open_the_file() -> None:
    chunks = sealed_chunks_of(DATA, 4096, _sealer(ME, OTHER))
    for identity in (ME, OTHER):
        assert _assembled(_open_all(_opener(identity), chunks)) == DATA


def _fails_authentication(opener: Opener, chunk: Chunk) -> None:
    with pytest.raises(ProtocolError) as caught:
        _open_all(opener, [chunk])
    assert caught.value.reason == "sealed"


def test_a_flipped_ciphertext_bit_is_refused() -> None:
    chunk = sealed_chunks_of(DATA, 4096, _sealer())[1]
    value = bytearray(chunk.value)
    value[100] ^= 0x01
    _fails_authentication(_opener(), _with_value(chunk, bytes(value)))


def test_chunks_swapped_between_two_files_are_refused() -> None:
    a = sealed_chunks_of(DATA, 4096, _sealer(), path="a.bin")
    b = sealed_chunks_of(DATA, 4096, _sealer(), path="b.bin")
    opener = _opener()
    _open_all(opener, a[:1] + b[:1])  # both uploads known to the downloader
    _fails_authentication(opener, _with_value(a[1], b[1].value))
    _fails_authentication(opener, _with_value(b[1], a[1].value))


def test_reordered_chunks_are_refused() -> None:
    chunks = sealed_chunks_of(os.urandom(3 * 4096), 4096, _sealer())
    opener = _opener()
    _open_all(opener, chunks[:1])
    _fails_authentication(opener, _with_value(chunks[1], chunks[2].value[: len(chunks[1].value)]))
    _fails_authentication(opener, _with_value(chunks[0], chunks[1].value))


@pytest.mark.parametrize("names", [False, True], ids=["clear names", "encrypt_names"])
def test_a_renamed_path_is_refused(names: bool) -> None:
    chunk = sealed_chunks_of(DATA, 4096, _sealer(names=names), path="a.bin")[0]
    renamed = dataclasses.replace(chunk.header, path="b.bin")
    _fails_authentication(_opener(), Chunk(renamed, chunk.value))


def test_an_uploader_name_changed_is_refused() -> None:
    chunk = sealed_chunks_of(DATA, 4096, _sealer())[0]
    _fails_authentication(_opener(trusted={}), Chunk(dataclasses.replace(chunk.header, uploader="edge-2"), chunk.value))


def test_a_chunk_replayed_from_another_upload_is_refused() -> None:
    old = sealed_chunks_of(DATA, 4096, _sealer(), path="a.bin")
    new = sealed_chunks_of(DATA, 4096, _sealer(), path="a.bin")
    opener = _opener()
    _open_all(opener, new[:1])
    _fails_authentication(opener, _with_value(new[1], old[1].value))
    # The whole old record under the new upload id: the new upload's key does not open it.
    _fails_authentication(opener, Chunk(dataclasses.replace(old[1].header, upload_id=new[1].header.upload_id),
                                        old[1].value))  # fmt: skip


def test_a_wrong_signer_is_refused() -> None:
    chunks = sealed_chunks_of(DATA, 4096, _sealer(signer=Ed25519PrivateKey.generate()))
    failure = _failure(_open_all(_opener(), chunks)[-1])
    assert failure is not None and failure[0] == "signature"
    assert "edge-1" in failure[1]


def test_an_unsigned_file_is_refused_where_signatures_are_required() -> None:
    chunks = sealed_chunks_of(DATA, 4096, _sealer(signer=None))
    failure = _failure(_open_all(_opener(), chunks)[-1])
    assert failure is not None and failure[0] == "unsigned"
    assert _open_all(_opener(trusted={}), chunks)[-1].verdict is None  # nobody to trust: sha256 decides


def test_a_stripped_signature_is_refused() -> None:
    final = sealed_chunks_of(DATA, 4096, _sealer())[-1]
    with pytest.raises(ProtocolError):  # shorter by the signature: the tag no longer matches
        _open_all(_opener(), [_with_value(final, final.value[:-64])])


def test_a_file_for_another_recipient_is_refused_once_then_skipped() -> None:
    chunks = sealed_chunks_of(DATA, 4096, _sealer(OTHER))
    opener = _opener(ME)
    with pytest.raises(RefusedUpload) as first:
        _open_all(opener, chunks[:1])
    assert (first.value.reason, first.value.first) == ("not_recipient", True)
    assert ME.id in str(first.value) and OTHER.id in str(first.value)
    with pytest.raises(RefusedUpload) as later:
        _open_all(opener, chunks[1:2])
    assert later.value.first is False


def test_a_downloader_without_keys_refuses_sealed_files() -> None:
    chunks = sealed_chunks_of(DATA, 4096, _sealer())
    with pytest.raises(RefusedUpload, match="no decrypt_key") as caught:
        _open_all(Opener([], {}), chunks[:1])
    assert caught.value.reason == "not_recipient"


def test_an_untrusted_uploader_is_refused_before_anything_is_opened() -> None:
    chunks = sealed_chunks_of(DATA, 4096, _sealer(), uploader="edge-9")
    with pytest.raises(RefusedUpload, match="edge-9 is not among trusted_uploaders") as caught:
        _open_all(_opener(), chunks[:1])
    assert caught.value.reason == "untrusted"


def test_unsealed_files_are_refused_where_signatures_are_required() -> None:
    [chunk] = chunks_of(b"plain", 4096)
    with pytest.raises(RefusedUpload) as caught:
        _open_all(_opener(), [chunk])
    assert caught.value.reason == "unsigned"
    assert _open_all(Opener([ME], {}), [chunk])[0].data == b"plain"  # only a key: plain files still welcome


def test_a_hostile_sealed_path_is_refused() -> None:
    """A sender holding the recipient's public key seals a path that climbs out of the tree."""
    sealer = _sealer(names=True)
    chunks = sealed_chunks_of(b"x", 4096, sealer, path="fine.txt")
    seal = sealer.file("edge-1", "fine.txt", chunks[0].header.upload_id)
    seal.path = "../../etc/passwd"
    template = dataclasses.replace(chunks[0].header, seal=None)
    header = dataclasses.replace(template, seal=seal.for_file(template))
    hostile = Chunk(header, seal.seal(header, b"x", None))
    with pytest.raises(ProtocolError) as caught:
        Opener([ME], {}).open(header, hostile.value)
    assert caught.value.reason == "unsafe_path"


def _with_value(chunk: Chunk, value: bytes) -> Chunk:
    return Chunk(dataclasses.replace(chunk.header, crc32c=protocol.crc32c(value)), value)
