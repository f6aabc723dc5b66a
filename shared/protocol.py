"""The wire format: one Kafka record per chunk, raw bytes as the value, metadata in headers.

Every header name starts with ``streamsend.``; values are ASCII (decimal integers, lowercase hex digests,
unpadded base64url) or UTF-8 (uploader name, path), so any Kafka client — kcat included — can show them.
Version 1 records carry the file's bytes; version 2 records are sealed (the value is ciphertext, see
``shared/seal.py``) and add the seal headers. docs/PROTOCOL.md is the normative description; this module is
its only implementation.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import google_crc32c

from streamsend.shared.errors import ForeignRecordError, ProtocolError, UnsafePathError
from streamsend.shared.paths import MAX_PATH_BYTES, validate_uploader_name, validate_wire_path

PROTOCOL_VERSION: Final = 1
SEALED_VERSION: Final = 2  # the value is ciphertext: a version-1 receiver must skip it, not write it
SEAL_VERSION: Final = 1
PREFIX: Final = "streamsend."

VERSION: Final = PREFIX + "version"
UPLOADER: Final = PREFIX + "uploader"
PATH: Final = PREFIX + "path"
UPLOAD_ID: Final = PREFIX + "upload-id"
CHUNK_INDEX: Final = PREFIX + "chunk-index"
CHUNK_COUNT: Final = PREFIX + "chunk-count"
CHUNK_SIZE: Final = PREFIX + "chunk-size"
OFFSET: Final = PREFIX + "offset"
FILE_SIZE: Final = PREFIX + "file-size"
MTIME_NS: Final = PREFIX + "mtime-ns"
CHUNK_CRC32C: Final = PREFIX + "chunk-crc32c"
SHA256: Final = PREFIX + "sha256"
MD5: Final = PREFIX + "md5"
SEAL: Final = PREFIX + "seal"
SEAL_EPHEMERAL: Final = PREFIX + "seal-ephemeral"
SEAL_RECIPIENTS: Final = PREFIX + "seal-recipients"
SEAL_PATH: Final = PREFIX + "seal-path"

_REQUIRED: Final = (
    VERSION, UPLOADER, PATH, UPLOAD_ID, CHUNK_INDEX, CHUNK_COUNT, CHUNK_SIZE, OFFSET, FILE_SIZE, MTIME_NS,
    CHUNK_CRC32C,
)  # fmt: skip
_FINAL_ONLY: Final = (SHA256, MD5)
_SEAL_REQUIRED: Final = (SEAL, SEAL_EPHEMERAL, SEAL_RECIPIENTS)
_VERSIONS: Final = (str(PROTOCOL_VERSION).encode(), str(SEALED_VERSION).encode())
_KNOWN: Final = frozenset(_REQUIRED + _FINAL_ONLY + _SEAL_REQUIRED + (SEAL_PATH,))

SEAL_TAG_BYTES: Final = 16  # the AEAD tag every sealed chunk ends with
SEAL_TRAILER_BYTES: Final = 32 + 16  # sha256 and md5 of the file, sealed at the end of the final chunk
SIGNATURE_BYTES: Final = 64  # Ed25519, after the trailer when the uploader signs
WRAPPED_KEY_BYTES: Final = 32 + SEAL_TAG_BYTES
MAX_RECIPIENTS: Final = 32

MAX_INT64: Final = 2**63 - 1
MAX_CHUNK_SIZE: Final = 2**31 - 1
_UNSIGNED = re.compile(rb"0|[1-9][0-9]{0,18}")
_SIGNED = re.compile(rb"-?(?:0|[1-9][0-9]{0,18})")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_B64 = re.compile(rb"[A-Za-z0-9_-]+")
_KEY_ID = re.compile(rb"[0-9a-f]{16}")
_HEX = {CHUNK_CRC32C: re.compile(rb"[0-9a-f]{8}"), SHA256: re.compile(rb"[0-9a-f]{64}"),
        MD5: re.compile(rb"[0-9a-f]{32}")}  # fmt: skip

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class SealHeader:
    """What a sealed chunk says in clear about its sealing: the same on every chunk of one upload."""

    ephemeral: bytes  # the sender's X25519 public key the data key was wrapped with
    recipients: tuple[tuple[str, bytes], ...]  # (key id, wrapped data key) for each recipient
    sealed_path: bytes | None = None  # the real path, sealed, when the header path is a stand-in


@dataclass(frozen=True, slots=True)
class FileDigest:
    """Whole-file digests, carried by the final chunk only."""

    sha256: str
    md5: str


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    """Everything the headers of one chunk record say."""

    uploader: str
    path: str
    upload_id: str
    index: int
    count: int
    chunk_size: int
    offset: int
    file_size: int
    mtime_ns: int
    crc32c: int
    digest: FileDigest | None = None
    seal: SealHeader | None = None

    @property
    def is_final(self) -> bool:
        return self.index == self.count - 1

    @property
    def length(self) -> int:
        """Bytes this chunk must carry, derived from the file size and the chunk size."""
        return max(0, min(self.chunk_size, self.file_size - self.offset))

    def sealed_lengths(self) -> tuple[int, ...]:
        """The lengths the value of a sealed chunk may have: the bytes, the tag and, on the final chunk, the
        sealed digests with or without a signature."""
        sealed = self.length + SEAL_TAG_BYTES
        if not self.is_final:
            return (sealed,)
        return (sealed + SEAL_TRAILER_BYTES, sealed + SEAL_TRAILER_BYTES + SIGNATURE_BYTES)

    def same_file(self, other: ChunkHeader) -> bool:
        """Whether two chunks of one upload id agree on the file they describe."""
        return (self.uploader, self.path, self.count, self.chunk_size, self.file_size, self.mtime_ns) == (
            other.uploader, other.path, other.count, other.chunk_size, other.file_size, other.mtime_ns,
        )  # fmt: skip


def chunk_count(file_size: int, chunk_size: int) -> int:
    """Chunks a file of ``file_size`` bytes is cut into; an empty file is one empty chunk."""
    return max(1, -(-file_size // chunk_size))


def crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


def record_key(upload_id: str) -> bytes:
    return upload_id.encode("ascii")


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def unb64(raw: bytes, name: str, size: int | None = None) -> bytes:
    if not _B64.fullmatch(raw) or len(raw) % 4 == 1:
        raise ProtocolError(f"header {name} is not unpadded base64url")
    data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    if size is not None and len(data) != size:
        raise ProtocolError(f"header {name} holds {len(data)} bytes, expected {size}")
    return data


def encode(header: ChunkHeader) -> Headers:
    """Headers for one chunk record, in a fixed order."""
    seal = header.seal
    out: Headers = [
        (VERSION, str(PROTOCOL_VERSION if seal is None else SEALED_VERSION).encode()),
        (UPLOADER, header.uploader.encode()),
        (PATH, header.path.encode()),
        (UPLOAD_ID, header.upload_id.encode()),
        (CHUNK_INDEX, str(header.index).encode()),
        (CHUNK_COUNT, str(header.count).encode()),
        (CHUNK_SIZE, str(header.chunk_size).encode()),
        (OFFSET, str(header.offset).encode()),
        (FILE_SIZE, str(header.file_size).encode()),
        (MTIME_NS, str(header.mtime_ns).encode()),
        (CHUNK_CRC32C, f"{header.crc32c:08x}".encode()),
    ]
    if header.digest is not None:
        out += [(SHA256, header.digest.sha256.encode()), (MD5, header.digest.md5.encode())]
    if seal is not None:
        out += [
            (SEAL, str(SEAL_VERSION).encode()),
            (SEAL_EPHEMERAL, b64(seal.ephemeral)),
            (SEAL_RECIPIENTS, b",".join(kid.encode() + b":" + b64(wrapped) for kid, wrapped in seal.recipients)),
        ]
        if seal.sealed_path is not None:
            out.append((SEAL_PATH, b64(seal.sealed_path)))
    return out


def decode(headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> ChunkHeader:
    """Validate a record's headers against its value and return what they say.

    Raises ForeignRecordError for a record without streamsend headers and ProtocolError for any other
    violation: a missing, repeated or malformed header, an unknown version, an unsafe path, sizes or
    indexes that do not agree, or a chunk whose bytes do not match its CRC32C.
    """
    fields: dict[str, bytes] = {}
    for name, raw in headers:
        if not isinstance(name, str) or not name.startswith(PREFIX):
            continue  # other producers' headers (tracing and the like) are not ours to judge
        if name not in _KNOWN:
            continue  # a later minor addition; the version header says whether we understand the record
        if name in fields:
            raise ProtocolError(f"header {name} repeated")
        if not isinstance(raw, bytes):
            raise ProtocolError(f"header {name} has no value")
        fields[name] = raw
    if not fields:
        raise ForeignRecordError("record carries no streamsend headers")
    if VERSION not in fields:
        raise ProtocolError(f"header {VERSION} missing")
    if fields[VERSION] not in _VERSIONS:
        raise ProtocolError(f"unsupported protocol version {fields[VERSION][:16]!r}", "version")
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise ProtocolError(f"header {missing[0]} missing")
    if value is None:
        raise ProtocolError("record has no value")

    header = ChunkHeader(
        uploader=_uploader(fields[UPLOADER]),
        path=_path(fields[PATH]),
        upload_id=_upload_id(fields[UPLOAD_ID]),
        index=_unsigned(fields, CHUNK_INDEX),
        count=_unsigned(fields, CHUNK_COUNT),
        chunk_size=_unsigned(fields, CHUNK_SIZE),
        offset=_unsigned(fields, OFFSET),
        file_size=_unsigned(fields, FILE_SIZE),
        mtime_ns=_signed(fields, MTIME_NS),
        crc32c=int(_hex(fields, CHUNK_CRC32C), 16),
        digest=_digest(fields),
        seal=_seal(fields) if fields[VERSION] == _VERSIONS[1] else None,
    )
    if header.seal is None and any(name in fields for name in (*_SEAL_REQUIRED, SEAL_PATH)):
        raise ProtocolError("seal headers on a version 1 record")
    _check_geometry(header, len(value))
    if crc32c(value) != header.crc32c:
        raise ProtocolError(f"chunk {header.index} fails its CRC32C check", "checksum")
    return header


def _check_geometry(h: ChunkHeader, value_len: int) -> None:
    if not 1 <= h.chunk_size <= MAX_CHUNK_SIZE:
        raise ProtocolError(f"chunk size {h.chunk_size} out of range")
    if h.count != chunk_count(h.file_size, h.chunk_size):
        raise ProtocolError(f"chunk count {h.count} does not fit file size {h.file_size}")
    if h.index >= h.count:
        raise ProtocolError(f"chunk index {h.index} not below chunk count {h.count}")
    if h.offset != h.index * h.chunk_size:
        raise ProtocolError(f"offset {h.offset} does not fit chunk index {h.index}")
    if h.seal is not None:
        if value_len not in h.sealed_lengths():
            raise ProtocolError(f"sealed chunk {h.index} carries {value_len} bytes, expected {h.sealed_lengths()}")
        if h.digest is not None:
            raise ProtocolError("a sealed chunk carries its digests sealed, not in headers")
        return
    if value_len != h.length:
        raise ProtocolError(f"chunk {h.index} carries {value_len} bytes, expected {h.length}")
    if h.is_final != (h.digest is not None):
        raise ProtocolError("whole-file digests belong on the final chunk, and only there")


def _seal(fields: dict[str, bytes]) -> SealHeader:
    missing = [name for name in _SEAL_REQUIRED if name not in fields]
    if missing:
        raise ProtocolError(f"header {missing[0]} missing on a sealed record")
    if fields[SEAL] != str(SEAL_VERSION).encode():
        raise ProtocolError(f"unsupported seal version {fields[SEAL][:16]!r}", "version")
    entries = fields[SEAL_RECIPIENTS].split(b",")
    if len(entries) > MAX_RECIPIENTS:
        raise ProtocolError(f"more than {MAX_RECIPIENTS} recipients")
    recipients = []
    for entry in entries:
        kid, _, wrapped = entry.partition(b":")
        if not _KEY_ID.fullmatch(kid):
            raise ProtocolError(f"header {SEAL_RECIPIENTS}: a key id is not 16 lowercase hex digits")
        recipients.append((kid.decode(), unb64(wrapped, SEAL_RECIPIENTS, WRAPPED_KEY_BYTES)))
    sealed_path = None
    if SEAL_PATH in fields:
        if len(fields[SEAL_PATH]) > (MAX_PATH_BYTES + SEAL_TAG_BYTES) * 4 // 3 + 4:
            raise ProtocolError(f"header {SEAL_PATH} is too long")
        sealed_path = unb64(fields[SEAL_PATH], SEAL_PATH)
    return SealHeader(unb64(fields[SEAL_EPHEMERAL], SEAL_EPHEMERAL, 32), tuple(recipients), sealed_path)


def _digest(fields: dict[str, bytes]) -> FileDigest | None:
    present = [name for name in _FINAL_ONLY if name in fields]
    if not present:
        return None
    if len(present) != len(_FINAL_ONLY):
        raise ProtocolError("final chunk needs both sha256 and md5")
    return FileDigest(sha256=_hex(fields, SHA256), md5=_hex(fields, MD5))


def _unsigned(fields: dict[str, bytes], name: str) -> int:
    raw = fields[name]
    if not _UNSIGNED.fullmatch(raw) or int(raw) > MAX_INT64:
        raise ProtocolError(f"header {name} is not a non-negative integer: {raw[:24]!r}")
    return int(raw)


def _signed(fields: dict[str, bytes], name: str) -> int:
    raw = fields[name]
    if not _SIGNED.fullmatch(raw) or abs(int(raw)) > MAX_INT64:
        raise ProtocolError(f"header {name} is not an integer: {raw[:24]!r}")
    return int(raw)


def _hex(fields: dict[str, bytes], name: str) -> str:
    raw = fields[name]
    if not _HEX[name].fullmatch(raw):
        raise ProtocolError(f"header {name} is not lowercase hex of the right length")
    return raw.decode("ascii")


def _upload_id(raw: bytes) -> str:
    text = raw.decode("ascii", errors="replace")
    if not _UPLOAD_ID.fullmatch(text):
        raise ProtocolError("upload id is not 32 lowercase hex digits")
    return text


def _utf8(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"header {name} is not valid UTF-8") from None


def _uploader(raw: bytes) -> str:
    try:
        return validate_uploader_name(_utf8(raw, UPLOADER))
    except UnsafePathError as exc:
        raise ProtocolError(f"uploader name rejected: {exc}", "unsafe_path") from None


def _path(raw: bytes) -> str:
    try:
        validate_wire_path(_utf8(raw, PATH))
    except UnsafePathError as exc:
        raise ProtocolError(f"path rejected: {exc}", "unsafe_path") from None
    return raw.decode("utf-8")
