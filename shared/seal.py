"""Sealed files: encrypted for chosen downloaders, signed by their uploader (wire format version 2).

Per upload, a random 256-bit data key encrypts every chunk with AES-256-GCM. The nonce is the upload id's
first four bytes and the chunk index; the associated data is every header that places the chunk (uploader,
path, upload id, index, count, chunk size, offset, file size, mtime), so a chunk cannot be moved to another
place, file or upload. The data key is wrapped for each recipient: X25519 between the sender's key and the
recipient's, HKDF-SHA256 bound to both public keys and the upload id, AES-256-GCM. The final chunk seals,
after the file's last bytes, its sha256 and md5 and, when the uploader signs, an Ed25519 signature over
uploader, path, upload id, size, mtime and digests. With ``encrypt_names`` the path header is a stand-in and
the real path travels sealed in ``streamsend.seal-path``.

Everything here is pure computation on bytes (the ``cryptography`` package's primitives; nothing is
hand-written): the uploader's reader calls ``FileSeal.seal`` in its worker thread, the downloader's receiver
calls ``Opener.open`` for every record.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamsend.shared.errors import ProtocolError, RefusedUpload, UnsafePathError
from streamsend.shared.keys import Identity, Recipient, raw_public
from streamsend.shared.paths import MAX_PATH_BYTES, validate_wire_path
from streamsend.shared.protocol import (
    SEAL_TAG_BYTES,
    SEAL_TRAILER_BYTES,
    SIGNATURE_BYTES,
    ChunkHeader,
    FileDigest,
    SealHeader,
)

SUITE: Final = b"streamsend-seal-1"
NAME_INDEX: Final = 2**64 - 1  # the nonce of the sealed path: no chunk has this index
STAND_IN_FOLDER: Final = "sealed"
REMEMBER_KEYS = 4096  # data keys of uploads being received
REMEMBER_SENDERS = 256  # shared secrets with senders' keys: a sender keeps one for many uploads
REMEMBER_REFUSED = 10_000  # refusals already reported: a refused upload's later chunks are skipped quietly
# Bytes a sealed record may take beyond an unsealed one: tag, trailer, signature, and the seal headers
# (ephemeral key, one wrapped key a recipient, the sealed path), with their names.
_HEADER_BYTES_PER_RECIPIENT = 16 + 1 + 64 + 1
_SEAL_HEADERS_BYTES = 128 + 43 + (MAX_PATH_BYTES + SEAL_TAG_BYTES) * 4 // 3 + 64


def chunk_aad(h: ChunkHeader) -> bytes:
    """What a chunk's tag binds it to: every header that says where its bytes belong."""
    return (
        f"streamsend-seal-1\0chunk\0{h.uploader}\0{h.path}\0{h.upload_id}\0{h.index}\0{h.count}\0{h.chunk_size}"
        f"\0{h.offset}\0{h.file_size}\0{h.mtime_ns}"
    ).encode()


def _path_aad(h: ChunkHeader) -> bytes:
    fields = (h.uploader, h.path, h.upload_id, h.count, h.chunk_size, h.file_size, h.mtime_ns)
    return b"\0".join([SUITE, b"path", *(str(field).encode() for field in fields)])


def _plain(h: ChunkHeader, path: str, digest: FileDigest | None) -> ChunkHeader:
    """The header an unsealed chunk would have (field by field: dataclasses.replace costs several times more)."""
    return ChunkHeader(h.uploader, path, h.upload_id, h.index, h.count, h.chunk_size, h.offset, h.file_size,
                       h.mtime_ns, h.crc32c, digest)  # fmt: skip


def stand_in_path(upload_id: str) -> str:
    """The path header of an upload whose real name is sealed."""
    return f"{STAND_IN_FOLDER}/{upload_id}"


def fingerprint(seal: SealHeader) -> str:
    """Names the data key a sealed upload's chunks are sealed with: the same on every genuine chunk of the
    upload, different for chunks that carry the same upload id under a key of someone else's making."""
    digest = hashlib.blake2b(seal.ephemeral, digest_size=8)
    for kid, wrapped in seal.recipients:
        digest.update(kid.encode() + b":" + wrapped)
    return digest.hexdigest()


def nonce(upload_id: str, index: int) -> bytes:
    return bytes.fromhex(upload_id)[:4] + index.to_bytes(8, "big")


