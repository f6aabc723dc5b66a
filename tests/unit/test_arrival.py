"""Arrival events: every outcome gives an event the published schema accepts, with the fields of the file, and
the schema in the package is the one in docs/."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from streamsend.downloader.arrival import arrival_event, encode_event, event_key, schema
from streamsend.downloader.assembly import FileDescription
from streamsend.downloader.completion import Assembled
from streamsend.downloader.staging import Staging
from streamsend.downloader.uploads import UploadKey
from streamsend.shared.protocol import FileDigest

ROOT = Path(__file__).resolve().parents[2]


def _item(outcome: str, reason: str | None = None) -> Assembled:
    upload_id = "ab" * 16
    item = Assembled(
        key=UploadKey(3, upload_id),
        file=FileDescription(
            "edge-1", "policies/policy.pdf", upload_id, 2_500_000, 3, 1_040_384, 1_765_000_000 * 10**9
        ),
        staging=Staging(Path("/nonexistent")),
        sha256="c" * 64,
        expected=FileDigest("c" * 64, "d" * 32),
        topic="file-chunks",
        partition=3,
        offset=1203,
        first_offset=1200,
    )
    item.outcome, item.reason = outcome, reason
    return item


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("published", None), ("identical", None), ("quarantined", "verification failed"), ("refused", "older")],
)
def test_every_outcome_gives_a_valid_event(outcome: str, reason: str | None) -> None:
    event = arrival_event(_item(outcome, reason), "mirror", "host-1", now=1_765_000_100.5)
    jsonschema.validate(event, schema())
    decoded = json.loads(encode_event(event))
    assert decoded == event
    assert (decoded["outcome"], decoded["reason"]) == (outcome, reason)
    assert decoded["output_path"] == "edge-1/policies/policy.pdf" and decoded["size"] == 2_500_000
    assert decoded["chunks"] == {"topic": "file-chunks", "partition": 3, "first_offset": 1200, "last_offset": 1203,
                                 "count": 3}  # fmt: skip
    assert decoded["mtime"] == "2025-12-06T05:46:40.000Z" and decoded["time"] == "2025-12-06T05:48:20.500Z"
    assert decoded["downloader"] == {"group_id": "mirror", "host": "host-1"}


def test_an_event_is_keyed_by_uploader_and_path() -> None:
    assert event_key(_item("published")) == b"edge-1/policies/policy.pdf"


def test_the_schema_in_docs_is_the_one_in_the_package() -> None:
    assert json.loads((ROOT / "docs" / "arrival-event.schema.json").read_text()) == schema()


def test_an_event_missing_a_field_fails_the_schema() -> None:
    event = arrival_event(_item("published"), "mirror", "host-1", now=0.0)
    del event["sha256"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema())


def test_a_reader_parses_an_event_and_skips_what_is_not_one() -> None:
    from streamsend.arrivals import Arrival

    event = arrival_event(_item("published"), "mirror", "host-1", now=0.0)
    arrival = Arrival.parse(encode_event(event))
    assert arrival is not None and arrival.arrived and arrival.output_path == "edge-1/policies/policy.pdf"
    assert arrival.upload_id == "ab" * 16 and arrival.metadata == {} and arrival.event == event
    for value in (None, b"", b"{", b"[]", b'{"v": 2}', json.dumps({**event, "size": "big"}).encode()):
        assert Arrival.parse(value) is None
    refused = Arrival.parse(encode_event(arrival_event(_item("refused", "older"), "m", "h", now=0.0)))
    assert refused is not None and not refused.arrived and refused.reason == "older"
