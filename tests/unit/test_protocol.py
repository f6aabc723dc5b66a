from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamsend.shared import protocol
from streamsend.shared.errors import ForeignRecordError, ProtocolError
from streamsend.shared.protocol import ChunkHeader, FileDigest, decode, encode
from tests.support.records import chunks_of

DATA = bytes(range(256)) * 40  # 10240 bytes: chunks of 4096, 4096, 2048


def test_round_trip_every_chunk() -> None:
    for chunk in chunks_of(DATA, 4096, path="a/b/été 1.txt"):
        assert decode(chunk.headers, chunk.value) == chunk.header


def test_final_chunk_carries_both_digests() -> None:
    chunks = chunks_of(DATA, 4096)
    assert [c.header.digest is not None for c in chunks] == [False, False, True]
    names = [name for name, _ in chunks[-1].headers]
    assert protocol.SHA256 in names and protocol.MD5 in names


def test_empty_file_is_one_empty_chunk() -> None:
    [chunk] = chunks_of(b"", 4096)
    header = decode(chunk.headers, chunk.value)
    assert (header.count, header.length, header.is_final) == (1, 0, True)


def test_values_are_readable_text() -> None:
    [chunk] = chunks_of(b"xyz", 4096, path="dir/name.txt")
    shown = dict(chunk.headers)
    assert shown[protocol.PATH] == b"dir/name.txt"
    assert shown[protocol.FILE_SIZE] == b"3"
    assert shown[protocol.VERSION] == b"1"


def test_foreign_headers_and_unknown_streamsend_headers_are_ignored() -> None:
    [chunk] = chunks_of(b"xyz", 4096)
    headers = [("traceparent", b"00-abc"), *chunk.headers, ("streamsend.future-field", b"whatever")]
    assert decode(headers, chunk.value) == chunk.header


@pytest.mark.parametrize("headers", [[], [("traceparent", b"x")]], ids=["no headers", "other headers"])
def test_records_of_other_producers_are_foreign(headers: list[tuple[str, bytes]]) -> None:
    with pytest.raises(ForeignRecordError) as caught:
        decode(headers, b"payload")
    assert caught.value.reason == "foreign"


def _break(name: str, value: bytes | None) -> list[tuple[str, bytes | None]]:
    chunk = chunks_of(DATA, 4096)[2]
    return [(n, value if n == name else v) for n, v in chunk.headers]


FINAL = chunks_of(DATA, 4096)[2]
FIRST = chunks_of(DATA, 4096)[0]