def signed_message(h: ChunkHeader, path: str, digest: FileDigest) -> bytes:
    """What the uploader signs: who sent which file, as what upload, with which content."""
    fields = (h.uploader, path, h.upload_id, h.file_size, h.mtime_ns, digest.sha256, digest.md5)
    return b"\0".join([SUITE, b"signature", *(str(field).encode() for field in fields)])


def _wrapping_key(shared: bytes, ephemeral: bytes, recipient: bytes, upload_id: str) -> AESGCM:
    # One key per upload and recipient, so the zero nonce below is never used twice with one key.
    derived = HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=SUITE + b" wrap " + upload_id.encode())
    return AESGCM(derived.derive(shared))


_WRAP_NONCE: Final = bytes(12)


class Sealer:
    """The uploader's side: one per daemon, a ``FileSeal`` per upload.

    The sender's X25519 key is made once per daemon and its shared secret with each recipient computed once:
    every upload's wrapping key is then derived from it with the upload id. Per file, that leaves an HKDF and
    a 32-byte encryption per recipient, which matters for many small files.
    """

    def __init__(self, recipients: Sequence[Recipient], signer: Ed25519PrivateKey | None, encrypt_names: bool) -> None:
        if not recipients:
            raise ValueError("a sealer needs at least one recipient")
        sender = X25519PrivateKey.generate()
        self._ephemeral = raw_public(sender.public_key())
        self._recipients = [(r.id, raw_public(r.key), sender.exchange(r.key)) for r in recipients]
        self._signer = signer
        self.encrypt_names = encrypt_names

    @property
    def recipient_ids(self) -> list[str]:
        return [kid for kid, _, _ in self._recipients]

    @property
    def overhead_bytes(self) -> int:
        """The most a sealed record may add to an unsealed one: the chunk size leaves room for it."""
        return (
            SEAL_TAG_BYTES
            + SEAL_TRAILER_BYTES
            + SIGNATURE_BYTES
            + _SEAL_HEADERS_BYTES
            + len(self._recipients) * _HEADER_BYTES_PER_RECIPIENT
        )

    def file(self, uploader: str, path: str, upload_id: str) -> FileSeal:
        data_key = AESGCM.generate_key(256)
        wrapped = tuple(
            (kid, _wrapping_key(shared, self._ephemeral, public, upload_id).encrypt(
                _WRAP_NONCE, data_key, upload_id.encode()))
            for kid, public, shared in self._recipients
        )  # fmt: skip
        return FileSeal(AESGCM(data_key), uploader, path, upload_id, self._ephemeral, wrapped, self._signer,
                        self.encrypt_names)  # fmt: skip


