from __future__ import annotations

import json

from streamsend.uploader.files import FileState, SentFile
from streamsend.uploader.ledger import SentLedger
from streamsend.uploader.state import decode_state, encode_sent, state_key, state_partition

SENT = SentFile("a/b.txt", 10, 123, "s" * 64, "m" * 32, "u" * 32, 1.5)


def test_a_sent_file_round_trips_through_its_record() -> None:
    key = state_key("edge-1", SENT.path)
    assert decode_state("edge-1", key, encode_sent(SENT)) == (SENT.path, SENT)


def test_a_sealing_uploader_keeps_no_digest_in_its_records() -> None:
    value = encode_sent(SENT, digests=False)
    assert b"s" * 64 not in value and b"m" * 32 not in value
    decoded = decode_state("edge-1", state_key("edge-1", SENT.path), value)
    assert decoded is not None and isinstance(decoded[1], SentFile)
    assert (decoded[1].size, decoded[1].mtime_ns, decoded[1].sha256) == (SENT.size, SENT.mtime_ns, "")


def test_a_tombstone_forgets_the_file() -> None:
    assert decode_state("edge-1", state_key("edge-1", "a/b.txt"), None) == ("a/b.txt", None)


def test_records_of_other_uploaders_and_unreadable_ones_are_ignored() -> None:
    value = encode_sent(SENT)
    assert decode_state("edge-1", state_key("edge-10", "a"), value) is None
    assert decode_state("edge-1", b"no separator", value) is None
    assert decode_state("edge-1", None, value) is None
    assert decode_state("edge-1", b"\xff\x00x", value) is None
    assert decode_state("edge-1", state_key("edge-1", "a"), b"{not json") is None
    assert decode_state("edge-1", state_key("edge-1", "a"), json.dumps({"v": 2}).encode()) is None
    assert decode_state("edge-1", state_key("edge-1", "a"), json.dumps({"v": 1, "size": 1}).encode()) is None


def test_an_uploader_keeps_to_one_partition() -> None:
    assert {state_partition("edge-1", 6) for _ in range(3)} == {state_partition("edge-1", 6)}
    assert len({state_partition(f"pos-{i}", 6) for i in range(100)}) == 6


def test_the_ledger_judges_by_size_and_mtime() -> None:
    ledger = SentLedger()
    ledger.record(SENT)
    assert ledger.is_sent("a/b.txt", FileState(10, 123, inode=99))
    assert not ledger.is_sent("a/b.txt", FileState(11, 123, inode=99))
    assert not ledger.is_sent("a/b.txt", FileState(10, 124, inode=99))
    ledger.fail("x", FileState(1, 1, 1))
    assert ledger.is_done("x", FileState(1, 1, 1)) and not ledger.is_done("x", FileState(1, 2, 1))


def test_the_ledger_forgets_the_oldest_past_its_bound() -> None:
    ledger = SentLedger(max_files=3)
    for index in range(5):
        ledger.record(SentFile(f"f{index}", 1, 1, "", "", "", 0.0))
    assert len(ledger) == 3 and "f0" not in ledger and "f4" in ledger
    ledger.record(SentFile("f2", 1, 1, "", "", "", 0.0))  # sent again: now the newest
    ledger.record(SentFile("f5", 1, 1, "", "", "", 0.0))
    assert "f2" in ledger and "f3" not in ledger


def test_files_absent_for_long_enough_are_forgotten() -> None:
    ledger = SentLedger(forget_after_s=100)
    for name in ("kept", "gone", "back"):
        ledger.record(SentFile(name, 1, 1, "", "", "", 0.0))
    assert ledger.age_out({"kept"}, now=0.0) == []
    assert ledger.age_out({"kept", "back"}, now=50.0) == []  # "back" returned: its clock resets
    assert ledger.age_out({"kept"}, now=120.0) == ["gone"]
    assert "gone" not in ledger and "back" in ledger
    assert ledger.age_out({"kept"}, now=219.0) == []
    assert ledger.age_out({"kept"}, now=220.0) == ["back"]