@pytest.mark.parametrize(
    ("headers", "value", "reason", "message"),
    [
        (_break(protocol.VERSION, b"3"), FINAL.value, "version", "unsupported protocol version"),
        (_break(protocol.VERSION, b"one"), FINAL.value, "version", "unsupported protocol version"),
        ([h for h in FINAL.headers if h[0] != protocol.VERSION], FINAL.value, "malformed", "version missing"),
        ([h for h in FINAL.headers if h[0] != protocol.PATH], FINAL.value, "malformed", "path missing"),
        ([h for h in FINAL.headers if h[0] != protocol.CHUNK_CRC32C], FINAL.value, "malformed", "crc32c missing"),
        ([*FINAL.headers, (protocol.PATH, b"other")], FINAL.value, "malformed", "repeated"),
        (_break(protocol.CHUNK_INDEX, b"-1"), FINAL.value, "malformed", "non-negative integer"),
        (_break(protocol.CHUNK_INDEX, b"02"), FINAL.value, "malformed", "non-negative integer"),
        (_break(protocol.CHUNK_INDEX, b"2.0"), FINAL.value, "malformed", "non-negative integer"),
        (_break(protocol.CHUNK_INDEX, b" 2"), FINAL.value, "malformed", "non-negative integer"),
        (_break(protocol.CHUNK_INDEX, b"3"), FINAL.value, "malformed", "index 3 not below"),
        (_break(protocol.CHUNK_COUNT, b"99999999999999999999"), FINAL.value, "malformed", "integer"),
        (_break(protocol.CHUNK_COUNT, b"4"), FINAL.value, "malformed", "does not fit file size"),
        (_break(protocol.FILE_SIZE, b"9223372036854775807"), FINAL.value, "malformed", "does not fit file size"),
        (_break(protocol.CHUNK_SIZE, b"0"), FINAL.value, "malformed", "chunk size 0 out of range"),
        (_break(protocol.OFFSET, b"4096"), FINAL.value, "malformed", "does not fit chunk index"),
        (_break(protocol.MTIME_NS, b"yesterday"), FINAL.value, "malformed", "not an integer"),
        (FINAL.headers, FINAL.value + b"x", "malformed", "carries 2049 bytes, expected 2048"),
        (FINAL.headers, FINAL.value[:-1], "malformed", "carries 2047 bytes"),
        (FINAL.headers, None, "malformed", "no value"),
        (_break(protocol.CHUNK_CRC32C, b"00000000"), FINAL.value, "checksum", "CRC32C"),
        (_break(protocol.CHUNK_CRC32C, b"ABCDEF01"), FINAL.value, "malformed", "lowercase hex"),
        (_break(protocol.SHA256, b"00" * 31), FINAL.value, "malformed", "lowercase hex"),
        ([h for h in FINAL.headers if h[0] != protocol.MD5], FINAL.value, "malformed", "both sha256 and md5"),
        ([h for h in FINAL.headers if h[0] not in (protocol.MD5, protocol.SHA256)], FINAL.value, "malformed",
         "final chunk"),
        ([*FIRST.headers, *[h for h in FINAL.headers if h[0] in (protocol.SHA256, protocol.MD5)]], FIRST.value,
         "malformed", "final chunk"),
        (_break(protocol.UPLOAD_ID, b"XYZ"), FINAL.value, "malformed", "upload id"),
        (_break(protocol.UPLOAD_ID, b"\xff" * 32), FINAL.value, "malformed", "upload id"),
        (_break(protocol.PATH, b"../etc/passwd"), FINAL.value, "unsafe_path", "relative segment"),
        (_break(protocol.PATH, b"/etc/passwd"), FINAL.value, "unsafe_path", "absolute"),
        (_break(protocol.PATH, b"a\\..\\b"), FINAL.value, "unsafe_path", "separator"),
        (_break(protocol.PATH, b"\xff\xfe"), FINAL.value, "malformed", "not valid UTF-8"),
        (_break(protocol.UPLOADER, b"../x"), FINAL.value, "unsafe_path", "uploader name"),
        (_break(protocol.UPLOADER, b".streamsend"), FINAL.value, "unsafe_path", "uploader name"),
        (_break(protocol.PATH, None), FINAL.value, "malformed", "has no value"),
    ],
)  # fmt: skip
def test_malformed_records_are_refused_with_a_reason(
    headers: list[tuple[str, bytes | None]], value: bytes | None, reason: str, message: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(headers, value)
    assert caught.value.reason == reason
    assert message in str(caught.value)


def test_encode_puts_digests_only_where_given() -> None:
    header = ChunkHeader("u", "p", "0" * 32, 0, 1, 10, 0, 3, 0, protocol.crc32c(b"abc"), FileDigest("a" * 64, "b" * 32))
    assert len(encode(header)) == 13
    assert len(encode(dataclasses.replace(header, digest=None))) == 11


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*protocol._KNOWN, "streamsend.x", "other"]),
            st.one_of(st.none(), st.binary(max_size=40), st.from_regex(rb"-?[0-9]{1,21}", fullmatch=True)),
        ),
        max_size=16,
    ),
    st.one_of(st.none(), st.binary(max_size=64)),
)
def test_decoder_raises_nothing_but_protocol_errors(
    headers: list[tuple[str, bytes | None]], value: bytes | None
) -> None:
    try:
        decode(headers, value)
    except ProtocolError:
        pass


@settings(max_examples=200)
@given(
    data=st.binary(max_size=3000),
    chunk_size=st.integers(min_value=1, max_value=1024),
    path=st.from_regex(r"[A-Za-z0-9é日 _-]{1,20}(/[A-Za-z0-9é日 _-]{1,20}){0,3}", fullmatch=True),
)
def test_every_chunk_of_any_file_round_trips(data: bytes, chunk_size: int, path: str) -> None:
    for chunk in chunks_of(data, chunk_size, path=path):
        assert decode(chunk.headers, chunk.value) == chunk.header