class FileSeal:
    """One upload's data key and seal headers; ``seal`` turns a chunk's bytes into its record value."""

    def __init__(
        self,
        cipher: AESGCM,
        uploader: str,
        path: str,
        upload_id: str,
        ephemeral: bytes,
        wrapped: tuple[tuple[str, bytes], ...],
        signer: Ed25519PrivateKey | None,
        encrypt_names: bool,
    ) -> None:
        self._cipher = cipher
        self._signer = signer
        self.path = path
        self.wire_path = stand_in_path(upload_id) if encrypt_names else path
        self._upload_id = upload_id
        self.header = SealHeader(ephemeral, wrapped)
        self._names_sealed = encrypt_names

    def for_file(self, template: ChunkHeader) -> SealHeader:
        """The seal headers for this upload's chunks, ``template`` being any of them (the path sealed needs
        the file's geometry as associated data)."""
        if not self._names_sealed:
            return self.header
        sealed = self._cipher.encrypt(nonce(self._upload_id, NAME_INDEX), self.path.encode(), _path_aad(template))
        self.header = dataclasses.replace(self.header, sealed_path=sealed)
        self._names_sealed = False
        return self.header

    def extra_bytes(self, final: bool) -> int:
        """How much longer than the chunk's bytes its sealed value is."""
        if not final:
            return SEAL_TAG_BYTES
        return SEAL_TAG_BYTES + SEAL_TRAILER_BYTES + (SIGNATURE_BYTES if self._signer is not None else 0)

    def seal(self, header: ChunkHeader, data: bytes, digest: FileDigest | None) -> bytes:
        """The record value of one chunk; ``digest`` (of the whole file) is given with the final chunk."""
        if digest is not None:
            trailer = bytes.fromhex(digest.sha256) + bytes.fromhex(digest.md5)
            if self._signer is not None:
                trailer += self._signer.sign(signed_message(header, self.path, digest))
            data += trailer
        return self._cipher.encrypt(nonce(header.upload_id, header.index), data, chunk_aad(header))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a file must not be published, known as its final chunk is opened."""

    reason: str  # metrics label
    why: str

    def failure(self) -> tuple[str, str] | None:
        return self.reason, self.why


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """A signature still to verify before the file is published. About 60 µs of CPU a file, with the GIL
    released: the downloader runs it in the worker threads that write files, beside their I/O."""

    uploader: str
    keys: tuple[Ed25519PublicKey, ...]
    message: bytes
    signature: bytes

    def failure(self) -> tuple[str, str] | None:
        for key in self.keys:
            try:
                key.verify(self.signature, self.message)
            except InvalidSignature:
                continue
            return None
        return "signature", f"signature does not verify with the keys trusted for uploader {self.uploader}"


Verdict = Refusal | SignatureCheck  # ``failure()``: (metrics reason, message), or None to publish


@dataclass(frozen=True, slots=True)
class Opened:
    """A sealed chunk opened: its header as an unsealed one would read (real path; digests on the final
    chunk), its bytes, on the final chunk what decides whether the file may be published, and the fingerprint
    of the data key it authenticated with ("" for a plain chunk): chunks under another key are another upload."""

    header: ChunkHeader
    data: bytes
    verdict: Verdict | None = None
    seal: str = ""


class Opener:
    """The downloader's side: opens sealed chunks with its keys and enforces whom it trusts.

    ``identities`` are the downloader's private keys (several during a key rotation); ``trusted`` binds
    uploader names to the public keys their files must be signed with (empty: signatures are not required,
    and unsealed files are accepted).

    Nothing a record says is believed for other records before it authenticates: every record is judged on its
    own (a refusal is reported once per upload, but never extended to other records of the same upload id), and
    a data key is remembered under the seal headers it was unwrapped from, so a record carrying a genuine upload
    id with a key of its own making cannot change how the genuine chunks open.
    """

    def __init__(self, identities: Sequence[Identity], trusted: Mapping[str, Sequence[Ed25519PublicKey]]) -> None:
        self._identities = {identity.id: identity for identity in identities}
        self._trusted = trusted
        self._keys: OrderedDict[tuple[str, str], AESGCM] = OrderedDict()  # (upload id, fingerprint) -> data key
        self._shared: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._reported: OrderedDict[tuple[str, str, str], None] = OrderedDict()  # (upload id, uploader, reason)

    @property
    def active(self) -> bool:
        return bool(self._identities or self._trusted)

    def describe(self) -> str:
        """For the start-up log: which keys open files, and whose files are accepted."""
        keys = ", ".join(self._identities) or "none"
        trusted = ", ".join(f"{name} ({len(signers)} keys)" for name, signers in self._trusted.items())
        return f"opened with keys {keys}; " + (
            f"only files signed by {trusted} accepted" if trusted else "signatures not required"
        )

    def open(self, header: ChunkHeader, value: bytes) -> Opened:
        """The chunk's plain form. ProtocolError (reason ``sealed``) for a chunk that fails authentication,
        RefusedUpload for a file this downloader must not take at all."""
        seal = header.seal
        key_print = fingerprint(seal) if seal is not None else ""
        try:
            self._admit(header, key_print)
        except RefusedUpload as exc:
            exc.first = self._first_report((header.upload_id, header.uploader, exc.reason))
            raise
        if seal is None:
            return Opened(header, value)
        if seal.sealed_path is None and header.path == stand_in_path(header.upload_id):
            # The stand-in is authenticated as the path: the real name was sealed, and its header stripped.
            raise ProtocolError(f"upload {header.upload_id}: its sealed path is missing", "sealed")
        cipher = self._cipher(header, seal, key_print)
        try:
            data = cipher.decrypt(nonce(header.upload_id, header.index), value, chunk_aad(header))
        except InvalidTag:
            raise ProtocolError(
                f"chunk {header.index} of upload {header.upload_id} fails authentication (altered, moved or "
                "not of this upload)", "sealed",
            ) from None  # fmt: skip
        path = header.path if seal.sealed_path is None else self._open_path(header, seal, cipher)
        if not header.is_final:
            return Opened(_plain(header, path, None), data, seal=key_print)
        body, trailer = data[: header.length], data[header.length :]
        digest = FileDigest(trailer[:32].hex(), trailer[32:SEAL_TRAILER_BYTES].hex())
        plain = _plain(header, path, digest)
        return Opened(plain, body, self._verdict(plain, digest, trailer[SEAL_TRAILER_BYTES:]), key_print)

    def _admit(self, header: ChunkHeader, key_print: str) -> None:
        if self._trusted:
            if header.uploader not in self._trusted:
                raise RefusedUpload(f"uploader {header.uploader} is not among trusted_uploaders", "untrusted")
            if header.seal is None:
                raise RefusedUpload("not sealed and signed, and trusted_uploaders is set", "unsigned")
        if header.seal is None:
            return
        if (header.upload_id, key_print) in self._keys:
            return
        if not self._identities:
            raise RefusedUpload("sealed, and this downloader has no decrypt_key", "not_recipient")
        sealed_for = [kid for kid, _ in header.seal.recipients]
        if not any(kid in self._identities for kid in sealed_for):
            raise RefusedUpload(
                f"sealed for keys {', '.join(sealed_for)}; this downloader holds {', '.join(self._identities)}",
                "not_recipient",
            )

    def _cipher(self, header: ChunkHeader, seal: SealHeader, key_print: str) -> AESGCM:
        cached = (header.upload_id, key_print)
        cipher = self._keys.get(cached)
        if cipher is not None:
            self._keys.move_to_end(cached)
            return cipher
        for kid, wrapped in seal.recipients:
            identity = self._identities.get(kid)
            if identity is None:
                continue
            try:
                shared = self._exchange(identity, kid, seal.ephemeral)
                wrapping = _wrapping_key(shared, seal.ephemeral, raw_public(identity.key.public_key()),
                                         header.upload_id)  # fmt: skip
                cipher = AESGCM(wrapping.decrypt(_WRAP_NONCE, wrapped, header.upload_id.encode()))
            except (InvalidTag, ValueError):
                continue  # a low-order ephemeral key, or a wrapped key that is not ours after all
            self._keys[cached] = cipher
            while len(self._keys) > REMEMBER_KEYS:
                self._keys.popitem(last=False)
            return cipher
        raise ProtocolError(f"upload {header.upload_id}: the data key does not unwrap with this downloader's keys",
                            "sealed")  # fmt: skip

    def _exchange(self, identity: Identity, kid: str, ephemeral: bytes) -> bytes:
        """The secret shared with a sender's key, computed once for all the uploads it wraps keys for."""
        shared = self._shared.get((kid, ephemeral))
        if shared is None:
            shared = self._shared[(kid, ephemeral)] = identity.key.exchange(
                X25519PublicKey.from_public_bytes(ephemeral)
            )
            while len(self._shared) > REMEMBER_SENDERS:
                self._shared.popitem(last=False)
        return shared

    def _open_path(self, header: ChunkHeader, seal: SealHeader, cipher: AESGCM) -> str:
        assert seal.sealed_path is not None
        try:
            raw = cipher.decrypt(nonce(header.upload_id, NAME_INDEX), seal.sealed_path, _path_aad(header))
            path = raw.decode("utf-8")
            validate_wire_path(path)
        except InvalidTag:
            raise ProtocolError(f"upload {header.upload_id}: the sealed path fails authentication", "sealed") from None
        except (UnicodeDecodeError, UnsafePathError) as exc:
            raise ProtocolError(f"upload {header.upload_id}: sealed path rejected: {exc}", "unsafe_path") from None
        return path

    def _verdict(self, header: ChunkHeader, digest: FileDigest, signature: bytes) -> Verdict | None:
        if not self._trusted:
            return None  # nobody to check a signature against: the file is as good as its sha256
        if not signature:
            return Refusal("unsigned", f"not signed, and trusted_uploaders requires {header.uploader}'s signature")
        keys = tuple(self._trusted.get(header.uploader, ()))
        return SignatureCheck(header.uploader, keys, signed_message(header, header.path, digest), signature)

    def _first_report(self, refusal: tuple[str, str, str]) -> bool:
        if refusal in self._reported:
            return False
        self._reported[refusal] = None
        while len(self._reported) > REMEMBER_REFUSED:
            self._reported.popitem(last=False)
        return True
